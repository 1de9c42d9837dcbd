"""`xborder replay` as an operator runs it: broken files named on stderr with exit 1, a
reader that leaves early, output files only their owner can read."""

from __future__ import annotations

import gzip
import stat
import subprocess
import sys
from pathlib import Path

from tests.support.replay import line_count, read_jsonl, readable_part
from tests.support.scenario import EXPECTED_ALERTS, EXPECTED_DEAD_LETTERS, summarize


def test_replay_cli_names_each_broken_file_and_exits_1(
    tmp_path: Path, scenario_file: Path, country_db: Path
) -> None:
    packed = gzip.compress(scenario_file.read_bytes() * 2)
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    not_gzip = tmp_path / "plain.jsonl.gz"
    not_gzip.write_bytes(scenario_file.read_bytes())
    alerts, dead = tmp_path / "alerts.jsonl", tmp_path / "dead.jsonl"
    run = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "replay", str(cut), str(not_gzip), str(scenario_file),
         "--geoip-country", str(country_db), "--alerts-out", str(alerts),
         "--dead-letters-out", str(dead)],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    readable = readable_part(cut.read_bytes())
    where = "after" if readable.endswith(b"\n") else "inside"
    errors = [line for line in run.stderr.splitlines() if line.startswith("xborder: ")]
    assert errors[0].startswith(f"xborder: {cut}: broke off {where} line {line_count(readable)} (")
    assert "the compressed data ends early" in errors[0]
    assert errors[1] == (
        f"xborder: {not_gzip}: could not be read: not valid gzip data "
        "(Not a gzipped file (b'{\"'))"
    )
    assert "files not read to the end: 2" in run.stdout
    # The file after the broken ones was replayed, and the broken one as far as it read.
    written = read_jsonl(dead)
    assert {d["source"]["file"] for d in written} == {str(cut), str(scenario_file)}
    assert sorted(
        d["source"]["line"] for d in written if d["source"]["file"] == str(scenario_file)
    ) == sorted(n for v in EXPECTED_DEAD_LETTERS.values() for n in v)
    assert summarize(read_jsonl(alerts)) == EXPECTED_ALERTS


def test_replay_piped_into_a_reader_that_leaves_exits_quietly(
    tmp_path: Path, country_db: Path
) -> None:
    """`xborder replay ... | head -1`: the reader closes the pipe early; no BrokenPipe traceback."""
    import subprocess
    import sys

    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"kind": "nope"}\n' * 3)
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "replay", str(src), "--geoip-country",
         str(country_db), "--alerts-out", str(tmp_path / "a"), "--dead-letters-out",
         str(tmp_path / "d")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader left before the summary was written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err


def test_replay_writes_files_readable_by_their_owner_alone(
    tmp_path: Path, country_db: Path
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"kind": "nope"}\n')
    out, dead = tmp_path / "alerts.jsonl", tmp_path / "dead.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "replay", str(src), "--geoip-country",
         str(country_db), "--alerts-out", str(out), "--dead-letters-out", str(dead)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for path in (out, dead):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
