"""The stream: lawful records, violation episodes, invalid records and re-sent duplicates.

`generate_items(cfg)` is the whole stream as tagged `SimItem`s: lawful records,
the records of injected violation *episodes* (one episode fires its rule once
it is complete), deliberately invalid records (raw bytes with the dead-letter
reason they must get) and re-sent duplicates. `generate(cfg)` is the same
stream reduced to the valid record dicts. Both are pure functions of the
config and the world (world.py: the configuration the monitor reads, unless
the config carries one): the same seed and start give the same bytes, so a
demo or a test can be replayed exactly.
"""

from __future__ import annotations

import heapq
import random
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import orjson

from xborder_tools.simulate.corruptions import invalid
from xborder_tools.simulate.episodes import EPISODES, unavailable
from xborder_tools.simulate.model import SimConfig, SimItem
from xborder_tools.simulate.records import RecordMaker
from xborder_tools.simulate.traffic import DIURNAL
from xborder_tools.simulate.violations import MAX_EPISODE, VIOLATIONS
from xborder_tools.simulate.world import load_world

__all__ = ["generate", "generate_items"]


class _Stream:
    def __init__(self, cfg: SimConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        start = cfg.start_ms if cfg.start_ms is not None else int(time.time() * 1000)
        self.clock = start
        world = cfg.world if cfg.world is not None else load_world()
        self.records = RecordMaker(cfg, world, self.rng)
        self.deferred: list[tuple[int, int, SimItem]] = []  # (due ts, seq, item) heap
        self.seq = 0
        self.recent: deque[SimItem] = deque(maxlen=512)
        self.episode = 0
        rates = dict(cfg.violation_rates)
        for k in cfg.violation_counts:
            rates[k] = 0.0  # an exact count replaces that kind's rate
        self.choices: list[tuple[float, str]] = []
        acc = 0.0
        for label, rate in (
            ("invalid", cfg.invalid_rate),
            ("duplicate", cfg.duplicate_rate),
            *((k, rates.get(k, 0.0)) for k in VIOLATIONS),
        ):
            if rate > 0:
                acc += rate / 1000
                self.choices.append((acc, label))
        injects = {k for _, k in self.choices} | set(cfg.violation_counts)
        why = unavailable(self.records, injects, start)
        if why:
            raise ValueError("; ".join(f"{kind}: {text}" for kind, text in sorted(why.items())))
        self.scheduled = self._schedule()

    def _schedule(self) -> list[tuple[int, str]]:
        """(item index, kind) for exact counts, spread evenly with jitter, in index order."""
        out: list[tuple[int, str]] = []
        count = self.cfg.count
        for kind, n in sorted(self.cfg.violation_counts.items()):
            for i in range(n):
                slot = count * 0.9 / n
                out.append((int(slot * i + self.rng.random() * slot), kind))
        out.sort()
        return out

    def next_arrival(self) -> int:
        hour = (self.clock // 3_600_000 + 9) % 24
        rate = self.cfg.events_per_second * DIURNAL[hour]
        return self.clock + max(1, int(self.rng.expovariate(rate) * 1000))

    def item(self, label: str, rec: dict[str, Any], episode: int | None = None) -> SimItem:
        return SimItem(label, rec["kind"], orjson.dumps(rec), rec, episode=episode)

    def defer(self, due: int, item: SimItem) -> None:
        self.seq += 1
        heapq.heappush(self.deferred, (due, self.seq, item))

    def inject(self, kind: str) -> SimItem:
        """Start an episode: its first record now, the rest when their event time comes."""
        self.episode += 1
        now: SimItem | None = None
        for delay, rec in EPISODES[kind](self.records, self.clock):
            it = self.item(kind, rec, self.episode)
            if now is None and delay == 0:
                now = it
            else:
                self.defer(self.clock + delay, it)
        # A bulk burst moved to the next window has nothing to send yet.
        return now if now is not None else self.item("lawful", self.records.lawful(self.clock))

    def run(self) -> Iterator[SimItem]:
        count = self.cfg.count
        emitted = 0
        owed = sum(MAX_EPISODE[k] for _, k in self.scheduled)
        scheduled = deque(self.scheduled)
        # The next new record's event time is drawn ahead, so a deferred record due
        # before it goes out first and event time never runs backwards.
        upcoming = self.next_arrival()
        while count == 0 or emitted < count:
            left = count - emitted - len(self.deferred) if count else 1 << 62
            if self.deferred and (self.deferred[0][0] <= upcoming or left <= 0):
                due, _, it = heapq.heappop(self.deferred)
                self.clock = max(self.clock, due)
                upcoming = max(upcoming, self.clock)
                out = it
            else:
                self.clock = upcoming
                upcoming = self.next_arrival()
                if scheduled and (scheduled[0][0] <= emitted or left <= owed):
                    kind = scheduled.popleft()[1]
                    owed -= MAX_EPISODE[kind]
                    out = self.inject(kind)
                else:
                    out = self.draw(left - owed)
            if out.valid:
                self.recent.append(out)
            emitted += 1
            yield out

    def draw(self, room: int) -> SimItem:
        u = self.rng.random()
        for threshold, label in self.choices:
            if u < threshold:
                if label == "invalid":
                    return invalid(self.records, self.clock)
                if label == "duplicate":
                    if self.recent:
                        src = self.records.pick(self.recent)
                        return SimItem("duplicate", src.kind, src.raw, src.record)
                    break
                if room >= MAX_EPISODE[label]:
                    return self.inject(label)
                break
        return self.item("lawful", self.records.lawful(self.clock))


def generate_items(cfg: SimConfig) -> Iterator[SimItem]:
    """The whole stream: lawful, violation, invalid and duplicate items, `cfg.count` of them."""
    return _Stream(cfg).run()


def generate(cfg: SimConfig) -> Iterator[dict[str, Any]]:
    """The valid records of the stream (duplicates included, invalid items left out)."""
    for item in generate_items(cfg):
        if item.record is not None:
            yield item.record
