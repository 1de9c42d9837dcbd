"""The rule format: the default pack's examples, and errors that name file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli.main import main
from monitor.config.disclosures import load_disclosures, load_endpoints
from monitor.detect.examples import run_example
from monitor.engine.loader import load_pack
from monitor.engine.model import RulePack
from monitor.errors import ConfigError, ConfigErrors
from tests.support.pack import DISCLOSURES, ENDPOINTS, PACK, RULES, copy_pack

DETECTIONS_V1 = {
    "pipa.xborder.no_legal_basis": "critical",
    "pipa.xborder.undisclosed_destination": "high",
    "pipa.xborder.stored_in_watch_country": "high",
    "pipa.xborder.onward_transfer": "high",
    "pipa.xborder.consent_withdrawn": "critical",
    "pipa.xborder.national_id_abroad": "critical",
    "pipa.xborder.bulk_volume": "medium",
    "monitor.unresolved_destination": "low",
}
# Beyond detections-v1 (issue 11).
ADDED = {
    "pipa.xborder.undisclosed_items": "high",
    "pipa.xborder.adequacy_not_recognised": "critical",
    "pipa.xborder.undisclosed_recipient": "high",
    "pipa.xborder.certification_not_in_force": "critical",
}


def test_default_pack_is_detections_v1() -> None:
    assert {r.id: r.severity for r in PACK.rules} == DETECTIONS_V1 | ADDED
    assert PACK.home_region == "KR"
    assert all(r.legal_ref for r in PACK.rules)


@pytest.mark.parametrize(
    ("rule_id", "index"),
    [(r.id, i) for r in PACK.rules for i in range(len(r.examples))],
)
def test_rule_examples(rule_id: str, index: int) -> None:
    rule = PACK.by_id[rule_id]
    result = run_example(PACK, ENDPOINTS, rule, rule.examples[index])
    assert result.ok, f"{rule_id} / {result.example.name}: {result.detail}"


def errors_of(directory: Path) -> list[ConfigError]:
    with pytest.raises(ConfigErrors) as info:
        load_pack(directory, DISCLOSURES)
    return info.value.errors


def write_rule(directory: Path, name: str, text: str) -> Path:
    path = directory / "detections" / name
    path.write_text(text)
    return path


BASE = """\
id: test.rule
title: t
severity: high
legal_ref: none
"""
EXAMPLES = """\
examples:
  - {name: a, fires: true, records: []}
  - {name: b, fires: false, records: []}
