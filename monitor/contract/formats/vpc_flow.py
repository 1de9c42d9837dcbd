"""AWS VPC Flow Logs (space-separated records) to telemetry-v1 `egress` records.

The default format is version 2's fourteen fields (`DEFAULT_FIELDS`). A
custom format comes with its header line, the field names in the record's
order, as flow logs delivered to S3 begin; names may be written with `-`
or `_`. A line whose first field is `version` is a header and sets the
order for the lines after it.

Mapping: `srcaddr` -> `src_ip`, `dstaddr` -> `dst_ip`, `bytes` -> `bytes`
(the flow's bytes from source to destination, what the contract counts),
`dstport` -> `dst_port`, `protocol` (IANA number) -> `protocol` (`tcp`,
`udp`, `icmp`, `ipv6-icmp`, else the number as text), `start` (epoch
seconds) -> `ts`; `event_id` is made from the line (`vpc-` and a hash), as
a record has no id. A flow does not name the platform: `FormatOptions`
gives it (or the attribution hook, from `account-id`, `interface-id`, ...).

Decisions:
- `NODATA` (no traffic in the window) and `SKIPDATA` (records the capture
  skipped) are no flows: skipped and counted (`vpc-flow:NODATA`,
  `vpc-flow:SKIPDATA`), so a gap in capture shows in the summary;
- `REJECT` flows carried nothing to the destination: skipped and counted
  (`vpc-flow:REJECT`), as no transfer happened;
- `-` is an unset field: absent, so an unset required field is the
  contract's `missing_field:<name>`;
- a line with another number of fields than its header (or fourteen, with
  no header) is `invalid_line`: its fields cannot be told apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from monitor.contract.formats.common import (
    INVALID_LINE,
    IP_PROTOCOLS,
    FormatOptions,
    Skipped,
    checked,
    line_id,
    strict_int,
)
from monitor.contract.schemas import Record

__all__ = ["DEFAULT_FIELDS", "NAME", "convert", "is_header", "parse_header"]

NAME: Final = "vpc-flow"
DEFAULT_FIELDS: Final = (
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
)
_UNSET: Final = "-"
_NO_FLOW: Final = frozenset({"NODATA", "SKIPDATA"})


def _split(raw: bytes) -> list[str]:
    # Bytes that are not UTF-8 stay visible as escapes in the fields; the
    # dead letter keeps the line's own bytes.
    return raw.decode("utf-8", "backslashreplace").split()


def is_header(raw: bytes) -> bool:
    fields = _split(raw)
    return bool(fields) and fields[0] == "version"


def parse_header(raw: bytes) -> tuple[str, ...]:
    """The field order a header line names, with `_` read as `-`."""
    return tuple(name.replace("_", "-") for name in _split(raw))


def convert(
    raw: bytes, options: FormatOptions, fields: Sequence[str] = DEFAULT_FIELDS
) -> Record | Skipped | str:
    """One flow log record (stripped, not a header) as a Record, a skip, or a reason code."""
    values = _split(raw)
    if len(values) != len(fields):
        return INVALID_LINE
    own = {name: value for name, value in zip(fields, values, strict=True) if value != _UNSET}
    status = own.get("log-status")
    if status in _NO_FLOW:
        return Skipped(f"{NAME}:{status}")
    if own.get("action") == "REJECT":
        return Skipped(f"{NAME}:REJECT")
    obj: dict[str, Any] = {"kind": "egress", "event_id": line_id("vpc", raw)}
    if "start" in own:
        start = strict_int(own["start"])
        obj["ts"] = start * 1000 if isinstance(start, int) else start
    for name, key in (("srcaddr", "src_ip"), ("dstaddr", "dst_ip")):
        if name in own:
            obj[key] = own[name]
    for name, key in (("bytes", "bytes"), ("dstport", "dst_port")):
        if name in own:
            obj[key] = strict_int(own[name])
    if "protocol" in own:
        number = strict_int(own["protocol"])
        obj["protocol"] = (
            IP_PROTOCOLS.get(number, own["protocol"]) if isinstance(number, int) else number
        )
    return checked(obj, raw, options, own)
