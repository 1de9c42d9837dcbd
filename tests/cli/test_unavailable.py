"""A worker facing no broker says so in one line and exits 69 (EX_UNAVAILABLE), no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.errors import BrokerUnavailable
from monitor.kafka_admin import create_topics
from xborder_tools.embedded_broker import free_port


def test_create_topics_names_the_servers_it_could_not_reach() -> None:
    servers = f"127.0.0.1:{free_port()}"
    with pytest.raises(BrokerUnavailable, match=f"cannot reach Kafka at {servers} within 2 s"):
        create_topics(servers, ["x"], timeout=2)


def test_worker_without_a_broker_exits_69_with_a_message(country_db: Path) -> None:
    servers = f"127.0.0.1:{free_port()}"
    # The worker's own wait (30 s) shortened for the test, through the same function.
    code = (
        "import sys, monitor.kafka_admin as k\n"
        "real = k.create_topics\n"
        "k.create_topics = lambda *a, **kw: real(*a, **{**kw, 'timeout': 2})\n"
        "from monitor.cli.main import main\n"
        "sys.exit(main(['worker']))\n"
    )
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": servers,
        "XBORDER_GEOIP_COUNTRY": str(country_db),
        "XBORDER_METRICS_PORT": str(free_port()),
        "XBORDER_SUBJECT_KEY": "a-test-secret-of-16-bytes-or-more",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 69, done.stderr[-2000:]
    assert f"xborder: cannot reach Kafka at {servers}" in done.stderr
    assert "Traceback" not in done.stderr
