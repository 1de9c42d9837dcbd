"""The bundled rule pack and the configuration it reads, loaded once for every test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from monitor.config.disclosures import load_disclosures, load_endpoints
from monitor.config.settings import default_rules_dir
from monitor.engine.loader import load_pack

RULES = default_rules_dir()
DISCLOSURES = load_disclosures(RULES / "config" / "disclosures.yaml")
ENDPOINTS = load_endpoints(RULES / "config" / "endpoints.yaml")
PACK = load_pack(RULES, DISCLOSURES)


def copy_pack(tmp_path: Path) -> Path:
    """A copy of the bundled rules folder under `tmp_path`, to edit."""
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    return target


def replace_file(path: Path, text: str) -> None:
    """Write a file as editors and Kubernetes do: whole, then renamed over the old one."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def edit(path: Path, old: str, new: str) -> None:
    """Replace `old`, which must be there, in a file (with `replace_file`)."""
    text = path.read_text()
    assert old in text, old
    replace_file(path, text.replace(old, new))
