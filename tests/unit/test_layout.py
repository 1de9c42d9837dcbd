"""The tree is what ARCHITECTURE.md says it is, and stays small enough to read."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.paths import ROOT

PACKAGES = ("monitor", "agents", "xborder_tools")
MAX_LINES = 500


def _modules() -> list[Path]:
    return sorted(
        p for pkg in PACKAGES if (ROOT / pkg).is_dir() for p in (ROOT / pkg).rglob("*.py")
    )


def _architecture() -> str:
    return (ROOT / "ARCHITECTURE.md").read_text()


def test_every_path_architecture_names_exists() -> None:
    named = set(
        re.findall(
            r"`((?:monitor|agents|xborder_tools|rules|deploy|tests)/[\w./-]*)`", _architecture()
        )
    )
    assert named, "ARCHITECTURE.md names no paths"
    missing = sorted(p for p in named if not (ROOT / p.rstrip("/")).exists())
    assert not missing, f"ARCHITECTURE.md names paths that do not exist: {missing}"


def test_architecture_names_every_package() -> None:
    text = _architecture()
    packages = sorted(
        f"{init.parent.relative_to(ROOT)}/"
        for pkg in PACKAGES
        if (ROOT / pkg).is_dir()
        for init in (ROOT / pkg).glob("*/__init__.py")
    )
    unnamed = [p for p in packages if f"`{p}" not in text]
    assert not unnamed, f"packages ARCHITECTURE.md does not place: {unnamed}"


def test_no_module_over_500_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def _imported(path: Path, module_level_only: bool = False) -> set[str]:
    """Modules a file imports (anywhere, or at module level only)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _package(path: Path) -> str:
    return path.parts[len(ROOT.parts)]


def test_only_agents_import_faust() -> None:
    """The library runs without the stream processor (replay, rule tests, tooling).

    aiokafka is Faust's Kafka client and the notifier's (`monitor.delivery.notifier`,
    a plain consumer group), and `monitor.kafka_security` opens one connection
    with it to say why a broker refuses the monitor: only those may import it
    outside agents/.
    """
    framework = ("faust", "mode", "aiokafka")
    allowed = {
        "monitor/delivery/notifier.py": {"aiokafka"},
        "monitor/kafka_security.py": {"aiokafka"},
    }
    offenders = sorted(
        str(p.relative_to(ROOT))
        for p in _modules()
        if _package(p) != "agents"
        and any(
            n.split(".")[0] in framework
            and n.split(".")[0] not in allowed.get(str(p.relative_to(ROOT)), ())
            for n in _imported(p)
        )
    )
    assert not offenders, f"Faust imported outside agents/: {offenders}"


def test_the_service_does_not_import_the_tooling() -> None:
    """Simulator, demo, embedded broker: an extra, not part of the service image."""
    offenders = sorted(
        str(p.relative_to(ROOT))
        for p in _modules()
        if _package(p) != "xborder_tools"
        # Module level only: the CLI imports the tooling when a tool is run.
        and any(n.split(".")[0] == "xborder_tools" for n in _imported(p, module_level_only=True))
    )
    assert not offenders, f"tooling imported at module level by: {offenders}"


def _folders(parent: Path) -> set[str]:
    return {p.name for p in parent.iterdir() if (p / "__init__.py").is_file()}


def test_architecture_names_every_test_folder() -> None:
    text = _architecture()
    unnamed = sorted(f"tests/{d}/" for d in _folders(ROOT / "tests") if f"`tests/{d}/`" not in text)
    assert not unnamed, f"test folders ARCHITECTURE.md does not describe: {unnamed}"


def test_unit_tests_mirror_the_packages() -> None:
    """A folder of unit tests for each subpackage of monitor/, for agents/ and for the tooling."""
    expected = _folders(ROOT / "monitor") | {"agents", "tools"}
    assert _folders(ROOT / "tests" / "unit") == expected
