"""`xborder alerts tail|export`: read the alerts topic as a case officer or analyst would."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

import orjson

from monitor.config.settings import Settings

if TYPE_CHECKING:  # the command starts without loading the detection core
    from monitor.alerts.grouping import Alert

__all__ = ["format_alert", "latest_alerts", "read_alerts", "register"]

_SEVERITY_MARK = {"critical": "!!!", "high": "!! ", "medium": "!  ", "low": ".  "}


def format_alert(alert: Alert, is_update: bool | None = None) -> str:
    """One line per emission, for terminals: no personal data is in an alert to begin with."""
    update = alert.get("revision", 1) > 1 if is_update is None else is_update
    route = f"{alert.get('src_country') or '??'}->{alert.get('dst_country') or '??'}"
    dataset = f" dataset={alert['dataset_id']}" if alert.get("dataset_id") else ""
    return (
        f"{_SEVERITY_MARK.get(alert['severity'], '   ')} {alert['severity']:<8} "
        f"{'update' if update else 'NEW   '} {alert['rule_id']:<40} "
        f"{alert['platform']:<11} {route:<7} events={alert['event_count']:<6} "
        f"records={alert['records']:<8}{dataset} id={alert['alert_id'][:12]}"
    )


def read_alerts(
    bootstrap: str,
    topic: str,
    from_beginning: bool = True,
    idle_timeout: float | None = None,
    settings: Settings | None = None,
) -> Iterator[Alert]:
    """Alerts as they are on the topic, until `idle_timeout` seconds pass with none.

    Stops on silence rather than on end offsets: some Kafka-protocol brokers
    (Tansu) report wrong end offsets. `settings`: how to connect
    (XBORDER_KAFKA_*); none, PLAINTEXT.
    """
    from kafka import KafkaConsumer

    from monitor.kafka_security import check_access, kafka_python_config

    security = {}
    if settings is not None:
        security = kafka_python_config(settings)
        check_access(settings, bootstrap)
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        consumer_timeout_ms=int(idle_timeout * 1000) if idle_timeout else float("inf"),
        fetch_max_wait_ms=100,
        **security,
    )
    try:
        for message in consumer:
            try:
                # The topic carries build_alert's documents.
                yield cast("Alert", orjson.loads(message.value))
            except orjson.JSONDecodeError:
                continue
    finally:
        consumer.close()


def latest_alerts(alerts: Iterator[Alert]) -> dict[str, Alert]:
    """The latest state of every alert: highest revision wins, re-emissions are idempotent."""
    latest: dict[str, Alert] = {}
    for alert in alerts:
        current = latest.get(alert["alert_id"])
        if current is None or alert.get("revision", 0) >= current.get("revision", 0):
            latest[alert["alert_id"]] = alert
    return latest


def write_jsonl(alerts: dict[str, Alert], out: IO[bytes]) -> None:
    for alert in sorted(alerts.values(), key=lambda a: (a["first_seen"], a["alert_id"])):
        out.write(orjson.dumps(alert) + b"\n")


def cmd_tail(args: argparse.Namespace) -> int:
    s = Settings.from_env()
    bootstrap = args.bootstrap_servers or s.bootstrap
    for alert in read_alerts(
        bootstrap, args.topic or s.topics.alerts, args.from_beginning, None, s
    ):
        print(format_alert(alert), flush=True)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    s = Settings.from_env()
    bootstrap = args.bootstrap_servers or s.bootstrap
    started = time.monotonic()
    latest = latest_alerts(
        read_alerts(bootstrap, args.topic or s.topics.alerts, True, args.idle, s)
    )
    if str(args.out) == "-":
        write_jsonl(latest, sys.stdout.buffer)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("wb") as out:
            write_jsonl(latest, out)
        print(
            f"{len(latest)} alerts written to {args.out} in {time.monotonic() - started:.1f}s",
            file=sys.stderr,
        )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    alerts = sub.add_parser("alerts", help="read alerts from Kafka").add_subparsers(
        dest="alerts_command", required=True
    )
    p = alerts.add_parser("tail", help="print alerts as they fire")
    p.add_argument("--bootstrap-servers")
    p.add_argument("--topic")
    p.add_argument("--from-beginning", action="store_true")
    p.set_defaults(func=cmd_tail)
    p = alerts.add_parser(
        "export", help="write the latest state of every alert as JSON lines (replay's format)"
    )
    p.add_argument("--out", type=Path, required=True, help="file, or - for standard output")
    p.add_argument("--bootstrap-servers")
    p.add_argument("--topic")
    p.add_argument(
        "--idle", type=float, default=5.0, help="stop after this many seconds with no new alert"
    )
    p.set_defaults(func=cmd_export)
