"""Telemetry contract v1: parse and validate records, or say exactly why not.

Every function here is pure and is the reference for what is valid: a
record's bytes become a `Record` or a reason code; nothing raises on bad
input. Checks run in the order the contract fixes (size, JSON, object, kind,
v, then each field in the order of the contract's tables) and the first
failure is the reason. `monitor.contract.decode` decodes many records at once, fast,
and falls back to `check_record` for anything it refuses.

Decisions where the contract is silent:
- an optional field whose value is JSON `null` counts as absent (producers
  serialise missing values both ways);
- a required field set to `null` is `missing_field:<name>`;
- a `kind` that is present but not one of the three kinds (including a
  non-string) is `unknown_kind`; a missing `kind` is `missing_field:kind`;
- country codes must be upper-case, assigned ISO 3166-1 alpha-2 codes;
- blank lines of a file or of a JSON Lines batch are not records and are
  skipped (they carry nothing that could be lost); blank means empty or JSON
  whitespace only (space, tab, CR, LF): a line of other bytes, such as a
  vertical tab or form feed, is not a record and is `invalid_json`;
- a line ends at LF, CRLF or a lone CR (old Mac exports), in files and in
  JSON Lines batches alike; a raw CR cannot occur inside a JSON string, so
  no valid record spans two such lines unless it puts a raw CR between
  its tokens, which no exporter of JSON Lines does;
- timestamps use ASCII digits (RFC 3339's grammar), not other scripts' digits.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Final, NotRequired, TypedDict

import msgspec
import orjson

from monitor.contract.countries import ISO_ALPHA2

__all__ = [
    "JSON_WHITESPACE",
    "KINDS",
    "LEGAL_BASES",
    "MAX_RECORD_BYTES",
    "RECORD_TYPES",
    "ApiCall",
    "Consent",
    "DeadLetter",
    "Egress",
    "FileSource",
    "KafkaSource",
    "Record",
    "Source",
    "check_record",
    "parse_record",
    "parse_ts",
]

MAX_RECORD_BYTES: Final = 1024 * 1024
# What `bytes.strip(JSON_WHITESPACE)` removes around a record: JSON's own
# whitespace, not Python's (which adds vertical tab and form feed).
JSON_WHITESPACE: Final = b" \t\r\n"
KINDS: Final = frozenset({"egress", "api_call", "consent"})
LEGAL_BASES: Final = frozenset({"consent", "contract", "certification", "adequacy", "law", "none"})
MAX_SUBJECT_IDS: Final = 1000

# Where a record came from. Plain dicts, not classes: a source is copied
# verbatim into dead letters, evidence and state tables, all JSON.


class KafkaSource(TypedDict):
    topic: str
    partition: int
    offset: int
    index: NotRequired[int]  # the record's 0-based position when the message is a batch


class FileSource(TypedDict):
    file: str
    line: int  # 1-based


Source = KafkaSource | FileSource


# Null on the wire is absence (see the module docstring), so the decoder
# accepts it for these optional fields and `normalise` turns it into the
# default; type checkers see the normalised types.
if TYPE_CHECKING:
    _Labels = tuple[str, ...]
    _Flag = bool
    _Time = int
else:
    _Labels = tuple[str, ...] | None
    _Flag = bool | None
    _Time = int | str  # epoch ms or RFC 3339 on the wire; epoch ms once validated


class Record(msgspec.Struct, kw_only=True, gc=False, tag_field="kind", forbid_unknown_fields=True):
    """A valid telemetry record: one subclass per kind, decoded straight from JSON.

    Every record answers every field of the contract: a field its kind does
    not have reads as None (or `()`, or False for `stores`). Treated as
    immutable once validated. `gc=False`: values are strings, numbers and
    tuples of strings, which cannot form reference cycles. Unknown fields
    are refused by these classes' own decoder (the contract ignores them, so
    `monitor.contract.decode` gives such records a second, lenient decode).
    """

    kind: ClassVar[str]
    event_id: str
    ts: _Time  # event time, epoch milliseconds UTC
    platform: str
    v: int | None = None
    service: str | None = None
    if TYPE_CHECKING:
        # Fields of other kinds, read as class attributes (set below).
        src_ip: str | None
        dst_ip: str | None
        bytes: int | None
        dst_port: int | None
        protocol: str | None
        dst_host: str | None
        src_country: str | None
        subject_region: str | None
        data_categories: tuple[str, ...]
        records: int | None
        dataset_id: str | None
        operation: str | None
        endpoint: str | None
        method: str | None
        status: int | None
        recipient: str | None
        subject_ids: tuple[str, ...]
        purpose: str | None
        legal_basis: str | None
        stores: bool
        subject_id: str | None
        scope: str | None
        granted: bool | None
        countries: tuple[str, ...]


class Egress(Record, kw_only=True, gc=False, tag="egress"):
    """A network egress flow."""

    kind: ClassVar[str] = "egress"
    src_ip: str
    dst_ip: str
    bytes: int
    dst_port: int | None = None
    protocol: str | None = None
    dst_host: str | None = None
    src_country: str | None = None
    subject_region: str | None = None
    data_categories: _Labels = ()
    records: int | None = None
    dataset_id: str | None = None


class ApiCall(Record, kw_only=True, gc=False, tag="api_call"):
    """A call that sends data to an API endpoint."""

    kind: ClassVar[str] = "api_call"
    operation: str
    endpoint: str
    dst_ip: str | None = None
    src_ip: str | None = None
    src_country: str | None = None
    method: str | None = None
    status: int | None = None
    recipient: str | None = None
    subject_region: str | None = None
    data_categories: _Labels = ()
    records: int | None = None
    subject_ids: _Labels = ()
    dataset_id: str | None = None
    purpose: str | None = None
    legal_basis: str | None = None
    stores: _Flag = False


class Consent(Record, kw_only=True, gc=False, tag="consent"):
    """A change of a data subject's overseas-transfer consent."""

    kind: ClassVar[str] = "consent"
    subject_id: str
    scope: str
    granted: bool
    countries: _Labels = ("*",)


