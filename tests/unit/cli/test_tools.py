"""The tooling's commands from the monitor's `xborder`: listed always, and without the
tooling one line saying what to install (loaded only when run: tests/cli/test_tools_cli.py)."""

from __future__ import annotations

import sys

import pytest

from monitor.cli.main import main
from monitor.cli.tools import INSTALL_HINT

COMMANDS = (["demo"], ["simulate", "--count", "3"], ["geoip", "fetch", "--asn"])


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_without_the_tooling_one_line_names_the_extra(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As in the service image: no xborder_tools to import.
    for name in [m for m in sys.modules if m.split(".")[0] == "xborder_tools"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "xborder_tools", None)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert INSTALL_HINT in captured.err and "pip install 'xborder-monitor[demo]'" in captured.err


def test_the_tools_own_their_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", "--help"])
    assert exit_.value.code == 0
    assert "--violation-rate" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", "--no-such-option"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err
    # Other commands still refuse what they do not know.
    with pytest.raises(SystemExit) as exit_:
        main(["rules", "check", "--no-such-option"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_the_top_level_help_lists_the_tooling(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in ("demo", "simulate", "geoip"))
