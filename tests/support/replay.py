"""`xborder replay` run in-process over files, with what it wrote read back."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import orjson

from monitor.cli.main import main


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]


def run_replay(
    tmp_path: Path, files: list[Path], geoip: Path, *extra: str
) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
    """Exit code, alerts and dead letters of `xborder replay FILES` (outputs in tmp_path)."""
    alerts, dead = tmp_path / "alerts.jsonl", tmp_path / "dead.jsonl"
    code = main(
        [
            "replay",
            *map(str, files),
            "--geoip-country",
            str(geoip),
            "--alerts-out",
            str(alerts),
            "--dead-letters-out",
            str(dead),
            *extra,
        ]
    )
    return code, read_jsonl(alerts), read_jsonl(dead)


def readable_part(gz: bytes) -> bytes:
    """What any gzip reader can get out of (possibly truncated) gzip bytes."""
    return zlib.decompressobj(wbits=31).decompress(gz)


def line_count(data: bytes) -> int:
    return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
