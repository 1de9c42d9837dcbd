"""`xborder replay` on the hand-written scenario: every alert group and dead letter, exactly."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.cli import main
from tests.scenario import EXPECTED_ALERTS, EXPECTED_DEAD_LETTERS, lines, summarize


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "scenario.jsonl"
    path.write_bytes(b"\n".join(lines()) + b"\n")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]


def run_replay(
    tmp_path: Path, files: list[Path], geoip: Path, *extra: str
) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
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


def test_scenario_alert_groups_and_counts(
    tmp_path: Path, scenario_file: Path, country_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, alerts, _ = run_replay(tmp_path, [scenario_file], country_db)
    assert code == 0
    assert summarize(alerts) == EXPECTED_ALERTS
    assert len({a["alert_id"] for a in alerts}) == len(alerts)
    out = capsys.readouterr().out
    assert "dead letters: 8" in out and "alerts: 12" in out


def test_scenario_dead_letters(tmp_path: Path, scenario_file: Path, country_db: Path) -> None:
    _, _, dead = run_replay(tmp_path, [scenario_file], country_db)
    by_reason: dict[str, list[int]] = {}
    for d in dead:
        assert d["source"]["file"] == str(scenario_file)
        assert d["received_at"].endswith("Z")
        by_reason.setdefault(d["reason"], []).append(d["source"]["line"])
    assert by_reason == EXPECTED_DEAD_LETTERS
    binary = next(d for d in dead if d["source"]["line"] == 12)
    assert "raw_base64" in binary and "raw" not in binary
    assert next(d for d in dead if d["source"]["line"] == 7)["raw"] == "[1, 2]"


def test_alert_carries_evidence_custody_and_no_personal_data(
    tmp_path: Path, scenario_file: Path, country_db: Path
) -> None:
    _, alerts, _ = run_replay(tmp_path, [scenario_file], country_db)
    nlb = sorted(
        (a for a in alerts if a["rule_id"] == "pipa.xborder.no_legal_basis"),
        key=lambda a: a["first_seen"],
    )[0]
    assert nlb["severity"] == "critical" and nlb["legal_ref"] == "PIPA Art. 28-8(1)"
    assert nlb["subject_region"] == "KR"
    assert [e["event_id"] for e in nlb["evidence"]] == ["ali-2", "ali-3"]
    assert nlb["evidence"][0]["source"] == {"file": str(scenario_file), "line": 2}
    assert (
        nlb["first_seen"] == "2026-10-01T00:01:00.000Z"
        and nlb["last_seen"] == "2026-10-01T00:02:00.000Z"
    )
    assert nlb["geoip_build"] == "2026-06-17"
    assert nlb["rules_version"].startswith("1.0.0+")
    assert set(nlb["data_categories"]) == {"user.contact.email", "user.name"}
    onward = next(
        a
        for a in alerts
        if a["rule_id"] == "pipa.xborder.onward_transfer" and a["dataset_id"] == "ds-2"
    )
    assert onward["evidence"][0]["event_id"] == "ali-5"
    assert onward["evidence"][0]["first_hop"]["event_id"] == "ali-6"
    assert onward["evidence"][0]["first_hop"]["source"]["line"] == 15
    text = orjson.dumps(alerts).decode()
    for personal in ("u-9", "u-10", "u-11", "211.234.", "240e:", "2001:e60", "47.92."):
        assert personal not in text


def test_same_input_same_alert_ids(tmp_path: Path, scenario_file: Path, country_db: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, first, _ = run_replay(tmp_path / "a", [scenario_file], country_db)
    _, second, _ = run_replay(tmp_path / "b", [scenario_file], country_db)
    assert sorted(a["alert_id"] for a in first) == sorted(a["alert_id"] for a in second)


def test_replaying_twice_counts_nothing_twice(
    tmp_path: Path, scenario_file: Path, country_db: Path
) -> None:
    # Two copies of the same export: every record is a duplicate of one already seen.
    _, alerts, dead = run_replay(tmp_path, [scenario_file, scenario_file], country_db)
    assert summarize(alerts) == EXPECTED_ALERTS
    assert len(dead) == 16


def test_missing_inputs_and_databases_fail_clearly(
    tmp_path: Path, scenario_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run_replay(tmp_path, [tmp_path / "nope.jsonl"], tmp_path / "x.mmdb")
    assert code == 2 and "input file not found" in capsys.readouterr().err
    missing_db = tmp_path / "missing.mmdb"
    code, _, _ = run_replay(tmp_path, [scenario_file], missing_db)
    err = capsys.readouterr().err
    assert code == 2 and str(missing_db) in err and "xborder geoip fetch" in err
    bad_rules = tmp_path / "rules"
    bad_rules.mkdir()
    code, _, _ = run_replay(tmp_path, [scenario_file], missing_db, "--rules", str(bad_rules))
    err = capsys.readouterr().err
    assert code == 2 and str(bad_rules) in err and "file not found" in err


def test_read_lines_streams_overlong_lines_without_holding_them() -> None:
    from monitor.replay import read_lines
    from monitor.schemas import MAX_RECORD_BYTES

    data = b'{"a": 1}\n' + b"x" * (3 * MAX_RECORD_BYTES) + b"\n" + b'{"b": 2}'
    got = list(read_lines(io.BytesIO(data)))
    assert [(n, too_large) for n, _, too_large in got] == [(1, False), (2, True), (3, False)]
    assert len(got[1][1]) == MAX_RECORD_BYTES


def test_gzip_exports_and_a_byte_order_mark_are_read(
    tmp_path: Path, scenario_file: Path, country_db: Path
) -> None:
    import gzip

    packed = tmp_path / "scenario.jsonl.gz"
    packed.write_bytes(gzip.compress(b"\xef\xbb\xbf" + scenario_file.read_bytes()))
    code, alerts, dead = run_replay(tmp_path, [packed], country_db)
    assert code == 0 and summarize(alerts) == EXPECTED_ALERTS
    assert sorted(d["source"]["line"] for d in dead) == sorted(
        n for v in EXPECTED_DEAD_LETTERS.values() for n in v
    )
