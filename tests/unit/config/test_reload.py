"""Reloading while the worker runs, the pure part: see a change, load, take it or keep the last good."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from monitor.config.disclosures import Disclosures
from monitor.config.reload import (
    Loaded,
    Loaders,
    Outcome,
    Reloader,
    reason,
    snapshot,
    watched_files,
)
from monitor.config.runtime import load_runtime
from monitor.config.settings import Settings
from monitor.engine.model import RulePack
from monitor.engine.ruletypes.consent import ConsentRule
from monitor.errors import GeoIPDatabaseError
from tests.support.geoip_build import TEST_NETWORKS, build_country_db
from tests.support.pack import copy_pack, edit, replace_file
from tests.support.records import T0, api, of, run

STORED = "pipa.xborder.stored_in_watch_country"
# Stored in Singapore: not a watch country in the bundled pack.
STORED_IN_SG = api("s1", T0, dst_ip="8.219.1.1", endpoint="https://x.example/b", stores=True)


def start(tmp_path: Path, **settings: object) -> tuple[Path, Reloader]:
    rules = copy_pack(tmp_path)
    config = Settings(**{"rules_dir": rules, "use_geoip": False, **settings})  # type: ignore[arg-type]
    runtime = load_runtime(config)
    return rules, Reloader(config, Loaded.of(runtime), runtime.subject_key)


def settled(reloader: Reloader) -> Outcome | None:
    """The outcome once a change has settled: the first look sees it, the second acts."""
    assert reloader.poll() is None
    return reloader.poll()


def fires_on_sg(reloader: Reloader) -> bool:
    return bool(of(run([STORED_IN_SG], reloader.running.pack), STORED))


def test_nothing_changed_nothing_loaded(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    config = Settings(rules_dir=rules, use_geoip=False)
    runtime = load_runtime(config)

    def unexpected(settings: Settings) -> tuple[RulePack, Disclosures]:
        raise AssertionError("loaded without a change")

    loaders = Loaders(rules=unexpected)
    reloader = Reloader(config, Loaded.of(runtime), runtime.subject_key, loaders=loaders)
    assert [reloader.poll() for _ in range(3)] == [None, None, None]


def test_a_changed_list_is_taken_once_the_file_has_settled(tmp_path: Path) -> None:
    rules, reloader = start(tmp_path)
    before = reloader.running
    assert not fires_on_sg(reloader)
    edit(rules / "pack.yaml", "watch_countries: [CN]", "watch_countries: [CN, SG]")
    outcome = settled(reloader)
    assert outcome is not None
    assert outcome.results == {"rules": None}
    assert outcome.replaced is before and reloader.running is outcome.loaded
    assert outcome.loaded.versions["rules"] != before.versions["rules"]
    assert fires_on_sg(reloader)
    # Taken: the same files are not loaded again.
    assert reloader.poll() is None


def test_a_file_written_in_place_is_seen_too(tmp_path: Path) -> None:
    rules, reloader = start(tmp_path)
    pack = rules / "pack.yaml"
    pack.write_text(pack.read_text().replace("[CN]", "[CN, SG]"))
    assert settled(reloader) is not None
    assert fires_on_sg(reloader)


def test_a_file_still_changing_waits_for_the_next_look(tmp_path: Path) -> None:
    rules, reloader = start(tmp_path)
    pack = rules / "pack.yaml"
    edit(pack, "[CN]", "[CN, SG]")
    assert reloader.poll() is None  # first seen
    edit(pack, "[CN, SG]", "[CN, SG, RU]")
    assert reloader.poll() is None  # changed again since
    assert reloader.poll() is not None


def test_a_new_or_removed_rule_file_is_a_change(tmp_path: Path) -> None:
    rules, reloader = start(tmp_path)
    (rules / "detections" / "national_id_abroad.yaml").unlink()
    outcome = settled(reloader)
    assert outcome is not None and outcome.results["rules"] is None
    assert "pipa.xborder.national_id_abroad" not in outcome.loaded.pack.by_id
    shutil.copy(
        copy_pack(tmp_path / "orig") / "detections" / "national_id_abroad.yaml",
        rules / "detections",
    )
    outcome = settled(reloader)
    assert outcome is not None
    assert "pipa.xborder.national_id_abroad" in outcome.loaded.pack.by_id


def test_a_broken_rule_file_is_refused_and_the_running_pack_kept(tmp_path: Path) -> None:
    rules, reloader = start(tmp_path)
    running = reloader.running
    rule = rules / "detections" / "stored_in_watch_country.yaml"
    # Valid edits elsewhere are not taken either: a pack is built from files
    # that were on disk together, or not at all.
    edit(rules / "pack.yaml", "[CN]", "[CN, SG]")
    edit(rule, "severity: high", "severity: extreme")
    outcome = settled(reloader)
    assert outcome is not None and outcome.replaced is None
    assert outcome.loaded is running and reloader.running is running
    why = outcome.results["rules"]
    assert why is not None and f"{rule}:3:" in why and "severity" in why
    assert not fires_on_sg(reloader)
    # Not tried again until the files change, or a forced reload asks.
    assert reloader.poll() is None
    forced = reloader.poll(force=True)
    assert forced is not None and forced.results["rules"] == why
    edit(rule, "severity: extreme", "severity: high")
    outcome = settled(reloader)
    assert outcome is not None and outcome.results["rules"] is None
    assert fires_on_sg(reloader)


def test_rules_and_disclosures_are_taken_together_or_not_at_all(tmp_path: Path) -> None:
    rules, reloader = start(tmp_path)
    before = reloader.running.versions["disclosures"]
    disclosures = rules / "config" / "disclosures.yaml"
    replace_file(disclosures, disclosures.read_text() + "\nnewshop:\n  - {country: SG}\n")
    rule = rules / "detections" / "bulk_volume.yaml"
    edit(rule, "severity: medium", "severity: extreme")
    outcome = settled(reloader)
    assert outcome is not None
    why = outcome.results["disclosures"]
    assert why is not None and str(rule) in why
    assert outcome.results["rules"] == why
    assert reloader.running.versions["disclosures"] == before
    # The rule fixed: the disclosures written earlier come with it.
    edit(rule, "severity: extreme", "severity: medium")
    outcome = settled(reloader)
    assert outcome is not None and outcome.results == {"rules": None}
    assert reloader.running.disclosures.countries("newshop") == {"SG"}
    assert reloader.running.versions["disclosures"] != before


def test_a_broken_disclosures_file_names_its_line(tmp_path: Path) -> None:
    rules, reloader = start(tmp_path)
    disclosures = rules / "config" / "disclosures.yaml"
    replace_file(disclosures, disclosures.read_text() + "\nnewshop:\n  - {country: XX}\n")
    outcome = settled(reloader)
    assert outcome is not None and outcome.replaced is None
    why = outcome.results["disclosures"]
    lines = len(disclosures.read_text().splitlines())
    assert why is not None and f"{disclosures}:{lines}:" in why


def test_the_endpoint_registry_makes_a_new_resolver_and_keeps_the_pack(tmp_path: Path) -> None:
    rules, reloader = start(tmp_path)
    before = reloader.running
    endpoints = rules / "config" / "endpoints.yaml"
    replace_file(endpoints, endpoints.read_text() + "\n- {host: x.example, country: SG}\n")
    outcome = settled(reloader)
    assert outcome is not None and outcome.results == {"endpoints": None}
    assert outcome.loaded.pack is before.pack
    assert outcome.loaded.resolver is not before.resolver
    assert outcome.loaded.resolver.endpoints.country("x.example") == "SG"
    assert outcome.loaded.versions["endpoints"] != before.versions["endpoints"]


def test_a_geoip_database_is_swapped_and_a_damaged_one_refused(tmp_path: Path) -> None:
    db = tmp_path / "geoip" / "country.mmdb"
    db.parent.mkdir()
    build_country_db(db, TEST_NETWORKS, build_epoch=1781654400)  # 2026-06-17
    _, reloader = start(tmp_path, use_geoip=True, geoip_country=db)
    first = reloader.running
    assert first.versions["geoip"] == "2026-06-17"
    newer = tmp_path / "newer.mmdb"
    build_country_db(newer, TEST_NETWORKS, build_epoch=1781654400 + 86400)
    os.replace(newer, db)
    outcome = settled(reloader)
    assert outcome is not None and outcome.results == {"geoip": None}
    assert outcome.replaced is first and outcome.loaded.geoip is not first.geoip
    assert outcome.loaded.versions["geoip"] == "2026-06-18"
    assert outcome.loaded.alert_context.geoip_build == "2026-06-18"
    assert outcome.loaded.pack is first.pack
    replace_file(db, "not a database")
    outcome = settled(reloader)
    assert outcome is not None and outcome.replaced is None
    why = outcome.results["geoip"]
    assert why is not None and str(db) in why
    assert reloader.running.versions["geoip"] == "2026-06-18"


def test_a_rule_changing_type_is_refused_with_its_place(tmp_path: Path) -> None:
    rules, reloader = start(tmp_path)
    detections = rules / "detections"
    onward = (detections / "onward_transfer.yaml").read_text()
    (detections / "onward_transfer.yaml").unlink()
    # The onward rule now under the bulk-volume rule's id.
    replace_file(
        detections / "bulk_volume.yaml",
        onward.replace("pipa.xborder.onward_transfer", "pipa.xborder.bulk_volume"),
    )
    outcome = settled(reloader)
    assert outcome is not None and outcome.replaced is None
    why = outcome.results["rules"]
    assert why is not None
    assert f"{detections / 'bulk_volume.yaml'}:1:" in why
    assert "changes type from threshold to onward" in why and "new id" in why


def test_a_reloaded_consent_rule_keys_subjects_with_the_workers_key(tmp_path: Path) -> None:
    rules, reloader = start(tmp_path, subject_key="a-subject-key-of-this-test")

    def key(pack: RulePack) -> bytes:
        (consent,) = (r.type for r in pack.stateful if isinstance(r.type, ConsentRule))
        return consent.subject_key

    started = key(reloader.running.pack)
    edit(rules / "pack.yaml", "[CN]", "[CN, SG]")
    outcome = settled(reloader)
    assert outcome is not None and outcome.loaded.pack is not outcome.replaced.pack  # type: ignore[union-attr]
    # Subjects' state stays where it is: keyed as before, not with a new random key.
    assert key(outcome.loaded.pack) == started == reloader.subject_key


def test_a_change_made_while_the_first_load_ran_is_loaded(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    config = Settings(rules_dir=rules, use_geoip=False)
    stamps = snapshot(watched_files(config))  # the worker looks first, then loads
    runtime = load_runtime(config)
    edit(rules / "pack.yaml", "[CN]", "[CN, SG]")
    reloader = Reloader(config, Loaded.of(runtime), runtime.subject_key, stamps)
    assert settled(reloader) is not None
    assert fires_on_sg(reloader)


def test_a_forced_reload_loads_every_part(tmp_path: Path) -> None:
    _, reloader = start(tmp_path)
    outcome = reloader.poll(force=True)
    assert outcome is not None
    assert outcome.results == dict.fromkeys(("rules", "disclosures", "endpoints", "services"))
    assert outcome.loaded.versions == outcome.replaced.versions  # type: ignore[union-attr]


def test_a_reason_never_quotes_a_file(tmp_path: Path) -> None:
    rules, reloader = start(tmp_path)
    secret = "s3cr3t-" + "x" * 200
    replace_file(rules / "detections" / "leak.yaml", f"id: [{secret}\n")
    outcome = settled(reloader)
    assert outcome is not None
    why = outcome.results["rules"]
    assert why is not None and "leak.yaml" in why and secret not in why


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (RuntimeError("the record said: 211.234.1.1"), "RuntimeError while loading"),
        (GeoIPDatabaseError("/x/country.mmdb: not a MaxMind DB"), "/x/country.mmdb"),
    ],
)
def test_reasons_of_other_errors(error: Exception, shown: str) -> None:
    assert shown in reason(error) and "211.234" not in reason(error)


def test_the_service_registry_reloads_on_its_own_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    rules, reloader = start(tmp_path)
    before = reloader.running
    services = rules / "config" / "services.yaml"
    entry = "- name: crm\n  match: {services: [crm]}\n  subject_region: KR\n"
    replace_file(services, entry)
    outcome = settled(reloader)
    assert outcome is not None and outcome.results == {"services": None}
    assert outcome.loaded.pack is before.pack
    assert [e.name for e in outcome.loaded.services.entries] == ["crm"]
    assert outcome.loaded.versions["services"] != before.versions["services"]
    replace_file(services, entry.replace("KR", "Korea"))
    refused = settled(reloader)
    assert refused is not None and refused.loaded is outcome.loaded
    assert f"{services}:3:" in (refused.results["services"] or "")
