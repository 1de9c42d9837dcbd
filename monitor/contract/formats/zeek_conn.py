"""Zeek `conn.log` (TSV with its header, or JSON one object a line) to `egress` records.

Mapping: `id.orig_h` -> `src_ip`, `id.resp_h` -> `dst_ip`, `id.resp_p` ->
`dst_port`, `proto` -> `protocol`, `ts` (epoch seconds with a fraction, or
RFC 3339 text in JSON streaming logs) -> `ts` in milliseconds, `uid` ->
`event_id` (`zeek-` and the uid). `bytes` is `orig_bytes`, the payload the
originator sent to the responder; when Zeek left it unset (a connection
seen without its payload), `orig_ip_bytes`, the same direction with IP
headers; when both are unset, the contract's `missing_field:bytes`. The
originator is the sender of the record: what the responder sent back is a
flow the other way, which `conn.log` does not split out.

TSV: `#separator` (as `\\xHH` escapes), `#unset_field` (`-`),
`#empty_field` (`(empty)`) and `#fields` are read from the header, and a
new header (Zeek writes one per file, and files get concatenated) replaces
the old. Unset and empty fields are absent. A `#path` other than `conn`
makes its lines `unknown_kind`; a data line before any `#fields`, or with
another number of fields, is `invalid_line`. In JSON, a line that is not
JSON or not an object gets the contract's `invalid_json` and
`not_an_object`; a `_path` other than `conn` is `unknown_kind`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from monitor.contract.formats.common import (
    INVALID_LINE,
    FormatOptions,
    checked,
    epoch_seconds_ms,
    json_object,
    line_id,
    strict_int,
)
from monitor.contract.schemas import Record

__all__ = ["NAME", "TsvHeader", "convert_json", "convert_tsv", "read_header_line"]

NAME: Final = "zeek-conn"


@dataclass(frozen=True)
class TsvHeader:
    separator: str = "\t"
    unset: str = "-"
    empty: str = "(empty)"
    path: str | None = None
    fields: tuple[str, ...] = ()


def _unescaped(text: str) -> str:
    """Zeek writes the separator itself as `\\x09`."""
    try:
        return text.encode("ascii").decode("unicode_escape")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def read_header_line(raw: bytes, header: TsvHeader) -> TsvHeader:
    """The header after one `#` line (stripped of its line end only)."""
    text = raw.decode("utf-8", "backslashreplace")
    if text.startswith("#separator "):
        # Zeek writes this one line with a space, as the separator is not known yet.
        return replace(header, separator=_unescaped(text[len("#separator ") :]) or "\t")
    directive, _, value = text.partition(header.separator)
    if directive == "#fields":
        return replace(header, fields=tuple(value.split(header.separator)))
    if directive == "#unset_field":
        return replace(header, unset=value)
    if directive == "#empty_field":
        return replace(header, empty=value)
    if directive == "#path":
        return replace(header, path=value)
    return header  # `#open`, `#close`, `#types`, `#set_separator`: nothing to map


def _egress(own: Mapping[str, Any], raw: bytes, options: FormatOptions) -> Record | str:
    obj: dict[str, Any] = {"kind": "egress"}
    uid = own.get("uid")
    obj["event_id"] = f"zeek-{uid}" if isinstance(uid, str) and uid else line_id("zeek", raw)
    if "ts" in own:
        ts = own["ts"]
        # RFC 3339 text (JSON streaming logs) is the contract's own form.
        obj["ts"] = ts if isinstance(ts, str) and "T" in ts else epoch_seconds_ms(ts)
    for name, key in (("id.orig_h", "src_ip"), ("id.resp_h", "dst_ip"), ("proto", "protocol")):
        if name in own:
            obj[key] = own[name]
    sent = own.get("orig_bytes", own.get("orig_ip_bytes"))
    if sent is not None:
        obj["bytes"] = strict_int(sent) if isinstance(sent, str) else sent
    if "id.resp_p" in own:
        port = own["id.resp_p"]
        obj["dst_port"] = strict_int(port) if isinstance(port, str) else port
    text_own = {k: v for k, v in own.items() if isinstance(v, str)}
    return checked(obj, raw, options, text_own)


def convert_tsv(raw: bytes, header: TsvHeader, options: FormatOptions) -> Record | str:
    """One TSV data line (its line end stripped) under `header`."""
    if header.path is not None and header.path != "conn":
        return "unknown_kind"
    if not header.fields:
        return INVALID_LINE
    values = raw.decode("utf-8", "backslashreplace").split(header.separator)
    if len(values) != len(header.fields):
        return INVALID_LINE
    own = {
        name: value
        for name, value in zip(header.fields, values, strict=True)
        if value not in (header.unset, header.empty)
    }
    return _egress(own, raw, options)


def convert_json(raw: bytes, options: FormatOptions) -> Record | str:
    """One JSON line of a conn log."""
    obj = json_object(raw)
    if isinstance(obj, str):
        return obj
    path = obj.get("_path")
    if path is not None and path != "conn":
        return "unknown_kind"
    # Zeek writes `id` flat (`id.orig_h`) by default, nested with some settings.
    nested = obj.get("id")
    if isinstance(nested, dict):
        obj = {**{f"id.{k}": v for k, v in nested.items()}, **obj}
    own = {k: v for k, v in obj.items() if v is not None}
    return _egress(own, raw, options)
