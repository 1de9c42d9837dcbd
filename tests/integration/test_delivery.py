"""`xborder notify` on a real broker delivering to `xborder receive` on loopback.

Both run as the commands a deployment runs (subprocesses). What the issue asks
to see: signed deliveries verified by the receiver; a receiver stopped for
30 s during a stream of alerts, after which every alert has arrived once and
none twice; a refused (4xx) delivery not retried; a dead receiver not
delaying a healthy one, its deliveries on the undelivered topic and sent
again by `xborder deliveries retry`; a restarted notifier sending nothing
twice; the history saying which alert reached which receiver when.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from monitor.delivery.history import SQLiteHistory
from monitor.kafka_admin import create_topics
from tests.support.alert_sample import sample_alert
from tests.support.paths import ROOT

pytestmark = pytest.mark.integration

KEY = bytes(range(64, 96))
SEVERITIES = ("critical", "high", "medium", "low")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


class Receiver:
    """`xborder receive` on a fixed port, stopped and started at will (same store)."""

    def __init__(self, tmp: Path, name: str, port: int, key: bytes = KEY) -> None:
        self.port = port
        self.secret = tmp / f"{name}.secret"
        self.secret.write_text("whsec_" + base64.b64encode(key).decode() + "\n")
        self.store = tmp / f"{name}.jsonl"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "receive", "--port", str(self.port),
             "--secret-file", str(self.secret), "--store", str(self.store)],
            cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        assert "listening on" in line, line

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)

    def stored(self) -> list[str]:
        """webhook-ids stored, in order (the receiver stores each id once)."""
        if not self.store.exists():
            return []
        lines = self.store.read_bytes().splitlines()
        return [orjson.loads(line)["webhook_id"] for line in lines if line.strip()]


def _config(tmp: Path, receivers: list[dict[str, Any]], routes: list[dict[str, Any]]) -> Path:
    doc = {"receivers": receivers, "route": {"receiver": receivers[0]["name"], "routes": routes}}
    path = tmp / "delivery.yaml"
    # JSON is YAML: no writer needed.
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return path


def _receiver_entry(name: str, port: int, secret: Path, **over: Any) -> dict[str, Any]:
    return {
        "name": name,
        "url": f"http://127.0.0.1:{port}/alerts",
        "format": "native",
        "secret_file": str(secret),
        "timeout": "2s",
        "max_attempts": 100,
        "backoff": {"initial": "200ms", "max": "2s"},
        "breaker": {"failures": 3, "reset": "1s"},
        **over,
    }


class Notify:
    """`xborder notify` (or `deliveries retry`) against the broker with a tmp history."""

    def __init__(self, tmp: Path, bootstrap: str, topics: dict[str, str], config: Path) -> None:
        self.history = tmp / "deliveries.sqlite3"
        self.env = _env(
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            XBORDER_APP_ID=topics["alerts"],
            XBORDER_TOPIC_ALERTS=topics["alerts"],
            XBORDER_TOPIC_UNDELIVERED=topics["undelivered"],
            XBORDER_DELIVERY_CONFIG=str(config),
            XBORDER_DELIVERY_HISTORY=str(self.history),
            XBORDER_NOTIFY_METRICS_PORT="0",
            XBORDER_PARTITIONS="2",
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "notify.log"

    def start(self, *args: str) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor.cli", "notify", *args],
                cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor.cli", *command],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def attempts(self) -> list[Any]:
        if not self.history.exists():
            return []
        with closing(SQLiteHistory(self.history, create=False)) as h:
            return h.list(limit=100_000)


def _wait(
    what: str, check: Callable[[], bool], timeout: float, detail: Callable[[], str] = str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail()}")


@pytest.fixture
def topics(kafka_bootstrap: str, topic_factory: Callable[[str], str]) -> dict[str, str]:
    names = {"alerts": topic_factory("alerts"), "undelivered": topic_factory("undelivered")}
    create_topics(kafka_bootstrap, names.values(), 2)
    return names


@pytest.fixture
def producer(kafka_bootstrap: str) -> Iterator[KafkaProducer]:
    p = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    yield p
    p.close()


def _send(producer: KafkaProducer, topic: str, first: int, count: int) -> list[str]:
    """Alerts first..first+count-1 (a revision each of a few alert ids); their keys."""
    keys = []
    for i in range(first, first + count):
        alert = sample_alert(
            alert_id=f"{i // 3:032x}", revision=i % 3 + 1, severity=SEVERITIES[i % 4]
        )
        producer.send(topic, orjson.dumps(alert), key=alert["alert_id"].encode())
        keys.append(f"{alert['alert_id']}.{alert['revision']}")
    producer.flush()
    return keys


def test_a_receiver_down_30s_gets_every_alert_once_and_a_restart_sends_nothing_again(
    tmp_path: Path, kafka_bootstrap: str, topics: dict[str, str], producer: KafkaProducer
) -> None:
    receiver = Receiver(tmp_path, "case", _free_port())
    config = _config(tmp_path, [_receiver_entry("case", receiver.port, receiver.secret)], [])
    notify = Notify(tmp_path, kafka_bootstrap, topics, config)
    receiver.start()
    notify.start()
    try:
        sent = _send(producer, topics["alerts"], 0, 15)
        _wait("the first alerts", lambda: len(receiver.stored()) == 15, 60, notify.log_tail)
        receiver.stop()
        down = time.monotonic()
        for first in (15, 30):  # a stream of alerts while it is down
            sent += _send(producer, topics["alerts"], first, 15)
            time.sleep(5)
        time.sleep(max(0.0, 30 - (time.monotonic() - down)))
        receiver.start()
        _wait("every alert", lambda: len(receiver.stored()) == len(sent), 60)

        # Once each, in a stream where every key is new: none twice, none lost.
        assert sorted(receiver.stored()) == sorted(sent)
        attempts = notify.attempts()
        delivered = [f"{a.alert_id}.{a.revision}" for a in attempts if a.outcome == "delivered"]
        assert sorted(delivered) == sorted(sent)
        assert any(a.outcome == "retrying" and a.status is None for a in attempts)

        # kill -9 and start again: offsets read again, the history says delivered.
        notify.kill()
        notify.start("--idle-exit", "5")
        assert notify.proc is not None and notify.proc.wait(timeout=120) == 0
        assert sorted(receiver.stored()) == sorted(sent)
        again = [a for a in notify.attempts() if a.outcome == "delivered"]
        assert len(again) == len(sent)

        # Which alert reached which receiver when.
        alert_id = sent[0].split(".")[0]
        listed = notify.run("deliveries", "list", "--alert", alert_id, "--json",
                            "--delivery-history", str(notify.history))  # fmt: skip
        rows = [orjson.loads(line) for line in listed.stdout.splitlines()]
        assert {(r["receiver"], r["revision"], r["outcome"]) for r in rows} >= {
            ("case", 1, "delivered")
        }
        assert all(r["at_ms"] > 0 for r in rows)
    finally:
        notify.kill()
        receiver.stop()


def test_a_dead_receiver_delays_no_other_and_refusals_are_not_retried(
    tmp_path: Path, kafka_bootstrap: str, topics: dict[str, str], producer: KafkaProducer
) -> None:
    healthy = Receiver(tmp_path, "healthy", _free_port())
    late = Receiver(tmp_path, "late", _free_port())  # dead until `deliveries retry`
    refusing = Receiver(tmp_path, "refusing", _free_port(), key=bytes(32))  # another key: 401
    entries = [
        _receiver_entry("healthy", healthy.port, healthy.secret),
        _receiver_entry(
            "late", late.port, late.secret, max_attempts=3, backoff={"initial": "1s", "max": "1s"}
        ),
        _receiver_entry("refusing", refusing.port, healthy.secret),
    ]
    routes: list[dict[str, Any]] = [
        {"receiver": "late", "continue": True},
        {"receiver": "refusing", "continue": True},
        {"receiver": "healthy"},
    ]
    notify = Notify(tmp_path, kafka_bootstrap, topics, _config(tmp_path, entries, routes))
    healthy.start()
    refusing.start()
    notify.start()
    try:
        sent = _send(producer, topics["alerts"], 0, 12)
        started = time.monotonic()
        _wait("the healthy receiver's alerts", lambda: len(healthy.stored()) == 12, 60)
        took = time.monotonic() - started
        attempts = notify.attempts()
        late_attempts = [a for a in attempts if a.receiver == "late"]
        # Twelve deliveries of three attempts a second apart each: the dead
        # receiver has more than half a minute of work left.
        assert not any(a.outcome == "delivered" for a in late_attempts)
        assert len([a for a in late_attempts if a.outcome == "exhausted"]) < 12, took
        assert sorted(healthy.stored()) == sorted(sent)

        _wait(
            "the refusals",
            lambda: len([a for a in notify.attempts() if a.receiver == "refusing"]) == 12,
            60,
        )
        refused = [a for a in notify.attempts() if a.receiver == "refusing"]
        assert {(a.outcome, a.status, a.attempt) for a in refused} == {("rejected", 401, 1)}
        assert refusing.stored() == []

        _wait(
            "the dead receiver's deliveries to run out",
            lambda: len([a for a in notify.attempts() if a.outcome == "exhausted"]) == 12,
            120,
        )
        notify.kill()
        late.start()
        retried = notify.run("deliveries", "retry", "--idle-exit", "5")
        assert retried.returncode == 0, retried.stderr[-2000:]
        assert sorted(late.stored()) == sorted(sent)
        delivered = {
            f"{a.alert_id}.{a.revision}"
            for a in notify.attempts()
            if a.receiver == "late" and a.outcome == "delivered"
        }
        assert delivered == set(sent)
    finally:
        notify.kill()
        for r in (healthy, late, refusing):
            r.stop()
