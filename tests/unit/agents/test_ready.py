"""`agents.ready`: `/ready` answers 200 only with partitions assigned and tables recovered."""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from agents.ready import Readiness, serve_metrics


class FakeApp:
    """What `Readiness.update` reads of a Faust app: consumer assignment and table recovery."""

    def __init__(self) -> None:
        self.assigned: set[tuple[str, int]] = set()
        self.started = True
        self.completed = threading.Event()  # Faust's is an asyncio.Event: same is_set()
        self.tables = SimpleNamespace(
            recovery=SimpleNamespace(in_recovery=False, completed=self.completed)
        )
        self.consumer = SimpleNamespace(assignment=self._assignment)

    def _assignment(self) -> set[tuple[str, int]]:
        if not self.started:
            raise RuntimeError("consumer not started")
        return self.assigned


@pytest.fixture
def served() -> Iterator[tuple[Readiness, str]]:
    registry = CollectorRegistry()
    Counter("xborder_probe_total", "a metric to find", registry=registry).inc()
    readiness = Readiness()
    httpd = serve_metrics(0, "127.0.0.1", registry, readiness)
    try:
        yield readiness, f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_ready_follows_assignment_and_recovery(served: tuple[Readiness, str]) -> None:
    readiness, base = served
    assert get(base + "/ready") == (503, "not ready: starting\n")

    app: Any = FakeApp()
    app.started = False
    readiness.update(app)
    assert get(base + "/ready") == (503, "not ready: no partitions assigned\n")

    app.started = True
    app.assigned = {("telemetry.egress", 0)}
    readiness.update(app)  # assigned, first recovery not finished
    assert get(base + "/ready")[0] == 503
    assert "recovering" in get(base + "/ready")[1]

    app.completed.set()
    readiness.update(app)
    assert get(base + "/ready") == (200, "ready\n")

    # A later rebalance: recovering again, then nothing assigned (more
    # replicas than partitions) takes the replica out again.
    app.tables.recovery.in_recovery = True
    readiness.update(app)
    assert get(base + "/ready")[0] == 503
    app.tables.recovery.in_recovery = False
    app.assigned = set()
    readiness.update(app)
    assert get(base + "/ready") == (503, "not ready: no partitions assigned\n")


def test_metrics_are_served_on_every_other_path(served: tuple[Readiness, str]) -> None:
    readiness, base = served
    for path in ("/metrics", "/"):
        status, body = get(base + path)
        assert status == 200  # liveness does not wait for readiness
        assert "xborder_probe_total 1.0" in body
    assert readiness.reason == "starting"


def test_watch_updates_from_a_timer_on_the_event_loop() -> None:
    registered: list[tuple[float, str, Any]] = []

    def timer(interval: float, name: str) -> Any:
        return lambda fn: registered.append((interval, name, fn))

    app: Any = FakeApp()
    app.timer = timer
    readiness = Readiness()
    readiness.watch(app, interval=2.0)
    [(interval, name, check)] = registered
    assert (interval, name) == (2.0, "readiness")
    app.assigned = {("telemetry.api", 1)}
    app.completed.set()
    asyncio.run(check())
    assert readiness.reason is None
