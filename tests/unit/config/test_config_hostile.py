"""Hostile and malformed configuration: every case is a ConfigError naming file and line.

Each case copies the bundled pack into tmp_path, changes one file and loads the
whole configuration (rules, disclosures, endpoints) as `xborder rules check`
does. A representative subset runs the real command line (tests/cli/test_config_errors.py).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from monitor.config.runtime import load_config
from monitor.config.settings import Settings
from monitor.config.yamlfile import MAX_FILE_BYTES, MAX_NODES
from monitor.errors import ConfigError, ConfigErrors
from tests.support.hostile_config import billion_laughs, edit, secret_file
from tests.support.pack import RULES, copy_pack


def errors_of(rules: Path) -> list[ConfigError]:
    """The errors of loading the pack in `rules` with its own disclosures and endpoints."""
    try:
        load_config(Settings(rules_dir=rules))
    except ConfigErrors as e:
        return e.errors
    except ConfigError as e:
        return [e]
    raise AssertionError("the configuration loaded without an error")


def assert_error_at(
    errors: list[ConfigError], file: Path, line: int, words: str = ""
) -> ConfigError:
    """The error reported at file:line whose message holds `words` (there must be one)."""
    for err in errors:
        at = (err.location.file, err.location.line) if err.location else None
        if at == (str(file), line) and words in err.message:
            return err
    raise AssertionError(f"no error at {file}:{line} ({words}); got {[str(e) for e in errors]}")


@pytest.mark.parametrize("name", ["aaa.yaml", "zzz.yaml"])
def test_yaml_error_in_first_or_later_rule_file(tmp_path: Path, name: str) -> None:
    """The first file used to end in UnboundLocalError, a later one in a false duplicate id."""
    rules = copy_pack(tmp_path)
    bad = rules / "detections" / name
    bad.write_text("id: [\n")
    errors = errors_of(rules)
    assert_error_at(errors, bad, 2)
    assert len(errors) == 1


def _alias_tower() -> str:
    """Each anchor nests the previous one 30 levels deeper: depth grows through aliases."""
    lines = ["a0: &a0 " + "[" * 30 + "1" + "]" * 30]
    lines += [f"a{i}: &a{i} " + "[" * 30 + f"*a{i - 1}" + "]" * 30 for i in range(1, 5)]
    return "\n".join(lines) + "\n"


# (case, content of a new rule file, line of the error, words of the message)
YAML_CASES: list[tuple[str, bytes, int, str]] = [
    ("billion_laughs", f"x: {billion_laughs()}\n".encode(), 1, "aliases expand to more than"),
    ("deep_nesting", ("x: " + "[" * 20_000 + "]" * 20_000 + "\n").encode(), 1, "nest"),
    ("deep_block_nesting", "".join(" " * i + "- \n" for i in range(100)).encode(), 65, "deeper"),
    ("deep_through_aliases", _alias_tower().encode(), 3, "through an alias"),
    ("recursive_alias", b"a: &x [1, *x]\n", 1, "refers to a node that holds it"),
    ("syntax_error", b"id: a\ntitle: [\n", 3, "invalid YAML"),
    ("tab_indent", b"id: a\n\ttitle: SECRET-LINE\n", 2, "invalid YAML"),
    ("bad_escape", b'id: "SECRET-LINE \\q"\n', 1, "unknown escape"),
    ("not_utf8", b"id: a\ntitle: \xff\xfe\n", 2, "not UTF-8"),
    ("nul_byte", b"id: a\ntitle: \x00\n", 2, "characters are not allowed"),
    ("huge_int", b"id: a\ncount: " + b"9" * 5000 + b"\n", 2, "cannot read value"),
    ("bad_date", b"id: a\nwhen: 2026-13-45\n", 2, "cannot read value"),
    ("binary_tag", b"id: !!binary aGVsbG8=\n", 1, "not supported"),
    ("set_tag", b"id: !!set {a, b}\n", 1, "not supported"),
    ("python_tag", b"id: !!python/object:os.system x\n", 1, "constructor"),
    ("two_documents", b"id: a\n---\nid: b\n", 2, "single document"),
    ("scalar_document", b"# a comment\nSECRET-LINE\n", 2, "must hold a mapping or a list"),
    ("duplicate_key", b"id: a\ntitle: t\nid: b\n", 3, "duplicate key 'id'"),
    ("undefined_alias", b"id: *" + b"n" * 200 + b"\n", 1, "undefined alias"),
]


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [pytest.param(c, n, w, id=i) for i, c, n, w in YAML_CASES],
)
def test_hostile_yaml_is_a_config_error(tmp_path: Path, content: bytes, line: int, words: str):
    rules = copy_pack(tmp_path)
    bad = rules / "detections" / "bad.yaml"
    bad.write_bytes(content)
    started = time.monotonic()
    err = assert_error_at(errors_of(rules), bad, line)
    assert time.monotonic() - started < 2.0
    assert words in err.message
    assert "SECRET-LINE" not in err.message and "lol" not in err.message
    assert len(err.message) < 250


def test_file_with_too_many_values_is_refused(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    big = rules / "detections" / "big.yaml"
    big.write_bytes(b"x:\n" + b"- 1\n" * MAX_NODES)
    # The root mapping, its key and the list come first: the list's item
    # MAX_NODES - 2 is one too many.
    err = assert_error_at(errors_of(rules), big, MAX_NODES - 1)
    assert f"more than {MAX_NODES} values" in err.message


def test_file_larger_than_the_cap_is_refused(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    big = rules / "detections" / "big.yaml"
    big.write_bytes(b"# " + b"x" * MAX_FILE_BYTES + b"\n")
    assert "larger than" in assert_error_at(errors_of(rules), big, 1).message


def test_directory_named_like_a_rule_file_is_refused(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    (rules / "detections" / "x.yaml").mkdir()
    err = assert_error_at(errors_of(rules), rules / "detections" / "x.yaml", 1)
    assert "not a regular file" in err.message


def test_fifo_named_like_a_rule_file_is_refused_without_waiting(tmp_path: Path) -> None:
    rules = copy_pack(tmp_path)
    os.mkfifo(rules / "detections" / "x.yaml")
    err = assert_error_at(errors_of(rules), rules / "detections" / "x.yaml", 1)
    assert "not a regular file" in err.message


@pytest.mark.parametrize("target", ["detections/x.yaml", "pack.yaml", "config/endpoints.yaml"])
def test_link_to_a_file_outside_the_folder_is_refused(tmp_path: Path, target: str) -> None:
    rules = copy_pack(tmp_path)
    link = rules / target
    link.unlink(missing_ok=True)
    link.symlink_to(secret_file(tmp_path))
    err = assert_error_at(errors_of(rules), link, 1)
    assert "outside" in err.message and "SECRET" not in str(err)


def test_link_inside_the_folder_is_followed(tmp_path: Path) -> None:
    """Kubernetes mounts a ConfigMap as links into a folder of its own; they stay inside."""
    rules = copy_pack(tmp_path)
    real = rules / "detections" / "..data" / "bulk_volume.yaml"
    real.parent.mkdir()
    (rules / "detections" / "bulk_volume.yaml").rename(real)
    (rules / "detections" / "bulk_volume.yaml").symlink_to(Path("..data") / "bulk_volume.yaml")
    pack, _, _ = load_config(Settings(rules_dir=rules))
    assert "pipa.xborder.bulk_volume" in pack.by_id


# (case, file of the pack, text in it, its replacement, line of the error, words of the message)
# fmt: off
EDIT_CASES: list[tuple[str, str, str, str, int, str]] = [
    # pack.yaml: a wrong type for each of its keys
    ("pack_params_list", "pack.yaml", "  home_region: KR", "  - KR", 6, "'params' must be a mapping"),
    ("pack_lists_list", "pack.yaml", "lists:\n", "lists:\n  - CN\nx_lists:\n", 9, "'lists' must be"),
    ("pack_conditions_list", "pack.yaml", "conditions:\n", "conditions: [a]\nx:\n", 20, "'conditions' must"),
    ("pack_version_mapping", "pack.yaml", 'version: "1.0.0"', "version: {a: 1}", 4, "'version' must"),
    ("pack_list_not_list", "pack.yaml", "watch_countries: [CN]", "watch_countries: CN", 10, "must be a list"),
    ("pack_list_holds_mapping", "pack.yaml", "watch_countries: [CN]", "watch_countries: [{a: 1}]", 10, "holds a mapping"),
    ("pack_home_region_mapping", "pack.yaml", "home_region: KR", "home_region: {a: 1}", 7, "home_region"),
    ("pack_duration_param", "pack.yaml", "home_region: KR", "home_region: KR\n  window: [1h]", 8, "not a duration"),
    ("pack_time_zone_unknown", "pack.yaml", "home_region: KR", "home_region: KR\n  time_zone: Asia/Atlantis", 8, "time_zone must be an IANA time zone name"),
    ("pack_time_zone_list", "pack.yaml", "home_region: KR", "home_region: KR\n  time_zone: [Asia/Seoul]", 8, "time_zone must be an IANA time zone name"),
    ("pack_time_zone_host_file", "pack.yaml", "home_region: KR", "home_region: KR\n  time_zone: localtime", 8, "time_zone must be an IANA time zone name"),
    ("pack_home_region_without_zone", "pack.yaml", "home_region: KR", "home_region: US", 6, "params need time_zone"),
    ("pack_condition_scalar", "pack.yaml", "  abroad:\n    all:", "  abroad: 7\n  x_abroad:\n    all:", 27, "got a number"),
    ("pack_field_list", "pack.yaml", "{field: dst_country, exists: true}", "{field: [dst_country], exists: true}", 29, "unknown field"),
    ("pack_eq_list", "pack.yaml", "{field: subject_region, eq: $home_region}", "{field: subject_region, eq: [KR]}", 25, "takes one value"),
    ("pack_eq_list_param", "pack.yaml", "{field: subject_region, eq: $home_region}", "{field: subject_region, eq: $watch_countries}", 25, "takes one value"),
    # a rule: a wrong type for each of its keys
    ("rule_id_list", "detections/no_legal_basis.yaml", "id: pipa.xborder.no_legal_basis", "id: [x]", 1, "'id' must be a string"),
    ("rule_tags_mapping", "detections/no_legal_basis.yaml", "tags: [pipa, xborder, maturity.stable]", "tags: {a: 1}", 5, "'tags' must be a list"),
    ("rule_tags_hold_lists", "detections/no_legal_basis.yaml", "tags: [pipa, xborder, maturity.stable]", "tags: [[a]]", 5, "must list strings"),
    ("rule_kinds_int", "detections/no_legal_basis.yaml", "kinds: [api_call]", "kinds: 7", 10, "'kinds' must be a list"),
    ("rule_params_list", "detections/no_legal_basis.yaml", "kinds: [api_call]\n", "kinds: [api_call]\nparams: [a, b]\n", 11, "'params' must be a mapping"),
    ("rule_type_list", "detections/no_legal_basis.yaml", "kinds: [api_call]\n", "kinds: [api_call]\ntype: [threshold]\n", 11, "unknown rule type"),
    ("rule_group_window_list", "detections/no_legal_basis.yaml", "kinds: [api_call]\n", "kinds: [api_call]\ngroup_window: [1h]\n", 11, "not a duration"),
    ("rule_group_window_off_midnight", "detections/no_legal_basis.yaml", "kinds: [api_call]\n", "kinds: [api_call]\ngroup_window: 5h\n", 11, "divides a day"),
    ("rule_group_time_zone_unknown", "detections/no_legal_basis.yaml", "kinds: [api_call]\n", "kinds: [api_call]\ngroup_time_zone: Seoul\n", 11, "group_time_zone must be"),
    ("rule_group_time_zone_mapping", "detections/no_legal_basis.yaml", "kinds: [api_call]\n", "kinds: [api_call]\ngroup_time_zone: {a: 1}\n", 11, "group_time_zone must be"),
    ("rule_group_by_int", "detections/bulk_volume.yaml", "group_by: [platform, dst_country]", "group_by: 3", 25, "'group_by' must be a list"),
    ("rule_when_list", "detections/unresolved_destination.yaml", "when:\n", "when: [a]\nx:\n", 0, "got a list"),
    ("condition_in_mapping", "detections/no_legal_basis.yaml", "in: [none, null]", "in: {none: 1}", 15, "expected a list, got a mapping"),
    ("condition_in_holds_mapping", "detections/no_legal_basis.yaml", "in: [none, null]", "in: [none, {a: 1}]", 15, "got a mapping in it"),
    ("condition_field_mapping", "detections/no_legal_basis.yaml", "{field: legal_basis,", "{field: {a: 1},", 15, "unknown field"),
    ("condition_scalar_in_all", "detections/no_legal_basis.yaml", "    - {condition: abroad}", "    - abroad", 14, "got a string"),
    ("condition_name_list", "detections/no_legal_basis.yaml", "{condition: abroad}", "{condition: [abroad]}", 14, "unknown condition"),
    ("condition_not_scalar", "detections/no_legal_basis.yaml", "    - {condition: abroad}", "    - {not: 7}", 14, "got a number"),
    ("threshold_at_least_string", "detections/bulk_volume.yaml", "at_least: 100000", "at_least: lots", 18, "at_least"),
    ("threshold_window_huge", "detections/bulk_volume.yaml", "window: 1h", "window: " + "9" * 5000 + "h", 19, "not a duration"),
    ("onward_first_hop_int", "detections/onward_transfer.yaml", "first_hop:\n  all:\n    - {field: src_country, eq: $home_region}\n    - {condition: abroad}\n", "first_hop: 7\n", 19, "got a number"),
    ("example_fires_string", "detections/no_legal_basis.yaml", "fires: true", "fires: 'yes'", 18, "'fires' must be true or false"),
    ("example_count_string", "detections/no_legal_basis.yaml", "count: 2", "count: two", 19, "'count' must be"),
    ("example_geoip_list", "detections/no_legal_basis.yaml", "geoip: {47.92.1.10: CN}", "geoip: [47.92.1.10]", 20, "'geoip' must be a mapping"),
    ("example_geoip_value_mapping", "detections/no_legal_basis.yaml", "geoip: {47.92.1.10: CN}", "geoip: {47.92.1.10: {c: CN}}", 20, "must map to a country"),
    ("example_not_mapping", "detections/no_legal_basis.yaml", "  - name: order export to China with no basis\n", "  - 7\n  - name: x\n", 17, "an example needs"),
    # disclosures and endpoints
    ("disclosures_platform_mapping", "config/disclosures.yaml", "aliexpress:\n", "aliexpress: {a: 1}\nx:\n", 4, "expected a list, got a mapping"),
    ("disclosures_items_int", "config/disclosures.yaml", "    items: [user.contact, user.name]\n    purpose: order", "    items: 7\n    purpose: order", 7, "'items' must be a list"),
    ("disclosures_recipient_list", "config/disclosures.yaml", "recipient: Alibaba (China) Co., Ltd.", "recipient: [a]", 6, "'recipient' must be text"),
    ("disclosures_entry_list", "config/disclosures.yaml", "  - country: CN\n    recipient: Alibaba (China)", "  - [CN]\n  - country: CN\n    recipient: Alibaba (China)", 5, "needs 'country'"),
    ("disclosures_country_mapping", "config/disclosures.yaml", "  - country: CN\n    recipient: Alibaba (China)", "  - country: {CN: 1}\n    recipient: Alibaba (China)", 5, "ISO 3166-1"),
    ("endpoints_entry_list", "config/endpoints.yaml", "- host: oss-cn-hangzhou.aliyuncs.com\n  country: CN\n", "- [oss-cn-hangzhou.aliyuncs.com, CN]\n", 4, "must be a mapping"),
    ("endpoints_host_mapping", "config/endpoints.yaml", "- host: oss-cn-hangzhou.aliyuncs.com\n", "- host: {a: 1}\n", 4, "must be a non-empty string"),
]
# fmt: on


@pytest.mark.parametrize(
    ("file", "old", "new", "line", "words"),
    [pytest.param(f, o, n, ln, w, id=i) for i, f, o, n, ln, w in EDIT_CASES],
)
def test_malformed_config_is_a_config_error(
    tmp_path: Path, file: str, old: str, new: str, line: int, words: str
) -> None:
    rules = copy_pack(tmp_path)
    edit(rules / file, old, new)
    if line == 0:  # where the edited text starts
        line = (RULES / file).read_text().split(old)[0].count("\n") + 1
    assert_error_at(errors_of(rules), rules / file, line, words)


# (case, file of the pack, its whole new content, line of the error, words of the message)
# fmt: off
FILE_CASES: list[tuple[str, str, str, int, str]] = [
    ("pack_is_list", "pack.yaml", "- version: 1\n", 1, "pack.yaml must be a mapping"),
    ("pack_is_empty", "pack.yaml", "", 1, "pack.yaml must be a mapping"),
    ("rule_file_of_scalars", "detections/x.yaml", "# rules\n- just a string\n", 2, "a rule must be a mapping"),
    ("rule_file_empty", "detections/x.yaml", "", 1, "a rule must be a mapping"),
    ("disclosures_is_list", "config/disclosures.yaml", "- country: CN\n", 1, "must be a mapping"),
    ("endpoints_is_mapping", "config/endpoints.yaml", "host: a.example\ncountry: CN\n", 1, "must be a list"),
]
# fmt: on


@pytest.mark.parametrize(
    ("file", "content", "line", "words"),
    [pytest.param(f, c, ln, w, id=i) for i, f, c, ln, w in FILE_CASES],
)
def test_config_file_of_the_wrong_shape_is_a_config_error(
    tmp_path: Path, file: str, content: str, line: int, words: str
) -> None:
    rules = copy_pack(tmp_path)
    (rules / file).write_text(content)
    assert_error_at(errors_of(rules), rules / file, line, words)


def _named_chain(template: str, count: int) -> str:
    """Named conditions c1..c{count}, each using c{i-1} as `template` says."""
    lines = ["  c0: {field: platform, eq: x}"]
    lines += [f"  c{i}: " + template.format(prev=f"c{i - 1}") for i in range(1, count + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("template", "words"),
    [
        pytest.param("{{not: {{condition: {prev}}}}}", "deeper than", id="chain_of_400_nots"),
        pytest.param(
            "{{all: [{{condition: {prev}}}, {{condition: {prev}}}]}}",
            "grows past",
            id="each_uses_the_previous_twice",
        ),
    ],
)
def test_named_conditions_cannot_expand_without_bound(
    tmp_path: Path, template: str, words: str
) -> None:
    rules = copy_pack(tmp_path)
    pack = rules / "pack.yaml"
    before = pack.read_text().count("\n")
    pack.write_text(pack.read_text() + _named_chain(template, 400 if "not" in template else 40))
    started = time.monotonic()
    errors = errors_of(rules)
    assert time.monotonic() - started < 2.0
    first = next(e for e in errors if words in e.message)
    assert first.location is not None and first.location.file == str(pack)
    assert first.location.line > before


def test_named_condition_reused_deeper_than_compiled(tmp_path: Path) -> None:
    """Compiled at a shallow place first, then inlined 60 times deeper: past Python's 200 parentheses."""
    rules = copy_pack(tmp_path)
    deep = "{field: platform, eq: x}"
    for _ in range(28):
        deep = "{not: " + deep + "}"
    chain = "".join(f"  n{i}: {{not: {{condition: n{i - 1}}}}}\n" for i in range(1, 61))
    (rules / "pack.yaml").write_text((rules / "pack.yaml").read_text() + f"  n0: {deep}\n" + chain)
    errors = errors_of(rules)
    assert any("nests deeper than 100 levels of code" in e.message for e in errors)


def test_pack_whose_conditions_add_up_past_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("monitor.engine.loader.MAX_PACK_CHARS", 1000)
    errors = errors_of(copy_pack(tmp_path))
    assert len(errors) == 1 and "characters of code" in errors[0].message
    assert errors[0].location is not None and errors[0].location.line == 1
