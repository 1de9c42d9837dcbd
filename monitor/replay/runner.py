"""Batch replay of telemetry files through the detection core, in constant memory.

Files are telemetry-v1 JSON Lines, or another format an adapter reads
(`monitor.contract.formats`: OCSF, VPC flow logs, Zeek conn.log), given for
all files or detected per file from its first non-empty line.

Files are read line by line (a line over the record limit is never held
whole); alert groups whose window has closed are written out and dropped as
the replay goes, the rest at the end. Output: the final state of every alert,
one JSON line per `alert_id`, and every dead letter.

Decisions where the contract is silent:
- a file that cannot be read to its end (a truncated or corrupt `.gz`, a
  read error) is replayed as far as it could be read, its last line as far
  as it went, as if the file ended there; the other files are replayed as
  well, and the summary lists each such file with where it broke (the CLI
  then exits 1);
- a corrupt `.gz` can decompress to wrong bytes before gzip notices (its
  check sum is at the end): they are replayed like any input, mostly as dead
  letters, and the file is still reported;
- a file name that is not UTF-8 is written in sources with each odd byte
  as a backslash escape, `\\xff` (JSON holds text only).
"""

from __future__ import annotations

import gzip
import io
import itertools
import os
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Protocol

import orjson

from monitor.alerts.grouping import AlertGroup, iso_ms
from monitor.contract.attribution import (
    NO_SERVICES,
    ServiceRegistry,
    attribute_records,
    labels_of,
)
from monitor.contract.dead_letters import dead_letter_json
from monitor.contract.decode import decode_many, lf_line_ends
from monitor.contract.formats import TELEMETRY, FormatOptions, LineAdapter, Skipped, detect
from monitor.contract.schemas import (
    JSON_WHITESPACE,
    MAX_RECORD_BYTES,
    DeadLetter,
    FileSource,
    Record,
    Source,
)
from monitor.detect.local import DEFAULT_MAX_SKEW_MS, LocalDetector, split_ahead
from monitor.engine.model import Rule, RulePack
from monitor.geo.resolve import Resolver
from monitor.replay.backtest import BacktestDiff, FinalAlerts, diff_alerts

__all__ = ["ExportReader", "ReadError", "ReplaySummary", "open_export", "read_lines", "replay"]

_EXPIRE_EVERY = 50_000  # records between sweeps of closed groups and stale state
_CHUNK = 1 << 20  # bytes read at a time
_BATCH = 2048  # lines decoded and evaluated together


def open_export(path: Path) -> io.BufferedIOBase:
    """An export file for reading: plain, or gzip-compressed (`.gz`), streamed either way."""
    if path.suffix == ".gz":
        return gzip.GzipFile(path, "rb")
    return path.open("rb")


# What reading an export can raise: gzip's own errors (truncated: EOFError;
# not gzip or a bad check sum: BadGzipFile, an OSError; corrupt: zlib.error)
# and the system's.
_READ_ERRORS = (OSError, EOFError, zlib.error)


class ExportReader:
    """An export file's data a block at a time; a read error ends the data as end of file would.

    The error is kept for the caller to report, so what was read before it
    is replayed like any file's content.
    """

    def __init__(self, path: Path) -> None:
        self.offset = 0  # bytes of data handed out (decompressed, for `.gz`)
        self.ends_line = True  # the last byte handed out ends a line
        self.error: Exception | None = None
        self._stream: io.BufferedIOBase | None = None
        try:
            self._stream = open_export(path)
        except _READ_ERRORS as e:
            self.error = e

    def read(self, size: int = -1, /) -> bytes:
        if self._stream is None or self.error is not None:
            return b""
        try:
            # read1: one decompression step at a time; read() gathers several
            # and loses all of them when a later one fails.
            block = self._stream.read1(size)
        except _READ_ERRORS as e:
            self.error = e
            return b""
        if block:
            self.offset += len(block)
            self.ends_line = block[-1:] in (b"\n", b"\r")
        return block

    def __enter__(self) -> ExportReader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stream is not None:
            self._stream.close()


@dataclass(frozen=True)
class ReadError:
    """A file that could not be read to its end, and where it broke."""

    file: str
    line: int  # the last line read (0: none)
    offset: int  # bytes of data read before the break
    ends_line: bool  # the break fell after a line end, not inside a line
    error: Exception

    def __str__(self) -> str:
        why = _why(self.error)
        if self.offset == 0:
            return f"{self.file}: could not be read: {why}"
        where = "after line" if self.ends_line else "inside line"
        return (
            f"{self.file}: broke off {where} {self.line} (byte {self.offset:,} of its data): {why}"
        )


def _why(error: Exception) -> str:
    if isinstance(error, EOFError):
        return f"the compressed data ends early, the file is cut short ({error})"
    if isinstance(error, gzip.BadGzipFile | zlib.error):
        return f"not valid gzip data ({error})"
    return str(error)


