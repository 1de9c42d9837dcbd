"""A configuration error stops every command with exit 2 and one message naming file and
line, no traceback, nothing of a secret: `xborder` run in a fresh process, as an operator
runs it (representative cases of tests/unit/config/test_config_hostile.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.support.hostile_config import billion_laughs, damaged_copies, edit, secret_file
from tests.support.pack import copy_pack


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`xborder ARGS` in a fresh process, as an operator runs it (a hang fails the test);
    no XBORDER_* variable but those in `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("XBORDER_")}
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
        check=False,
    )


def assert_refused(result: subprocess.CompletedProcess[str], where: str) -> None:
    assert result.returncode == 2, result.stderr
    assert where in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def _break(rules: Path, case: str) -> str:
    """Make one of the representative cases in the pack; returns the file:line to expect."""
    detections = rules / "detections"
    if case == "yaml_error_first_file":
        (detections / "aaa.yaml").write_text("id: [\n")
        return f"{detections / 'aaa.yaml'}:2"
    if case == "billion_laughs":
        # Where a rule's tags are turned into strings, once every alias is expanded.
        edit(
            detections / "no_legal_basis.yaml",
            "[pipa, xborder, maturity.stable]",
            billion_laughs(),
        )
        return f"{detections / 'no_legal_basis.yaml'}:5"
    if case == "deep_nesting":
        (detections / "deep.yaml").write_text("x: " + "[" * 20_000 + "]" * 20_000 + "\n")
        return f"{detections / 'deep.yaml'}:1"
    if case == "fifo":
        os.mkfifo(detections / "fifo.yaml")
        return f"{detections / 'fifo.yaml'}:1"
    if case == "directory":
        (detections / "dir.yaml").mkdir()
        return f"{detections / 'dir.yaml'}:1"
    if case == "pack_params_list":
        edit(rules / "pack.yaml", "  home_region: KR", "  - KR")
        return f"{rules / 'pack.yaml'}:6"
    if case == "condition_in_mapping":
        edit(detections / "no_legal_basis.yaml", "in: [none, null]", "in: [none, {a: 1}]")
        return f"{detections / 'no_legal_basis.yaml'}:15"
    if case == "disclosures_list":
        (rules / "config" / "disclosures.yaml").write_text("- country: CN\n")
        return f"{rules / 'config' / 'disclosures.yaml'}:1"
    raise AssertionError(case)


CLI_CASES = [
    "yaml_error_first_file",
    "billion_laughs",
    "deep_nesting",
    "fifo",
    "directory",
    "pack_params_list",
    "condition_in_mapping",
    "disclosures_list",
]


@pytest.mark.parametrize("case", CLI_CASES)
def test_rules_check_exits_2_naming_file_and_line(tmp_path: Path, case: str) -> None:
    rules = copy_pack(tmp_path)
    where = _break(rules, case)
    started = time.monotonic()
    assert_refused(run_cli("rules", "check", "--rules", str(rules)), where)
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    "command",
    [
        ["rules", "test"],
        ["replay", "--no-geoip", "IN"],
        ["worker", "--bootstrap-servers", "127.0.0.1:9", "--metrics-port", "0"],
    ],
    ids=["rules_test", "replay", "worker"],
)
def test_every_command_exits_2_on_a_config_error(tmp_path: Path, command: list[str]) -> None:
    rules = copy_pack(tmp_path)
    where = _break(rules, "yaml_error_first_file")
    (tmp_path / "in.jsonl").write_text("")
    args = [str(tmp_path / "in.jsonl") if a == "IN" else a for a in command]
    out = ["--alerts-out", str(tmp_path / "a"), "--dead-letters-out", str(tmp_path / "d")]
    assert_refused(
        run_cli(*args, "--rules", str(rules), *(out if command[0] == "replay" else [])), where
    )


def test_link_to_a_secret_is_refused_without_printing_it(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    (rules / "detections" / "x.yaml").symlink_to(secret_file(tmp_path))
    # Without the delivery file's secrets, whose variable's name says SECRET.
    result = run_cli("rules", "check", "--rules", str(rules), "--skip-secrets")
    assert_refused(result, f"{rules / 'detections' / 'x.yaml'}:1")
    assert "SECRET" not in result.stderr + result.stdout


def test_secret_copied_into_the_folder_is_not_printed_beyond_a_token(tmp_path: Path) -> None:
    """Inside the folder the file is read: its errors show at most a short, cut token."""
    rules = copy_pack(tmp_path)
    long_line = "root:$6$SECRET-HASH-" + "x" * 80 + ":19000:0:99999:7:::"
    other = "bin:*:" + "y" * 80 + ":19000:0:99999:7:::"
    (rules / "detections" / "x.yaml").write_text(long_line + "\n" + other + "\n")
    result = run_cli("rules", "check", "--rules", str(rules))
    assert_refused(result, f"{rules / 'detections' / 'x.yaml'}:1")
    assert long_line[:60] not in result.stderr and "x" * 40 not in result.stderr
    assert "y" * 40 not in result.stderr


def test_replay_refuses_a_damaged_geoip_database(tmp_path: Path, geo_dbs: dict[str, Path]) -> None:
    bad = damaged_copies(geo_dbs["geolite2"], tmp_path)["garbage"]
    (tmp_path / "in.jsonl").write_text("")
    result = run_cli(
        "replay",
        str(tmp_path / "in.jsonl"),
        "--geoip-country",
        str(bad),
        "--alerts-out",
        str(tmp_path / "a"),
        "--dead-letters-out",
        str(tmp_path / "d"),
    )
    assert_refused(result, f"GeoIP country database is corrupt: {bad}")
    assert "xborder geoip fetch" in result.stderr


def test_worker_refuses_to_start_without_a_subject_key(country_db: Path) -> None:
    env = {"XBORDER_GEOIP_COUNTRY": str(country_db), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no subject key: set XBORDER_SUBJECT_KEY_FILE" in done.stderr
    assert "Traceback" not in done.stderr
