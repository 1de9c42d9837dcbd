"""The PromQL of the committed dashboards and alerting rules, as the tests read it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import ROOT

DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"

# What Grafana puts in place of its variables before a query reaches Prometheus:
# every platform selected (the selector's "All" is `.*`), and windows of a size
# a test with a one-second scrape interval has data for.
GRAFANA_VARIABLES = {
    "$platform": ".*",
    "$__rate_interval": "15s",
    "$__interval": "15s",
    "$__range": "10m",
}
LABEL_VALUES = re.compile(r"label_values\((?P<metric>[a-z_:]+),\s*(?P<label>[a-z_]+)\)")


@dataclass(frozen=True)
class Query:
    where: str  # dashboard file and panel title, or rule name
    expr: str


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in board.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))  # a collapsed row holds its panels
    return out


def dashboard_queries(path: Path) -> list[Query]:
    """Every target's expression of every panel."""
    board = json.loads(path.read_text(encoding="utf-8"))
    return [
        Query(f"{path.name}: {panel.get('title')} ({target.get('refId')})", target["expr"])
        for panel in _panels(board)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def dashboard_variables(path: Path) -> dict[str, str]:
    """Query variables by name: their `label_values(...)` queries."""
    board = json.loads(path.read_text(encoding="utf-8"))
    return {
        v["name"]: v["query"]
        for v in board.get("templating", {}).get("list", [])
        if v.get("type") == "query"
    }


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def substitute(expr: str) -> str:
    """The query as Grafana sends it, its variables replaced (longest names first)."""
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    assert "$" not in expr, f"a Grafana variable the tests do not know: {expr}"
    return expr
