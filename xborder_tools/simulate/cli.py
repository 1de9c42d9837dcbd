"""`xborder simulate`: the stream to a JSON Lines file or to Kafka, and a one-line summary.

Subject ids and IP addresses are never printed: the summary holds counts only.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from monitor.config.settings import Settings
from monitor.contract.schemas import parse_ts
from monitor.errors import XborderError
from xborder_tools.simulate.generator import generate_items
from xborder_tools.simulate.model import SimConfig
from xborder_tools.simulate.sinks import FileSink, KafkaSink, SimStats
from xborder_tools.simulate.traffic import POOL_COUNTRIES
from xborder_tools.simulate.violations import VIOLATIONS
from xborder_tools.simulate.world import load_world, networks_from_geoip

__all__ = ["cmd_simulate", "register"]


def _parse_start(text: str | None) -> int | None:
    if text is None or text == "now":
        return None
    ms = parse_ts(int(text) if text.isdigit() else text)
    if ms is None:
        raise XborderError(f"--start: expected RFC 3339 with offset or epoch ms, got {text!r}")
    return ms


def _parse_counts(values: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        kind, _, n = value.partition("=")
        if kind not in VIOLATIONS or not n.isdigit():
            raise XborderError(f"--violation: expected KIND=N with KIND in {', '.join(VIOLATIONS)}")
        out[kind] = int(n)
    return out


def cmd_simulate(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    world = load_world(settings)
    networks = None
    if args.geoip_country is not None:
        wanted = [*POOL_COUNTRIES, *(c for c in world.countries if c not in POOL_COUNTRIES)]
        networks = networks_from_geoip(args.geoip_country, wanted)
    cfg = SimConfig(
        seed=args.seed,
        count=args.count,
        start_ms=_parse_start(args.start),
        events_per_second=args.events_per_second,
        violation_rates={k: args.violation_rate / len(VIOLATIONS) for k in VIOLATIONS},
        violation_counts=_parse_counts(args.violation),
        invalid_rate=args.invalid_rate,
        duplicate_rate=args.duplicate_rate,
        networks=networks,
        ipv6_share=args.ipv6_share,
        world=world,
    )
    try:
        items = generate_items(cfg)
    except ValueError as e:
        raise XborderError(str(e)) from e

    report = sys.stdout
    sink: FileSink | KafkaSink
    target: str
    if args.out is not None:
        if str(args.out) == "-":
            sink, target, report = FileSink(sys.stdout.buffer, owned=False), "stdout", sys.stderr
        else:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            sink, target = FileSink(args.out.open("wb")), str(args.out)
    else:
        bootstrap = args.bootstrap_servers or settings.bootstrap
        topics = {
            "egress": args.topic_egress or settings.topics.egress,
            "api_call": args.topic_api or settings.topics.api,
            "consent": args.topic_consent or settings.topics.consent,
        }
        try:
            sink = KafkaSink.connect(
                bootstrap, topics, args.batch, args.batch_format, args.acks, settings
            )
        except XborderError:
            raise
        except Exception as e:  # kafka-python raises several unrelated types on connect
            raise XborderError(f"cannot connect to Kafka at {bootstrap}: {e}") from e
        target = f"kafka {bootstrap}"

    stats = SimStats()
    started = time.perf_counter()
    try:
        for n, item in enumerate(items, 1):
            sink.send(item)
            stats.add(item)
            if args.rate > 0:
                ahead = started + n / args.rate - time.perf_counter()
                if ahead > 0.005:
                    time.sleep(ahead)
    except KeyboardInterrupt:
        pass  # forever-runs end with Ctrl-C; still flush and report
    finally:
        sink.close()
    seconds = time.perf_counter() - started
    rate = stats.total / seconds if seconds > 0 else 0.0
    print(f"simulated {stats.render()} in {seconds:.2f}s ({rate:,.0f}/s) -> {target}", file=report)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="generate synthetic platform telemetry with injected violations",
        description="Synthetic telemetry of the platforms the monitor's disclosures name: "
        "lawful traffic with injected violations of every rule, invalid records and "
        "duplicates, to a JSON Lines file or to Kafka. Platforms, their disclosed transfers, "
        "endpoint hosts, home region, watch countries and bulk threshold come from the rule "
        "pack and configuration the monitor reads (XBORDER_RULES, XBORDER_DISCLOSURES, "
        "XBORDER_ENDPOINTS, XBORDER_HOME_REGION).",
    )
    p.add_argument("--count", type=int, default=10_000, help="items to produce, 0 = forever")
    p.add_argument("--rate", type=float, default=0.0, help="items per second wall-clock (0 = max)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", help="event time of the first record: RFC 3339, epoch ms or now")
    p.add_argument(
        "--events-per-second", type=float, default=10.0, help="event-time rate (daytime KST)"
    )
    p.add_argument(
        "--violation-rate",
        type=float,
        default=8.0,
        help="violation episodes per 1000 items, shared equally by the kinds (default 8)",
    )
    p.add_argument(
        "--violation",
        action="append",
        default=[],
        metavar="KIND=N",
        help=f"exactly N episodes of KIND (repeatable; needs --count): {', '.join(VIOLATIONS)}",
    )
    p.add_argument("--invalid-rate", type=float, default=2.0, help="invalid items per 1000")
    p.add_argument("--duplicate-rate", type=float, default=5.0, help="re-sent records per 1000")
    p.add_argument("--ipv6-share", type=float, default=0.15, help="share of IPv6 addresses")
    p.add_argument(
        "--geoip-country",
        type=Path,
        help="draw addresses from networks this GeoIP database places (default: built-in ranges)",
    )
    out = p.add_argument_group("output (a file, or Kafka when --out is not given)")
    out.add_argument("--out", type=Path, help="JSON Lines file ('-' for stdout)")
    out.add_argument(
        "--bootstrap-servers",
        help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
    )
    out.add_argument("--topic-egress", help="default telemetry.egress (XBORDER_TOPIC_EGRESS)")
    out.add_argument("--topic-api", help="default telemetry.api (XBORDER_TOPIC_API)")
    out.add_argument("--topic-consent", help="default telemetry.consent (XBORDER_TOPIC_CONSENT)")
    out.add_argument("--batch", type=int, default=1, help="records per Kafka message (1 = single)")
    out.add_argument("--batch-format", choices=("array", "jsonl"), default="array")
    out.add_argument("--acks", choices=("0", "1", "all"), default="1")
    p.set_defaults(func=cmd_simulate)
