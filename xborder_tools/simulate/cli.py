"""`xborder simulate`: the stream to a file or to Kafka, in telemetry-v1 or another format
replay reads (formats.py), and a one-line summary.

Subject ids and IP addresses are never printed: the summary holds counts only.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from monitor.config.settings import Settings
from monitor.contract.formats import FORMATS, TELEMETRY
from monitor.contract.schemas import parse_ts
from monitor.errors import XborderError
from xborder_tools.simulate.formats import CARRIES, FormatWriter
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
    fmt: str = args.format
    if fmt != TELEMETRY and args.platform is None:
        raise XborderError(
            f"--format {fmt}: its records do not name the platform; simulate one with "
            f"--platform ({', '.join(world.platforms)}) and replay with the same --platform"
        )
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
        platforms=None if args.platform is None else {args.platform: 1.0},
    )
    try:
        items = generate_items(cfg)
    except ValueError as e:
        raise XborderError(str(e)) from e

    report = sys.stdout
    sink: FileSink | KafkaSink
    target: str
    writer = None
    if fmt != TELEMETRY:
        opened = cfg.start_ms if cfg.start_ms is not None else int(time.time() * 1000)
        writer = FormatWriter(fmt, args.seed, stream=args.out is None, opened_ms=opened)
    if args.out is not None:
        header: list[bytes] = [] if writer is None else writer.header()
        footer: list[bytes] = [] if writer is None else writer.footer()
        stream: IO[bytes]
        if str(args.out) == "-":
            stream, owned, target, report = sys.stdout.buffer, False, "stdout", sys.stderr
        else:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            stream, owned, target = args.out.open("wb"), True, str(args.out)
        hold = writer is not None and not header
        sink = FileSink(stream, owned, header=header, footer=footer, hold_invalid=hold)
    else:
        bootstrap = args.bootstrap_servers or settings.bootstrap
        topics = {
            "egress": args.topic_egress or settings.topics.egress,
            "api_call": args.topic_api or settings.topics.api,
            "consent": args.topic_consent or settings.topics.consent,
        }
        try:
            # Another format's lines are batched as lines: an array is telemetry's own.
            batch_format = args.batch_format if writer is None else "jsonl"
            sink = KafkaSink.connect(
                bootstrap, topics, args.batch, batch_format, args.acks, settings
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
            out = item if writer is None else writer.convert(item)
            if out is None:
                stats.skip(item)
            else:
                sink.send(out)
                stats.add(out)
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
    shown = target if fmt == TELEMETRY else f"{target} ({fmt})"
    print(f"simulated {stats.render()} in {seconds:.2f}s ({rate:,.0f}/s) -> {shown}", file=report)
    note = stats.unexpressed_note(fmt)
    if note is not None:
        print(f"xborder simulate: {note}", file=sys.stderr)
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
    p.add_argument(
        "--platform",
        help="simulate this platform only (needed by every --format but telemetry: "
        "their records do not name the platform; replay with the same --platform)",
    )
    out = p.add_argument_group("output (a file, or Kafka when --out is not given)")
    carries = "; ".join(f"{f}: {', '.join(sorted(CARRIES[f]))}" for f in FORMATS if f != TELEMETRY)
    out.add_argument(
        "--format",
        choices=FORMATS,
        default=TELEMETRY,
        help=f"what to write (default {TELEMETRY}); the others carry only some record kinds "
        f"({carries}) and leave the rest out, counted on stderr",
    )
    out.add_argument("--out", type=Path, help="file ('-' for stdout)")
    out.add_argument(
        "--bootstrap-servers",
        help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
    )
    out.add_argument("--topic-egress", help="default telemetry.egress (XBORDER_TOPIC_EGRESS)")
    out.add_argument("--topic-api", help="default telemetry.api (XBORDER_TOPIC_API)")
    out.add_argument("--topic-consent", help="default telemetry.consent (XBORDER_TOPIC_CONSENT)")
    out.add_argument("--batch", type=int, default=1, help="records per Kafka message (1 = single)")
    out.add_argument(
        "--batch-format",
        choices=("array", "jsonl"),
        default="array",
        help="telemetry batches (another --format is batched as lines)",
    )
    out.add_argument("--acks", choices=("0", "1", "all"), default="1")
    p.set_defaults(func=cmd_simulate)
