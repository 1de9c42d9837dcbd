"""Damage done to configuration and GeoIP databases by the hostile-input tests."""

from __future__ import annotations

import random
from pathlib import Path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {path}"
    path.write_text(text.replace(old, new))


def billion_laughs() -> str:
    """A flow list of nine levels of nine aliases: 9**9 (387 million) strings once expanded."""
    levels = ["&a [" + ", ".join(['"lol"'] * 9) + "]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"&{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "[" + ", ".join(levels) + "]"


def secret_file(tmp_path: Path) -> Path:
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$SECRET-HASH:19000:0:99999:7:::\nSECRET-LINE: 2\n")
    return secret


def damaged_copies(good: Path, tmp_path: Path) -> dict[str, Path]:
    """Copies of a test database: cut short, or with garbage over its tree or its records.

    The metadata sits at the end of the file (after a marker); garbage before it
    leaves a file that opens, and fails at its first lookup."""
    data = good.read_bytes()
    meta = data.rfind(b"\xab\xcd\xefMaxMind.com")
    noise = random.Random(8).randbytes(meta)
    copies = {
        "truncated": data[: len(data) // 2],
        "garbage": noise + data[meta:],
        "zeroed_tree": bytes(meta // 2) + data[meta // 2 :],
        "garbage_records": data[: meta // 2] + noise[meta // 2 :] + data[meta:],
    }
    out = {}
    for name, content in copies.items():
        out[name] = tmp_path / f"{name}-{good.name}"
        out[name].write_bytes(content)
    return out
