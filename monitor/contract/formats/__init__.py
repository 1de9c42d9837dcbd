"""Input adapters: other telemetry formats read as telemetry-v1 records.

One module a format, each a set of pure functions from a line to a
`Record`, a reason code (the line becomes a dead letter with that reason,
the line itself as its raw) or a `Skipped` (a line that is no transfer,
counted). `LineAdapter` carries what a file's header lines set (Zeek's
`#fields`, a VPC header) from line to line.

Detection (`detect`), from a file's first non-empty line, when no format
is given: `#separator` is Zeek TSV; a JSON object with `class_uid` is
OCSF, with `_path` or `id.orig_h` Zeek JSON; a VPC header (first field
`version`), or fourteen space-separated fields starting with a version
number, is a VPC flow log; anything else is telemetry-v1 JSON Lines, whose
own checks then name what is wrong.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import orjson

from monitor.contract.decode import Decoded, decode_messages, lf_line_ends
from monitor.contract.formats import ocsf, vpc_flow, zeek_conn
from monitor.contract.formats.common import INVALID_LINE, Attribution, FormatOptions, Skipped
from monitor.contract.schemas import JSON_WHITESPACE, DeadLetter, KafkaSource, Record, Source

__all__ = [
    "FORMATS",
    "INVALID_LINE",
    "TELEMETRY",
    "Attribution",
    "FormatOptions",
    "LineAdapter",
    "Skipped",
    "decode_foreign_messages",
    "decode_inputs",
    "detect",
]

TELEMETRY: Final = "telemetry"
FORMATS: Final = (TELEMETRY, ocsf.NAME, vpc_flow.NAME, zeek_conn.NAME)


def detect(first: bytes) -> str:
    """The format of a file from its first non-empty line (stripped)."""
    if first.startswith(b"#separator"):
        return zeek_conn.NAME
    if first.startswith(b"{"):
        try:
            obj = orjson.loads(first)
        except orjson.JSONDecodeError:
            return TELEMETRY
        if isinstance(obj, dict):
            if "class_uid" in obj:
                return ocsf.NAME
            if "_path" in obj or "id.orig_h" in obj:
                return zeek_conn.NAME
        return TELEMETRY
    fields = first.split()
    if vpc_flow.is_header(first) or (
        len(fields) == len(vpc_flow.DEFAULT_FIELDS) and fields[0].isdigit()
    ):
        return vpc_flow.NAME
    return TELEMETRY


class LineAdapter:
    """A file's lines in one foreign format, in order, as records, dead letters or skips."""

    def __init__(self, fmt: str, options: FormatOptions) -> None:
        if fmt not in FORMATS or fmt == TELEMETRY:
            raise ValueError(f"no adapter for format {fmt!r}")
        self.format = fmt
        self.options = options
        self._vpc_fields: tuple[str, ...] = vpc_flow.DEFAULT_FIELDS
        self._zeek = zeek_conn.TsvHeader()

    def feed(self, raw: bytes, source: Source) -> Record | DeadLetter | Skipped | None:
        """One line (as read, line end and all); None for a blank or header line."""
        if self.format == zeek_conn.NAME and raw.startswith(b"#"):
            # Header values may be blank or a lone tab: only the line end goes.
            self._zeek = zeek_conn.read_header_line(raw.rstrip(b"\r\n"), self._zeek)
            return None
        stripped = raw.strip(JSON_WHITESPACE)
        if not stripped:
            return None
        got: Record | Skipped | str
        if self.format == vpc_flow.NAME:
            if vpc_flow.is_header(stripped):
                self._vpc_fields = vpc_flow.parse_header(stripped)
                return None
            got = vpc_flow.convert(stripped, self.options, self._vpc_fields)
        elif self.format == ocsf.NAME:
            got = ocsf.convert(stripped, self.options)
        elif stripped[:1] in (b"{", b"["):
            got = zeek_conn.convert_json(stripped, self.options)
        else:
            # A TSV field may be blank at either end: only the line end goes.
            got = zeek_conn.convert_tsv(raw.rstrip(b"\r\n"), self._zeek, self.options)
        if isinstance(got, str):
            return DeadLetter(got, source, stripped)
        return got


def decode_foreign_messages(
    messages: Iterable[tuple[bytes | None, KafkaSource]], fmt: str, options: FormatOptions
) -> tuple[Decoded, Counter[str]]:
    """Kafka message values of one foreign format, as `decode_messages` gives telemetry-v1's.

    For a topic that carries another format. Decisions:
    - a message is read as its own file: header lines (Zeek's `#fields`, a
      VPC header) apply to the lines after them in the same message only,
      as a consumer cannot know which message came before on another
      partition;
    - a message of more than one line locates each record by `index`, the
      0-based number of its line in the message (header lines counted, so
      the index finds the line); a one-line message has no `index`;
    - skips (a VPC `NODATA` record) are counted by `format:reason`, as in replay.
    """
    out = Decoded()
    skipped: Counter[str] = Counter()
    for value, source in messages:
        adapter = LineAdapter(fmt, options)
        lines = lf_line_ends(value or b"").split(b"\n")
        batch = sum(1 for line in lines if line.strip(JSON_WHITESPACE)) > 1
        for index, line in enumerate(lines):
            at: KafkaSource = {**source, "index": index} if batch else source
            got = adapter.feed(line, at)
            if got is None:
                continue
            if isinstance(got, Skipped):
                skipped[got.what] += 1
            elif isinstance(got, DeadLetter):
                out.dead_letters.append(got)
            else:
                out.records.append(got)
                out.sources.append(at)
        if not any(line.strip(JSON_WHITESPACE) for line in lines):
            # An empty message is no record of any format: the contract's answer to it.
            out.dead_letters.append(DeadLetter("invalid_json", source, value or b""))
    return out, skipped


def decode_inputs(
    messages: Sequence[tuple[bytes | None, KafkaSource]],
    formats: Mapping[str, str],
    options: FormatOptions,
) -> tuple[Decoded, Counter[str]]:
    """Messages of every input topic, each read in its topic's format (telemetry-v1 if unlisted).

    A topic's messages keep their order (a partition belongs to one topic);
    records of different topics are not ordered against each other, as
    they are not in Kafka either.
    """
    if not formats:
        return decode_messages(messages), Counter()
    by_format: dict[str, list[tuple[bytes | None, KafkaSource]]] = {}
    for message in messages:
        by_format.setdefault(formats.get(message[1]["topic"], TELEMETRY), []).append(message)
    out = Decoded()
    skipped: Counter[str] = Counter()
    for fmt, part in by_format.items():
        if fmt == TELEMETRY:
            got = decode_messages(part)
        else:
            got, skips = decode_foreign_messages(part, fmt, options)
            skipped += skips
        out.records += got.records
        out.sources += got.sources
        out.dead_letters += got.dead_letters
    return out, skipped
