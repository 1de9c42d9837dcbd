"""Hostile and malformed configuration: every case is a ConfigError naming file and line.

Each case copies the bundled pack into tmp_path, changes one file and loads the
whole configuration (rules, disclosures, endpoints) as `xborder rules check`
does. A representative subset runs the real command line.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from monitor.errors import ConfigError, ConfigErrors
from monitor.runtime import load_config
from monitor.settings import Settings, default_rules_dir
from monitor.yamlfile import MAX_FILE_BYTES, MAX_NODES

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


def assert_error_at(errors: list[ConfigError], file: Path, line: int) -> ConfigError:
    """The error reported at file:line (there must be one)."""
    for err in errors:
        if err.location is not None and (err.location.file, err.location.line) == (str(file), line):
            return err
    raise AssertionError(f"no error at {file}:{line}; got {[str(e) for e in errors]}")


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
    """Nine levels of nine aliases: 9**9 (387 million) strings once expanded."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _alias_tower() -> str:
    """Each anchor nests the previous one 30 levels deeper: depth grows through aliases."""
    lines = ["a0: &a0 " + "[" * 30 + "1" + "]" * 30]
    lines += [f"a{i}: &a{i} " + "[" * 30 + f"*a{i - 1}" + "]" * 30 for i in range(1, 5)]
    return "\n".join(lines) + "\n"


# (case, content of a new rule file, line of the error, words of the message)
YAML_CASES: list[tuple[str, bytes, int, str]] = [
    ("billion_laughs", _billion_laughs().encode(), 5, "aliases expand to more than"),
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
