"""The sender against real aiohttp servers on loopback ports; only time is faked.

Backoff and breaker waits go through an injected sleep that records what was
asked and moves a fake clock, so a 30 s breaker costs nothing; the requests,
timeouts and refused connections are real.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.alerts.grouping import Alert, iso_ms
from monitor.delivery.metrics import DeliveryMetrics
from monitor.delivery.model import Attempt, Delivery, Format, Receiver
from monitor.delivery.sender import (
    USER_AGENT,
    Breaker,
    Sender,
    SenderClosed,
    retry_after_s,
    ssl_context,
)

WALL = 1_800_000_000.0  # a whole second, so HTTP dates and webhook timestamps are exact


ATTEMPTS = "xborder_delivery_attempts_total"


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 10))


class FakeTime:
    """Wall and monotonic clocks that move only when the sender sleeps."""

    def __init__(self, real_per_s: float = 0.0) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []
        self.real_per_s = real_per_s  # real seconds slept per fake second
        self.hooks: list[tuple[float, Callable[[], Awaitable[None]]]] = []

    def wall(self) -> float:
        return WALL + self.offset

    def mono(self) -> float:
        return self.offset

    async def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.offset += s
        due = [h for h in self.hooks if h[0] <= self.offset]
        self.hooks = [h for h in self.hooks if h[0] > self.offset]
        for _, hook in due:
            await hook()
        await asyncio.sleep(s * self.real_per_s)


Answer = tuple[int, dict[str, str]]


@dataclass
class Hook:
    """A webhook receiver: answers from a script (then 200), records every request."""

    script: list[Answer] = field(default_factory=list)
    hang: bool = False
    requests: list[dict[str, str]] = field(default_factory=list)
    accepted: Counter[str] = field(default_factory=Counter)

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.requests.append(dict(request.headers))
        if self.hang:
            await asyncio.Event().wait()
        status, headers = self.script.pop(0) if self.script else (200, {})
        if 200 <= status < 300:
            self.accepted[request.headers["Idempotency-Key"]] += 1
        return web.Response(status=status, headers=headers, text="echo: the alert itself")


@asynccontextmanager
async def serving(hook: Hook, port: int = 0) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    finally:
        await runner.cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def alert(n: int = 1) -> Alert:
    return {
        "alert_id": f"a{n:04d}", "rule_id": "xb-001", "title": "t", "severity": "high",
        "legal_ref": "GDPR Art. 44", "tags": [], "platform": "p", "src_country": "DE",
        "dst_country": "US", "subject_region": "EU", "dataset_id": None,
        "first_seen": iso_ms(int(WALL * 1000)), "last_seen": iso_ms(int(WALL * 1000)),
        "event_count": 1, "bytes": 1, "records": 1, "data_categories": ["user.contact"],
        "evidence": [], "revision": 1, "truncated": False, "rules_version": "1",
        "geoip_build": None, "emitted_at": iso_ms(int(WALL * 1000) - 2000),
    }  # fmt: skip


def render(fmt: Format, a: Alert) -> tuple[str, bytes]:
    return "application/json", json.dumps({"format": fmt, "alert_id": a["alert_id"]}).encode()


def sign(secret: bytes, msg_id: str, ts: int, body: bytes) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": "v1,x"}


@dataclass
class Run:
    """A sender on fake time, what it reported, its metrics."""

    receivers: list[Receiver]
    time: FakeTime = field(default_factory=FakeTime)
    rng: float = 0.5
    attempts: list[Attempt] = field(default_factory=list)
    exhausted: list[tuple[Delivery, str]] = field(default_factory=list)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    render: Callable[[Format, Alert], tuple[str, bytes]] = render
    history_down_for: set[str] = field(default_factory=set)  # alert ids

    def sender(self) -> Sender:
        def on_attempt(a: Attempt) -> None:
            if a.alert_id in self.history_down_for:
                raise OSError("history unavailable")
            self.attempts.append(a)

        async def on_exhausted(d: Delivery, error: str) -> None:
            self.exhausted.append((d, error))

        return Sender(
            self.receivers,
            render=self.render,
            sign=sign,
            on_attempt=on_attempt,
            on_exhausted=on_exhausted,
            metrics=DeliveryMetrics(self.registry),
            clock=self.time.wall,
            monotonic=self.time.mono,
            sleep=self.time.sleep,
            rng=lambda: self.rng,
        )

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def outcomes(self, receiver: str, n: int = 1) -> list[tuple[str, int | None, str | None]]:
        return [
            (a.outcome, a.status, a.error)
            for a in self.attempts
            if a.receiver == receiver and a.alert_id == f"a{n:04d}"
        ]


def test_a_delivery_carries_its_key_agent_and_signature_headers() -> None:
    async def main() -> None:
        signed, plain = Hook(), Hook()
        async with serving(signed) as url_s, serving(plain) as url_p:
            r = Run([Receiver("signed", url_s, secret=b"k"), Receiver("plain", url_p)])
            async with r.sender() as sender:
                done = [await sender.submit(Delivery(alert(), n)) for n in ("signed", "plain")]
                results = [await f for f in done]
        assert [a.outcome for a in results] == ["delivered", "delivered"]
        assert results[0].latency_ms == 2000 and results[0].attempt == 1
        (h,) = signed.requests
        assert h["Idempotency-Key"] == "a0001.1" == h["webhook-id"]
        assert h["webhook-timestamp"] == str(int(WALL)) and h["webhook-signature"]
        assert h["Content-Type"] == "application/json" and h["User-Agent"] == USER_AGENT
        assert USER_AGENT.startswith("xborder-monitor/")
        (p,) = plain.requests
        assert p["Idempotency-Key"] == "a0001.1" and not any(k.startswith("webhook-") for k in p)
        assert r.metric("xborder_deliveries_total", receiver="signed", outcome="delivered") == 1
        assert r.metric(ATTEMPTS, receiver="plain", status_class="2xx") == 1
        assert r.metric("xborder_delivery_latency_seconds_count", receiver="signed") == 1
        assert r.metric("xborder_delivery_latency_seconds_sum", receiver="signed") == 2.0
        assert r.metric("xborder_delivery_queue_depth", receiver="signed") == 0

    run(main())


def test_5xx_is_retried_after_jittered_backoff_signed_afresh_under_one_id() -> None:
    async def main() -> None:
        hook = Hook(script=[(500, {}), (502, {})])
        async with serving(hook) as url:
            r = Run([Receiver("r", url, secret=b"k", backoff_initial_s=2.0)])
            async with r.sender() as sender:
                result = await (await sender.submit(Delivery(alert(), "r")))
        assert result.outcome == "delivered" and result.attempt == 3
        assert r.outcomes("r") == [
            ("retrying", 500, "500 Internal Server Error"),
            ("retrying", 502, "502 Bad Gateway"),
            ("delivered", 200, None),
        ]
        # Full jitter: the draw (0.5) times 2 s, then times 4 s.
        assert r.time.sleeps == [1.0, 2.0]
        assert {h["webhook-id"] for h in hook.requests} == {"a0001.1"}
        stamps = [int(h["webhook-timestamp"]) for h in hook.requests]
        assert stamps == [int(WALL), int(WALL) + 1, int(WALL) + 3]
        assert r.metric(ATTEMPTS, receiver="r", status_class="5xx") == 2
        assert r.attempts[-1].latency_ms == 2000 + 3000

    run(main())


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (429, "7", 7.0),
        (503, formatdate(WALL + 20, usegmt=True), 20.0),
        (429, "100000", 60.0),  # capped by backoff_max_s
        (429, "soon", 0.5 * 1.0),  # unreadable: the jittered backoff
    ],
)
def test_retry_after_is_honoured_and_capped(status: int, retry_after: str, expected: float) -> None:
    async def main() -> None:
        hook = Hook(script=[(status, {"Retry-After": retry_after})])
        async with serving(hook) as url:
            r = Run([Receiver("r", url, backoff_max_s=60.0)])
            async with r.sender() as sender:
                result = await (await sender.submit(Delivery(alert(), "r")))
        assert result.outcome == "delivered"
        assert r.time.sleeps == [expected]

    run(main())


def test_another_4xx_is_rejected_after_one_attempt_and_never_echoes_the_body() -> None:
    async def main() -> None:
        hook = Hook(script=[(400, {})])
        async with serving(hook) as url:
            r = Run([Receiver("r", url)])
            async with r.sender() as sender:
                result = await (await sender.submit(Delivery(alert(), "r")))
        assert r.outcomes("r") == [("rejected", 400, "400 Bad Request")]
        assert result.outcome == "rejected" and len(hook.requests) == 1
        assert r.time.sleeps == [] and r.exhausted == []
        assert r.metric("xborder_deliveries_total", receiver="r", outcome="rejected") == 1
        assert r.metric("xborder_delivery_breaker_state", receiver="r") == 0

    run(main())


def test_a_refused_connection_is_retried_then_exhausted_with_the_last_error() -> None:
    async def main() -> None:
        url = f"http://127.0.0.1:{free_port()}/hook"
        rec = Receiver("down", url, max_attempts=4, backoff_initial_s=2.0, backoff_max_s=5.0)
        r = Run([rec])
        async with r.sender() as sender:
            d = Delivery(alert(), "down")
            result = await (await sender.submit(d))
        err = "ClientConnectorError"
        assert r.outcomes("down") == [("retrying", None, err)] * 3 + [("exhausted", None, err)]
        assert result.outcome == "exhausted" and r.exhausted == [(d, err)]
        assert r.time.sleeps == [1.0, 2.0, 2.5]  # 2, 4, 8 capped at 5; times the draw
        assert r.metric(ATTEMPTS, receiver="down", status_class="network") == 4
        assert r.metric("xborder_deliveries_total", receiver="down", outcome="exhausted") == 1

    run(main())


async def _until(check: Callable[[], bool], within_s: float = 3.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def test_the_breaker_opens_and_dead_receivers_never_delay_a_healthy_one() -> None:
    async def main() -> None:
        healthy, hanging = Hook(), Hook(hang=True)
        async with serving(healthy) as ok_url, serving(hanging) as hang_url:
            refused = f"http://127.0.0.1:{free_port()}/hook"
            r = Run(
                [
                    Receiver("ok", ok_url),
                    Receiver("hanging", hang_url, timeout_s=1.0),
                    Receiver("refusing", refused, max_attempts=10, breaker_failures=3),
                ],
                time=FakeTime(real_per_s=0.01),  # a 30 s breaker is 0.3 s of real time
            )
            sender = r.sender()
            await sender.start()
            dead = [await sender.submit(Delivery(alert(1), "hanging"))]
            dead += [await sender.submit(Delivery(alert(n), "refusing")) for n in (1, 2, 3)]
            ok = [await sender.submit(Delivery(alert(n), "ok")) for n in range(1, 21)]
            results = await asyncio.gather(*ok)
            assert [a.outcome for a in results] == ["delivered"] * 20
            assert not any(f.done() for f in dead), "the dead receivers are still at it"
            assert len(healthy.accepted) == 20 and len(hanging.requests) == 1

            def opened() -> bool:
                return r.metric("xborder_delivery_breaker_state", receiver="refusing") == 2

            await _until(opened)
            assert r.outcomes("refusing") == [("retrying", None, "ClientConnectorError")] * 3
            await asyncio.sleep(0.1)  # 10 s of the 30 s it stays open: nothing is sent
            assert len(r.outcomes("refusing")) == 3
            assert r.metric("xborder_delivery_queue_depth", receiver="refusing") == 2
            assert r.metric("xborder_delivery_breaker_state", receiver="ok") == 0

            def timed_out() -> bool:
                return bool(r.outcomes("hanging"))

            await _until(timed_out)  # timeout_s of real time
            assert r.outcomes("hanging") == [("retrying", None, "TimeoutError")]
            assert r.metric(ATTEMPTS, receiver="hanging", status_class="timeout") == 1
            await sender.close(timeout=0.05)
        assert all(f.cancelled() for f in dead)
        with pytest.raises(SenderClosed):
            await sender.submit(Delivery(alert(), "ok"))

    run(main())


def test_a_receiver_back_after_an_outage_gets_every_delivery_exactly_once() -> None:
    async def main() -> None:
        port = free_port()
        hook = Hook()
        rec = Receiver("r", f"http://127.0.0.1:{port}/hook", max_attempts=5, breaker_failures=2)
        r = Run([rec])
        back = serving(hook, port)

        async def come_back() -> None:
            await back.__aenter__()

        r.time.hooks.append((50.0, come_back))  # the receiver is back 50 s in
        try:
            async with r.sender() as sender:
                futures = [await sender.submit(Delivery(alert(n), "r")) for n in range(1, 7)]
                results = await asyncio.gather(*futures)
        finally:
            await back.__aexit__(None, None, None)
        assert [a.outcome for a in results] == ["delivered"] * 6
        assert hook.accepted == Counter({f"a{n:04d}.1": 1 for n in range(1, 7)})
        # 2 failures open the breaker; its trial at 30.5 s fails, the one at 60.5 s succeeds.
        assert [a.outcome for a in r.attempts if a.alert_id == "a0001"] == ["retrying"] * 3 + [
            "delivered"
        ]
        assert [a.attempt for a in results] == [4, 1, 1, 1, 1, 1]
        assert r.time.mono() == pytest.approx(60.5)
        assert r.metric("xborder_delivery_breaker_state", receiver="r") == 0
        assert r.metric("xborder_deliveries_total", receiver="r", outcome="delivered") == 6

    run(main())


def test_close_lets_what_was_submitted_finish() -> None:
    async def main() -> None:
        hook = Hook()
        async with serving(hook) as url:
            r = Run([Receiver("r", url)])
            sender = r.sender()
            futures = [await sender.submit(Delivery(alert(n), "r")) for n in (1, 2, 3)]
            await sender.close(timeout=5.0)
        assert [f.result().outcome for f in futures] == ["delivered"] * 3

    run(main())


def test_an_unrenderable_alert_is_rejected_unsent_and_the_queue_goes_on() -> None:
    def picky(fmt: Format, a: Alert) -> tuple[str, bytes]:
        if a["alert_id"] == "a0001":
            raise KeyError("evidence")
        return render(fmt, a)

    async def main() -> None:
        hook = Hook()
        async with serving(hook) as url:
            r = Run([Receiver("r", url)], render=picky)
            async with r.sender() as sender:
                bad = await sender.submit(Delivery(alert(1), "r"))
                good = await sender.submit(Delivery(alert(2), "r"))
                assert (await bad).outcome == "rejected" and (await good).outcome == "delivered"
        assert r.outcomes("r", 1) == [("rejected", None, "render: KeyError")]
        assert r.attempts[0].attempt == 0 and len(hook.requests) == 1

    run(main())


def test_a_failing_callback_fails_only_its_delivery() -> None:
    async def main() -> None:
        hook = Hook()
        async with serving(hook) as url:
            r = Run([Receiver("r", url)], history_down_for={"a0001"})
            async with r.sender() as sender:
                first = await sender.submit(Delivery(alert(1), "r"))
                second = await sender.submit(Delivery(alert(2), "r"))
                with pytest.raises(OSError):
                    await first
                assert (await second).outcome == "delivered"

    run(main())


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after_s("12", WALL) == 12.0
    assert retry_after_s(formatdate(WALL + 90, usegmt=True), WALL) == 90.0
    assert retry_after_s(formatdate(WALL - 90, usegmt=True), WALL) == 0.0
    assert retry_after_s("later", WALL) is None and retry_after_s(None, WALL) is None


def test_breaker_closed_open_half_open() -> None:
    now = [0.0]
    b = Breaker(failures=2, reset_s=30.0, clock=lambda: now[0])
    seen: list[tuple[str, float]] = []

    def step(ok: bool | None = None, at: float | None = None) -> None:
        if at is not None:
            now[0] = at
        if ok is not None:
            b.record(ok)
        wait = b.wait_s()
        seen.append((b.state, wait))

    step(ok=False)
    step(ok=False)
    step(at=30.0)  # time is up: one trial may go
    step(ok=False)  # a failed trial opens it again at once
    step(at=60.0)
    step(ok=True)
    assert seen == [
        ("closed", 0.0),
        ("open", 30.0),
        ("half_open", 0.0),
        ("open", 30.0),
        ("half_open", 0.0),
        ("closed", 0.0),
    ]


# A self-signed CA certificate made for this test (its key was never kept).
_TEST_CA = """-----BEGIN CERTIFICATE-----
MIIBjDCCATGgAwIBAgIULAt4VcJsmwiigspkWOgOs2fcWUIwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPeGJvcmRlci10ZXN0LWNhMCAXDTI2MTIwMzE0MDE0NloYDzIx
MjYxMTA5MTQwMTQ2WjAaMRgwFgYDVQQDDA94Ym9yZGVyLXRlc3QtY2EwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAARNtiZiCI3dCWmP7PLcnXZZ/zxQhSSInM/+O5Wz
b+2THO+uaoGfHg+v7dA2o+Kl5dwbLPQzr1/jid92bgY7pCrIo1MwUTAdBgNVHQ4E
FgQUMgrvEYGf/vuA4sU18JKBBKQWq2kwHwYDVR0jBBgwFoAUMgrvEYGf/vuA4sU1
8JKBBKQWq2kwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEAzx7G
yXUl6z+O1RcDXva7rQ+9dgbuAZtSNGOXHsV3LV0CIQDZZclYoSsUy3ZnLIV3eA2/
r+aqYEInaYV843OJCCGFrQ==
-----END CERTIFICATE-----
"""


def test_tls_is_verified_unless_turned_off(tmp_path: Path) -> None:
    r = Receiver("r", "https://example.org")
    assert ssl_context(r) is True  # aiohttp's verified default
    assert ssl_context(replace(r, tls_verify=False)) is False
    ca = tmp_path / "ca.pem"
    ca.write_text(_TEST_CA)
    ctx = ssl_context(replace(r, ca_file=str(ca)))
    assert isinstance(ctx, ssl.SSLContext) and ctx.check_hostname
    assert ctx.verify_mode == ssl.CERT_REQUIRED and len(ctx.get_ca_certs()) == 1
