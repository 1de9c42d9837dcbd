"""Every Kafka client of the monitor on a broker that requires TLS and SASL.

One Apache Kafka with a SASL_SSL listener (PLAIN and SCRAM users) and an SSL
listener requiring client certificates, its certificates made for the run
(`secure_kafka`). Shown: topic creation, the simulator, the worker and
`xborder alerts` and `xborder notify` over SASL_SSL with PLAIN, SCRAM-SHA-256
and SCRAM-SHA-512, mutual TLS, and wrong credentials, a wrong mechanism and
an untrusted certificate each stopping a command at once with one line
saying so, never the password.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer

from monitor.config.settings import Settings
from monitor.delivery.history import SQLiteHistory
from monitor.delivery.notifier import Notifier
from monitor.delivery.routing import DeliveryConfig
from monitor.errors import KafkaAccessDenied
from monitor.kafka_admin import create_topics
from monitor.kafka_security import kafka_python_config
from tests.support.broker_fixtures import SecureKafka, unique_topic
from tests.support.paths import ROOT
from tests.support.records import T0, api
from tests.support.worker_harness import WorkerRun

pytestmark = pytest.mark.integration

# A call abroad with no legal basis, to a country the platform never disclosed.
RECORD = api("secure-1", T0, platform="securemart", dst_ip="47.92.7.7")


def sasl_env(
    kafka: SecureKafka, user: tuple[str, str], mechanism: str, password: str | None = None
) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.sasl_ssl,
        "XBORDER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "XBORDER_KAFKA_SASL_MECHANISM": mechanism,
        "XBORDER_KAFKA_SASL_USERNAME": user[0],
        "XBORDER_KAFKA_SASL_PASSWORD": user[1] if password is None else password,
        "XBORDER_KAFKA_SSL_CAFILE": str(kafka.certificates.ca),
    }


def xborder(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def topics_on(bootstrap: str) -> set[str]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        return set(consumer.topics())
    finally:
        consumer.close()


def messages(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list[bytes]:
    """The topic's values, read on the PLAINTEXT listener until `expected` came."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=500,
    )
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            out.extend(m.value for m in consumer)
    finally:
        consumer.close()
    return out


