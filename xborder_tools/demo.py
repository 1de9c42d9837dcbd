"""`xborder demo`: broker, worker, simulated platforms, and alerts on the terminal as they fire.

Uses the Kafka given by KAFKA_BOOTSTRAP_SERVERS (or --bootstrap-servers)
when there is one; otherwise starts the embedded Tansu broker (memory
storage). Ctrl-C stops everything the demo started.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from monitor.cli.alerts import format_alert, read_alerts
from monitor.config.settings import Settings
from monitor.config.subject_key import random_key
from monitor.kafka_admin import create_topics
from xborder_tools.embedded_broker import EmbeddedBroker
from xborder_tools.geoip_fetch import fetch_demo_databases
from xborder_tools.simulate.world import load_world

__all__ = ["register", "run_demo"]


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def _ensure_geoip(settings: Settings) -> Path:
    path = settings.geoip_country_path
    if path.is_file():
        return path
    _say(f"obtaining a free GeoIP country database into {path.parent} (once)")
    fetched = fetch_demo_databases(path.parent, asn=False)
    return Path(fetched.country)


@contextlib.contextmanager
def _broker(bootstrap: str | None, workdir: Path) -> Iterator[str]:
    if bootstrap:
        _say(f"using the Kafka at {bootstrap}")
        yield bootstrap
        return
    broker = EmbeddedBroker()
    broker.start(log_path=workdir / "broker.log")
    try:
        broker.wait_ready(30.0)
        _say(
            f"embedded Tansu broker on {broker.bootstrap} (memory storage; log: {workdir / 'broker.log'})"
        )
        yield broker.bootstrap
    finally:
        broker.stop()


def _demo_key(workdir: Path) -> Path:
    """The demo's subject key: made once, readable by its owner alone."""
    path = workdir / "subject.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(random_key().hex().encode())
    return path


