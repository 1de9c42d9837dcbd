"""State size: what the worker holds per million tracked items (prints figures, asserts nothing).

    .venv/bin/python -m benchmarks.state_size [--n 200000] [--jobs 2] [--trace-build]

Builds each kind of state for N tracked units (default N = 200,000) by running
realistic records through the real code (`decode_line`, `Resolver` over a
`StaticLookup`, `evaluate`, the rule type's `route`/`apply`, `group_hits`
with `AlertGrouper` and `UpdateLimiter`), then extrapolates linearly to one
million units:

- onward:       datasets tracked by the onward-transfer rule, one first hop
                home -> S per (platform, dataset) (window 30d in the default pack);
- consent:      subjects with one consent record each;
- consent+call: subjects with one consent record and one recent call naming
                them (calls are kept for the late allowance, 24h);
- groups:       open alert groups (one onward hit each by default), their
                seen-ids, and the worker's update limiter (alert id -> last
                emission time, process memory only); after a new alert is
                sent the worker rewrites its group with `emitted_rev`
                (`GroupAgent.mark_emitted` in agents/group.py), which is done here too;
- bulk:         bulk-volume (threshold) windows, two hourly windows per
                (platform, destination) key as the 2h horizon keeps, one record
                each by default; and their seen-ids (one per record counted).
                A real deployment holds only platforms x destinations x ~2
                windows: a million is a unit, not an expectation.

Two measures per table:
1. memory: Python heap of each table, measured with tracemalloc (not RSS)
   as the bytes held by the table rebuilt the way Faust's `memory://` store
   rebuilds it from its changelog on recovery (keys and values decoded with
   the json codec, plus the store's key -> partition map); the tables are
   plain dicts of JSON-ready values and the seen-ids are `agents.stores.TableSeen`
   entries (one key per scope and id, valued with the scope's expiry), which
   is what a Faust worker with the `memory://` table store holds. Only the
   table is counted, not caches or garbage. `--trace-build` instead traces
   the build itself (about 4x slower) and counts the bytes freed when each
   table, as built by `apply`, is cleared: within ~10 % of the recovered
   figure. tracemalloc counts requested bytes, not the allocator's rounding
   and fragmentation, so each kind also prints how much the resident set
   grew while building it, in a process of its own.
2. changelog: len(key) + len(value) as Faust's `json` codec writes them
   (`faust.serializers.codecs` -> `faust.utils.json.dumps`: orjson when
   installed, else json.dumps with separators (",", ":"); compact either way),
   for the live entries (what a compacted changelog holds and a recovery
   reads) and for every write made while building (what the broker holds
   before compaction). Kafka's per-record overhead is not included.

Items travel between `route` and `apply` (and hits to the grouper) through a
JSON round trip, as they do over the worker's topics, so values share no
objects.

State keys of data subjects hold a hash, never the subject id:
`monitor.engine.state.subject_hash` (blake2b-128 of platform and subject id,
32 hex characters, after the rule id), so neither the tables nor their
changelogs hold raw subject ids, and the key size does not depend on how long
the platform's subject ids are.
"""

from __future__ import annotations

import argparse
import functools
import gc
import multiprocessing
import os
import random
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from faust.serializers import codecs

from agents.stores import TableSeen
from monitor.alerts.grouping import AlertContext, AlertGrouper
from monitor.config.disclosures import load_disclosures, load_endpoints
from monitor.config.settings import default_rules_dir
from monitor.contract.decode import decode_line
from monitor.contract.schemas import Record, Source
from monitor.detect.local import evaluate
from monitor.detect.stages import UpdateLimiter, group_hits, partition_for
from monitor.engine.loader import load_pack
from monitor.engine.model import Hit, Rule, RulePack
from monitor.engine.ruletypes.base import RuleType
from monitor.engine.ruletypes.consent import ConsentRule
from monitor.engine.ruletypes.onward import OnwardRule
from monitor.engine.ruletypes.threshold import ThresholdRule
from monitor.engine.state import MemorySeen, MemoryStore
from monitor.geo.resolve import Resolver, StaticLookup

