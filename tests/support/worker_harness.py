"""Run `xborder worker` as a real process against a real broker, and read what it produced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from monitor.config.settings import Topics
from monitor.kafka_admin import create_topics
from xborder_tools.embedded_broker import free_port, log_tail


@dataclass
class WorkerRun:
    """One worker process with its own topics, consumer group and metrics port."""

    bootstrap: str
    geoip: Path
    workdir: Path
    app_id: str = field(default_factory=lambda: f"xb-{uuid.uuid4().hex[:8]}")
    partitions: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0

    @property
    def topics(self) -> Topics:
        p = self.app_id
        return Topics(
            egress=f"{p}.telemetry.egress",
            api=f"{p}.telemetry.api",
            consent=f"{p}.telemetry.consent",
            alerts=f"{p}.monitor.alerts",
            dead_letters=f"{p}.monitor.dead-letters",
        )

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.app_id}.log"

    def create_topics(self, configs: dict[str, str] | None = None) -> None:
        t = self.topics
        create_topics(
            self.bootstrap, [*t.inputs, t.alerts, t.dead_letters], self.partitions, configs
        )

    def start(self) -> None:
        self.metrics_port = free_port()
        t = self.topics
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "XBORDER_GEOIP_COUNTRY": str(self.geoip),
            "XBORDER_APP_ID": self.app_id,
            "XBORDER_SUBJECT_KEY": "test-secret-of-the-worker-harness",
            "XBORDER_PARTITIONS": str(self.partitions),
            "XBORDER_METRICS_HOST": "127.0.0.1",
            "XBORDER_METRICS_PORT": str(self.metrics_port),
            "XBORDER_SESSION_TIMEOUT": "6",
            # Updates held back by the rate limit go out within a second or two.
            "XBORDER_ALERT_UPDATE_INTERVAL": "1",
            "XBORDER_SWEEP_INTERVAL": "5",
            # Kafka keeps no order across partitions: the scenario's record 30 h
            # ahead may be processed before records 27 h older, which a 24 h
            # grace would then treat as late, depending on interleaving. A week
            # keeps every test input inside the grace, as replay's file order is.
            "XBORDER_STATE_GRACE": str(7 * 86400),
            "XBORDER_DATA_DIR": str(self.workdir / "data"),
            "XBORDER_STATE_DIR": str(self.workdir / f"state-{self.app_id}"),
            "XBORDER_TOPIC_EGRESS": t.egress,
            "XBORDER_TOPIC_API": t.api,
            "XBORDER_TOPIC_CONSENT": t.consent,
            "XBORDER_TOPIC_ALERTS": t.alerts,
            "XBORDER_TOPIC_DEAD_LETTERS": t.dead_letters,
            **self.extra_env,
        }
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "monitor.cli", "worker"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text: str = response.read().decode()
        return text

    def failure(self, what: str) -> str:
        return f"{what}\n--- worker log ({self.log_path}):\n{log_tail(self.log_path, 60)}"


def producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=4 << 20
    )


def topic_for(raw: bytes, topics: Topics) -> str:
    """The topic a platform would publish this line on (by kind; anything else on egress)."""
    try:
        kind = orjson.loads(raw).get("kind")
    except (orjson.JSONDecodeError, AttributeError):
        kind = None
    return {"api_call": topics.api, "consent": topics.consent}.get(str(kind), topics.egress)


def produce_lines(
    bootstrap: str, topics: Topics, lines: Iterable[bytes], partition: int | None = None
) -> None:
    """Each line to its kind's topic; keyless, or all to one `partition` when given."""
    p = producer(bootstrap)
    for raw in lines:
        p.send(topic_for(raw, topics), raw, partition=partition)
    p.flush()
    p.close()


def read_topic(
    bootstrap: str,
    topic: str,
    until: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 90.0,
    isolation_level: str = "read_uncommitted",
) -> list[dict[str, Any]]:
    """Every JSON message of a topic, read until `until(messages)` holds or the timeout passes."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=500,
        isolation_level=isolation_level,
    )
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for message in consumer:
                out.append(orjson.loads(message.value))
            if until(out):
                break
    finally:
        consumer.close()
    return out


def latest(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id: dict[str, dict[str, Any]] = {}
    for a in alerts:
        if a["alert_id"] not in by_id or a["revision"] >= by_id[a["alert_id"]]["revision"]:
            by_id[a["alert_id"]] = a
    return list(by_id.values())


def metric_value(text: str, name: str, **labels: str) -> float:
    """Summed over the samples named `name` whose labels include `labels`."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )
