"""Grafana dashboards as code (grafana-foundation-sdk, the build for the deployed Grafana).

`xborder dashboards generate` writes them to deploy/grafana/dashboards, where
Grafana's provisioning loads them; the committed files are what this code
generates (tests/deploy/test_dashboards.py), and every query in them is run
against a live Prometheus (tests/integration/test_dashboards_live.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from xborder_tools.dashboards.pipeline import pipeline_dashboard
from xborder_tools.dashboards.transfers import transfers_dashboard

__all__ = ["DASHBOARDS", "render", "rendered"]

# File name (under deploy/grafana/dashboards) -> the dashboard's builder.
DASHBOARDS: Final[dict[str, Callable[[], Dashboard]]] = {
    "cross-border-transfers.json": transfers_dashboard,
    "pipeline-health.json": pipeline_dashboard,
}


def render(builder: Dashboard) -> str:
    """The dashboard as Grafana's JSON, the same bytes for the same code.

    Panels are numbered in order: Grafana keeps panel state (links, "view
    panel") by id, so ids must not change between generations.
    """
    board = builder.build()
    for number, panel in enumerate(board.panels or [], start=1):
        panel.id_val = number
    text = json.dumps(board, cls=JSONEncoder, sort_keys=True, indent=2, ensure_ascii=False)
    return text + "\n"


def rendered() -> dict[str, str]:
    """Every dashboard, by file name."""
    return {name: render(build()) for name, build in DASHBOARDS.items()}