T0 = 1790812800000  # 2026-10-01T00:00:00Z
HOUR = 3_600_000
PARTITIONS = 12  # of the tables, for the key -> partition map of a recovered store
DAY = 24 * HOUR
PLATFORMS = ("aliexpress", "temu", "shein")
KR_IP = "211.234.1.10"
# Destination addresses by country; the bulk windows spread over all of them.
DST_IPS = {
    "CN": "47.92.1.10",
    "US": "3.80.1.10",
    "SG": "8.219.1.10",
    "JP": "13.112.1.10",
    "VN": "14.160.1.10",
    "RU": "5.45.200.1",
    "HK": "47.75.1.10",
    "DE": "18.184.1.10",
}
TOPICS = {"egress": "telemetry.egress", "api_call": "telemetry.api", "consent": "telemetry.consent"}

_JSON = codecs.get_codec("json")


def faust_json(obj: Any) -> bytes:
    """Bytes as a Faust table with the `json` key/value serializer writes them."""
    out: bytes = _JSON.dumps(obj)
    return out


class Table(dict[str, Any]):
    """A `memory://` table: a dict that also counts the changelog bytes of every write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.written = 0

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes += 1
        self.written += len(faust_json(key)) + len(faust_json(value))
        super().__setitem__(key, value)


@dataclass
class TableFigures:
    name: str
    keys: int
    memory: int  # tracemalloc bytes of the table recovered (or, --trace-build, as built)
    live: int  # changelog bytes of the live entries
    written: int  # changelog bytes of every write while building
    writes: int
    logged: bool  # a Faust table with a changelog (else process memory only)
    sample_key: str
    sample_value: str


@dataclass
class KindFigures:
    kind: str
    unit: str
    n: int
    records: int  # telemetry records run through the pipeline
    seconds: float
    rss_growth: int | None  # resident set growth while building (not with --trace-build)
    tables: list[TableFigures] = field(default_factory=list)


class Builder:
    """Turns record dicts into state through the real decode/resolve/route/apply path."""

    def __init__(self, seed: int) -> None:
        rules = default_rules_dir()
        disclosures = load_disclosures(rules / "config" / "disclosures.yaml")
        self.pack: RulePack = load_pack(rules, disclosures)
        lookup = StaticLookup({KR_IP: "KR", **{ip: c for c, ip in DST_IPS.items()}})
        self.resolver = Resolver(lookup, load_endpoints(rules / "config" / "endpoints.yaml"))
        self.rng = random.Random(seed)
        self.offset = 48_000_000
        self.records = 0
        self.datasets: set[str] = set()

    def rule(self, kind: type[RuleType]) -> Rule:
        return next(r for r in self.pack.stateful if isinstance(r.type, kind))

    def event_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def subject(self) -> str:
        return f"u-{self.rng.getrandbits(64):016x}"

    def source(self, kind: str) -> Source:
        self.offset += self.rng.randrange(1, 50)
        return {"topic": TOPICS[kind], "partition": self.rng.randrange(12), "offset": self.offset}

    def routed(self, rule: Rule, raw: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        """(state key, item) of `rule` for one record, items after a JSON round trip."""
        source = self.source(raw["kind"])
        got = decode_line(orjson.dumps(raw), source)
        assert isinstance(got, Record), got
        self.records += 1
        flow = self.resolver.resolve(got, source)
        _, routed = evaluate(self.pack, flow)
        for rule_id, key, item in routed:
            if rule_id == rule.id:
                yield key, orjson.loads(orjson.dumps(item))

    def feed(self, rule: Rule, state: Any, seen: Any, raw: dict[str, Any]) -> list[Hit]:
        assert rule.type is not None
        hits: list[Hit] = []
        for key, item in self.routed(rule, raw):
            hits.extend(rule.type.apply(state, seen, key, item))
        return hits

    # --- telemetry records -------------------------------------------------------

    def egress(self, platform: str, ts: int, src_ip: str, dst: str, **extra: Any) -> dict[str, Any]:
        n = self.rng.randint(200, 3000)
        return {
            "kind": "egress",
            "v": 1,
            "event_id": self.event_id(),
            "ts": ts,
            "platform": platform,
            "service": f"{platform}-order-export",
            "src_ip": src_ip,
            "dst_ip": DST_IPS[dst],
            "bytes": n * self.rng.randint(500, 1200),
            "dst_port": 443,
            "protocol": "https",
            "subject_region": "KR",
            "data_categories": ["user.contact.address", "user.name"],
            "records": n,
            **extra,
        }

    def consent(self, platform: str, ts: int, subject: str) -> dict[str, Any]:
        withdrawn = self.rng.random() < 0.2
        return {
            "kind": "consent",
            "event_id": self.event_id(),
            "ts": ts,
            "platform": platform,
            "service": f"{platform}-privacy-center",
            "subject_id": subject,
            "scope": "overseas_transfer",
            "granted": not withdrawn,
            "countries": self.rng.choice((["CN"], ["*"])) if withdrawn else ["*"],
        }

    def call(self, platform: str, ts: int, subjects: list[str]) -> dict[str, Any]:
        return {
            "kind": "api_call",
            "event_id": self.event_id(),
            "ts": ts,
            "platform": platform,
            "service": f"{platform}-member",
            "operation": "profile.sync",
            "endpoint": "https://fc.cn-hangzhou.aliyuncs.com/v1/profile",
            "dst_ip": DST_IPS["CN"],
            "src_country": "KR",
            "method": "POST",
            "status": 200,
            "recipient": "Alibaba (China) Co., Ltd.",
            "subject_region": "KR",
            "data_categories": ["user.name", "user.contact"],
            "records": len(subjects),
            "subject_ids": subjects,
            "purpose": "order fulfilment",
            "legal_basis": "consent",
        }

    def dataset(self, platform: str) -> str:
        while True:  # 32 random bits collide a few times in 200,000 draws
            name = f"ds-{platform}-export-{self.rng.getrandbits(32):08x}"
            if name not in self.datasets:
                self.datasets.add(name)
                return name


# --- the kinds of state ----------------------------------------------------------


def build_onward(b: Builder, n: int, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    rule = b.rule(OnwardRule)
    state, seen = Table(), TableSeen(Table())
    step = 30 * DAY // n
    for i in range(n):
        platform = PLATFORMS[i % len(PLATFORMS)]
        hop = b.egress(platform, T0 + i * step, KR_IP, "CN", dataset_id=b.dataset(platform))
        b.feed(rule, state, seen, hop)
    return {"state": state}


def build_consent(
    b: Builder, n: int, args: argparse.Namespace, calls: bool
) -> dict[str, dict[str, Any]]:
    rule = b.rule(ConsentRule)
    state, seen = Table(), TableSeen(Table())
    per_call = args.subjects_per_call
    step = DAY // n
    for start in range(0, n, per_call):
        platform = PLATFORMS[start // per_call % len(PLATFORMS)]
        ts = T0 + start * step
        subjects = [b.subject() for _ in range(min(per_call, n - start))]
        for s in subjects:
            b.feed(rule, state, seen, b.consent(platform, ts - b.rng.randint(1, 90) * DAY, s))
        if calls:
            b.feed(rule, state, seen, b.call(platform, ts, subjects))
    return {"state": state}


def build_groups(b: Builder, n: int, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    rule = b.rule(OnwardRule)
    groups, seen_table = Table(), Table()
    grouper = AlertGrouper(b.pack, groups, TableSeen(seen_table))
    context = AlertContext(b.pack.version, b.resolver.geoip_build)
    limiter = UpdateLimiter(30.0)
    step = DAY // n
    for i in range(n):
        platform = PLATFORMS[i % len(PLATFORMS)]
        ts = T0 + i * step
        dataset = b.dataset(platform)
        scratch = MemoryStore()  # the onward state is not what is measured here
        hits = b.feed(
            rule, scratch, MemorySeen(), b.egress(platform, ts, KR_IP, "CN", dataset_id=dataset)
        )
        for h in range(args.hits_per_group):
            hop2 = b.egress(
                platform, ts + (h + 1) * 600_000, DST_IPS["CN"], "US", dataset_id=dataset
            )
            hits.extend(b.feed(rule, scratch, MemorySeen(), hop2))
        hits = orjson.loads(orjson.dumps(hits))  # over the hits topic
        for e in group_hits(hits, b.pack, grouper, context, now=ts / 1000):
            if limiter.admit(e.alert_id, e.group_key, e.is_new, ts / 1000):
                # As the worker's `mark_emitted` does once the alert is sent.
                value = groups[e.group_key]
                for g in value["groups"]:
                    if g["alert_id"] == e.alert_id:
                        g["emitted_rev"] = g["revision"]
                groups[e.group_key] = value
    return {"groups": groups, "seen": seen_table, "limiter": limiter.last}


def build_bulk(b: Builder, n: int, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    rule = b.rule(ThresholdRule)
    state, seen_table = Table(), Table()
    seen = TableSeen(seen_table)
    countries = list(DST_IPS)
    for w in range(n):
        key, hour = divmod(w, 2)
        platform = f"shop-{key // len(countries):05d}"
        country = countries[key % len(countries)]
        for _ in range(args.records_per_window):
            ts = T0 + hour * HOUR + b.rng.randrange(HOUR)
            b.feed(rule, state, seen, b.egress(platform, ts, KR_IP, country))
    return {"state": state, "seen": seen_table}


KINDS: dict[
    str, tuple[str, Callable[[Builder, int, argparse.Namespace], dict[str, dict[str, Any]]]]
] = {
    "onward": ("dataset", build_onward),
    "consent": ("subject", lambda b, n, a: build_consent(b, n, a, calls=False)),
    "consent+call": ("subject", lambda b, n, a: build_consent(b, n, a, calls=True)),
    "groups": ("group", build_groups),
    "bulk": ("window", build_bulk),
}


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def traced(make: Callable[[], object]) -> tuple[int, object]:
    """tracemalloc bytes still held by what `make` returns, and it."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    made = make()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held, made


