"""`xborder dashboards generate`: the dashboards' JSON from their code, or a check that the
committed files are what the code generates."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monitor.errors import XborderError
from xborder_tools.dashboards import rendered

__all__ = ["cmd_generate", "register"]

# Relative: `make dashboards` runs from the repository's root.
DEFAULT_DIR = Path("deploy/grafana/dashboards")


def cmd_generate(args: argparse.Namespace) -> int:
    out: Path = args.out
    if not out.is_dir():
        raise XborderError(
            f"{out} is not a folder: run from the repository's root or name one with --out"
        )
    stale = []
    for name, text in rendered().items():
        path = out / name
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(text, encoding="utf-8")
            # `xborder` runs under umask 077 (its files are about people); these are
            # not, and Grafana reads them as another user through a bind mount.
            path.chmod(0o644)
    if args.check:
        for name in stale:
            print(f"{out / name}: differs from what the code generates", file=sys.stderr)
        return 1 if stale else 0
    print(f"{len(stale)} of {len(rendered())} dashboards written to {out}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("dashboards", help="Grafana dashboards").add_subparsers(
        dest="dashboards_command", required=True
    )
    p = group.add_parser(
        "generate",
        help="write the Grafana dashboards (deploy/grafana/dashboards) from their code",
        description="Write each dashboard's JSON from xborder_tools/dashboards; Grafana's "
        "provisioning loads them from that folder.",
        epilog="Exit status: 0 when written (or, with --check, when up to date); 1 when --check "
        "finds a file that differs; 2 when the folder does not exist.",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_DIR, help=f"folder (default: {DEFAULT_DIR})")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file differs")
    p.set_defaults(func=cmd_generate)
