"""Hostile and malformed configuration: every case is a ConfigError naming file and line.

Each case copies the bundled pack into tmp_path, changes one file and loads the
whole configuration (rules, disclosures, endpoints) as `xborder rules check`
does. A representative subset runs the real command line.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from monitor.errors import ConfigError, ConfigErrors
from monitor.runtime import load_config
from monitor.settings import Settings, default_rules_dir

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
