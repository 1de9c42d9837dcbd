"""Every query of the committed dashboards and alerting rules, run by a real Prometheus on the
metrics of a live stack: the embedded Tansu broker, a worker, `xborder simulate` writing to it,
`xborder notify` delivering to `xborder receive`. Grafana itself does not run here; what it
would send Prometheus does, its variables replaced as Grafana replaces them."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from monitor.metrics import LEGAL_BASIS_LABELS, OTHER_PLATFORM
from tests.support.pack import DISCLOSURES
from tests.support.paths import ROOT
from tests.support.prometheus import Prometheus, PromQLError, find_prometheus
from tests.support.promql import (
    LABEL_VALUES,
    Query,
    alert_rules,
    dashboard_files,
    dashboard_queries,
    dashboard_variables,
    substitute,
)
from tests.support.worker_harness import WorkerRun
from xborder_tools.embedded_broker import free_port, log_tail, stop_process

pytestmark = pytest.mark.integration

RATE = 300  # simulated records per second
# Fires on findings, once Prometheus has 5 minutes of history (longer than this
# test): evaluated, not expected to fire. Every other rule is for operations,
# and firing would mean the stack is unwell.
ON_FINDINGS = {"XborderCriticalTransfer"}
DEADLINE_S = 75.0
# A series selector of an alerting rule (metric and matchers).
SELECTOR = re.compile(r"\b(?:xborder_[a-z_]+|up)(?:\{[^}]*\})?(?!\s*\()")


def _jobs() -> set[str]:
    deployed = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    return {job["job_name"] for job in deployed["scrape_configs"]}


class Stack:
    """The processes of the stack, stopped in reverse order of their start."""

    def __init__(self, tmp: Path, exits: ExitStack) -> None:
        self.tmp = tmp
        self.exits = exits
        self.logs: dict[str, Path] = {}

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.tmp / f"{name}.log"
        self.logs[name] = log
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "monitor.cli", *args],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )  # fmt: skip
        self.exits.callback(stop_process, proc, 20.0)
        return proc

    def tails(self) -> str:
        return "\n".join(f"--- {n}:\n{log_tail(p, 15)}" for n, p in self.logs.items())


@pytest.fixture
def live(
    tansu_bootstrap: str, country_db: Path, tmp_path: Path
) -> Iterator[tuple[Prometheus, Stack]]:
    binary = find_prometheus()
    if binary is None:
        pytest.skip("prometheus not installed (apt-get install -y prometheus)")
    assert {"xborder-worker", "xborder-notify"} <= _jobs()
    with ExitStack() as exits:
        stack = Stack(tmp_path, exits)
        worker = WorkerRun(tansu_bootstrap, country_db, tmp_path / "worker")
        worker.create_topics()
        worker.start()
        exits.callback(worker.stop)
        stack.logs["worker"] = worker.log_path
        topics = worker.topics
        env = {**os.environ, "PYTHONPATH": str(ROOT), "KAFKA_BOOTSTRAP_SERVERS": tansu_bootstrap}

        secret = tmp_path / "webhook.secret"
        secret.write_text("whsec_" + base64.b64encode(os.urandom(32)).decode() + "\n")
        receiver_port = free_port()
        stack.spawn(
            "receiver",
            ["receive", "--port", str(receiver_port), "--secret-file", str(secret),
             "--store", str(tmp_path / "received.jsonl")],
            env,
        )  # fmt: skip
        delivery = tmp_path / "delivery.yaml"
        delivery.write_text(
            "receivers:\n  - name: case-officers\n"
            f"    url: http://127.0.0.1:{receiver_port}/alerts\n"
            f"    secret_file: {secret}\n"
            "route: {receiver: case-officers}\n"
        )
        notify_port = free_port()
        stack.spawn(
            "notify",
            ["notify"],
            {
                **env,
                "XBORDER_APP_ID": worker.app_id,
                "XBORDER_PARTITIONS": str(worker.partitions),
                "XBORDER_TOPIC_ALERTS": topics.alerts,
                "XBORDER_TOPIC_UNDELIVERED": f"{worker.app_id}.monitor.undelivered",
                "XBORDER_DELIVERY_CONFIG": str(delivery),
                "XBORDER_DELIVERY_HISTORY": str(tmp_path / "deliveries.sqlite3"),
                "XBORDER_NOTIFY_METRICS_PORT": str(notify_port),
                "XBORDER_SESSION_TIMEOUT": "6",
                "XBORDER_DATA_DIR": str(tmp_path / "notify"),
            },
        )
        # Event time keeps pace with the wall clock (events per second = rate), so
        # records are neither ahead of the clock nor late.
        stack.spawn(
            "simulate",
            ["simulate", "--count", "0", "--rate", str(RATE), "--events-per-second", str(RATE),
             "--violation-rate", "40", "--geoip-country", str(country_db),
             "--bootstrap-servers", tansu_bootstrap, "--topic-egress", topics.egress,
             "--topic-api", topics.api, "--topic-consent", topics.consent, "--batch", "20"],
            env,
        )  # fmt: skip
        prometheus = Prometheus(
            binary,
            tmp_path / "prometheus",
            {
                "xborder-worker": [f"127.0.0.1:{worker.metrics_port}"],
                "xborder-notify": [f"127.0.0.1:{notify_port}"],
            },
            [ROOT / "deploy" / "prometheus" / "alerts.yml"],
        )
        prometheus.start()
        exits.callback(prometheus.stop)
        stack.logs["prometheus"] = prometheus.log_path
        yield prometheus, stack


def _expr(queries: list[Query], title: str) -> str:
    [q] = [q for q in queries if f": {title} (" in q.where]
    return q.expr


def _returns_data(prometheus: Prometheus, q: Query) -> bool:
    return bool(prometheus.query(substitute(q.expr)))


@pytest.mark.timeout(180)
def test_every_dashboard_and_alert_query_returns_data_on_live_metrics(
    live: tuple[Prometheus, Stack],
) -> None:
    prometheus, stack = live
    queries = [q for path in dashboard_files() for q in dashboard_queries(path)]
    variables = {
        f"{path.name}: ${name}": LABEL_VALUES.fullmatch(text)
        for path in dashboard_files()
        for name, text in dashboard_variables(path).items()
    }
    rules = {r["alert"]: r["expr"] for r in alert_rules()}
    assert len(queries) >= 30 and variables and set(rules) >= ON_FINDINGS
    pending = {q.where: q for q in queries}
    # What each rule watches exists on the live stack: no rule stays silent for
    # want of its series.
    for name, expr in rules.items():
        for selector in sorted(set(SELECTOR.findall(expr))):
            pending[f"alerts.yml: {name}: {selector}"] = Query(name, f"count({selector})")
    empty_variables = set(variables)

    started = time.monotonic()
    while (pending or empty_variables) and time.monotonic() - started < DEADLINE_S:
        time.sleep(2)
        for where, q in list(pending.items()):
            if _returns_data(prometheus, q):
                del pending[where]
        for where in list(empty_variables):
            m = variables[where]
            assert m is not None, where
            values = prometheus.api(
                f"/api/v1/label/{m['label']}/values", **{"match[]": m["metric"]}
            )
            if values:
                empty_variables.discard(where)
    waited = time.monotonic() - started
    assert not pending and not empty_variables, (
        f"no data after {waited:.0f}s for:\n"
        + "\n".join(f"  {w}: {substitute(q.expr)}" for w, q in pending.items())
        + "".join(f"\n  variable {w}" for w in empty_variables)
        + f"\n{stack.tails()}"
    )

    # What supervisors read is there, and every label stays within its bounds.
    by_country = prometheus.query(substitute(_expr(queries, "Destinations")))
    assert "CN" in {r["metric"]["dst_country"] for r in by_country}
    platforms = prometheus.api("/api/v1/label/platform/values")
    assert set(platforms) <= {*DISCLOSURES.by_platform, OTHER_PLATFORM}, platforms
    bases = prometheus.api("/api/v1/label/legal_basis/values")
    assert len(bases) > 1 and set(bases) <= LEGAL_BASIS_LABELS, bases
    assert prometheus.query(substitute(_expr(queries, "Top undisclosed destinations")))

    # Each rule evaluates on those series, and the stack is healthy.
    for name, expr in rules.items():
        try:
            result = prometheus.query(expr)
        except PromQLError as e:
            pytest.fail(f"alerts.yml: {name} does not evaluate: {e}")
        if name not in ON_FINDINGS:
            assert result == [], f"alerts.yml: {name} fires on a healthy stack: {result}"
    # And Prometheus' own rule evaluation, every second since it started, found no error.
    groups = prometheus.api("/api/v1/rules")["groups"]
    evaluated = {r["name"]: r for g in groups for r in g["rules"]}
    alerting = {name for name, r in evaluated.items() if r["type"] == "alerting"}
    assert alerting == set(rules)
    # Recording rules (the version counts the alerts read) are healthy too.
    assert all(r["health"] == "ok" for r in evaluated.values()), evaluated
