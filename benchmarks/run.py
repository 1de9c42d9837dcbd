"""Benchmarks: print figures, assert nothing (`make bench`).

Measures, on simulated telemetry of the three platforms:
- decode: contract parsing and validation, per record (many lines per call);
- resolve: GeoIP and endpoint registry, per record (cached GeoIP);
- rules: the whole default rule pack (stateless rules and the routing of
  stateful ones), per record, on records already resolved, in one batch;
- core: decode + resolve + rules + state + alert grouping, in batches of
  2,048 records, records per second (what `replay` sustains on one core,
  file reading excluded);
- ingest: the worker's ingest stage (decode, resolve, rules, routing by
  partition) with its Prometheus metrics, in batches of 2,048 messages,
  records per second; what metrics cost the data path shows here.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from monitor.config.disclosures import load_disclosures, load_endpoints
from monitor.config.settings import default_rules_dir
from monitor.contract.decode import decode_many
from monitor.contract.schemas import Record
from monitor.detect.local import LocalDetector, evaluate_batch
from monitor.detect.stages import ingest
from monitor.engine.loader import load_pack
from monitor.geo.geoip import GeoIP
from monitor.geo.resolve import Resolver
from xborder_tools.simulate import SimConfig, generate


def best_of(runs: int, fn: Callable[[], None]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from tests.support.geoip_build import TEST_NETWORKS, build_country_db

    rules = default_rules_dir()
    disclosures = load_disclosures(rules / "config" / "disclosures.yaml")
    endpoints = load_endpoints(rules / "config" / "endpoints.yaml")
    pack = load_pack(rules, disclosures)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "country.mmdb"
        build_country_db(db, TEST_NETWORKS)
        geoip = GeoIP.open(db)
        raw = [
            orjson.dumps(r)
            for r in generate(SimConfig(seed=7, count=args.records, start_ms=1790812800000))
        ]
        n = len(raw)
        src = {"file": "bench", "line": 0}
        records: list[Record] = []

        def decode() -> None:
            records.clear()
            for got in decode_many(raw):
                assert isinstance(got, Record)
                records.append(got)

        t_decode = best_of(args.runs, decode)
        resolver = Resolver(geoip, endpoints)
        flows = [resolver.resolve(r, src) for r in records]  # warm the GeoIP cache

        def resolve() -> None:
            for r in records:
                resolver.resolve(r, src)

        t_resolve = best_of(args.runs, resolve)

        def rules_only() -> None:
            evaluate_batch(pack, flows)

        per_run = []
        for _ in range(args.runs):
            per_run.append(best_of(1, rules_only))
        t_rules = min(per_run)

        def core() -> None:
            detector = LocalDetector(pack, Resolver(geoip, endpoints))
            for start in range(0, n, 2048):
                got = [r for r in decode_many(raw[start : start + 2048]) if isinstance(r, Record)]
                detector.process_batch(got, [src] * len(got))

        t_core = best_of(max(1, args.runs // 2), core)

        from prometheus_client import CollectorRegistry

        from monitor.metrics import Metrics

        messages = [
            (value, {"topic": "bench", "partition": 0, "offset": i}) for i, value in enumerate(raw)
        ]
        # Event times of the simulation's start: the clock they are checked against.
        now = 1790812800.0 + n

        def worker_ingest() -> None:
            metrics = Metrics(CollectorRegistry(), platforms=disclosures.by_platform)
            resolver = Resolver(geoip, endpoints)
            for start in range(0, n, 2048):
                ingest(messages[start : start + 2048], pack, resolver, 6, metrics, now=now)

        t_ingest = best_of(max(1, args.runs // 2), worker_ingest)

    us = 1e6 / n
    print(f"records: {n} simulated (seed 7), rule pack {pack.version}, {len(pack.rules)} rules")
    print(f"decode   {t_decode * us:7.2f} us/record")
    print(f"resolve  {t_resolve * us:7.2f} us/record (GeoIP cached)")
    print(
        f"rules    {t_rules * us:7.2f} us/record (whole default pack; "
        f"median of runs {statistics.median(per_run) * us:.2f})"
    )
    print(f"core     {n / t_core:9.0f} records/s (decode+resolve+rules+state+grouping, one core)")
    print(f"ingest   {n / t_ingest:9.0f} records/s (the worker's ingest stage, metrics included)")


if __name__ == "__main__":
    main()
