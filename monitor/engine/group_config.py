"""How a rule's alerts are grouped, as a pack says it: `group_by`, `group_window`,
`group_time_zone`, and the pack's `time_zone` they default to.

Checked like the rest of a pack: each problem is a ConfigError naming its
file and line, collected into the loader's list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from monitor.alerts.windows import fits_a_day, load_zone
from monitor.config.yamlfile import LDict, strings_at, token
from monitor.contract.countries import ISO_ALPHA2
from monitor.engine.model import DEFAULT_TIME_ZONES, GROUP_FIELDS, parse_duration
from monitor.errors import ConfigError, Location

__all__ = ["Grouping", "not_a_zone", "pack_zone", "rule_grouping"]

_DEFAULT_GROUP_BY = ("platform", "src_country", "dst_country")
_UTC = ZoneInfo("UTC")


@dataclass(frozen=True)
class Grouping:
    by: tuple[str, ...]
    window_ms: int
    zone: ZoneInfo


def not_a_zone(name: str, value: object) -> str:
    return f"{name} must be an IANA time zone name like Asia/Seoul, got {token(value)}"


def pack_zone(params: dict[str, Any], where: Location, errors: list[ConfigError]) -> None:
    """Set the pack's `time_zone`: as given, else the home region's default, else an error.

    A region of several civil times has no default: its calendar days would
    be a guess, and grouping windows follow them.
    """
    if "time_zone" in params:
        if load_zone(params["time_zone"]) is None:  # an override: pack.yaml's own was checked
            errors.append(ConfigError(not_a_zone("time_zone", params["time_zone"]), where))
        return
    home = params.get("home_region", "KR")
    if not isinstance(home, str) or home not in ISO_ALPHA2:
        return  # reported with the params
    default = DEFAULT_TIME_ZONES.get(home)
    if default is None:
        errors.append(
            ConfigError(
                f"params need time_zone (an IANA name like Asia/Tokyo, or --time-zone) for "
                f"home_region {token(home)}: only {', '.join(sorted(DEFAULT_TIME_ZONES))} "
                "has a default",
                where,
            )
        )
        return
    params["time_zone"] = default


def rule_grouping(
    entry: LDict, pack_params: Mapping[str, Any], errors: list[ConfigError]
) -> Grouping:
    """A rule's grouping; where it is wrong, an error and a stand-in (the rule then fails)."""
    by = strings_at(entry, "group_by", errors) or _DEFAULT_GROUP_BY
    for g in by:
        if g not in GROUP_FIELDS:
            errors.append(
                ConfigError(
                    f"group_by: unknown field {token(g)}; known {GROUP_FIELDS}",
                    entry.loc("group_by"),
                )
            )
    window = parse_duration(entry.get("group_window", "24h"))
    if window is None:
        errors.append(ConfigError("group_window: not a duration", entry.loc("group_window")))
    elif not fits_a_day(window):
        errors.append(
            ConfigError(
                "group_window: windows are laid out from local midnight, so it divides a day "
                f"(30m, 1h, 6h, 24h) or is whole days (7d), got {token(entry['group_window'])}",
                entry.loc("group_window"),
            )
        )
    name = entry.get("group_time_zone", pack_params.get("time_zone"))
    zone = load_zone(name)
    if zone is None and "group_time_zone" in entry:
        errors.append(
            ConfigError(not_a_zone("group_time_zone", name), entry.loc("group_time_zone"))
        )
    # Without a zone of its own or the pack's, the pack has failed already (see pack_zone).
    return Grouping(by, window or 86_400_000, zone or _UTC)
