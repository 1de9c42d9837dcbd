"""Hostile and malformed configuration: every case is a ConfigError naming file and line.

Each case copies the bundled pack into tmp_path, changes one file and loads the
whole configuration (rules, disclosures, endpoints) as `xborder rules check`
does. A representative subset runs the real command line.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import maxminddb
import pytest

from monitor.config.runtime import load_config
from monitor.config.settings import Settings, default_rules_dir
from monitor.config.yamlfile import MAX_FILE_BYTES, MAX_NODES
from monitor.errors import ConfigError, ConfigErrors, GeoIPDatabaseError
from monitor.geo.geoip import GeoIP
from tests.geoip_build import (
    TEST_NETWORKS,
    build_asn_db,
    build_country_db,
    build_flat_country_db,
)

RULES = default_rules_dir()


def copy_pack(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    return target


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


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {path}"
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize("name", ["aaa.yaml", "zzz.yaml"])
def test_yaml_error_in_first_or_later_rule_file(tmp_path: Path, name: str) -> None:
    """The first file used to end in UnboundLocalError, a later one in a false duplicate id."""
    rules = copy_pack(tmp_path)
    bad = rules / "detections" / name
    bad.write_text("id: [\n")
    errors = errors_of(rules)
    assert_error_at(errors, bad, 2)
    assert len(errors) == 1


def _billion_laughs() -> str:
    """A flow list of nine levels of nine aliases: 9**9 (387 million) strings once expanded."""
    levels = ["&a [" + ", ".join(['"lol"'] * 9) + "]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"&{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "[" + ", ".join(levels) + "]"


def _alias_tower() -> str:
    """Each anchor nests the previous one 30 levels deeper: depth grows through aliases."""
    lines = ["a0: &a0 " + "[" * 30 + "1" + "]" * 30]
    lines += [f"a{i}: &a{i} " + "[" * 30 + f"*a{i - 1}" + "]" * 30 for i in range(1, 5)]
    return "\n".join(lines) + "\n"


# (case, content of a new rule file, line of the error, words of the message)
YAML_CASES: list[tuple[str, bytes, int, str]] = [
    ("billion_laughs", f"x: {_billion_laughs()}\n".encode(), 1, "aliases expand to more than"),
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


def _secret(tmp_path: Path) -> Path:
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$SECRET-HASH:19000:0:99999:7:::\nSECRET-LINE: 2\n")
    return secret


@pytest.mark.parametrize("target", ["detections/x.yaml", "pack.yaml", "config/endpoints.yaml"])
def test_link_to_a_file_outside_the_folder_is_refused(tmp_path: Path, target: str) -> None:
    rules = copy_pack(tmp_path)
    link = rules / target
    link.unlink(missing_ok=True)
    link.symlink_to(_secret(tmp_path))
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
    ("pack_lists_list", "pack.yaml", "  watch_countries: [CN]", "  - CN", 9, "'lists' must be"),
    ("pack_conditions_list", "pack.yaml", "conditions:\n", "conditions: [a]\nx:\n", 12, "'conditions' must"),
    ("pack_version_mapping", "pack.yaml", 'version: "1.0.0"', "version: {a: 1}", 4, "'version' must"),
    ("pack_list_not_list", "pack.yaml", "watch_countries: [CN]", "watch_countries: CN", 10, "must be a list"),
    ("pack_list_holds_mapping", "pack.yaml", "watch_countries: [CN]", "watch_countries: [{a: 1}]", 10, "holds a mapping"),
    ("pack_home_region_mapping", "pack.yaml", "home_region: KR", "home_region: {a: 1}", 7, "home_region"),
    ("pack_duration_param", "pack.yaml", "home_region: KR", "home_region: KR\n  window: [1h]", 8, "not a duration"),
    ("pack_condition_scalar", "pack.yaml", "  abroad:\n    all:", "  abroad: 7\n  x_abroad:\n    all:", 19, "got a number"),
    ("pack_field_list", "pack.yaml", "{field: dst_country, exists: true}", "{field: [dst_country], exists: true}", 21, "unknown field"),
    ("pack_eq_list", "pack.yaml", "{field: subject_region, eq: $home_region}", "{field: subject_region, eq: [KR]}", 17, "takes one value"),
    ("pack_eq_list_param", "pack.yaml", "{field: subject_region, eq: $home_region}", "{field: subject_region, eq: $watch_countries}", 17, "takes one value"),
    # a rule: a wrong type for each of its keys
    ("rule_id_list", "detections/no_legal_basis.yaml", "id: pipa.xborder.no_legal_basis", "id: [x]", 1, "'id' must be a string"),
    ("rule_tags_mapping", "detections/no_legal_basis.yaml", "tags: [pipa, xborder, maturity.stable]", "tags: {a: 1}", 5, "'tags' must be a list"),
    ("rule_tags_hold_lists", "detections/no_legal_basis.yaml", "tags: [pipa, xborder, maturity.stable]", "tags: [[a]]", 5, "must list strings"),
    ("rule_kinds_int", "detections/no_legal_basis.yaml", "kinds: [api_call]", "kinds: 7", 10, "'kinds' must be a list"),
    ("rule_params_list", "detections/no_legal_basis.yaml", "kinds: [api_call]\n", "kinds: [api_call]\nparams: [a, b]\n", 11, "'params' must be a mapping"),
    ("rule_type_list", "detections/no_legal_basis.yaml", "kinds: [api_call]\n", "kinds: [api_call]\ntype: [threshold]\n", 11, "unknown rule type"),
    ("rule_group_window_list", "detections/no_legal_basis.yaml", "kinds: [api_call]\n", "kinds: [api_call]\ngroup_window: [1h]\n", 11, "not a duration"),
    ("rule_group_by_int", "detections/bulk_volume.yaml", "group_by: [platform, dst_country]", "group_by: 3", 23, "'group_by' must be a list"),
    ("rule_when_list", "detections/unresolved_destination.yaml", "when:\n", "when: [a]\nx:\n", 0, "got a list"),
    ("condition_in_mapping", "detections/no_legal_basis.yaml", "in: [none, null]", "in: {none: 1}", 15, "expected a list, got a mapping"),
    ("condition_in_holds_mapping", "detections/no_legal_basis.yaml", "in: [none, null]", "in: [none, {a: 1}]", 15, "got a mapping in it"),
    ("condition_field_mapping", "detections/no_legal_basis.yaml", "{field: legal_basis,", "{field: {a: 1},", 15, "unknown field"),
    ("condition_scalar_in_all", "detections/no_legal_basis.yaml", "    - {condition: abroad}", "    - abroad", 14, "got a string"),
    ("condition_name_list", "detections/no_legal_basis.yaml", "{condition: abroad}", "{condition: [abroad]}", 14, "unknown condition"),
    ("condition_not_scalar", "detections/no_legal_basis.yaml", "    - {condition: abroad}", "    - {not: 7}", 14, "got a number"),
    ("threshold_at_least_string", "detections/bulk_volume.yaml", "at_least: 100000", "at_least: lots", 16, "at_least"),
    ("threshold_window_huge", "detections/bulk_volume.yaml", "window: 1h", "window: " + "9" * 5000 + "h", 17, "not a duration"),
    ("onward_first_hop_int", "detections/onward_transfer.yaml", "first_hop:\n  all:\n    - {field: src_country, eq: $home_region}\n    - {condition: abroad}\n", "first_hop: 7\n", 16, "got a number"),
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


def _damaged_copies(good: Path, tmp_path: Path) -> dict[str, Path]:
    """Copies of a test database: cut short, or with garbage over its tree or its records.

    The metadata sits at the end of the file (after a marker); garbage before it
    leaves a file that opens, and fails at its first lookup."""
    data = good.read_bytes()
    meta = data.rfind(b"\xab\xcd\xefMaxMind.com")
    noise = random.Random(8).randbytes(meta)
    copies = {
        "truncated": data[: len(data) // 2],
        "garbage": noise + data[meta:],
        "zeroed_tree": bytes(meta // 2) + data[meta // 2 :],
        "garbage_records": data[: meta // 2] + noise[meta // 2 :] + data[meta:],
    }
    out = {}
    for name, content in copies.items():
        out[name] = tmp_path / f"{name}-{good.name}"
        out[name].write_bytes(content)
    return out


@pytest.fixture(scope="module")
def geo_dbs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("geo")
    return {
        "geolite2": build_country_db(d / "country.mmdb", TEST_NETWORKS),
        "flat": build_flat_country_db(d / "flat.mmdb", TEST_NETWORKS),
        "asn": build_asn_db(d / "asn.mmdb", {"8.8.8.0/24": (15169, "Google LLC")}),
    }


@pytest.mark.parametrize("damage", ["truncated", "garbage", "zeroed_tree", "garbage_records"])
@pytest.mark.parametrize("layout", ["geolite2", "flat"])
def test_damaged_country_database_is_refused_at_open(
    tmp_path: Path, geo_dbs: dict[str, Path], layout: str, damage: str
) -> None:
    bad = _damaged_copies(geo_dbs[layout], tmp_path)[damage]
    with pytest.raises(GeoIPDatabaseError) as err:
        GeoIP.open(bad)
    assert str(bad) in str(err.value) and "xborder geoip fetch" in str(err.value)


@pytest.mark.parametrize("damage", ["garbage", "garbage_records"])
def test_damaged_asn_database_is_refused_at_open(
    tmp_path: Path, geo_dbs: dict[str, Path], damage: str
) -> None:
    bad = _damaged_copies(geo_dbs["asn"], tmp_path)[damage]
    with pytest.raises(GeoIPDatabaseError, match="ASN database is corrupt") as err:
        GeoIP.open(geo_dbs["geolite2"], bad)
    assert str(bad) in str(err.value)


def test_lookup_in_a_damaged_part_is_a_miss_not_a_crash(
    geo_dbs: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Damage the start-up probe did not reach: the address is unknown, the error logged once."""
    with GeoIP.open(geo_dbs["geolite2"], geo_dbs["asn"]) as geo:

        def damaged(_addr: object) -> None:
            raise maxminddb.InvalidDatabaseError("The MaxMind DB file's search tree is corrupt")

        geo._country_source.lookup = damaged  # type: ignore[method-assign,assignment]
        geo._asn_source.lookup = damaged  # type: ignore[method-assign,union-attr]
        assert geo.country("47.92.1.1") is None and geo.country("8.219.1.1") is None
        assert geo.asn("8.8.8.8") is None
        assert geo.misses == 2
    damaged_logs = [r for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(damaged_logs) == 1 and str(geo_dbs["geolite2"]) in damaged_logs[0].getMessage()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`xborder ARGS` in a fresh process, as an operator runs it (a hang fails the test)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XBORDER_")}
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
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
            _billion_laughs(),
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
    (rules / "detections" / "x.yaml").symlink_to(_secret(tmp_path))
    result = run_cli("rules", "check", "--rules", str(rules))
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
    bad = _damaged_copies(geo_dbs["geolite2"], tmp_path)["garbage"]
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