class Hook(http.server.ThreadingHTTPServer):
    """A receiver of webhooks on loopback that keeps what it was sent."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hook.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_worker_alerts_and_notify_over_sasl_ssl(
    secure_kafka: SecureKafka, country_db: Path, tmp_path: Path, hook: Hook
) -> None:
    kafka = secure_kafka
    password_file = tmp_path / "kafka.password"
    password_file.write_text(kafka.scram_user[1] + "\n")
    worker_env = {
        **sasl_env(kafka, kafka.scram_user, "SCRAM-SHA-512"),
        "XBORDER_KAFKA_SASL_PASSWORD": "",
        "XBORDER_KAFKA_SASL_PASSWORD_FILE": str(password_file),
        # kafka-python logs its configuration at debug level, the password within.
        "XBORDER_LOG_LEVEL": "debug",
    }
    run = WorkerRun(kafka.sasl_ssl, country_db, tmp_path / "worker", extra_env=worker_env)
    settings = Settings.from_env(worker_env)
    t = run.topics
    # Topic creation on its own first, so the record's topic exists with the
    # worker's partitions before anything is produced.
    create_topics(kafka.sasl_ssl, [*t.inputs, t.alerts, t.dead_letters], 4, settings=settings)
    assert topics_on(kafka.plaintext) >= {*t.inputs, t.alerts, t.dead_letters}
    run.start()
    try:
        producer = KafkaProducer(bootstrap_servers=kafka.sasl_ssl, **kafka_python_config(settings))
        producer.send(t.api, orjson.dumps(RECORD))
        producer.flush()
        producer.close()

        plain = sasl_env(kafka, kafka.plain_user, "PLAIN")
        exported = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            exported = xborder(plain, "alerts", "export", "--out", "-", "--topic", t.alerts,
                               "--idle", "2")  # fmt: skip
            assert exported.returncode == 0, exported.stderr
            if len(exported.stdout.splitlines()) >= 2:
                break
        assert exported is not None and exported.stdout, run.failure("no alert exported")
        alerts = [orjson.loads(line) for line in exported.stdout.splitlines()]
        assert {(a["rule_id"], a["platform"], a["dst_country"]) for a in alerts} == {
            ("pipa.xborder.no_legal_basis", "securemart", "CN"),
            ("pipa.xborder.undisclosed_destination", "securemart", "CN"),
        }
        assert run.process is not None and run.process.poll() is None, run.failure("exited")
    finally:
        run.stop()
    log = run.log_path.read_text(errors="replace")
    assert "Authenticated as bob via SASL / SCRAM-SHA-512" in log
    assert kafka.scram_user[1] not in log and kafka.plain_user[1] not in log

    # The notifier (aiokafka) reads them back and delivers them: SCRAM-SHA-256.
    secret = tmp_path / "hook.secret"
    secret.write_text("a-webhook-signing-secret\n")
    config = tmp_path / "delivery.yaml"
    receiver = {"name": "hook", "url": f"http://127.0.0.1:{hook.server_port}/alerts",
                "format": "native", "secret_file": str(secret)}  # fmt: skip
    config.write_bytes(orjson.dumps({"receivers": [receiver], "route": {"receiver": "hook"}}))
    notify = xborder(
        {
            **sasl_env(kafka, kafka.scram_user, "SCRAM-SHA-256"),
            "XBORDER_APP_ID": run.app_id,
            "XBORDER_TOPIC_ALERTS": t.alerts,
            "XBORDER_TOPIC_UNDELIVERED": unique_topic("undelivered"),
            "XBORDER_DELIVERY_CONFIG": str(config),
            "XBORDER_DELIVERY_HISTORY": str(tmp_path / "deliveries.sqlite3"),
            "XBORDER_NOTIFY_METRICS_PORT": "0",
        },
        "notify", "--idle-exit", "3",
    )  # fmt: skip
    assert notify.returncode == 0, notify.stderr[-3000:]
    delivered = {orjson.loads(body)["alert_id"] for body in hook.bodies}
    assert delivered == {a["alert_id"] for a in alerts}
    history = SQLiteHistory(tmp_path / "deliveries.sqlite3", create=False)
    assert {a.outcome for a in history.list(limit=100)} == {"delivered"}
    history.close()
    assert kafka.scram_user[1] not in notify.stderr


def test_the_simulator_produces_over_sasl_ssl(secure_kafka: SecureKafka, country_db: Path) -> None:
    topic = unique_topic("simulated")
    result = xborder(
        sasl_env(secure_kafka, secure_kafka.plain_user, "PLAIN"),
        "simulate", "--count", "25", "--geoip-country", str(country_db),
        "--topic-egress", topic, "--topic-api", topic, "--topic-consent", topic,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(messages(secure_kafka.plaintext, topic, 25)) == 25


@pytest.mark.parametrize(
    ("command", "user", "mechanism"),
    [
        (("alerts", "export", "--out", "-", "--idle", "2"), "plain", "PLAIN"),
        (("worker",), "scram", "SCRAM-SHA-256"),
        (("notify",), "scram", "SCRAM-SHA-512"),
    ],
    ids=["alerts-export", "worker", "notify"],
)
def test_wrong_credentials_stop_a_command_with_one_line(
    secure_kafka: SecureKafka,
    country_db: Path,
    tmp_path: Path,
    command: tuple[str, ...],
    user: str,
    mechanism: str,
) -> None:
    name, password = secure_kafka.plain_user if user == "plain" else secure_kafka.scram_user
    wrong = password[::-1] + "x"
    env = {
        **sasl_env(secure_kafka, (name, password), mechanism, password=wrong),
        "XBORDER_GEOIP_COUNTRY": str(country_db),
        "XBORDER_SUBJECT_KEY": "a-subject-key-of-sixteen-bytes-or-more",
        "XBORDER_DATA_DIR": str(tmp_path),
        "XBORDER_METRICS_PORT": "0",
        "XBORDER_NOTIFY_METRICS_PORT": "0",
        # The bundled delivery file's receiver takes its secret from here.
        "XBORDER_WEBHOOK_SECRET": "a-webhook-signing-secret",
    }
    started = time.monotonic()
    result = xborder(env, *command, timeout=60)
    took = time.monotonic() - started
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"xborder: authentication failed for user '{name}' (SASL {mechanism}) "
        f"at {secure_kafka.sasl_ssl}"
    ), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert wrong not in result.stderr + result.stdout and password not in result.stderr
    assert took < 30, f"took {took:.1f} s: a client's retries, not the check"


def test_a_mechanism_the_user_has_no_credentials_for_is_refused(
    secure_kafka: SecureKafka,
) -> None:
    # The PLAIN user has no SCRAM credentials: to the broker, a wrong password.
    settings = Settings.from_env(sasl_env(secure_kafka, secure_kafka.plain_user, "SCRAM-SHA-256"))
    with pytest.raises(KafkaAccessDenied, match=r"for user 'alice' \(SASL SCRAM-SHA-256\)"):
        create_topics(settings.bootstrap, [unique_topic("never")], settings=settings)


def test_the_notifier_checks_before_its_clients_start(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    """aiokafka alone would say it could not bootstrap, the cause only in a log line."""
    kafka = secure_kafka
    settings = Settings.from_env(sasl_env(kafka, kafka.scram_user, "SCRAM-SHA-512", "nope"))
    notifier = Notifier(
        DeliveryConfig({}, None),
        SQLiteHistory(tmp_path / "deliveries.sqlite3"),
        bootstrap=kafka.sasl_ssl,
        alerts_topic=unique_topic("alerts"),
        undelivered_topic=unique_topic("undelivered"),
        group_id=unique_topic("group"),
        settings=settings,
    )
    with pytest.raises(KafkaAccessDenied, match=r"for user 'bob' \(SASL SCRAM-SHA-512\)"):
        asyncio.run(notifier.run(asyncio.Event(), idle_exit_s=1))


def test_mutual_tls(secure_kafka: SecureKafka) -> None:
    certs = secure_kafka.certificates
    base = {
        "KAFKA_BOOTSTRAP_SERVERS": secure_kafka.ssl,
        "XBORDER_KAFKA_SECURITY_PROTOCOL": "SSL",
        "XBORDER_KAFKA_SSL_CAFILE": str(certs.ca),
    }
    with_cert = Settings.from_env(
        {
            **base,
            "XBORDER_KAFKA_SSL_CERTFILE": str(certs.client_cert),
            "XBORDER_KAFKA_SSL_KEYFILE": str(certs.client_key),
        }
    )
    topic = unique_topic("mtls")
    create_topics(secure_kafka.ssl, [topic], settings=with_cert)
    assert topic in topics_on(secure_kafka.plaintext)

    without = Settings.from_env(base)
    with pytest.raises(KafkaAccessDenied, match="client certificate"):
        create_topics(secure_kafka.ssl, [unique_topic("never")], settings=without)
    untrusted = with_cert.override({"kafka_ssl_cafile": certs.other_ca})
    with pytest.raises(KafkaAccessDenied, match="is not trusted"):
        create_topics(secure_kafka.ssl, [unique_topic("never")], settings=untrusted)
