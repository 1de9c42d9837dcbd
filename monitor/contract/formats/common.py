"""What every input adapter shares: options, the contract's check, and record identity.

An adapter turns a line of another format into the JSON object a producer
of telemetry-v1 would have sent, then hands it to the contract's own check
(`check_record`), so a record from any format passes exactly the checks,
and gets exactly the reason codes, of a telemetry-v1 record. The dead
letter keeps the line as it came, not the object made from it: the line is
the evidence.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import orjson

from monitor.contract.attribution import Attributes
from monitor.contract.schemas import Record, check_record

__all__ = [
    "INVALID_LINE",
    "IP_PROTOCOLS",
    "Attributes",
    "Attribution",
    "FormatOptions",
    "Skipped",
    "checked",
    "epoch_seconds_ms",
    "json_object",
    "line_id",
    "strict_int",
]

# The one reason code the adapters add to the contract's: a line that does
# not split into the fields its format (or its header) names, so no field
# can be told from another. Every other failure is the contract's own.
INVALID_LINE: Final = "invalid_line"

# IANA protocol numbers of the transports flows mostly carry, by the names
# telemetry-v1 producers write; another number is written as it is.
IP_PROTOCOLS: Final = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp"}

# Whose data a flow carries: flow formats do not name the monitored
# platform, nor what the flow carries. The service registry
# (`monitor.contract.attribution.ServiceRegistry.attribute`) plugs in here;
# it gets the flow's source address, its service name (the format's own,
# where it has one) and the format's own fields as labels (account,
# interface, ...), and answers what it knows, or None.
Attribution = Callable[[str | None, str | None, Mapping[str, str]], Attributes | None]


@dataclass(frozen=True)
class FormatOptions:
    """What a format does not say and the one replaying it does.

    `platform`: the monitored platform of every record of a flow format
    (VPC flow logs, Zeek, OCSF). `subject_region` and `data_categories`:
    what the flows carry, asserted for the whole file; absent by default,
    which the contract reads as not personal (unknown), so no rule on
    personal data fires on flows nobody tagged. `attribute`: the service
    registry, which wins over these run-wide values for the flows it knows.
    """

    platform: str | None = None
    subject_region: str | None = None
    data_categories: tuple[str, ...] = ()
    attribute: Attribution | None = None


@dataclass(frozen=True)
class Skipped:
    """A line that is no record of a transfer (a VPC NODATA record): counted, not dead-lettered."""

    what: str  # `format:reason`, the summary's key


def line_id(prefix: str, raw: bytes) -> str:
    """An event id made from the line itself, for formats that carry none.

    The same line delivered twice gets the same id, so the monitor's
    de-duplication treats it as the duplicate it is.
    """
    return f"{prefix}-{hashlib.blake2b(raw, digest_size=16).hexdigest()}"


def json_object(raw: bytes) -> dict[str, Any] | str:
    """A JSON line as an object, or the contract's reason when it is not one."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "invalid_json"
    return obj if isinstance(obj, dict) else "not_an_object"


def strict_int(text: str) -> int | str:
    """ASCII digits as an int; anything else back as it was, for the contract to refuse."""
    if text.isascii() and text.isdigit():
        return int(text)
    return text


def epoch_seconds_ms(value: object) -> int | object:
    """Epoch seconds (text or number, with a fraction) as epoch milliseconds.

    Decimal, not float: `1258531221.486539` must not become ...485 ms. A
    value that is not a number goes back as it was, for the contract to refuse.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return value
    text = repr(value) if isinstance(value, float) else str(value)
    if not text or not text.isascii() or text.strip() != text:
        return value
    try:
        seconds = Decimal(text)
    except InvalidOperation:
        return value
    if not seconds.is_finite() or seconds < 0:
        return value
    return int(seconds * 1000)


def checked(
    obj: dict[str, Any],
    raw: bytes,
    options: FormatOptions,
    own: Mapping[str, str],
    service: str | None = None,
) -> Record | str:
    """`obj` completed from the registry, then the options, and checked as the contract checks a record.

    Only absent fields are filled: what the line says wins, then the
    registry's entry for the flow (`service`: the format's own service
    name, where it has one), then the run-wide options.
    """
    found = None
    if options.attribute is not None:
        src_ip = obj.get("src_ip")
        found = options.attribute(
            src_ip if isinstance(src_ip, str) else None, obj.get("service") or service, own
        )
    if found is None:
        found = _NOTHING
    if "platform" not in obj:
        platform = found.platform or options.platform
        if platform is not None:
            obj["platform"] = platform
    region = found.subject_region or options.subject_region
    if region is not None:
        obj.setdefault("subject_region", region)
    categories = found.data_categories or options.data_categories
    if categories:
        obj.setdefault("data_categories", list(categories))
    if found.dataset_id is not None:
        obj.setdefault("dataset_id", found.dataset_id)
    # The size check is on the line as it came: it is what the dead letter keeps.
    return check_record(raw, obj)


_NOTHING: Final = Attributes()