"""


def test_errors_name_file_and_line_and_are_collected(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    path = write_rule(
        rules,
        "bad.yaml",
        BASE
        + "when:\n"
        + "  all:\n"
        + "    - {field: dst_county, eq: CN}\n"  # line 7: typo in the field
        + "    - {condition: personl}\n"  # line 8: unknown condition
        + "    - {field: bytes, gte: many}\n"  # line 9: not a number
        + EXAMPLES,
    )
    errs = errors_of(rules)
    where = {(e.location.file, e.location.line) for e in errs if e.location}
    assert (str(path), 7) in where and (str(path), 8) in where and (str(path), 9) in where
    text = "\n".join(map(str, errs))
    assert "unknown field 'dst_county'" in text and "unknown condition 'personl'" in text


def test_duplicate_yaml_keys_are_rejected_with_line(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    path = write_rule(
        rules, "dup.yaml", BASE + "severity: low\nwhen: {condition: personal}\n" + EXAMPLES
    )
    errs = errors_of(rules)
    assert any(
        e.location and e.location.line == 5 and "duplicate key 'severity'" in e.message
        for e in errs
    ), errs
    assert any(str(path) in str(e) for e in errs)


def test_duplicate_rule_ids_unknown_type_and_missing_params(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    write_rule(rules, "x1.yaml", BASE + "when: {condition: personal}\n" + EXAMPLES)
    write_rule(rules, "x2.yaml", BASE + "when: {condition: personal}\n" + EXAMPLES)
    write_rule(
        rules,
        "x3.yaml",
        BASE.replace("test.rule", "test.other")
        + "type: sliding\nwhen: {condition: personal}\n"
        + EXAMPLES,
    )
    write_rule(
        rules,
        "x4.yaml",
        BASE.replace("test.rule", "test.third")
        + "type: threshold\nwhen: {condition: personal}\n"
        + EXAMPLES,
    )
    text = "\n".join(map(str, errors_of(rules)))
    assert "duplicate rule id 'test.rule'" in text
    assert "unknown rule type 'sliding'" in text
    assert "needs param 'at_least'" in text


def test_rule_without_examples_is_refused(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    write_rule(rules, "noex.yaml", BASE + "when: {condition: personal}\n")
    assert any("examples" in e.message for e in errors_of(rules))


def test_rules_check_and_test_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bundled delivery file's receiver signs with this secret; rules check reads it.
    monkeypatch.setenv("XBORDER_WEBHOOK_SECRET", "a-webhook-secret-of-the-tests")
    assert main(["rules", "check"]) == 0
    assert main(["rules", "test"]) == 0
    out = capsys.readouterr().out
    assert "27 passed, 0 failed" in out
    rules = copy_pack(tmp_path)
    path = write_rule(rules, "bad.yaml", BASE + "when: {nope: 1}\n" + EXAMPLES)
    assert main(["rules", "check", "--rules", str(rules)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:5" in err


def test_failing_example_makes_rules_test_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = copy_pack(tmp_path)
    target = rules / "detections" / "no_legal_basis.yaml"
    target.write_text(target.read_text().replace("count: 2", "count: 3"))
    assert main(["rules", "test", "--rules", str(rules)]) == 1
    assert "expected 3 matching records, got 2" in capsys.readouterr().out


def test_home_region_override_changes_what_is_abroad() -> None:
    # Only KR has a default time zone: another home region says whose calendar days group alerts.
    pack: RulePack = load_pack(RULES, DISCLOSURES, {"home_region": "JP", "time_zone": "Asia/Tokyo"})
    assert pack.home_region == "JP"
    # The KR-based examples are no longer personal for a JP home region.
    rule = pack.by_id["pipa.xborder.no_legal_basis"]
    assert not run_example(pack, ENDPOINTS, rule, rule.examples[0]).ok


def test_invalid_example_record_is_reported(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    write_rule(
        rules,
        "inv.yaml",
        BASE
        + "when: {condition: personal}\n"
        + "examples:\n"
        + "  - {name: a, fires: true, records: [{kind: egress}]}\n"
        + "  - {name: b, fires: false, records: []}\n",
    )
    pack = load_pack(rules, DISCLOSURES)
    rule = pack.by_id["test.rule"]
    result = run_example(pack, ENDPOINTS, rule, rule.examples[0])
    assert not result.ok and "missing_field:event_id" in result.detail


def test_disclosures_and_endpoints_errors_name_lines(tmp_path: Path) -> None:
    bad = tmp_path / "d.yaml"
    bad.write_text("temu:\n  - country: China\n")
    with pytest.raises(ConfigErrors) as info:
        load_disclosures(bad)
    assert info.value.errors[0].location is not None and info.value.errors[0].location.line == 2
    eps = tmp_path / "e.yaml"
    eps.write_text("- host: a.example\n  country: CN\n- suffix: .example\n")
    with pytest.raises(ConfigErrors) as info2:
        load_endpoints(eps)
    assert info2.value.errors[0].location is not None and info2.value.errors[0].location.line == 3


def test_endpoint_registry_exact_host_wins_then_longest_suffix(tmp_path: Path) -> None:
    eps = tmp_path / "e.yaml"
    eps.write_text(
        "- suffix: .example.com\n  country: US\n"
        "- suffix: .sg.example.com\n  country: SG\n"
        "- host: api.sg.example.com\n  country: JP\n"
    )
    reg = load_endpoints(eps)
    assert reg.country("api.sg.example.com") == "JP"
    assert reg.country("x.sg.example.com") == "SG"
    assert reg.country("x.example.com") == "US"
    assert reg.country("API.SG.EXAMPLE.COM.") == "JP"
    assert reg.country("example.org") is None


def test_adequacy_recognised_is_the_eu_and_eea_as_country_codes() -> None:
    # A bare NO in YAML is false: Norway must arrive as the string "NO".
    recognised = PACK.params["adequacy_recognised"]
    assert all(isinstance(c, str) and len(c) == 2 for c in recognised)
    assert len(set(recognised)) == 30 and {"DE", "IE", "IS", "LI", "NO"} <= set(recognised)
    assert not {"CN", "SG", "US", "KR"} & set(recognised)
