"""Changing rules while the worker runs, on Apache Kafka: taken on the next records, a broken
file refused with the running pack kept, SIGHUP, and a GeoIP database swapped."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.geoip_build import TEST_NETWORKS, build_country_db
from tests.support.pack import copy_pack, edit
from tests.support.worker_harness import WorkerRun, latest, metric_value, producer, read_topic

pytestmark = pytest.mark.integration

STORED = "pipa.xborder.stored_in_watch_country"
UNDISCLOSED = "pipa.xborder.undisclosed_destination"
PLATFORM = "reloadmart"  # declared no transfers: every record abroad is also undisclosed
NEXT_BUILD_EPOCH = 1781654400 + 14 * 86400  # 2026-07-01


def stored_in_sg(event_id: str) -> bytes:
    """Personal data stored in Singapore (8.219.0.0/16 in the test database)."""
    return orjson.dumps(
        {
            "kind": "api_call",
            "event_id": event_id,
            "ts": int(time.time() * 1000),
            "platform": PLATFORM,
            "operation": "s3:PutObject",
            "endpoint": "https://store.example/b/x",
            "dst_ip": "8.219.3.3",
            "src_country": "KR",
            "subject_region": "KR",
            "data_categories": ["user.contact"],
            "legal_basis": "consent",
            "stores": True,
        }
    )


def wait_for(what: str, run: WorkerRun, holds: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if holds():
            return
        time.sleep(0.2)
    raise AssertionError(run.failure(f"timed out waiting for {what}"))


def test_rules_change_while_the_worker_runs(
    kafka_bootstrap: str, country_db: Path, tmp_path: Path
) -> None:
    rules = copy_pack(tmp_path)
    geoip = tmp_path / "geoip" / "country.mmdb"
    geoip.parent.mkdir()
    shutil.copy(country_db, geoip)
    run = WorkerRun(
        kafka_bootstrap,
        geoip,
        tmp_path / "worker",
        extra_env={"XBORDER_RULES": str(rules), "XBORDER_CONFIG_POLL_INTERVAL": "0.5"},
    )
    run.create_topics()
    run.start()
    p = producer(kafka_bootstrap)

    def send(event_id: str) -> None:
        p.send(run.topics.api, stored_in_sg(event_id))
        p.flush()

    def alerts(until: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        return latest(read_topic(kafka_bootstrap, run.topics.alerts, until))

    def settled(until: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        """The alerts once `until` holds and a little longer: the record's other hits
        may go to another partition of the hits topic, and so reach grouping later."""
        alerts(until)
        time.sleep(2)
        return alerts(until)

    def counted(rule: str, *event_ids: str) -> Callable[[list[dict[str, Any]]], bool]:
        def holds(got: list[dict[str, Any]]) -> bool:
            return any(
                {e["event_id"] for e in a["evidence"]} >= set(event_ids)
                for a in latest(got)
                if a["rule_id"] == rule
            )

        return holds

    def reloads(what: str, result: str) -> float:
        return metric_value(run.metrics(), "xborder_config_reloads_total", what=what, result=result)

    def rules_version() -> str:
        return next(
            line.split('version="', 1)[1].split('"', 1)[0]
            for line in run.metrics().splitlines()
            if line.startswith("xborder_rules_info{")
        )

    try:
        # Before: Singapore is no watch country; the undisclosed alert shows r1 was processed.
        wait_for("the metrics endpoint", run, lambda: run.metrics_port > 0 and _up(run))
        started = rules_version()
        send("r1")
        got = settled(counted(UNDISCLOSED, "r1"))
        assert not [a for a in got if a["rule_id"] == STORED], got

        # A list changed while the worker runs: taken for the next records.
        edit(rules / "pack.yaml", "watch_countries: [CN]", "watch_countries: [CN, SG]")
        wait_for("the rules reload", run, lambda: reloads("rules", "success") == 1)
        changed = rules_version()
        assert changed != started
        send("r2")
        got = alerts(counted(STORED, "r2"))
        (stored,) = [a for a in got if a["rule_id"] == STORED]
        # Records before the change are not evaluated again.
        assert [e["event_id"] for e in stored["evidence"]] == ["r2"]
        assert stored["rules_version"] == changed

        # A broken rule file: refused, with the file and line in the log; the
        # valid edit beside it (Singapore out again) is not taken either.
        bulk = rules / "detections" / "bulk_volume.yaml"
        edit(rules / "pack.yaml", "watch_countries: [CN, SG]", "watch_countries: [CN]")
        edit(bulk, "severity: medium", "severity: extreme")
        wait_for("the refusal", run, lambda: reloads("rules", "error") == 1)
        log = run.log_path.read_text()
        assert f"config reload: rules refused, still running rules {changed}: {bulk}:3:" in log
        text = run.metrics()
        assert metric_value(text, "xborder_config_last_reload_successful", what="rules") == 0
        assert rules_version() == changed
        send("r3")
        got = alerts(counted(STORED, "r2", "r3"))
        (stored,) = [a for a in got if a["rule_id"] == STORED]
        assert stored["event_count"] == 2 and stored["rules_version"] == changed

        # SIGHUP reloads every part at once: the broken file is refused again, and
        # the disclosures with it (a pack is compiled with them).
        assert run.process is not None
        run.process.send_signal(signal.SIGHUP)
        wait_for("the forced reload", run, lambda: reloads("endpoints", "success") == 1)
        assert reloads("rules", "error") == 2 and reloads("disclosures", "error") == 1
        assert run.process.poll() is None, run.failure("SIGHUP ended the worker")

        # A new GeoIP database, renamed into place: alerts name its build from then on.
        newer = tmp_path / "newer.mmdb"
        build_country_db(newer, TEST_NETWORKS, build_epoch=NEXT_BUILD_EPOCH)
        os.replace(newer, geoip)
        wait_for("the GeoIP reload", run, lambda: reloads("geoip", "success") == 2)
        assert 'build_date="2026-07-01"' in run.metrics()
        send("r4")
        got = alerts(counted(STORED, "r2", "r3", "r4"))
        (stored,) = [a for a in got if a["rule_id"] == STORED]
        assert stored["geoip_build"] == "2026-07-01" and stored["rules_version"] == changed

        # Fixed: the pack on disk now (Singapore out) runs, and r5 stores unnoticed.
        edit(bulk, "severity: extreme", "severity: medium")
        wait_for("the fixed rules", run, lambda: reloads("rules", "success") == 2)
        assert rules_version() == started  # the same files as at start-up
        send("r5")
        got = settled(counted(UNDISCLOSED, "r5"))
        (stored,) = [a for a in got if a["rule_id"] == STORED]
        assert "r5" not in {e["event_id"] for e in stored["evidence"]}
        assert run.process.poll() is None, run.failure("worker exited")
    finally:
        p.close()
        run.stop()


def _up(run: WorkerRun) -> bool:
    try:
        return "xborder_rules_info{" in run.metrics()
    except OSError:
        return False