def recover(entries: list[tuple[bytes, bytes]], logged: bool) -> object:
    """The table as Faust's memory store rebuilds it from its changelog on recovery:
    key -> value decoded with the json codec, plus its key -> partition map."""
    data: dict[Any, Any] = {}
    key_partition: dict[Any, int] = {}
    for k, v in entries:
        key = _JSON.loads(k)
        data[key] = _JSON.loads(v)
        if logged:
            key_partition[key] = partition_for(key, PARTITIONS)
    return data, key_partition


def measure(kind: str, args: argparse.Namespace) -> KindFigures:
    """Build one kind of state in this (fresh) process and measure its tables."""
    unit, build = KINDS[kind]
    b = Builder(seed=7)
    build(b, 200, args)  # warm up lazy imports and caches outside the measurement
    b.records = 0
    gc.collect()
    if args.trace_build:
        tracemalloc.start()
    rss_before = rss()
    started = time.perf_counter()
    tables = build(b, args.n, args)
    seconds = time.perf_counter() - started
    gc.collect()
    grown = None if args.trace_build else rss() - rss_before
    figures = KindFigures(kind, unit, args.n, b.records, seconds, grown)
    for name, table in tables.items():
        key = next(iter(table))
        logged = isinstance(table, Table)  # else process memory only, not in a changelog
        entries = [(faust_json(k), faust_json(v)) for k, v in table.items()]
        live = sum(len(k) + len(v) for k, v in entries)
        keys = len(table)
        if args.trace_build:
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            table.clear()
            gc.collect()
            memory = before - tracemalloc.get_traced_memory()[0]
        else:
            memory, _ = traced(functools.partial(recover, entries, logged))
        figures.tables.append(
            TableFigures(
                name,
                keys,
                memory,
                live if logged else 0,
                table.written if isinstance(table, Table) else 0,
                table.writes if isinstance(table, Table) else 0,
                logged,
                faust_json(key).decode(),
                entries[0][1].decode(),
            )
        )
    if args.trace_build:
        tracemalloc.stop()
    return figures


