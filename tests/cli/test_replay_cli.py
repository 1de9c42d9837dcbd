"""`xborder replay` as an operator runs it: broken files named on stderr with exit 1, a
reader that leaves early, output files only their owner can read."""

from __future__ import annotations

import gzip
import random
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from monitor import bounds
from monitor.alerts.grouping import iso_ms
from monitor.contract.decode import decode_line
from monitor.contract.schemas import FileSource, Record
from monitor.detect.local import LocalDetector
from tests.support.replay import line_count, read_jsonl, readable_part
from tests.support.scenario import EXPECTED_ALERTS, EXPECTED_DEAD_LETTERS, HOUR, T0, summarize
from tests.support.simulation import every_rule, simulation_runtime
from xborder_tools.simulate import ALSO_FIRES, RULE_OF, SimConfig, generate_items


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


def replay(src: Path, country_db: Path, alerts: Path, dead_letters: Path) -> None:
    """`xborder replay SRC`, as a process of its own, which must succeed."""
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "replay", str(src), "--geoip-country",
         str(country_db), "--alerts-out", str(alerts), "--dead-letters-out", str(dead_letters)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_replay_writes_files_readable_by_their_owner_alone(
    tmp_path: Path, country_db: Path
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"kind": "nope"}\n')
    out, dead = tmp_path / "alerts.jsonl", tmp_path / "dead.jsonl"
    replay(src, country_db, out, dead)
    for path in (out, dead):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_replay_of_shuffled_copies_writes_the_same_alerts(tmp_path: Path, country_db: Path) -> None:
    """Grouping windows are calendar days in Seoul: the order of a file's lines decides nothing.

    A simulated stream from 23:00 in Seoul across midnight, every rule firing,
    invalid and re-sent lines among them, replayed as written and as three
    shuffled copies: the alerts are the same, `alert_id`s included. What
    depends on the order by nature is left out: the lines evidence points to
    and, of a duplicate, which copy counted; when alerts were emitted and how
    many updates led to them.
    """
    cfg = SimConfig(
        seed=4,
        count=1500,
        start_ms=T0 + 14 * HOUR,
        events_per_second=0.4,
        violation_rates=every_rule(60.0),
        invalid_rate=5.0,
        duplicate_rate=10.0,
    )
    lines = [item.raw for item in generate_items(cfg)]
    copies = [list(lines)] + [random.Random(i).sample(lines, len(lines)) for i in range(3)]
    # Shuffled, no bulk-volume key may spread over more windows than state keeps per key
    # (see tests/robustness/test_order_independence.py).
    assert not _bounds_reached(copies, country_db)

    outcomes = []
    for i, copy in enumerate(copies):
        src = tmp_path / f"copy-{i}.jsonl"
        src.write_bytes(b"\n".join(copy) + b"\n")
        out, dead = tmp_path / f"alerts-{i}.jsonl", tmp_path / f"dead-{i}.jsonl"
        replay(src, country_db, out, dead)
        written = read_jsonl(out)
        assert len({a["alert_id"] for a in written}) == len(written), "one line per alert"
        outcomes.append(
            (
                {a["alert_id"]: _order_free(a) for a in written},
                Counter(d["reason"] for d in read_jsonl(dead)),
            )
        )
    alerts, dead_letters = outcomes[0]
    fired = {a["rule_id"] for a in alerts.values()}
    assert set(RULE_OF.values()) <= fired <= set(RULE_OF.values()).union(*ALSO_FIRES.values())
    assert dead_letters and "duplicate" in {i.label for i in generate_items(cfg)}
    midnight = iso_ms(T0 + 15 * HOUR)
    assert any(a["first_seen"] < midnight for a in alerts.values())
    assert any(a["first_seen"] >= midnight for a in alerts.values())
    for i, got in enumerate(outcomes[1:], 1):
        assert got == outcomes[0], f"copy {i} differs"


def _bounds_reached(copies: list[list[bytes]], country_db: Path) -> dict[str, int]:
    """The state bounds the copies reach in the shared core, as replay runs it."""
    bounds.REACHED.clear()
    for runtime in simulation_runtime(country_db):
        for copy in copies:
            detector = LocalDetector(runtime.pack, runtime.resolver())
            for n, line in enumerate(copy, 1):
                source: FileSource = {"file": "copy.jsonl", "line": n}
                got = decode_line(line, source)
                if isinstance(got, Record):
                    detector.process(got, source)
    return dict(bounds.REACHED)


def _order_free(alert: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in alert.items() if k not in ("emitted_at", "revision", "evidence")}
    out["evidence"] = [(e["event_id"], e["ts"]) for e in alert["evidence"]]
    return out
