"""The state interface shared by both drivers.

Stateful rules and alert groups read and write JSON-ready values under string
keys. `replay` backs this with dicts; the Faust worker backs it with tables
(partitioned, with changelogs), so both run one implementation of the logic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator
from collections.abc import Set as AbstractSet
from typing import Protocol, TypeVar

__all__ = [
    "MemorySeen",
    "MemoryStore",
    "SeenStore",
    "Store",
    "event_hash",
    "owner_of",
    "scope_of",
    "settle_recent",
    "subject_hash",
]


V = TypeVar("V")


class Store(Protocol[V]):
    """State values of one kind (a rule type's, alert groups') by key."""

    def get(self, key: str, /) -> V | None: ...

    def __setitem__(self, key: str, value: V, /) -> None: ...


def scope_of(owner: str, part: object) -> str:
    """A seen-scope: the state key that owns it, then what it is within (a window, a group)."""
    return f"{owner}{SCOPE_SEP}{part}"


SCOPE_SEP = "\x1e"


def owner_of(scope: str) -> str:
    return scope.split(SCOPE_SEP, 1)[0]


class SeenStore(Protocol):
    """Which record ids were already counted in a scope (an alert group, a window).

    Kept apart from the scope's own state so that counting a record costs the
    same however many records the scope already holds. `expires` is the event
    time after which the scope is closed, so a store may forget it then.
    """

    def members(self, scope: str) -> AbstractSet[int]:
        """The ids counted in the scope so far (read-only; valid until the next add)."""
        ...

    def add_many(self, scope: str, items: Collection[int], expires: int) -> None:
        """Count these ids in the scope; a store may write them as one entry."""
        ...

    def drop(self, scope: str) -> None: ...


class MemorySeen:
    def __init__(self) -> None:
        self.scopes: dict[str, set[int]] = {}
        self.expires: dict[str, int] = {}

    def members(self, scope: str) -> AbstractSet[int]:
        return self.scopes.get(scope, _EMPTY)

    def add_many(self, scope: str, items: Collection[int], expires: int) -> None:
        if items:
            self.scopes.setdefault(scope, set()).update(items)
            self.expires[scope] = max(expires, self.expires.get(scope, expires))

    def drop(self, scope: str) -> None:
        self.scopes.pop(scope, None)
        self.expires.pop(scope, None)

    def entries(self) -> list[tuple[str, int]]:
        """(scope, when it closes): what expiry frees scopes by, as a table's seen entries."""
        return list(self.expires.items())


_EMPTY: frozenset[int] = frozenset()


class MemoryStore(dict[str, V]):
    """A Store in process memory (replay, rule examples, unit tests)."""

    def items_snapshot(self) -> Iterator[tuple[str, V]]:
        yield from list(self.items())


def event_hash(platform: str, event_id: str) -> int:
    """64-bit identity of a record: duplicates share it, so they never count twice."""
    digest = hashlib.blake2b(f"{platform}\0{event_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def subject_hash(platform: str, subject_id: str, key: bytes = b"") -> str:
    """State key for a data subject: state and changelogs never hold raw subject ids.

    Keyed (monitor.config.subject_key) wherever state outlives a run, so the hash
    cannot be reversed by hashing guessed ids.
    """
    data = f"{platform}\0{subject_id}".encode()
    return hashlib.blake2b(data, digest_size=16, key=key).hexdigest()


def settle_recent(seen: SeenStore, scope: str, recent: Iterable[int], expires: int) -> None:
    """Give the ids a state value names as `recent` their seen entries, before it forgets them.

    After a crash the state can come back without the seen entries of its last
    update (they are written after it); `recent` covers them only until the
    state's next update replaces it. A duplicate of such a record arriving
    later (another copy of it, re-sent by a restarted upstream agent) would
    then be counted again.
    """
    known = seen.members(scope)
    missing = [i for i in recent if i not in known]
    if missing:
        seen.add_many(scope, missing, expires)
