"""Which time zone a rule's grouping windows follow: the rule's, the pack's, the home region's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.alerts.windows import DAY_MS
from monitor.cli.main import main
from monitor.config.runtime import load_config
from monitor.config.settings import Settings
from monitor.engine.loader import load_pack
from monitor.errors import ConfigError, ConfigErrors
from tests.support.hostile_config import edit
from tests.support.pack import DISCLOSURES, PACK, RULES, copy_pack
from tests.support.records import NLB, T0, api, of, run


def test_the_default_pack_groups_by_calendar_days_in_seoul() -> None:
    assert {(str(r.group_zone), r.group_window_ms) for r in PACK.rules} == {("Asia/Seoul", DAY_MS)}
    assert PACK.params["time_zone"] == "Asia/Seoul"


def test_the_pack_zone_and_a_rule_zone(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    edit(rules / "pack.yaml", "home_region: KR", "home_region: KR\n  time_zone: Europe/Berlin")
    edit(
        rules / "detections" / "no_legal_basis.yaml",
        "kinds: [api_call]\n",
        "kinds: [api_call]\ngroup_time_zone: UTC\n",
    )
    pack = load_pack(rules, DISCLOSURES)
    zones = {r.id: str(r.group_zone) for r in pack.rules}
    assert zones.pop(NLB) == "UTC"
    assert set(zones.values()) == {"Europe/Berlin"}
    # T0 - 1 ms and T0 are 08:59:59.999 and 09:00 in Seoul, one day there; in UTC, two days.
    records = [api("a", T0 - 1), api("b", T0)]
    assert [a["event_count"] for a in of(run(records), NLB)] == [2]
    assert [a["event_count"] for a in of(run(records, pack), NLB)] == [1, 1]


def test_another_home_region_names_its_zone() -> None:
    with pytest.raises(ConfigErrors, match=r"params need time_zone .* for home_region 'JP'"):
        load_pack(RULES, DISCLOSURES, {"home_region": "JP"})
    pack = load_pack(RULES, DISCLOSURES, {"home_region": "JP", "time_zone": "Asia/Tokyo"})
    assert {str(r.group_zone) for r in pack.rules} == {"Asia/Tokyo"}
    with pytest.raises(
        ConfigErrors, match=re.escape(f"{RULES / 'pack.yaml'}:6: time_zone must be")
    ):
        load_pack(RULES, DISCLOSURES, {"time_zone": "Mars/Olympus_Mons"})


def test_the_time_zone_setting(capsys: pytest.CaptureFixture[str]) -> None:
    pack, _, _ = load_config(Settings(home_region="JP", time_zone="Asia/Tokyo"))
    assert {str(r.group_zone) for r in pack.rules} == {"Asia/Tokyo"}
    with pytest.raises(ConfigError, match="time zone must be an IANA name: 'Tokyo'"):
        load_config(Settings(time_zone="Tokyo"))
    assert main(["rules", "check", "--home-region", "JP"]) == 2
    assert "params need time_zone" in capsys.readouterr().err
    assert main(["rules", "check", "--home-region", "JP", "--time-zone", "Asia/Tokyo",
                 "--skip-secrets"]) == 0  # fmt: skip
