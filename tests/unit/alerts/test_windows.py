"""Grouping windows on a time zone's wall clock: where they start, across clock changes too."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alerts.windows import DAY_MS, fits_a_day, load_zone, window_end, window_start
from monitor.contract.schemas import TS_MAX, parse_ts

H = 3_600_000


def zone(name: str) -> ZoneInfo:
    got = load_zone(name)
    assert got is not None, name
    return got


SEOUL = zone("Asia/Seoul")
BERLIN = zone("Europe/Berlin")


def at(text: str) -> int:
    ms = parse_ts(text)
    assert ms is not None, text
    return ms


def starts(length: int, tz: ZoneInfo, *times: str) -> set[int]:
    """The window starts of these event times (one, when they share a window)."""
    return {window_start(at(t), length, tz) for t in times}


def test_a_day_in_seoul_runs_from_local_midnight() -> None:
    midnight = at("2026-10-01T00:00:00+09:00")
    day = (
        "2026-10-01T00:00:00+09:00",
        "2026-10-01T09:00:00+09:00",
        "2026-10-01T23:59:59.999+09:00",
    )
    assert starts(DAY_MS, SEOUL, *day) == {midnight}
    assert window_end(midnight, DAY_MS, SEOUL) == midnight + DAY_MS
    assert window_start(at("2026-10-02T00:00:00+09:00"), DAY_MS, SEOUL) == midnight + DAY_MS
    # 15:00 UTC is midnight in Seoul: the UTC day is no window of its own.
    assert window_start(at("2026-10-01T14:59:59Z"), DAY_MS, SEOUL) == midnight
    assert window_start(at("2026-10-01T15:00:00Z"), DAY_MS, SEOUL) == midnight + DAY_MS


def test_hours_tile_the_local_day() -> None:
    assert window_start(at("2026-10-01T10:59:00+09:00"), H, SEOUL) == at(
        "2026-10-01T10:00:00+09:00"
    )
    assert window_start(at("2026-10-01T10:59:00+09:00"), 6 * H, SEOUL) == at(
        "2026-10-01T06:00:00+09:00"
    )
    # Half-hour zones tile from their own midnight, not from UTC's hours.
    kolkata = zone("Asia/Kolkata")
    assert window_start(at("2026-10-01T00:10:00+05:30"), H, kolkata) == at(
        "2026-10-01T00:00:00+05:30"
    )


def test_seven_days_are_weeks_from_monday() -> None:
    # 2026-10-01 is a Thursday; its week began on Monday 2026-09-28.
    monday = at("2026-09-28T00:00:00+09:00")
    assert window_start(at("2026-10-01T12:00:00+09:00"), 7 * DAY_MS, SEOUL) == monday
    assert window_start(at("2026-10-04T23:59:59+09:00"), 7 * DAY_MS, SEOUL) == monday
    assert window_start(at("2026-10-05T00:00:00+09:00"), 7 * DAY_MS, SEOUL) == monday + 7 * DAY_MS
    assert window_end(monday, 7 * DAY_MS, SEOUL) == monday + 7 * DAY_MS


def test_the_day_berlin_clocks_go_forward_is_23_hours() -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
    start = at("2026-03-29T00:00:00+01:00")
    day = ("2026-03-29T00:30:00+01:00", "2026-03-29T01:59:59+01:00", "2026-03-29T23:59:00+02:00")
    assert starts(DAY_MS, BERLIN, *day) == {start}
    assert window_end(start, DAY_MS, BERLIN) == start + 23 * H
    assert window_start(at("2026-03-30T00:00:00+02:00"), DAY_MS, BERLIN) == start + 23 * H
    # The skipped hour's window holds nothing; the next starts at the jump.
    assert window_start(at("2026-03-29T03:30:00+02:00"), H, BERLIN) == at("2026-03-29T01:00:00Z")
    assert window_start(at("2026-03-29T01:59:00+01:00"), H, BERLIN) == at("2026-03-29T00:00:00Z")


def test_the_day_berlin_clocks_go_back_is_25_hours() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:00-03:00 comes twice.
    start = at("2026-10-25T00:00:00+02:00")
    first_pass, second_pass = at("2026-10-25T02:30:00+02:00"), at("2026-10-25T02:30:00+01:00")
    for ts in (first_pass, second_pass, at("2026-10-25T23:59:00+01:00")):
        assert window_start(ts, DAY_MS, BERLIN) == start
    assert window_end(start, DAY_MS, BERLIN) == start + 25 * H
    # Both passes of the repeated hour are one 1h window, starting at the first.
    hour = at("2026-10-25T02:00:00+02:00")
    assert window_start(first_pass, H, BERLIN) == window_start(second_pass, H, BERLIN) == hour
    assert window_end(hour, H, BERLIN) == at("2026-10-25T03:00:00+01:00") == hour + 2 * H
    # A 30m window of the repeated hour takes records until its end comes round again.
    half = window_start(at("2026-10-25T02:10:00+01:00"), 30 * 60_000, BERLIN)
    assert half == hour
    assert window_end(half, 30 * 60_000, BERLIN) == at("2026-10-25T02:30:00+01:00")


def test_a_week_across_a_clock_change_keeps_its_monday() -> None:
    monday = at("2026-10-19T00:00:00+02:00")
    assert window_start(at("2026-10-25T23:00:00+01:00"), 7 * DAY_MS, BERLIN) == monday
    assert window_end(monday, 7 * DAY_MS, BERLIN) == at("2026-10-26T00:00:00+01:00")


def test_a_skipped_midnight_starts_the_day_at_the_jump() -> None:
    # Havana skips 00:00-01:00 on 2026-03-08: the day starts at 01:00 CDT.
    havana = zone("America/Havana")
    start = window_start(at("2026-03-08T12:00:00-04:00"), DAY_MS, havana)
    assert start == at("2026-03-08T01:00:00-04:00")
    assert window_end(start, DAY_MS, havana) == at("2026-03-09T00:00:00-04:00")


def test_the_last_hours_the_contract_accepts_still_have_a_window() -> None:
    last = TS_MAX - 1
    start = window_start(last, DAY_MS, SEOUL)
    assert start <= last < window_end(start, DAY_MS, SEOUL)
    assert window_start(0, DAY_MS, SEOUL) == -9 * H


ZONES = [
    "Asia/Seoul",
    "Europe/Berlin",
    "America/Havana",
    "Australia/Lord_Howe",  # clocks move half an hour
    "Asia/Kolkata",
    "America/St_Johns",
    "Pacific/Apia",  # skipped a whole day in 2011
    "UTC",
]
LENGTHS = [30 * 60_000, H, 6 * H, DAY_MS, 2 * DAY_MS, 7 * DAY_MS]


@settings(max_examples=400, deadline=None)
@given(
    ts=st.integers(min_value=at("1990-01-01T00:00:00Z"), max_value=at("2040-01-01T00:00:00Z")),
    name=st.sampled_from(ZONES),
    length=st.sampled_from(LENGTHS),
)
def test_a_window_holds_its_records_and_is_named_by_its_start(
    ts: int, name: str, length: int
) -> None:
    tz = zone(name)
    start = window_start(ts, length, tz)
    assert start <= ts < window_end(start, length, tz)
    assert window_start(start, length, tz) == start
    # The window is the record's wall-clock stretch: its start is a multiple of
    # the length on the local clock, counted from a Monday midnight.
    wall = datetime.fromtimestamp(start / 1000, tz).replace(tzinfo=None)
    assert ((wall - datetime(1970, 1, 5)).total_seconds() * 1000) % length == 0 or (
        datetime.fromtimestamp(start / 1000 - 1e-3, tz).utcoffset()
        != datetime.fromtimestamp(start / 1000, tz).utcoffset()
    )  # unless it starts at a jump of the clocks, skipping its own wall start


def test_lengths_must_line_up_with_midnight() -> None:
    assert all(fits_a_day(n) for n in LENGTHS)
    assert not any(fits_a_day(n) for n in (0, 5 * H, 36 * H, 7 * 60_000 + 1))


def test_only_tz_database_names_are_zones() -> None:
    assert load_zone("Asia/Seoul") is SEOUL and str(SEOUL) == "Asia/Seoul"
    for name in ("asia/seoul", "Seoul", "Asia", "../etc/passwd", "", "localtime", 9, None, ["UTC"]):
        assert load_zone(name) is None, name


@pytest.mark.parametrize("name", ZONES)
def test_windows_tile_the_timeline(name: str) -> None:
    """Each window starts where the one before ends: no instant falls between two."""
    tz = zone(name)
    for length, years in ((H, (2026,)), (DAY_MS, (2011, 2026))):
        for year in years:
            start = window_start(at(f"{year}-01-01T00:00:00Z"), length, tz)
            while start < at(f"{year + 1}-01-01T00:00:00Z"):
                end = window_end(start, length, tz)
                assert start < end and window_start(end - 1, length, tz) == start, (name, start)
                assert window_start(end, length, tz) == end, (name, start)
                start = end
