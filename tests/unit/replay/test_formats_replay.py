"""`xborder replay` of the public samples of other formats: records, skips, dead letters, alerts."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from tests.support.geoip_build import build_country_db
from tests.support.replay import run_replay

DATA = Path(__file__).resolve().parents[2] / "data"
# Personal flows of Korean users, as an analyst asserts for a whole file.
PERSONAL = (
    "--platform",
    "acme",
    "--subject-region",
    "KR",
    "--data-category",
    "user.contact.email",
)


@pytest.fixture(scope="module")
def geoip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    networks = {
        "8.8.8.0/24": "US",
        "37.120.182.0/24": "DE",
        "52.213.0.0/16": "IE",
        "10.0.0.0/8": "KR",
    }
    return build_country_db(tmp_path_factory.mktemp("geo") / "c.mmdb", networks)


def alerts_by_rule(alerts: list[dict[str, Any]]) -> dict[str, tuple[Any, list[str]]]:
    return {
        a["rule_id"]: (a.get("dst_country"), [e["event_id"] for e in a["evidence"]]) for a in alerts
    }


def test_zeek_json_replays_into_its_record(
    tmp_path: Path, geoip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, alerts, dead = run_replay(
        tmp_path, [DATA / "zeek-conn" / "conn.ndjson"], geoip, *PERSONAL
    )
    # A flow to a private address, which no GeoIP database places.
    assert code == 0 and dead == []
    assert [a["rule_id"] for a in alerts] == ["monitor.unresolved_destination"]
    out = capsys.readouterr().out
    assert "records: 1 valid of 1 lines (egress 1)" in out
    assert "files by format: zeek-conn 1" in out


def test_vpc_custom_format_abroad_and_evidence_source(tmp_path: Path, geoip: Path) -> None:
    path = DATA / "vpc-flow" / "custom-tcp-flags.log"
    code, alerts, dead = run_replay(tmp_path, [path], geoip, *PERSONAL)
    assert code == 0 and dead == []
    abroad = next(a for a in alerts if a["rule_id"] == "pipa.xborder.undisclosed_destination")
    assert abroad["dst_country"] == "IE" and abroad["platform"] == "acme"
    assert sorted(e["source"]["line"] for e in abroad["evidence"]) == [3, 5]


def test_vpc_default_format_skips_are_counted(
    tmp_path: Path, geoip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, dead = run_replay(tmp_path, [DATA / "vpc-flow" / "default-v2.log"], geoip, *PERSONAL)
    assert code == 0 and dead == []
    out = capsys.readouterr().out
    assert "records: 3 valid of 7 lines (egress 3)" in out
    assert "skipped, no transfer: 4" in out
    assert "vpc-flow:NODATA: 1" in out and "vpc-flow:SKIPDATA: 1" in out
    assert "vpc-flow:REJECT: 2" in out


def test_flows_without_asserted_categories_are_not_personal(tmp_path: Path, geoip: Path) -> None:
    code, alerts, dead = run_replay(
        tmp_path, [DATA / "zeek-conn" / "conn.ndjson"], geoip, "--platform", "acme"
    )
    assert (code, alerts, dead) == (0, [], [])


def test_formats_mixed_in_one_run_each_detected(
    tmp_path: Path, geoip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    telemetry = tmp_path / "t.jsonl"
    telemetry.write_bytes(
        b'{"kind":"egress","event_id":"t1","ts":1700000000000,"platform":"acme",'
        b'"src_ip":"10.0.0.1","dst_ip":"8.8.8.8","bytes":5}\n'
    )
    files = [DATA / "zeek-conn" / "conn-m57.log", DATA / "vpc-flow" / "default-v2.log", telemetry]
    code, _, dead = run_replay(tmp_path, files, geoip, "--platform", "acme")
    assert code == 0 and dead == []
    out = capsys.readouterr().out
    assert "records: 11 valid" in out
    assert "files by format: telemetry 1, vpc-flow 1, zeek-conn 1" in out


def test_given_format_overrides_detection(tmp_path: Path, geoip: Path) -> None:
    path = tmp_path / "flows.log"
    path.write_bytes(b'{"kind":"egress"}\n')
    _, _, dead = run_replay(tmp_path, [path], geoip, "--format", "vpc-flow", "--platform", "acme")
    assert [(d["reason"], d["raw"]) for d in dead] == [("invalid_line", '{"kind":"egress"}')]


def test_hostile_lines_in_a_file_are_dead_letters_with_their_line(
    tmp_path: Path, geoip: Path
) -> None:
    path = tmp_path / "hostile.log"
    path.write_bytes(
        b"2 1 eni-1 10.0.0.1 8.8.8.8 1 443 6 1 100 1700000000 1700000060 ACCEPT OK\n"
        b"2 1 eni-1 10.0.0.1 8.8.8.8 1 443 6 1 1x0 1700000000 1700000060 ACCEPT OK\n"
        b"2 1 eni-1 10.0.0.1 8.8.8.8 1 443\n"
        b"2 1 eni-1 10.0.0.1 8.8.8.\xff 1 443 6 1 100 1700000000 1700000060 ACCEPT OK\n"
    )
    code, _, dead = run_replay(tmp_path, [path], geoip, "--platform", "acme")
    assert code == 0
    assert [(d["reason"], d["source"]["line"]) for d in dead] == [
        ("invalid_field:bytes", 2),
        ("invalid_line", 3),
        ("invalid_field:dst_ip", 4),
    ]
    assert "raw_base64" in dead[2]  # the line's own bytes, not UTF-8


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--platform", "Not A Platform"), "--platform"),
        (("--subject-region", "Korea"), "--subject-region"),
        (("--data-category", "user..email"), "--data-category"),
    ],
)
def test_bad_format_options_are_refused_before_replay(
    tmp_path: Path,
    geoip: Path,
    flags: tuple[str, ...],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, _ = run_replay(tmp_path, [DATA / "zeek-conn" / "conn.ndjson"], geoip, *flags)
    assert code == 2
    assert message in capsys.readouterr().err


def test_compressed_file_is_detected_too(tmp_path: Path, geoip: Path) -> None:
    path = tmp_path / "conn.log.gz"
    path.write_bytes(gzip.compress((DATA / "zeek-conn" / "conn-m57.log").read_bytes()))
    code, _, dead = run_replay(tmp_path, [path], geoip, "--platform", "acme")
    assert code == 0 and dead == []
