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
        "52.213.0.0/16": "IE",
        "10.0.0.0/8": "KR",
        "198.71.247.0/24": "US",
        "20.190.128.0/18": "US",
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


OCSF = DATA / "ocsf"
OCSF_SAMPLES = [
    OCSF / "security-lake-rc2.ocsf.jsonl",
    OCSF / "azure-nsg-flow.ocsf.jsonl",
    OCSF / "zeek-conn-tenzir.ocsf.jsonl",
]


def alert_rows(alerts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Each alert as (rule, dst_country, bytes, evidence event ids), sorted."""
    return sorted(
        (a["rule_id"], a.get("dst_country"), a["bytes"], [e["event_id"] for e in a["evidence"]])
        for a in alerts
    )


def test_ocsf_samples_replay_into_alerts(
    tmp_path: Path, geoip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, alerts, dead = run_replay(tmp_path, OCSF_SAMPLES, geoip, *PERSONAL)
    assert code == 0
    assert alert_rows(alerts) == [
        # The CloudTrail call names its service, not a regional host: no registry
        # entry places it. The VPC flow goes to a private address.
        ("monitor.unresolved_destination", None, 0, ["6f4ab5bd-2daa-4d00-be14-d92efEXAMPLE"]),
        ("monitor.unresolved_destination", None, 50, ["ocsf-f7d5557a91d7335e32b6a3569925a3bc"]),
        ("pipa.xborder.undisclosed_destination", "US", 8, ["C1UE8M1G6ok0h7OrJi"]),
        (
            "pipa.xborder.undisclosed_destination",
            "US",
            60,
            ["ocsf-79ce62f3b174dbaab3cc0c08d010af72"],
        ),
    ]
    evidence = {e["event_id"]: e for a in alerts for e in a["evidence"]}
    assert evidence["C1UE8M1G6ok0h7OrJi"]["ts"] == "2021-11-17T13:45:03.913Z"
    assert evidence["ocsf-79ce62f3b174dbaab3cc0c08d010af72"]["source"] == {
        "file": str(OCSF_SAMPLES[1]),
        "line": 1,
    }
    # Route 53 DNS Activity (4003) is no class the monitor reads.
    assert [(d["reason"], d["source"]["line"], d["raw"][:12]) for d in dead] == [
        ("unknown_kind", 3, '{"metadata":'),
    ]
    out = capsys.readouterr().out
    assert "records: 4 valid of 5 lines (api_call 1, egress 3)" in out
    assert "files by format: ocsf 3" in out


def test_ocsf_cloudtrail_sample_placed_by_the_endpoint_registry(
    tmp_path: Path, geoip: Path
) -> None:
    endpoints = tmp_path / "endpoints.yaml"
    # The call went to the service in us-west-2, as regional endpoints are registered.
    endpoints.write_text("- suffix: .us-west-2.amazonaws.com\n  country: US\n")
    code, alerts, dead = run_replay(
        tmp_path, [OCSF_SAMPLES[0]], geoip, "--endpoints", str(endpoints), *PERSONAL
    )
    assert code == 0 and [d["reason"] for d in dead] == ["unknown_kind"]
    api = next(a for a in alerts if a["evidence"][0]["event_id"].startswith("6f4ab5bd"))
    assert (api["rule_id"], api["dst_country"], api["first_seen"]) == (
        "pipa.xborder.undisclosed_destination",
        "US",
        "2016-04-01T15:31:48.000Z",
    )


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
