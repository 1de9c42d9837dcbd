"""`xborder demo`: the worker, the simulator and the embedded Tansu broker together, alerts
printed as they fire."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.timeout(300)
def test_demo_runs_on_tansu_and_shows_alerts(country_db: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "XBORDER_DATA_DIR": str(tmp_path),
        "XBORDER_GEOIP_COUNTRY": str(country_db),
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    from xborder_tools.embedded_broker import free_port

    port = free_port()
    # The default delivery file names port 8790; this one points at the test's port.
    delivery = tmp_path / "delivery.yaml"
    delivery.write_text(
        "receivers:\n  - name: case-officers\n"
        f"    url: http://127.0.0.1:{port}/alerts\n"
        "    secret_env: XBORDER_WEBHOOK_SECRET\n"
        "route: {receiver: case-officers}\n"
    )
    env["XBORDER_DELIVERY_CONFIG"] = str(delivery)

    def demo(seconds: int) -> str:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "monitor.cli",
                "demo",
                "--seconds",
                str(seconds),
                "--rate",
                "200",
                "--metrics-port",
                str(free_port()),
                "--receiver-port",
                str(port),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    out = demo(30)
    assert "embedded Tansu broker" in out and "first alert after" in out, out
    assert sum(1 for line in out.splitlines() if " NEW " in line) >= 3, out
    # Signed, verified and stored by the reference receiver.
    assert sum(1 for line in out.splitlines() if "delivered: alert " in line) >= 3, out
    # A second run in the same data folder replays the same seeded stream on
    # a new broker: its alerts are delivered again, not taken for done.
    again = demo(20)
    assert sum(1 for line in again.splitlines() if "delivered: alert " in line) >= 3, again
