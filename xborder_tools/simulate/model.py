"""What a simulated run depends on (`SimConfig`) and what it produces (`SimItem`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xborder_tools.simulate.violations import MAX_EPISODE, VIOLATIONS
from xborder_tools.simulate.world import World

__all__ = ["SimConfig", "SimItem"]


def _default_rates() -> dict[str, float]:
    return {k: 1.0 for k in VIOLATIONS}


@dataclass(frozen=True)
class SimConfig:
    """Everything a run depends on; equal configs give equal streams (given `start_ms`)."""

    seed: int = 0
    count: int = 10_000  # items to produce (records, invalid ones and duplicates); 0 = forever
    start_ms: int | None = None  # event time of the first record; None = wall-clock now
    events_per_second: float = 10.0  # event-time rate at the daily peak's baseline (KST daytime)
    violation_rates: Mapping[str, float] = field(default_factory=_default_rates)  # per 1000 items
    violation_counts: Mapping[str, int] = field(default_factory=dict)  # exact episodes; count > 0
    invalid_rate: float = 2.0  # per 1000 items, spread over INVALID_REASONS
    duplicate_rate: float = 5.0  # per 1000 items
    networks: Mapping[str, Sequence[str]] | None = None  # country -> CIDRs; None: BUILTIN_NETWORKS
    ipv6_share: float = 0.15  # of addresses, where the country has IPv6 networks
    # What the platforms are and disclosed; None: world.load_world(), the configuration
    # the monitor reads here.
    world: World | None = None
    # platform -> share of the traffic; None: every platform of the world, by traffic.py
    platforms: Mapping[str, float] | None = None
    bulk_threshold: int | None = None  # None: the world's (the pack's bulk_volume at_least)
    bulk_window_ms: int | None = None  # and its window

    def validate(self) -> None:
        unknown = (set(self.violation_rates) | set(self.violation_counts)) - set(VIOLATIONS)
        if unknown:
            raise ValueError(f"unknown violation kinds: {sorted(unknown)}; known: {VIOLATIONS}")
        rates = [*self.violation_rates.values(), self.invalid_rate, self.duplicate_rate]
        if any(r < 0 for r in rates) or sum(rates) > 1000:
            raise ValueError("rates are per 1000 items, each >= 0 and together at most 1000")
        if self.count < 0 or self.events_per_second <= 0:
            raise ValueError("count must be >= 0 and events_per_second > 0")
        if self.violation_counts:
            if self.count == 0:
                raise ValueError("violation counts need a finite count")
            needed = sum(MAX_EPISODE[k] * n for k, n in self.violation_counts.items())
            if needed > self.count:
                raise ValueError(
                    f"{needed} records needed by the violation counts; count is {self.count}"
                )


@dataclass(frozen=True, slots=True)
class SimItem:
    """One produced line / message value.

    label: "lawful", a violation kind (every record of that episode), "invalid"
    or "duplicate". kind: the record kind, which picks the Kafka topic (for an
    invalid item, the kind it was broken from). raw: the exact bytes to send,
    without a newline. record: the dict (None for invalid items). reason: for
    invalid items, the dead-letter reason code the monitor must give.
    episode: the injection it belongs to, numbered from 1. source: for invalid
    items, the lawful record it was broken from (another format breaks its own
    line of it: formats.py).
    """

    label: str
    kind: str
    raw: bytes
    record: dict[str, Any] | None = None
    reason: str | None = None
    episode: int | None = None
    source: dict[str, Any] | None = None

    @property
    def valid(self) -> bool:
        return self.record is not None