RECORD_TYPES: Final[dict[str, type[Record]]] = {
    "egress": Egress,
    "api_call": ApiCall,
    "consent": Consent,
}
# What a record reads for a field its kind does not have.
_ABSENT: Final[dict[str, object]] = {
    "src_ip": None, "dst_ip": None, "bytes": None, "dst_port": None, "protocol": None,
    "dst_host": None, "src_country": None, "subject_region": None, "data_categories": (),
    "records": None, "dataset_id": None, "operation": None, "endpoint": None, "method": None,
    "status": None, "recipient": None, "subject_ids": (), "purpose": None, "legal_basis": None,
    "stores": False, "subject_id": None, "scope": None, "granted": None, "countries": (),
}  # fmt: skip
for _cls in RECORD_TYPES.values():
    for _name, _value in _ABSENT.items():
        if _name not in _cls.__struct_fields__:
            setattr(_cls, _name, _value)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    source: Source
    raw: bytes
    # What failed, for `processing_error` (a stage and an error type, or the
    # bound passed): never the error's text, which may quote the record.
    detail: str | None = None


class _Invalid(Exception):
    """Internal: carries a reason code out of the field checks."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


# --- field checkers -----------------------------------------------------------

PLATFORM_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
LABEL_PATTERN: Final = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
MAX_TEXT: Final = 4096  # longest identifier-like string (host, dataset, operation, ...)
MAX_IP_TEXT: Final = 64
# ASCII digits only: Python's \d also matches other scripts' digits.
RFC3339: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# Epoch milliseconds accepted: 1970-01-01 up to the end of year 9999.
TS_MAX: Final = 253_402_300_800_000


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


def parse_ts(value: object) -> int | None:
    """RFC 3339 with offset, or integer epoch milliseconds -> epoch ms; None if invalid."""
    if type(value) is int:
        return value if 0 <= value < TS_MAX else None
    if not isinstance(value, str):
        return None
    m = RFC3339.fullmatch(value)
    if m is None:
        return None
    # `fromisoformat` reads RFC 3339 but not what RFC 3339 also allows: a
    # lower-case `t`/`z` and a leap second (60, counted as the last instant of 59).
    text = f"{value[:10]}T{value[11:17]}{'59' if m.group(6) == '60' else value[17:19]}{value[19:]}"
    if text[-1] in "Zz":
        text = text[:-1] + "+00:00"
    try:
        epoch = (datetime.fromisoformat(text) - _EPOCH) // _MS
    except (ValueError, OverflowError):
        return None
    return epoch if 0 <= epoch < TS_MAX else None


# Each field converter returns the value to keep, or None when it is invalid.
Convert = Callable[[Any], Any]


def _is_int(v: Any) -> Any:
    return v if type(v) is int else None


def _ip(v: Any) -> Any:
    if not isinstance(v, str) or len(v) > MAX_IP_TEXT:
        return None
    # inet_pton is the C parser: an order of magnitude cheaper than ipaddress.
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, v)
        except (OSError, ValueError):
            continue
        return v
    return None


def _str(v: Any) -> Any:
    return v if isinstance(v, str) else None


def _nonempty_str(v: Any) -> Any:
    return v if isinstance(v, str) and 0 < len(v) <= MAX_TEXT else None


def _nonneg_int(v: Any) -> Any:
    return v if type(v) is int and v >= 0 else None


def _port(v: Any) -> Any:
    return v if type(v) is int and 0 <= v <= 65535 else None


def _country(v: Any) -> Any:
    return v if isinstance(v, str) and v in ISO_ALPHA2 else None


def _categories(v: Any) -> Any:
    if isinstance(v, list) and all(isinstance(x, str) and LABEL_PATTERN.fullmatch(x) for x in v):
        return tuple(v)
    return None


def _subject_ids(v: Any) -> Any:
    if (
        isinstance(v, list)
        and len(v) <= MAX_SUBJECT_IDS
        and all(isinstance(x, str) and x for x in v)
    ):
        return tuple(v)
    return None


def _legal_basis(v: Any) -> Any:
    return v if isinstance(v, str) and v in LEGAL_BASES else None


def _bool(v: Any) -> Any:
    return v if type(v) is bool else None


def _consent_countries(v: Any) -> Any:
    if (
        isinstance(v, list)
        and len(v) > 0
        and all(isinstance(x, str) and (x == "*" or x in ISO_ALPHA2) for x in v)
    ):
        return tuple(v)
    return None


def _scope(v: Any) -> Any:
    return v if v == "overseas_transfer" else None


def _event_id(v: Any) -> Any:
    return v if isinstance(v, str) and 1 <= len(v) <= 128 else None


def _platform(v: Any) -> Any:
    return v if isinstance(v, str) and PLATFORM_PATTERN.fullmatch(v) is not None else None


# (field, required, converter) in the order of the contract's tables.
_COMMON: Final[tuple[tuple[str, bool, Convert], ...]] = (
    ("event_id", True, _event_id),
    ("ts", True, parse_ts),
    ("platform", True, _platform),
    ("service", False, _str),
)
_FIELDS: Final[dict[str, tuple[tuple[str, bool, Convert], ...]]] = {
    "egress": (
        ("src_ip", True, _ip),
        ("dst_ip", True, _ip),
        ("bytes", True, _nonneg_int),
        ("dst_port", False, _port),
        ("protocol", False, _str),
        ("dst_host", False, _nonempty_str),
        ("src_country", False, _country),
        ("subject_region", False, _country),
        ("data_categories", False, _categories),
        ("records", False, _nonneg_int),
        ("dataset_id", False, _nonempty_str),
    ),
    "api_call": (
        ("operation", True, _nonempty_str),
        ("endpoint", True, _nonempty_str),
        ("dst_ip", False, _ip),
        ("src_ip", False, _ip),
        ("src_country", False, _country),
        ("method", False, _str),
        ("status", False, _is_int),
        ("recipient", False, _str),
        ("subject_region", False, _country),
        ("data_categories", False, _categories),
        ("records", False, _nonneg_int),
        ("subject_ids", False, _subject_ids),
        ("dataset_id", False, _nonempty_str),
        ("purpose", False, _str),
        ("legal_basis", False, _legal_basis),
        ("stores", False, _bool),
    ),
    "consent": (
        ("subject_id", True, _nonempty_str),
        ("scope", True, _scope),
        ("granted", True, _bool),
        ("countries", False, _consent_countries),
    ),
}
# Per kind: (field, converter, reason if missing or None, reason if invalid).
_SPECS: Final = {
    kind: tuple(
        (name, convert, f"missing_field:{name}" if required else None, f"invalid_field:{name}")
        for name, required, convert in _COMMON + fields
    )
    for kind, fields in _FIELDS.items()
}


def parse_record(obj: object) -> Record:
    """Validate one decoded JSON value; raise `_Invalid` with the reason code."""
    if not isinstance(obj, dict):
        raise _Invalid("not_an_object")
    kind = obj.get("kind")
    if kind is None:
        raise _Invalid("missing_field:kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise _Invalid("unknown_kind")
    v = obj.get("v")
    if v is not None and not (type(v) is int and v == 1):
        raise _Invalid("unsupported_version")
    values: dict[str, Any] = {"kind": kind, "v": v}
    get = obj.get
    for name, convert, missing, invalid in _SPECS[kind]:
        value = get(name)
        if value is None:
            if missing is not None:
                raise _Invalid(missing)
            continue
        value = convert(value)
        if value is None:
            raise _Invalid(invalid)
        values[name] = value
    del values["kind"]
    return RECORD_TYPES[kind](**values)


_UNPARSED: Final = object()


def check_record(raw: bytes, obj: object = _UNPARSED) -> Record | str:
    """The contract's own check of one record: the Record, or the reason code refusing it.

    `raw` is the record's bytes (stripped); `obj` its parsed value when the
    caller has it. This is the reference the fast decoder (`monitor.contract.decode`)
    falls back to and is tested against.
    """
    if len(raw) > MAX_RECORD_BYTES:
        return "too_large"
    if obj is _UNPARSED:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return "invalid_json"
    try:
        return parse_record(obj)
    except _Invalid as e:
        return e.reason
