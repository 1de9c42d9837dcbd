"""How state expires: the one mechanism replay's `LocalDetector` and the worker's sweep share.

Both keep three kinds of entries: rule state (keys begin with their rule's
id), alert groups, and seen ids (the record ids a scope, a window or a group,
has counted). Each function here takes entries as (key, value) pairs and a
horizon, and says what to change; the driver applies it to its own store
(dicts in replay, a table partition in the worker). Neither driver decides
for itself what expires, so replay and the worker cannot drift apart: they
once did, and replay kept every seen id for good because it freed scopes by
a name it rebuilt differently from the one they were written under. A seen
entry now carries the event time its scope closes at, so it is freed by what
was written, never by a name computed again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from monitor.alerts.grouping import AlertGroup, Groups, closes_at
from monitor.engine.model import RulePack
from monitor.engine.ruletypes import StateValue

__all__ = ["Expired", "expire_groups", "expire_seen", "expire_state", "horizon"]


V = TypeVar("V")


@dataclass
class Expired(Generic[V]):
    """What a pass changes: values to rewrite, keys to delete, alert groups that closed."""

    updates: dict[str, V] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    closed: list[AlertGroup] = field(default_factory=list)

    def remaining(self, entries: Iterable[tuple[str, V]]) -> Iterator[tuple[str, V]]:
        """The entries as they are once this pass is applied."""
        gone = set(self.deletes)
        for key, value in entries:
            if key not in gone:
                yield key, self.updates.get(key, value)


def horizon(watermark: int, grace_ms: int) -> int:
    """The event time state is expired against.

    State is kept a grace period past each rule's horizon, so records
    redelivered after a restart, or late from a slow partition, still meet it
    instead of opening windows and groups anew.
    """
    return watermark - grace_ms


def expire_state(
    entries: Iterable[tuple[str, StateValue]], pack: RulePack, horizon: int
) -> Expired[StateValue]:
    """Stateful-rule state pruned to each rule's horizon.

    State keys start with their rule id, so each value is pruned by its own
    rule; the state of a rule no longer in the pack is deleted.
    """
    out: Expired[StateValue] = Expired()
    for key, value in entries:
        rule = pack.by_id.get(key.split("|", 1)[0])
        if rule is None or rule.type is None:
            out.deletes.append(key)
            continue
        kept = rule.type.expire(value, horizon)
        if kept is None:
            out.deletes.append(key)
        elif kept != value:
            out.updates[key] = kept
    return out


def expire_groups(
    entries: Iterable[tuple[str, Groups]], pack: RulePack, horizon: int
) -> Expired[Groups]:
    """Alert groups split into those still open and those whose window has closed."""
    out: Expired[Groups] = Expired()
    for key, value in entries:
        keep = []
        for g in value["groups"]:
            if closes_at(pack.by_id.get(g["rule"]), g) < horizon:
                out.closed.append(g)
            else:
                keep.append(g)
        if not keep:
            out.deletes.append(key)
        elif len(keep) < len(value["groups"]):
            out.updates[key] = {"groups": keep}
    return out


def expire_seen(entries: Iterable[tuple[str, object]], horizon: int) -> list[str]:
    """Keys of the seen entries whose scope closed before the horizon.

    A value is the time the scope closes at, or a segment `{"expires", "ids"}`
    holding it.
    """
    out = []
    for key, value in entries:
        expires = value.get("expires") if isinstance(value, dict) else value
        if isinstance(expires, int) and expires < horizon:
            out.append(key)
    return out
