"""`xborder replay --baseline-rules`: what a rule edit would have done, by alert id."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson

from monitor.alerts.grouping import Alert
from monitor.cli.main import main
from monitor.config.settings import default_rules_dir
from monitor.replay.backtest import diff_alerts

BULK = "pipa.xborder.bulk_volume"


def _pack_with_threshold(dest: Path, at_least: int) -> Path:
    shutil.copytree(default_rules_dir(), dest)
    rule = dest / "detections" / "bulk_volume.yaml"
    text = rule.read_text()
    assert "  at_least: 100000\n" in text
    rule.write_text(text.replace("  at_least: 100000\n", f"  at_least: {at_least}\n"))
    return dest


def _final_ids(path: Path) -> dict[str, dict[str, object]]:
    final: dict[str, dict[str, object]] = {}
    for line in path.read_bytes().splitlines():
        alert = orjson.loads(line)
        final[alert["alert_id"]] = alert
    return final


def _replay(tmp: Path, name: str, inputs: list[str], *extra: str) -> Path:
    out = tmp / f"{name}-alerts.jsonl"
    args = ["replay", *inputs, "--alerts-out", str(out), "--dead-letters-out", str(tmp / "d")]
    assert main([*args, *extra]) == 0
    return out


def test_a_changed_threshold_reports_exactly_the_alerts_it_adds_and_removes(
    tmp_path: Path, country_db: Path
) -> None:
    simulated = tmp_path / "telemetry.jsonl"
    simulate = ["simulate", "--count", "6000", "--seed", "13", "--start", "2026-10-01T00:00:00Z"]
    assert main([*simulate, "--violation", "bulk_volume=3", "--out", str(simulated)]) == 0
    inputs = [str(simulated), "--geoip-country", str(country_db)]
    for at_least, label in ((20_000, "lower"), (400_000, "higher")):
        new_rules = _pack_with_threshold(tmp_path / label, at_least)
        old = _final_ids(_replay(tmp_path, f"{label}-old", inputs))
        new = _final_ids(_replay(tmp_path, f"{label}-new", [*inputs, "--rules", str(new_rules)]))
        report = tmp_path / f"{label}.json"
        _replay(
            tmp_path, f"{label}-both", [*inputs, "--rules", str(new_rules)],
            "--baseline-rules", str(default_rules_dir()), "--backtest-out", str(report),
        )  # fmt: skip
        got = orjson.loads(report.read_bytes())
        added = {a["alert_id"] for a in got["added"]}
        removed = {a["alert_id"] for a in got["removed"]}
        # One pass over both packs gives what two separate replays give.
        assert added == set(new) - set(old)
        assert removed == set(old) - set(new)
        # A threshold only moves bulk-volume alerts, and here it moves some.
        moved = [a["rule_id"] for a in got["added"] + got["removed"]]
        assert moved and set(moved) == {BULK}, (label, moved)
        # Alert ids are the rule, group and calendar day: a lower threshold only
        # adds alerts (or grows them), a higher one only removes (or shrinks).
        assert (bool(added), bool(removed)) == (
            (True, False) if label == "lower" else (False, True)
        )
        changed = {c["alert_id"] for c in got["changed"]}
        assert changed <= set(old) & set(new)
        assert got["unchanged"] + len(changed) == len(set(old) & set(new))


def _alert(alert_id: str, **fields: object) -> Alert:
    base: dict[str, object] = {
        "alert_id": alert_id, "rule_id": BULK, "title": "t", "severity": "medium",
        "legal_ref": "x", "tags": [], "platform": "shein", "src_country": None,
        "dst_country": "SG", "subject_region": "KR", "dataset_id": None,
        "first_seen": "2026-10-01T10:00:00.000Z", "last_seen": "2026-10-01T10:00:00.000Z",
        "event_count": 3, "bytes": 0, "records": 120_000, "data_categories": [], "evidence": [],
        "revision": 1, "truncated": False, "rules_version": "old", "geoip_build": None,
        "emitted_at": "2026-12-01T00:00:00.000Z",
    }  # fmt: skip
    return Alert(**{**base, **fields})  # type: ignore[typeddict-item]


def test_the_diff_names_changed_findings_not_emission_details() -> None:
    old = {"a": _alert("a"), "b": _alert("b"), "c": _alert("c")}
    new = {
        # Emitted later, by another pack version, after more updates: the same finding.
        "a": _alert("a", emitted_at="2027-01-01T00:00:00.000Z", rules_version="new", revision=9),
        "b": _alert("b", event_count=4, records=150_000),
        "d": _alert("d"),
    }
    diff = diff_alerts(old, new, "new", "old")
    assert [a["alert_id"] for a in diff.added] == ["d"]
    assert [a["alert_id"] for a in diff.removed] == ["c"]
    assert [(a["alert_id"], f) for a, f in diff.changed] == [
        ("b", {"event_count": [3, 4], "records": [120_000, 150_000]})
    ]
    assert diff.unchanged == 1
    text = diff.render()
    assert "alerts added: 1" in text and "+ d" in text and "event_count 3 -> 4" in text
