"""Batch replay of JSON Lines files through the detection core, in constant memory.

Files are read line by line (a line over the record limit is never held
whole); alert groups whose window has closed are written out and dropped as
the replay goes, the rest at the end. Output: the final state of every alert,
one JSON line per `alert_id`, and every dead letter.
"""

from __future__ import annotations

import gzip
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import orjson

from monitor.alerts import iso_ms
from monitor.decode import decode_line
from monitor.engine.model import Rule, RulePack
from monitor.pipeline import LocalDetector
from monitor.resolve import Resolver
from monitor.schemas import MAX_RECORD_BYTES, DeadLetter, dead_letter_json

__all__ = ["ReplaySummary", "open_export", "read_lines", "replay"]

_EXPIRE_EVERY = 50_000  # records between sweeps of closed groups and stale state
_CHUNK = 1 << 16


def open_export(path: Path) -> BinaryIO:
    """An export file for reading: plain, or gzip-compressed (`.gz`), streamed either way."""
    if path.suffix == ".gz":
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")


def read_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes, bool]]:
    """(1-based line number, bytes, too_large) for each line, never holding more than the limit."""
    number = 0
    while True:
        line = stream.readline(MAX_RECORD_BYTES + 2)
        if not line:
            return
        number += 1
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]  # a UTF-8 byte order mark some exporters write
        if line.endswith(b"\n") or len(line) <= MAX_RECORD_BYTES:
            yield number, line, False
            continue
        # Over the limit: keep the first MiB as evidence and skip to the end of the line.
        head = line[:MAX_RECORD_BYTES]
        while not line.endswith(b"\n"):
            line = stream.readline(_CHUNK)
            if not line:
                break
        yield number, head, True


@dataclass
class ReplaySummary:
    records: int = 0
    lines: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    alerts: Counter[tuple[str, str]] = field(default_factory=Counter)
    seconds: float = 0.0

    def render(self) -> str:
        out = [
            f"records: {self.records} valid of {self.lines} lines "
            f"({', '.join(f'{k} {n}' for k, n in sorted(self.by_kind.items())) or 'none'})"
            f" in {self.seconds:.2f}s",
            f"dead letters: {sum(self.dead_letters.values())}",
        ]
        out += [f"  {reason}: {n}" for reason, n in sorted(self.dead_letters.items())]
        out.append(f"alerts: {sum(self.alerts.values())}")
        out += [
            f"  {rule} [{severity}]: {n}" for (rule, severity), n in sorted(self.alerts.items())
        ]
        return "\n".join(out)


def replay(
    files: Iterable[Path],
    pack: RulePack,
    resolver: Resolver,
    alerts_out: IO[bytes],
    dead_letters_out: IO[bytes],
    clock: Callable[[], float] = time.time,
) -> ReplaySummary:
    detector = LocalDetector(pack, resolver, clock)
    summary = ReplaySummary()
    started = time.perf_counter()

    def write_alert(rule: Rule, group: dict[str, Any]) -> None:
        alerts_out.write(orjson.dumps(detector.alert(rule, group)) + b"\n")
        summary.alerts[(rule.id, rule.severity)] += 1

    since_expire = 0
    for path in files:
        name = str(path)
        with open_export(path) as stream:
            for number, raw, too_large in read_lines(stream):
                summary.lines += 1
                source = {"file": name, "line": number}
                got = (
                    DeadLetter("too_large", source, raw) if too_large else decode_line(raw, source)
                )
                if got is None:
                    continue
                if isinstance(got, DeadLetter):
                    summary.dead_letters[got.reason] += 1
                    letter = dead_letter_json(got, iso_ms(int(clock() * 1000)))
                    dead_letters_out.write(orjson.dumps(letter) + b"\n")
                    continue
                summary.records += 1
                summary.by_kind[got.kind] += 1
                detector.process(got, source)
                since_expire += 1
                if since_expire >= _EXPIRE_EVERY:
                    since_expire = 0
                    for rule, group in detector.expire():
                        write_alert(rule, group)
    remaining = sorted(
        detector.open_groups(), key=lambda rg: (rg[1]["first_seen"], rg[1]["alert_id"])
    )
    for rule, group in remaining:
        write_alert(rule, group)
    summary.seconds = time.perf_counter() - started
    return summary
