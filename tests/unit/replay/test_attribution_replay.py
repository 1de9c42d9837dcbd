"""`xborder replay` with a service registry: flows and untagged records attributed, alerts fired."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from monitor.cli.main import main
from tests.support.geoip_build import build_country_db
from tests.support.replay import run_replay

SERVICES = """\
- name: temu-kr-orders
  match:
    workload_labels: {account-id: "123456789010"}
  platform: temu
  subject_region: KR
  data_categories: [user.contact.email]
  dataset_id: temu-kr-orders
- name: temu-payments
  match:
    src_cidrs: [10.8.0.0/16]
  platform: temu
  subject_region: KR
  data_categories: [user.payment]
"""
VPC = b"2 123456789010 eni-1235b8ca 10.0.0.62 52.213.180.42 443 43416 6 7 376 1566848875 1566848933 ACCEPT OK\n"


@pytest.fixture(scope="module")
def geoip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    networks = {"8.8.8.0/24": "US", "52.213.0.0/16": "IE", "10.0.0.0/8": "KR"}
    return build_country_db(tmp_path_factory.mktemp("geo") / "c.mmdb", networks)


@pytest.fixture
def services(tmp_path: Path) -> Path:
    path = tmp_path / "services.yaml"
    path.write_text(SERVICES)
    return path


def test_a_vpc_flow_attributed_by_its_account_fires_without_any_flag(
    tmp_path: Path, geoip: Path, services: Path
) -> None:
    flows = tmp_path / "flows.log"
    flows.write_bytes(VPC)
    code, alerts, dead = run_replay(tmp_path, [flows], geoip, "--services", str(services))
    assert code == 0 and dead == []
    (alert,) = alerts
    assert alert["rule_id"] == "pipa.xborder.undisclosed_destination"
    assert (alert["platform"], alert["dst_country"]) == ("temu", "IE")
    assert alert["evidence"][0]["source"] == {"file": str(flows), "line": 1}
    # The bundled registry does not know the account: the flow has no platform.
    code, alerts, dead = run_replay(tmp_path, [flows], geoip)
    assert alerts == [] and [d["reason"] for d in dead] == ["missing_field:platform"]


def test_an_untagged_record_gains_categories_and_fires_a_tagged_one_keeps_its_own(
    tmp_path: Path, geoip: Path, services: Path
) -> None:
    base = {
        "kind": "egress",
        "ts": "2026-10-01T01:00:00Z",
        "platform": "temu",
        "src_ip": "10.8.0.9",
        "dst_ip": "8.8.8.8",
        "bytes": 5000,
    }
    telemetry = tmp_path / "egress.jsonl"
    telemetry.write_bytes(
        orjson.dumps({**base, "event_id": "untagged"})
        + b"\n"
        + orjson.dumps({**base, "event_id": "tagged", "data_categories": ["user.contact"]})
        + b"\n"
    )
    code, alerts, dead = run_replay(tmp_path, [telemetry], geoip, "--services", str(services))
    assert code == 0 and dead == []
    # temu disclosed the US for contact and name: the payment data the registry says
    # the untagged record carries is an undisclosed item; the tagged record's own
    # contact data is not.
    fired = {(a["rule_id"], tuple(e["event_id"] for e in a["evidence"])) for a in alerts}
    assert fired == {("pipa.xborder.undisclosed_items", ("untagged",))}
    # Without the registry the untagged record is not personal: nothing fires.
    _, alerts, _ = run_replay(tmp_path, [telemetry], geoip)
    assert alerts == []


def test_rules_check_validates_the_registry(
    tmp_path: Path, services: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "check", "--skip-secrets", "--services", str(services)]) == 0
    assert "2 services: OK" in capsys.readouterr().out
    services.write_text(SERVICES.replace("10.8.0.0/16", "10.8.0.0/33"))
    assert main(["rules", "check", "--skip-secrets", "--services", str(services)]) == 2
    assert f"{services}:10:" in capsys.readouterr().err