def _source_name(path: Path) -> str:
    """A file name as text for sources: JSON holds text, and a name need not be UTF-8."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _batches(
    lines: Iterator[tuple[int, bytes, bool]],
) -> Iterator[list[tuple[int, bytes, bool]]]:
    """The lines a batch at a time."""
    batch: list[tuple[int, bytes, bool]] = []
    for line in lines:
        batch.append(line)
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _lf_block(block: bytes, after_cr: bool) -> tuple[bytes, bool]:
    """A block with its line ends made LF, and whether it ended in CR.

    `after_cr`: the block before ended in CR, so a LF starting this one is
    the rest of a CRLF, not a line of its own.
    """
    ends_in_cr = block[-1:] == b"\r"
    if after_cr and block[:1] == b"\n":
        block = block[1:]
    # Most exports end lines in LF alone: one scan, and nothing copied.
    if b"\r" in block:
        block = lf_line_ends(block)
    return block, ends_in_cr


def read_lines(stream: Readable) -> Iterator[tuple[int, bytes, bool]]:
    """(1-based line number, bytes, too_large) for each line, never holding more than the limit.

    Read a block at a time (a call per line cost more than decoding the
    line). A line ends at LF, CRLF or a lone CR (see `monitor.contract.schemas`). A
    line over the record limit is cut to its first MiB, kept as evidence,
    and the rest skipped as it streams past.
    """
    number = 0
    buf = b""
    skipping = False  # inside the rest of an over-long line
    after_cr = False
    while True:
        block = stream.read(_CHUNK)
        if not block:
            break
        block, after_cr = _lf_block(block, after_cr)
        buf = buf + block if buf else block
        start = 0
        find = buf.find
        while True:
            end = find(b"\n", start)
            if end < 0:
                break
            line = buf[start : end + 1]
            start = end + 1
            if skipping:
                skipping = False
                continue
            number += 1
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]  # a UTF-8 byte order mark some exporters write
            if len(line) > MAX_RECORD_BYTES + 1:
                yield number, line[:MAX_RECORD_BYTES], True
            else:
                yield number, line, False
        buf = buf[start:]
        if skipping:
            buf = b""
        elif len(buf) > MAX_RECORD_BYTES + 1:
            number += 1
            yield number, buf[:MAX_RECORD_BYTES], True
            buf, skipping = b"", True
    if buf and not skipping:
        number += 1
        if number == 1 and buf.startswith(b"\xef\xbb\xbf"):
            buf = buf[3:]
        yield number, buf, False


def _first_line(
    lines: Iterator[tuple[int, bytes, bool]],
) -> tuple[bytes, Iterator[tuple[int, bytes, bool]]]:
    """A file's first non-empty line (stripped), and all its lines still to come."""
    held: list[tuple[int, bytes, bool]] = []
    first = b""
    for line in lines:
        held.append(line)
        first = line[1].strip(JSON_WHITESPACE)
        if first:
            break
    return first, itertools.chain(held, lines)


@dataclass
class ReplaySummary:
    records: int = 0
    lines: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    alerts: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Lines of a foreign format that are no transfer (VPC NODATA), by `format:reason`.
    skipped: Counter[str] = field(default_factory=Counter)
    formats: Counter[str] = field(default_factory=Counter)  # files by format
    seconds: float = 0.0
    read_errors: list[ReadError] = field(default_factory=list)
    backtest: BacktestDiff | None = None

    def render(self) -> str:
        out = [
            f"records: {self.records} valid of {self.lines} lines "
            f"({', '.join(f'{k} {n}' for k, n in sorted(self.by_kind.items())) or 'none'})"
            f" in {self.seconds:.2f}s",
            f"dead letters: {sum(self.dead_letters.values())}",
        ]
        out += [f"  {reason}: {n}" for reason, n in sorted(self.dead_letters.items())]
        if self.skipped:
            out.append(f"skipped, no transfer: {sum(self.skipped.values())}")
            out += [f"  {what}: {n}" for what, n in sorted(self.skipped.items())]
        if set(self.formats) - {TELEMETRY}:
            out.append(
                "files by format: " + ", ".join(f"{f} {n}" for f, n in sorted(self.formats.items()))
            )
        out.append(f"alerts: {sum(self.alerts.values())}")
        out += [
            f"  {rule} [{severity}]: {n}" for (rule, severity), n in sorted(self.alerts.items())
        ]
        if self.read_errors:
            out.append(f"files not read to the end: {len(self.read_errors)}")
        return "\n".join(out)


