"""The service imports no tooling: every module of monitor/ and agents/, and the command
line with all its commands, loaded in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

from tests.support.paths import ROOT


def test_the_monitor_imports_no_tooling() -> None:
    # Every module of the service, and the command line built with all its commands.
    code = (
        "import pkgutil, sys, importlib, monitor, agents\n"
        "for pkg in (monitor, agents):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        if not m.name.endswith('__main__'):\n"
        "            importlib.import_module(m.name)\n"
        "from monitor.cli.main import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'xborder_tools'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout
