"""Arrival order decides nothing: any permutation of a simulated stream gives the same alerts.

Grouping windows are calendar days in Seoul, laid out on event time, so a
record's group and the group's `alert_id` follow from the record alone. The
stream spans two midnights in Seoul, with every rule firing and re-sent
duplicates; each permutation goes through the shared core (replay's
`LocalDetector`) in batches of a drawn size.

One bound of state still sees arrival order, and the permutations lift it:
a threshold rule keeps 4 windows per key (`bounds.MAX_WINDOWS_PER_KEY`, so
that a key's value fits a Kafka message), dropping the oldest. In event-time
order the dropped windows are done; shuffled over 27 hours, a key's records
spread over more windows than that before a sweep, and a dropped window
that gets more records counts them afresh.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import bounds
from monitor.alerts.windows import DAY_MS, window_start
from monitor.config.runtime import Runtime
from monitor.contract.decode import decode_line
from monitor.contract.schemas import FileSource, Record
from monitor.detect.local import LocalDetector
from monitor.geo.resolve import Resolver
from tests.support.geoip_build import TEST_NETWORKS, build_country_db
from tests.support.scenario import HOUR, T0
from tests.support.simulation import every_rule, simulation_runtime
from xborder_tools.simulate import ALSO_FIRES, RULE_OF, SimConfig, generate_items

# 23:00 in Seoul; at 0.01 events/s, 800 items span about 27 h of event time.
START = T0 + 14 * HOUR
SEEDS = (3, 8)

Outcome = dict[str, tuple[Any, ...]]  # alert_id -> what the alert says


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    geo_db = build_country_db(tmp_path_factory.mktemp("order") / "country.mmdb", TEST_NETWORKS)
    yield from simulation_runtime(geo_db)


@functools.cache
def stream(seed: int) -> tuple[tuple[Record, FileSource], ...]:
    """The seed's valid records with their lines, in the order the simulator wrote them."""
    cfg = SimConfig(
        seed=seed,
        count=800,
        start_ms=START,
        events_per_second=0.009,  # seed 3 crosses the second midnight by 01:41
        violation_rates=every_rule(100.0),
        invalid_rate=0.0,
        duplicate_rate=10.0,
    )
    out = []
    for line, item in enumerate(generate_items(cfg), 1):
        source: FileSource = {"file": "sim.jsonl", "line": line}
        got = decode_line(item.raw, source)
        assert isinstance(got, Record), got
        out.append((got, source))
    return tuple(out)


def outcome(runtime: Runtime, records: Sequence[tuple[Record, FileSource]], batch: int) -> Outcome:
    detector = LocalDetector(
        runtime.pack, Resolver(runtime.geoip, runtime.endpoints), clock=lambda: 0.0
    )
    for i in range(0, len(records), batch):
        chunk = records[i : i + batch]
        detector.process_batch([r for r, _ in chunk], [s for _, s in chunk])
    out: Outcome = {}
    for rule, group in detector.open_groups():
        a = detector.alert(rule, group)
        # Which copy of a duplicate came first decides its evidence's source
        # line, nothing else: evidence is compared by record.
        evidence = [(e["event_id"], e["ts"]) for e in a["evidence"]]
        out[a["alert_id"]] = (
            a["rule_id"], a["platform"], a["src_country"], a["dst_country"], a["dataset_id"],
            a["first_seen"], a["last_seen"], a["event_count"], a["records"], a["bytes"],
            a["data_categories"], evidence, a["truncated"],
        )  # fmt: skip
    return out


_IN_FILE_ORDER: dict[int, Outcome] = {}


def in_file_order(runtime: Runtime, seed: int) -> Outcome:
    if seed not in _IN_FILE_ORDER:
        _IN_FILE_ORDER[seed] = outcome(runtime, stream(seed), 2048)
    return _IN_FILE_ORDER[seed]


@pytest.mark.parametrize("seed", SEEDS)
def test_the_stream_spans_midnights_and_fires_every_rule(runtime: Runtime, seed: int) -> None:
    records = stream(seed)
    zone = runtime.pack.by_id[RULE_OF["no_legal_basis"]].group_zone
    days = {window_start(r.ts, DAY_MS, zone) for r, _ in records}
    assert len(days) == 3, "the stream must cross two midnights in Seoul"
    alerts = in_file_order(runtime, seed)
    fired = {a[0] for a in alerts.values()}
    assert set(RULE_OF.values()) <= fired <= set(RULE_OF.values()).union(*ALSO_FIRES.values())
    # Some group key has alerts on more than one day: the windows split it.
    routes = [a[:5] for a in alerts.values()]
    assert len(set(routes)) < len(routes)
    assert len({r.event_id for r, _ in records}) < len(records), "duplicates re-sent"


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_order_gives_the_same_alerts_and_ids(
    runtime: Runtime, data: st.DataObject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bounds, "MAX_WINDOWS_PER_KEY", 1_000)
    seed = data.draw(st.sampled_from(SEEDS), label="seed")
    records = stream(seed)
    order = data.draw(st.permutations(range(len(records))), label="order")
    batch = data.draw(st.sampled_from([1, 7, 64, 2048]), label="batch")
    got = outcome(runtime, [records[i] for i in order], batch)
    assert got == in_file_order(runtime, seed)