def _measure_star(job: tuple[str, argparse.Namespace]) -> KindFigures:
    return measure(*job)


def mb_per_million(total: int, n: int) -> float:
    return total / n  # bytes per unit x 1e6 units / 1e6 bytes per MB


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200_000, help="units built per kind")
    parser.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS))
    parser.add_argument("--jobs", type=int, default=2, help="kinds measured in parallel")
    parser.add_argument("--subjects-per-call", type=int, default=4)
    parser.add_argument("--hits-per-group", type=int, default=1)
    parser.add_argument("--records-per-window", type=int, default=1)
    parser.add_argument(
        "--trace-build",
        action="store_true",
        help="measure the tables as built (tracemalloc on during the build: ~4x slower)",
    )
    args = parser.parse_args()

    started = time.perf_counter()
    jobs = [(k, args) for k in args.kinds]
    # Each kind in a fresh process: no kind reuses memory another freed.
    with multiprocessing.get_context("fork").Pool(max(1, args.jobs), maxtasksperchild=1) as pool:
        results = pool.map(_measure_star, jobs, chunksize=1)
    total = time.perf_counter() - started

    print(
        f"State per 1,000,000 tracked units, extrapolated linearly from N={args.n:,} per kind "
        f"(seed 7; {args.subjects_per_call} subjects per call, {args.hits_per_group} hit(s) "
        f"per group, {args.records_per_window} record(s) per window)."
    )
    if args.trace_build:
        print("mem: tracemalloc bytes freed when the table as built is cleared (Python heap).")
    else:
        print(
            "mem: tracemalloc bytes of the table as a memory:// store recovers it from its "
            "changelog (json codec; with its key -> partition map); Python heap, not RSS."
        )
    print(
        "log: changelog key+value bytes with Faust's json codec; live = the entries held "
        "(compacted), written = every write while building (before compaction)."
    )
    print()
    head = (
        f"{'kind':<13} {'table':<8} {'keys':>8} {'records':>8} "
        f"{'mem B/unit':>10} {'log B/unit':>10} {'written':>8} | "
        f"{'per 1M: mem MB':>14} {'log MB':>8} {'written MB':>10}"
    )
    print(head)
    print("-" * len(head))

    def cols(t: TableFigures, n: int, width: int, per_unit: bool) -> str:
        if not t.logged:
            return f"{'-':>{width}} {'-':>{width - 2 if per_unit else width + 2}}"
        if per_unit:
            return f"{t.live / n:>{width}.0f} {t.written / n:>{width - 2}.0f}"
        return f"{mb_per_million(t.live, n):>{width}.1f} {mb_per_million(t.written, n):>{width + 2}.1f}"

    for f in results:
        for t in f.tables:
            print(
                f"{f.kind:<13} {t.name:<8} {t.keys:>8} {f.records:>8} "
                f"{t.memory / f.n:>10.0f} {cols(t, f.n, 10, True)} | "
                f"{mb_per_million(t.memory, f.n):>14.1f} {cols(t, f.n, 8, False)}"
            )
    print()
    for f in results:
        mem = sum(t.memory for t in f.tables)
        live = sum(t.live for t in f.tables)
        written = sum(t.written for t in f.tables)
        writes = sum(t.writes for t in f.tables)
        grown = (
            f" (RSS grew {mb_per_million(f.rss_growth, f.n):,.0f} MB per 1M while building)"
            if f.rss_growth is not None
            else ""
        )
        print(
            f"{f.kind}: 1M {f.unit}s ~ {mb_per_million(mem, f.n):,.0f} MB of worker memory"
            f"{grown}, {mb_per_million(live, f.n):,.0f} MB of compacted changelog "
            f"({mb_per_million(written, f.n):,.0f} MB in {writes / f.n:.1f} writes per "
            f"{f.unit} before compaction); {f.records / f.n:.2f} records per {f.unit}, "
            f"built in {f.seconds:.1f} s"
        )
    print()
    print("What one key holds (key and value as JSON, as written to the changelog):")
    for f in results:
        for t in f.tables:
            where = "changelog" if t.logged else "process memory only"
            print(f"  {f.kind} / {t.name} ({where}): {t.sample_key}")
            print(f"    {t.sample_value}")
    print()
    print(f"total {total:.1f} s")


if __name__ == "__main__":
    main()
