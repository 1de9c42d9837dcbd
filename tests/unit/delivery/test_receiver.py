"""The reference receiver in process: verifies, refuses (401) unsigned, forged, stale and
replayed requests, stores each webhook-id once, prints a line per alert."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from monitor.alerts.grouping import Alert
from monitor.delivery.model import idempotency_key
from monitor.delivery.payloads import render
from monitor.delivery.receiver import ReceiverConfig, alert_lines, make_app, start
from monitor.delivery.signing import sign
from tests.support.records import NLB, T0, api, of, run

KEY = b"receiver-test-key-of-some-length"
NOW = 1_790_000_000
T = TypeVar("T")


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def alert() -> Alert:
    (a,) = of(run([api("a", T0, legal_basis="none")]), NLB)
    return a


def _config(store: Path | None = None, **kw: Any) -> ReceiverConfig:
    return ReceiverConfig(secret=KEY, store=store, out=io.StringIO(), clock=Clock(), **kw)


def _in_process(
    config: ReceiverConfig, scenario: Callable[[TestClient[Any, Any]], Awaitable[T]]
) -> T:
    async def go() -> T:
        async with TestClient(TestServer(make_app(config))) as client:
            return await scenario(client)

    return asyncio.run(go())


def _signed(
    alert: Alert, fmt: Any = "native", ts: int = NOW, key: bytes = KEY
) -> tuple[dict[str, str], bytes]:
    ctype, body = render(fmt, alert)
    return {**sign(key, idempotency_key(alert), ts, body), "content-type": ctype}, body


def _stored(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_a_signed_alert_is_stored_and_printed(tmp_path: Path, alert: Alert) -> None:
    store = tmp_path / "in" / "alerts.jsonl"
    config = _config(store)
    headers, body = _signed(alert)

    async def scenario(client: TestClient[Any, Any]) -> tuple[int, Any]:
        r = await client.post("/", data=body, headers=headers)
        return r.status, await r.json()

    status, answer = _in_process(config, scenario)
    assert (status, answer["status"]) == (200, "stored")
    (record,) = _stored(store)
    assert record["webhook_id"] == idempotency_key(alert)
    assert record["webhook_timestamp"] == NOW
    assert record["signature"] == headers["webhook-signature"]
    assert record["content_type"] == "application/json"
    assert record["body"] == alert
    assert record["received_at"] == "2026-09-21T14:13:20.000Z"
    line = config.out.getvalue()  # type: ignore[attr-defined]
    assert line == (f"alert {alert['alert_id']} rev 1 {NLB} critical aliexpress KR->CN\n")


@pytest.mark.parametrize("fmt", ["native", "cloudevents", "ocsf"])
def test_every_format_gives_the_same_line(alert: Alert, fmt: Any) -> None:
    ctype, body = render(fmt, alert)
    assert alert_lines(ctype, orjson.loads(body)) == [
        f"alert {alert['alert_id']} rev 1 {NLB} critical aliexpress KR->CN"
    ]


def test_an_alertmanager_body_gives_a_line_per_alert() -> None:
    body = {
        "version": "4",
        "alerts": [
            {"labels": {"alertname": "r1", "alert_id": "x1", "severity": "high"}},
            {"labels": {"rule_id": "r2", "alert_id": "x2", "src_country": "KR"}},
        ],
    }
    assert alert_lines("application/json", body) == [
        "alert x1 rev ? r1 high ? ??->??",
        "alert x2 rev ? r2 ? ? KR->??",
    ]


def test_refused_requests_answer_401_and_store_nothing(tmp_path: Path, alert: Alert) -> None:
    store = tmp_path / "alerts.jsonl"
    config = _config(store)
    headers, body = _signed(alert)
    forged_key, _ = _signed(alert, key=b"not-the-receivers-key")
    stale, _ = _signed(alert, ts=NOW - 301)
    tampered = body.replace(b'"records":0', b'"records":9')
    assert tampered != body

    async def scenario(client: TestClient[Any, Any]) -> list[tuple[int, str]]:
        out = []
        for h, b in [
            ({"content-type": "application/json"}, body),  # unsigned
            (forged_key, body),
            (headers, tampered),
            (stale, body),
        ]:
            r = await client.post("/", data=b, headers=h)
            out.append((r.status, (await r.json())["reason"]))
        return out

    answers = _in_process(config, scenario)
    assert [s for s, _ in answers] == [401] * 4
    assert answers[0][1].startswith("missing headers")
    assert answers[1][1] == answers[2][1] == "no matching signature"
    assert answers[3][1].startswith("stale timestamp")
    assert store.read_bytes() == b""
    assert config.out.getvalue() == ""  # type: ignore[attr-defined]


def test_a_replay_is_refused_a_retry_is_stored_once(tmp_path: Path, alert: Alert) -> None:
    store = tmp_path / "alerts.jsonl"
    config = _config(store)
    first, body = _signed(alert)
    retry, _ = _signed(alert, ts=NOW + 30)

    async def scenario(client: TestClient[Any, Any]) -> list[tuple[int, str]]:
        out = []
        for h in (first, first, retry, retry):
            r = await client.post("/", data=body, headers=h)
            doc = await r.json()
            out.append((r.status, doc["status"]))
        return out

    assert _in_process(config, scenario) == [
        (200, "stored"),
        (401, "refused"),  # the same id and signature again
        (200, "duplicate"),  # a fresh signature: acknowledged, not stored again
        (401, "refused"),
    ]
    assert len(_stored(store)) == 1
    assert len(config.out.getvalue().splitlines()) == 1  # type: ignore[attr-defined]


def test_accepted_pairs_are_forgotten_once_their_timestamp_is_stale(alert: Alert) -> None:
    config = _config(tolerance_s=60)
    clock = config.clock
    assert isinstance(clock, Clock)
    headers, body = _signed(alert)

    async def scenario(client: TestClient[Any, Any]) -> list[str]:
        reasons = []
        await client.post("/", data=body, headers=headers)
        clock.now = NOW + 61
        for _ in range(2):
            r = await client.post("/", data=body, headers=headers)
            reasons.append((await r.json())["reason"])
        return reasons

    # Stale, not replayed: the pair left memory and the timestamp check refuses it.
    assert [r.split(":")[0] for r in _in_process(config, scenario)] == ["stale timestamp"] * 2


def test_a_restart_remembers_what_the_store_holds(tmp_path: Path, alert: Alert) -> None:
    store = tmp_path / "alerts.jsonl"
    first, body = _signed(alert)
    retry, _ = _signed(alert, ts=NOW + 5)
    other = {**alert, "revision": 2}
    second, body2 = _signed(other)  # type: ignore[arg-type]

    async def post(client: TestClient[Any, Any], h: dict[str, str], b: bytes) -> str:
        r = await client.post("/", data=b, headers=h)
        return str((await r.json())["status"])

    assert _in_process(_config(store), lambda c: post(c, first, body)) == "stored"
    with store.open("ab") as f:
        f.write(b'{"received_at": "2026-')  # a crash in the middle of a line
    assert _in_process(_config(store), lambda c: post(c, first, body)) == "refused"  # replayed
    assert _in_process(_config(store), lambda c: post(c, retry, body)) == "duplicate"
    assert _in_process(_config(store), lambda c: post(c, second, body2)) == "stored"
    lines = store.read_bytes().splitlines()
    assert len(lines) == 3 and lines[1] == b'{"received_at": "2026-'
    assert [r["webhook_id"] for r in (orjson.loads(lines[0]), orjson.loads(lines[2]))] == [
        idempotency_key(alert),
        idempotency_key(other),  # type: ignore[arg-type]
    ]


def test_any_path_health_and_a_body_that_is_not_json(alert: Alert) -> None:
    config = _config()
    headers, body = _signed(alert, fmt="cloudevents")
    junk = b"not json"
    junk_headers = sign(KEY, "junk.1", NOW, junk)

    async def scenario(client: TestClient[Any, Any]) -> list[int]:
        got = [(await client.post("/hooks/xborder", data=body, headers=headers)).status]
        got.append((await client.post("/x", data=junk, headers=junk_headers)).status)
        health = await client.get("/healthz")
        assert (await health.json()) == {"status": "ok", "stored": 1}
        got.append(health.status)
        return got

    assert _in_process(config, scenario) == [200, 400, 200]


def test_a_receiver_rolling_its_key_accepts_old_and_new(alert: Alert) -> None:
    config = ReceiverConfig(secret=[b"new-key-0123456789", KEY], out=io.StringIO(), clock=Clock())
    headers, body = _signed(alert)

    async def scenario(client: TestClient[Any, Any]) -> int:
        return (await client.post("/", data=body, headers=headers)).status

    assert _in_process(config, scenario) == 200


def test_start_listens_on_a_loopback_port(tmp_path: Path, alert: Alert) -> None:
    config = _config(tmp_path / "s.jsonl")
    headers, body = _signed(alert, fmt="ocsf")

    async def go() -> list[int]:
        runner, url = await start(config, "127.0.0.1", 0)
        try:
            assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/")
            async with aiohttp.ClientSession() as session:
                statuses = []
                for h in ({}, headers):
                    async with session.post(url, data=body, headers=h) as r:
                        statuses.append(r.status)
                return statuses
        finally:
            await runner.cleanup()

    assert asyncio.run(go()) == [401, 200]
    assert _stored(tmp_path / "s.jsonl")[0]["body"]["finding_info"]["uid"] == alert["alert_id"]