def replay(
    files: Iterable[Path],
    pack: RulePack,
    resolver: Resolver,
    alerts_out: IO[bytes],
    dead_letters_out: IO[bytes],
    clock: Callable[[], float] = time.time,
    max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
    mask_dead_letters: bool = False,
    baseline: RulePack | None = None,
    input_format: str | None = None,
    format_options: FormatOptions | None = None,
    services: ServiceRegistry = NO_SERVICES,
) -> ReplaySummary:
    """Replay the files; records more than `max_skew_ms` ahead of `clock` are dead-lettered.

    `input_format`: the format of every file (`monitor.contract.formats.FORMATS`);
    None detects each file's. `format_options`: what a foreign format does not
    say (the platform, ...). `services`: the service registry, filling what
    records lack (telemetry-v1's and, unless `format_options` has its own
    hook, the foreign formats'), before the options' run-wide values.

    With a `baseline` pack, the same records also run through it, in the same
    pass and order, and the summary holds the back-test: the alerts `pack`
    adds, removes and changes against it (`monitor.replay.backtest`).
    """
    detector = LocalDetector(pack, resolver, clock)
    base = LocalDetector(baseline, resolver, clock) if baseline is not None else None
    finals, base_finals = FinalAlerts(), FinalAlerts()
    summary = ReplaySummary()
    started = time.perf_counter()

    def write_alert(rule: Rule, group: AlertGroup) -> None:
        alert = detector.alert(rule, group)
        alerts_out.write(orjson.dumps(alert) + b"\n")
        summary.alerts[(rule.id, rule.severity)] += 1
        if base is not None:
            finals.keep(alert)

    since_expire = 0
    records: list[Record] = []
    sources: list[Source] = []

    def write_letter(letter: DeadLetter) -> None:
        summary.dead_letters[letter.reason] += 1
        dead_letters_out.write(
            orjson.dumps(dead_letter_json(letter, iso_ms(int(clock() * 1000)), mask_dead_letters))
            + b"\n"
        )

    def run_batch() -> None:
        nonlocal since_expire
        limit = int(clock() * 1000) + max_skew_ms
        kept, kept_at, ahead = split_ahead(records, sources, limit)
        _, failures = detector.process_guarded(kept, kept_at)
        if base is not None:
            base.process_guarded(kept, kept_at)  # its dead letters are the same records'
        lost = {id(letter.source) for letter in failures}
        for record, source in zip(kept, kept_at, strict=True):
            if id(source) not in lost:
                summary.records += 1
                summary.by_kind[record.kind] += 1
        for letter in ahead + failures:
            write_letter(letter)
        since_expire += len(records)
        records.clear()
        sources.clear()
        if since_expire >= _EXPIRE_EVERY:
            since_expire = 0
            for rule, group in detector.expire():
                write_alert(rule, group)
            if base is not None:
                for rule, group in base.expire():
                    base_finals.keep(base.alert(rule, group))

    options = format_options or FormatOptions()
    if services and options.attribute is None:
        options = replace(options, attribute=services.attribute)

    def telemetry_batch(name: str, batch: list[tuple[int, bytes, bool]]) -> None:
        # Blank lines are not records (see monitor.contract.schemas).
        lines = [
            (n, text, big) for n, raw, big in batch if (text := raw.strip(JSON_WHITESPACE)) or big
        ]
        texts = [b"" if big else raw for _, raw, big in lines]
        decoded: list[Record] = []
        raws: list[bytes] = []
        for (number, raw, too_large), got in zip(lines, decode_many(texts), strict=True):
            source: FileSource = {"file": name, "line": number}
            if too_large:
                got = "too_large"
            if isinstance(got, str):
                write_letter(DeadLetter(got, source, raw))
                continue
            decoded.append(got)
            raws.append(raw)
            sources.append(source)
        if services:
            decoded = attribute_records(decoded, services, lambda i: labels_of(raws[i]))
        records.extend(decoded)

    def foreign_batch(
        name: str, adapter: LineAdapter, batch: list[tuple[int, bytes, bool]]
    ) -> None:
        for number, raw, too_large in batch:
            source: FileSource = {"file": name, "line": number}
            if too_large:
                write_letter(DeadLetter("too_large", source, raw))
                continue
            got = adapter.feed(raw, source)
            if got is None:
                continue
            if isinstance(got, Skipped):
                summary.skipped[got.what] += 1
            elif isinstance(got, DeadLetter):
                write_letter(got)
            else:
                records.append(got)
                sources.append(source)

    for path in files:
        name = _source_name(path)
        last_line = 0
        with ExportReader(path) as reader:
            first, lines = _first_line(read_lines(reader))
            fmt = input_format or detect(first)
            summary.formats[fmt] += 1
            adapter = None if fmt == TELEMETRY else LineAdapter(fmt, options)
            for batch in _batches(lines):
                summary.lines += len(batch)
                last_line = batch[-1][0]
                if adapter is None:
                    telemetry_batch(name, batch)
                else:
                    foreign_batch(name, adapter, batch)
                run_batch()
        if reader.error is not None:
            summary.read_errors.append(
                ReadError(name, last_line, reader.offset, reader.ends_line, reader.error)
            )
    remaining = sorted(
        detector.open_groups(), key=lambda rg: (rg[1]["first_seen"], rg[1]["alert_id"])
    )
    for rule, group in remaining:
        write_alert(rule, group)
    if base is not None and baseline is not None:
        for rule, group in base.open_groups():
            base_finals.keep(base.alert(rule, group))
        summary.backtest = diff_alerts(base_finals, finals, pack.version, baseline.version)
    summary.seconds = time.perf_counter() - started
    return summary
