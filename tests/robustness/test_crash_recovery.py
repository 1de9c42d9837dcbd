"""At-least-once recovery on the shared core: every crash point of a bulk-volume window,
3,000 seeded random runs, each ending with the uninterrupted run's alert."""

from __future__ import annotations

from typing import Any

import orjson

from monitor.alerts.grouping import AlertContext, Groups
from monitor.detect.stages import RoutedItem, apply_routed, group_hits, ingest
from monitor.engine.ruletypes import StateValue
from monitor.geo.resolve import Resolver, StaticLookup
from tests.support.pack import ENDPOINTS, PACK
from tests.support.records import BULK, GEO, T0, api


def bulk_items(n: int) -> list[list[RoutedItem]]:
    """Routed bulk-window items of n records; the 4th record crosses 100,000."""
    resolver = Resolver(StaticLookup(GEO), ENDPOINTS)
    items = []
    for i in range(n):
        rec = api(f"b{i}", T0 + i * 60_000, legal_basis="contract", records=30000 + i)
        out = ingest(
            [(orjson.dumps(rec), {"topic": "t", "partition": 0, "offset": i})], PACK, resolver, 1
        )
        items.append([m for m in out.routed[0] if m["rule"] == BULK])
    return items


def test_bulk_window_rebuilt_after_a_crash_neither_double_counts_nor_loses() -> None:
    """At-least-once recovery, as the worker goes through it, on the shared core.

    The window's saved state and the hits the alert group already received are
    independent writes, so after a crash the window can come back older than the
    alert (or newer, its hits lost). Records are then redelivered, with
    duplicates, in another order, so the window crosses the threshold at another
    record than before; and the window can come back without the seen entry of
    its last record (written after it), a copy of which arrives after other
    records. Whatever the crash point, the final alert equals the uninterrupted
    run's.
    """
    import copy
    import random

    from monitor.alerts.grouping import AlertGrouper
    from monitor.engine.state import MemorySeen, MemoryStore

    n = 7
    items = bulk_items(n)

    def final(runs: list[list[int]], saved: int, delivered: int, torn: bool) -> tuple[Any, ...]:
        state: MemoryStore[StateValue] = MemoryStore()
        seen, groups = MemorySeen(), MemoryStore[Groups]()
        grouper = AlertGrouper(PACK, groups, MemorySeen())
        history = [copy.deepcopy((state, seen))]  # after each step of the first run
        for run_no, order in enumerate(runs):
            if run_no:
                # Restart: the window state as last saved (torn: without the seen
                # entry of its last record, written after it); the group as it is.
                state = copy.deepcopy(history[saved][0])
                seen = copy.deepcopy(history[saved - 1 if torn and saved else saved][1])
            for step, i in enumerate(order):
                hits = apply_routed(items[i], PACK, state, seen, 1).get(0, [])
                if run_no or step < delivered:
                    group_hits(hits, PACK, grouper, AlertContext("v", None), now=0)
                if not run_no:
                    history.append(copy.deepcopy((state, seen)))
        ((_, value),) = groups.items()
        (g,) = value["groups"]
        return (
            g["event_count"], g["records"], g["first_seen"], g["last_seen"],
            [e["event_id"] for e in g["evidence"]],
        )  # fmt: skip

    expected = final([list(range(n))], 0, n, False)
    assert expected[:2] == (n, sum(30000 + i for i in range(n)))
    rng = random.Random(7)
    for _ in range(3000):
        first = rng.sample(range(n), n)
        crashed = rng.randint(1, n)
        saved, delivered = rng.randint(0, crashed), rng.randint(0, crashed)
        # Everything after the older of the two writes comes again, plus duplicates.
        again = first[min(saved, delivered) :] + rng.choices(first[:crashed], k=2)
        rng.shuffle(again)
        runs = [first[:crashed], again]
        torn = rng.random() < 0.5
        assert final(runs, saved, delivered, torn) == expected, (runs, saved, delivered, torn)
