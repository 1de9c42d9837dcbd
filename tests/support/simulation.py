"""The simulator's stream through the detection core, under the configuration the monitor
reads, with the tests' GeoIP database."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from monitor.config.runtime import Runtime, load_runtime
from monitor.config.settings import Settings
from monitor.contract.decode import decode_line
from monitor.contract.schemas import DeadLetter, FileSource
from monitor.detect.local import LocalDetector
from monitor.geo.resolve import Resolver
from xborder_tools.simulate import VIOLATIONS, SimItem

START = 1_790_000_000_000  # 2026-09-21T14:13:20Z


def detect(runtime: Runtime, items: list[SimItem]) -> tuple[Counter[str], Counter[str]]:
    """(matching records per rule id, dead letters per reason) after running the stream."""
    detector = LocalDetector(runtime.pack, Resolver(runtime.geoip, runtime.endpoints))
    dead: Counter[str] = Counter()
    for line, item in enumerate(items, 1):
        source: FileSource = {"file": "sim.jsonl", "line": line}
        got = decode_line(item.raw, source)
        if isinstance(got, DeadLetter):
            dead[got.reason] += 1
        elif got is not None:
            detector.process(got, source)
    fired: Counter[str] = Counter()
    for rule, group in detector.open_groups():
        fired[rule.id] += group["event_count"]
    return fired, dead


def every_rule(per_1000: float) -> dict[str, float]:
    """Violation rates of `per_1000` episodes per 1000 items, spread evenly over every kind."""
    return {k: per_1000 / len(VIOLATIONS) for k in VIOLATIONS}


def simulation_runtime(geo_db: Path) -> Iterator[Runtime]:
    """The runtime of the settings in the environment, on `geo_db`; closed after use."""
    settings = Settings.from_env().override({"geoip_country": geo_db, "use_geoip": True})
    rt = load_runtime(settings)
    yield rt
    rt.close()
