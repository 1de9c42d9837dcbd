"""The Grafana dashboards: the committed JSON is what the code generates, and every query names
metrics and labels the monitor exports. Their queries run against a live Prometheus in
tests/integration/test_dashboards_live.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor.delivery.metrics import DeliveryMetrics
from monitor.metrics import Metrics
from tests.support.paths import ROOT
from tests.support.promql import (
    DASHBOARDS,
    GRAFANA_VARIABLES,
    LABEL_VALUES,
    dashboard_files,
    dashboard_queries,
    dashboard_variables,
    substitute,
)
from xborder_tools.dashboards import DASHBOARDS as GENERATED
from xborder_tools.dashboards import rendered

# Labels Prometheus adds (target and histogram bucket) to what the monitor exports.
PROMETHEUS_LABELS = {"job", "instance", "le"}
METRIC_NAME = re.compile(r"\b(xborder_[a-z_]+)\b")
SELECTOR = re.compile(r"\b(xborder_[a-z_]+|up)\{([^}]*)\}")
MATCHER = re.compile(r"([a-z_]+)\s*(?:=~|!~|!=|=)\s*\"")
GROUPING = re.compile(r"\b(?:by|on)\s*\(([^)]*)\)")


@cache
def exported() -> dict[str, frozenset[str]]:
    """Sample name -> its label names, for the worker's and the notifier's metrics."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    DeliveryMetrics(registry)
    # Info metrics take their label names from the value the worker sets.
    metrics.rules_info.info({"version": "1"})
    metrics.geoip_build.info({"build_date": "2026-06-17"})
    out: dict[str, frozenset[str]] = {}
    # A labelled metric exports no sample before its first use: its label names
    # are on the metric object.
    for collector, names in registry._collector_to_names.items():
        for name in names:
            out[name] = frozenset(getattr(collector, "_labelnames", ()))
    # Custom collectors (bounds) name theirs in their samples.
    for family in registry.collect():
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, frozenset()) | (set(sample.labels) - {"le"})
    return out


def test_committed_dashboards_are_what_the_code_generates() -> None:
    committed = {p.name: p.read_text(encoding="utf-8") for p in dashboard_files()}
    assert committed == rendered(), (
        "deploy/grafana/dashboards differs from xborder_tools/dashboards: "
        "run `make dashboards` and commit the result"
    )


def test_generate_check_says_whether_the_files_are_up_to_date(tmp_path: Path) -> None:
    def generate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor.cli", "dashboards", "generate", *args],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    assert generate("--check").returncode == 0
    assert generate("--check", "--out", str(tmp_path)).returncode == 1
    written = generate("--out", str(tmp_path))
    assert written.returncode == 0, written.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(GENERATED)
    # Grafana reads them through a bind mount as its own user.
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in tmp_path.iterdir())
    assert generate("--check", "--out", str(tmp_path)).returncode == 0
    missing = generate("--out", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "not a folder" in missing.stderr


def test_dashboards_are_provisioned_with_the_data_source_they_name() -> None:
    prov = ROOT / "deploy" / "grafana" / "provisioning"
    [source] = yaml.safe_load((prov / "datasources" / "prometheus.yml").read_text())["datasources"]
    uids = set()
    for path in dashboard_files():
        board = json.loads(path.read_text(encoding="utf-8"))
        uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), path.name
        assert board["editable"] is False, f"{path.name}: provisioned, not editable"
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": source["type"], "uid": source["uid"]}
            assert panel.get("description"), f"{path.name}: {panel['title']} says nothing"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == source["uid"]
    assert len(uids) == len(dashboard_files())


def test_every_query_names_exported_metrics_and_their_labels() -> None:
    metrics = exported()
    all_labels = frozenset().union(*metrics.values()) | PROMETHEUS_LABELS
    queries = [q for path in dashboard_files() for q in dashboard_queries(path)]
    assert len(queries) >= 30
    for q in queries:
        expr = substitute(q.expr)
        names = set(METRIC_NAME.findall(expr))
        assert names or SELECTOR.search(expr), f"{q.where}: no metric of the monitor"
        assert names <= set(metrics), f"{q.where}: not exported: {sorted(names - set(metrics))}"
        for name, body in SELECTOR.findall(expr):
            known = PROMETHEUS_LABELS | (metrics[name] if name != "up" else frozenset())
            used = set(MATCHER.findall(body))
            assert used <= known, f"{q.where}: {name} has no label {sorted(used - known)}"
        for group in GROUPING.findall(expr):
            used = {label.strip() for label in group.split(",") if label.strip()}
            assert used <= all_labels, f"{q.where}: no metric has {sorted(used - all_labels)}"


def test_variables_are_the_ones_queries_use() -> None:
    for path in dashboard_files():
        variables = dashboard_variables(path)
        text = path.read_text(encoding="utf-8")
        used = set(re.findall(r"\$([a-z]\w*)", text))
        assert used <= set(variables), f"{path.name}: undefined {sorted(used - set(variables))}"
        for query in variables.values():
            m = LABEL_VALUES.fullmatch(query)
            assert m, query
            assert m["label"] in exported()[m["metric"]]
    assert set(GRAFANA_VARIABLES) >= {"$platform"}


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_a_dashboard_is_written_for_each_builder(name: str) -> None:
    assert (DASHBOARDS / name).is_file()
