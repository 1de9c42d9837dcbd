"""`xborder receive` as a subprocess on a loopback port: signed alerts in, 401 for the rest,
each webhook-id stored once; a secret it cannot use is exit 2 naming where it looked."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.alerts.grouping import Alert
from monitor.delivery.model import idempotency_key
from monitor.delivery.payloads import render
from monitor.delivery.signing import sign
from tests.support.paths import ROOT
from tests.support.records import NLB, T0, api, of, run

KEY = bytes(range(32, 64))
STARTUP_S = 15  # generous: a loaded machine, not the receiver, sets the pace


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "monitor.cli", "receive", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _exits(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A receiver that is not expected to start, run to its end."""
    return subprocess.run(
        _command("--port", "0", *args),
        cwd=ROOT,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    secret = tmp_path / "secret"
    secret.write_text("whsec_" + base64.b64encode(KEY).decode() + "\n")
    store = tmp_path / "received.jsonl"
    started = time.monotonic()
    proc = subprocess.Popen(
        _command("--port", "0", "--secret-file", str(secret), "--store", str(store)),
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "listening on http://127.0.0.1:" in line, line + proc.stderr.read()
    assert time.monotonic() - started < STARTUP_S
    url = line.split("listening on ", 1)[1].split(",")[0].strip()
    try:
        yield proc, url, store
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, orjson.loads(e.read())


def _alert(revision: int = 1) -> Alert:
    (a,) = of(run([api("a", T0, legal_basis="none")]), NLB)
    return {**a, "revision": revision}


def _signed(
    alert: Alert, fmt: Any = "native", key: bytes = KEY, ts: int | None = None
) -> tuple[dict[str, str], bytes]:
    ctype, body = render(fmt, alert)
    now = int(time.time()) if ts is None else ts
    return {**sign(key, idempotency_key(alert), now, body), "Content-Type": ctype}, body


def test_receive_verifies_refuses_and_stores_once(
    receiver: tuple[subprocess.Popen[str], str, Path],
) -> None:
    proc, url, store = receiver
    alert, update = _alert(), _alert(revision=2)
    headers, body = _signed(alert)
    ce_headers, ce_body = _signed(update, fmt="cloudevents")
    forged, _ = _signed(alert, key=b"somebody-elses-key")
    stale, _ = _signed(alert, ts=int(time.time()) - 3600)

    assert _post(url, body, {"Content-Type": "application/json"})[0] == 401  # unsigned
    assert _post(url, body, forged)[0] == 401
    assert _post(url, body, stale)[0] == 401
    assert _post(url, body, headers) == (
        200,
        {"status": "stored", "webhook_id": f"{alert['alert_id']}.1"},
    )
    assert _post(url, body, headers)[0] == 401  # replayed
    retry, _ = _signed(alert, ts=int(time.time()) + 1)  # a fresh timestamp and signature
    assert retry["webhook-signature"] != headers["webhook-signature"]
    assert _post(url, body, retry)[1]["status"] == "duplicate"
    assert _post(url + "case-system/inbox", ce_body, ce_headers)[0] == 200

    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.splitlines() == [
        f"alert {alert['alert_id']} rev 1 {NLB} critical aliexpress KR->CN",
        f"alert {alert['alert_id']} rev 2 {NLB} critical aliexpress KR->CN",
    ]
    records = [orjson.loads(line) for line in store.read_bytes().splitlines()]
    assert [r["webhook_id"] for r in records] == [
        f"{alert['alert_id']}.1",
        f"{alert['alert_id']}.2",
    ]
    assert [r["content_type"] for r in records] == [
        "application/json",
        "application/cloudevents+json",
    ]
    assert records[1]["body"]["data"]["revision"] == 2
    assert "stale timestamp" in err and "replayed" in err
    assert "Traceback" not in err


def test_health(receiver: tuple[subprocess.Popen[str], str, Path]) -> None:
    _, url, _ = receiver
    with urllib.request.urlopen(url + "healthz", timeout=10) as r:
        assert orjson.loads(r.read()) == {"status": "ok", "stored": 0}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "secret file not found: {path}"),
        ("\n", "secret file {path} is empty"),
        ("whsec_s3cr3t!not-base64", "secret file {path}: what follows whsec_ is not base64"),
    ],
)
def test_a_secret_it_cannot_use_is_exit_2_naming_the_path(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "secret"
    if content is not None:
        path.write_text(content)
    done = _exits("--secret-file", str(path))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "xborder: " + message.format(path=path)
    assert "s3cr3t" not in done.stderr + done.stdout


def test_a_variable_that_is_not_set_is_exit_2_naming_it() -> None:
    env = {k: v for k, v in _env().items() if k != "XB_TEST_RECEIVE_SECRET"}
    done = _exits("--secret-env", "XB_TEST_RECEIVE_SECRET", env=env)
    assert done.returncode == 2
    assert "environment variable XB_TEST_RECEIVE_SECRET is not set" in done.stderr