def _demo_secret(workdir: Path) -> Path:
    """The webhook signing secret the demo's notifier and receiver share (owner-only)."""
    path = workdir / "webhook.secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(b"whsec_" + base64.b64encode(os.urandom(32)) + b"\n")
    return path


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    # A new session, so Ctrl-C reaches the demo first and it stops children in order.
    return subprocess.Popen(
        args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def _stop(proc: subprocess.Popen[bytes], name: str) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        _say(f"{name} did not stop in time; killing it")
        proc.kill()
        proc.wait()


def run_demo(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    bootstrap = args.bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    workdir = settings.data_dir / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    geoip = _ensure_geoip(settings)
    xborder = [sys.executable, "-m", "monitor.cli"]
    stop = threading.Event()
    started = time.monotonic()
    # The embedded broker speaks PLAINTEXT alone: XBORDER_KAFKA_* are for a
    # Kafka of one's own, given by KAFKA_BOOTSTRAP_SERVERS.
    kafka = settings if bootstrap else None
    inherited = {
        k: v for k, v in os.environ.items() if bootstrap or not k.startswith("XBORDER_KAFKA_")
    }
    with _broker(bootstrap, workdir) as servers:
        topics = settings.topics
        create_topics(
            servers,
            [*topics.inputs, topics.alerts, topics.dead_letters],
            settings.partitions,
            settings=kafka,
        )
        env = {
            **inherited,
            "KAFKA_BOOTSTRAP_SERVERS": servers,
            "XBORDER_GEOIP_COUNTRY": str(geoip),
        }
        env["XBORDER_METRICS_PORT"] = str(args.metrics_port)
        # Tansu answers a new group's first join after half the session timeout.
        env.setdefault("XBORDER_SESSION_TIMEOUT", "6")
        env.setdefault("XBORDER_APP_ID", f"xborder-demo-{int(time.time())}")
        # Simulated event time runs about ten times faster than the wall clock
        # (10 events per simulated second, sent at --rate per real second).
        env.setdefault("XBORDER_MAX_CLOCK_SKEW", str(30 * 86400))
        if "XBORDER_SUBJECT_KEY" not in env:
            env.setdefault("XBORDER_SUBJECT_KEY_FILE", str(_demo_key(workdir)))
        worker = _spawn([*xborder, "worker"], workdir / "worker.log", env)
        _say(f"worker started (log: {workdir / 'worker.log'})")
        _say(f"metrics: http://127.0.0.1:{args.metrics_port}/metrics")
        simulator = _spawn(
            [
                *xborder,
                "simulate",
                "--count",
                "0",
                "--rate",
                str(args.rate),
                "--violation-rate",
                str(args.violation_rate),
                "--geoip-country",
                str(geoip),
                "--bootstrap-servers",
                servers,
                "--batch",
                "20",
            ],
            workdir / "simulator.log",
            env,
        )
        # The case officers' side: the reference receiver on the address the
        # default delivery file names, and the notifier delivering to it.
        secret = _demo_secret(workdir)
        env["XBORDER_WEBHOOK_SECRET"] = secret.read_text().strip()
        history, received = workdir / "deliveries.sqlite3", workdir / "received.jsonl"
        if not bootstrap:
            # The embedded broker keeps nothing from the last run, whose
            # seeded stream made the same alert ids: its deliveries would make
            # this run's look already done (the history) or replayed (the receiver).
            for done in (history, received):
                done.unlink(missing_ok=True)
        env.setdefault("XBORDER_DELIVERY_HISTORY", str(history))
        env.setdefault("XBORDER_NOTIFY_METRICS_PORT", "0")
        receiver = subprocess.Popen(
            [*xborder, "receive", "--port", str(args.receiver_port), "--secret-file", str(secret),
             "--store", str(received)],
            stdout=subprocess.PIPE, stderr=(workdir / "receiver.log").open("ab"), env=env,
            start_new_session=True,
        )  # fmt: skip
        notifier = _spawn([*xborder, "notify"], workdir / "notify.log", env)
        _say(
            f"notifier delivering signed webhooks to the reference receiver on port "
            f"{args.receiver_port} (history: xborder deliveries list)"
        )
        platforms = ", ".join(load_world(settings).platforms)
        _say(f"simulated telemetry of {platforms} at {args.rate} records/s")
        _say("alerts as they fire (Ctrl-C stops everything):")

        shown: set[str] = set()

        def watch() -> None:
            for alert in read_alerts(servers, topics.alerts, from_beginning=True, settings=kafka):
                if not shown:
                    _say(f"first alert after {time.monotonic() - started:.1f}s")
                is_new = alert["alert_id"] not in shown
                shown.add(alert["alert_id"])
                print(format_alert(alert, is_update=not is_new), flush=True)
                if stop.is_set():
                    return

        def deliveries() -> None:
            assert receiver.stdout is not None
            for raw in receiver.stdout:
                print(f"  delivered: {raw.decode(errors='replace').rstrip()}", flush=True)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        threading.Thread(target=deliveries, daemon=True).start()
        try:
            deadline = time.monotonic() + args.seconds if args.seconds else None
            while deadline is None or time.monotonic() < deadline:
                for proc, name in (
                    (worker, "worker"),
                    (simulator, "simulator"),
                    (notifier, "notify"),
                    (receiver, "receiver"),
                ):
                    if proc.poll() is not None:
                        _say(
                            f"{name} exited with {proc.returncode}; see {workdir / (name + '.log')}"
                        )
                        return 1
                time.sleep(0.5)
        except KeyboardInterrupt:
            _say("stopping")
        finally:
            stop.set()
            _stop(simulator, "simulator")
            _stop(worker, "worker")
            _stop(notifier, "notifier")
            _stop(receiver, "receiver")
    _say("stopped")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="run broker, worker and simulated platforms; show alerts")
    p.add_argument("--bootstrap-servers", help="use this Kafka instead of the embedded broker")
    p.add_argument("--rate", type=float, default=100.0, help="simulated records per second")
    p.add_argument("--violation-rate", type=float, default=10.0, help="violations per 1000 records")
    p.add_argument("--metrics-port", type=int, default=9464)
    p.add_argument(
        "--receiver-port",
        type=int,
        default=8790,
        help="port of the reference receiver (the default delivery file's address)",
    )
    p.add_argument(
        "--seconds", type=float, default=0, help="stop after this long (0: until Ctrl-C)"
    )
    p.set_defaults(func=run_demo)
