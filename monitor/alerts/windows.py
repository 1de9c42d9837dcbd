"""Grouping windows laid out in local wall-clock time: calendar days in a time zone by default.

A window is a stretch of wall-clock time in the rule's zone, `length` long,
laid out from local midnight: a length that divides a day tiles each day from
00:00, a length of whole days tiles the calendar from Monday 1970-01-05, so 7d
windows are weeks from Monday. A record belongs to the window its local wall
time falls in. That depends on the record alone, never on which record came
first, so the same records in any order give the same groups.

Across a change of the clocks a window keeps its wall-clock bounds, and its
length in real time follows from them: in Europe/Berlin the day the clocks
go forward is 23 hours long, the day they go back 25. A window's start, as an
instant, is the first instant its wall time is reached: for a repeated wall
time the first pass, for a skipped one the instant the clocks jump past it.
So every record of a window has its start at or before its event time, and
two windows that hold records never share a start (nor an `alert_id`).

Wall times beyond what `datetime` holds (the last hours of year 9999, which
the telemetry contract accepts) are laid out in UTC instead; still a pure
function of the event time.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

__all__ = ["DAY_MS", "fits_a_day", "load_zone", "window_end", "window_start"]

DAY_MS = 86_400_000
_MS = timedelta(milliseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
# Whole-day windows are laid out from a Monday, so 7d windows are calendar weeks.
_MONDAY = 4 * DAY_MS


def fits_a_day(length_ms: int) -> bool:
    """Whether windows of this length line up with local midnight: a divisor of a day, or days."""
    return length_ms > 0 and (DAY_MS % length_ms == 0 or length_ms % DAY_MS == 0)


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(resources.files("tzdata").joinpath("zones").read_text().split())


def load_zone(name: object) -> ZoneInfo | None:
    """The IANA time zone of that name, from the pinned `tzdata`; None when there is none.

    Read from the package rather than the host's tz database, so replay on a
    laptop and the worker in its image lay out the same windows. One object
    per name: rules compare and cache by it.
    """
    if not isinstance(name, str) or name not in _zone_names():
        return None
    return _zone(name)


@functools.cache
def _zone(name: str) -> ZoneInfo:
    with resources.files("tzdata.zoneinfo").joinpath(*name.split("/")).open("rb") as data:
        return ZoneInfo.from_file(data, key=name)


def window_start(ts: int, length: int, zone: ZoneInfo) -> int:
    """Start (epoch ms) of the window of `length` ms in `zone` holding event time `ts`."""
    try:
        return _first_reaching(_floor(_wall(ts, zone), length), zone)
    except (OverflowError, ValueError):
        return _floor(ts, length)


@functools.lru_cache(maxsize=4096)
def window_end(start: int, length: int, zone: ZoneInfo) -> int:
    """The instant after which no record of the window that starts at `start` can occur.

    Normally where the next window starts; but when the clocks go back past
    its end's wall time, records of the window come until that wall time
    comes round again (a 30m window of the repeated hour).
    """
    try:
        end = _floor(_wall(start, zone), length) + length
        first, second = _utc(end, zone, 0), _utc(end, zone, 1)
        if _wall(first, zone) != end:  # skipped: the window ends where the clocks jump
            return _first_reaching(end, zone)
        if second != first and _wall(second - 1, zone) < end:
            return second
        return first
    except (OverflowError, ValueError):
        return _floor(start, length) + length


def _floor(wall: int, length: int) -> int:
    return wall - (wall - _MONDAY) % length


def _offset(ts: int, zone: ZoneInfo) -> int:
    """The zone's UTC offset at instant `ts`, in ms (offsets change on whole seconds)."""
    local = datetime.fromtimestamp(ts // 1000, zone)
    offset = local.utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset // _MS


def _wall(ts: int, zone: ZoneInfo) -> int:
    """Local wall-clock time at instant `ts`, as ms since 1970-01-01 00:00 on that clock."""
    return ts + _offset(ts, zone)


def _utc(wall: int, zone: ZoneInfo, fold: int) -> int:
    """The instant of a wall time: `fold` 0 the first pass of a repeated one, 1 the second.

    A skipped wall time is read with the offset before the jump (fold 0) or
    after it (fold 1), as PEP 495 says.
    """
    local = (_NAIVE_EPOCH + wall * _MS).replace(tzinfo=zone, fold=fold)
    return (local - _EPOCH) // _MS


@functools.lru_cache(maxsize=4096)
def _first_reaching(wall: int, zone: ZoneInfo) -> int:
    """The first instant whose wall time is `wall` or later (cached: a window's hits share it)."""
    first = _utc(wall, zone, 0)
    if _wall(first, zone) == wall:
        return first
    # Skipped by a jump forward: the jump itself, between the instant read
    # with the later offset (before the jump) and the one read with the
    # earlier offset (after it). Offsets change on whole seconds.
    before, after = _utc(wall, zone, 1) // 1000, -(-first // 1000)
    while after - before > 1:
        mid = (before + after) // 2
        if _wall(mid * 1000, zone) >= wall:
            after = mid
        else:
            before = mid
    return after * 1000
