"""Sending deliveries to receivers' webhooks: retries, backoff, a breaker per receiver.

Each receiver has its own bounded queue, worker task, HTTP session and breaker,
so a receiver that hangs or refuses only ever holds up its own deliveries. A
worker sends one delivery at a time, in the order submitted; when the queue is
full, `submit` waits, which hands the backpressure to whoever reads alerts.

One delivery is attempted up to `receiver.max_attempts` times. A 2xx is
`delivered`; a network error, a timeout, a 429 or a 5xx is retried after a
backoff with full jitter (a uniform draw below `backoff_initial_s * 2**(n-1)`,
capped by `backoff_max_s`), or after Retry-After on 429 and 503, capped alike;
any other answer (3xx, other 4xx) is `rejected` at once; a last failed attempt
is `exhausted` and handed to `on_exhausted` (the caller writes it to the
undelivered topic).

The breaker opens after `breaker_failures` consecutive failed attempts (those a
retry would follow, across deliveries; a rejection proves the receiver up and
counts as a success). While it is open nothing is sent: the delivery in hand
waits for whichever ends later, its backoff or the breaker's `breaker_reset_s`,
and the deliveries behind it wait in the queue (nothing is dropped). Waiting is
not an attempt, so a delivery's `max_attempts` counts only requests that went
out: the first one after the reset is the half-open trial, it counts for the
delivery it carries, and its success closes the breaker and lets the queue
drain; its failure opens the breaker for another `breaker_reset_s`. Through a
long outage the delivery at the head of the queue is therefore exhausted after
`max_attempts` trials, and those behind it keep their attempts for when the
receiver is back.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import NamedTuple

import aiohttp

from monitor import __version__
from monitor.alerts.grouping import Alert
from monitor.delivery.metrics import BREAKER_STATES, BreakerState, DeliveryMetrics, status_class
from monitor.delivery.model import Attempt, Delivery, Format, Outcome, Receiver
from monitor.errors import XborderError

__all__ = [
    "USER_AGENT",
    "Breaker",
    "OnAttempt",
    "OnExhausted",
    "Render",
    "Sender",
    "SenderClosed",
    "SessionFactory",
    "Sign",
    "default_session",
    "retry_after_s",
    "ssl_context",
]

log = logging.getLogger(__name__)

USER_AGENT = f"xborder-monitor/{__version__}"

Render = Callable[[Format, Alert], tuple[str, bytes]]
Sign = Callable[[bytes, str, int, bytes], dict[str, str]]
OnAttempt = Callable[[Attempt], Awaitable[None] | None]
OnExhausted = Callable[[Delivery, str], Awaitable[None] | None]
SessionFactory = Callable[[Receiver], aiohttp.ClientSession]

# Enough of an answer's body to keep the connection for the next request; more
# is not worth reading, and nothing read is kept.
_DRAIN_BYTES = 65536


class SenderClosed(XborderError):
    """A delivery submitted after `Sender.close` began."""


class Breaker:
    """A receiver's circuit breaker: closed, open for `reset_s`, then half-open for one trial."""

    def __init__(self, failures: int, reset_s: float, clock: Callable[[], float]) -> None:
        self.failures = max(1, failures)
        self.reset_s = reset_s
        self.state: BreakerState = "closed"
        self._clock = clock
        self._consecutive = 0
        self._opened_at = 0.0

    def wait_s(self) -> float:
        """Seconds before the next attempt may go; an open breaker whose time is up turns half-open."""
        if self.state == "open":
            left = self._opened_at + self.reset_s - self._clock()
            if left > 0:
                return left
            self.state = "half_open"
        return 0.0

    def record(self, ok: bool) -> None:
        if ok:
            self.state, self._consecutive = "closed", 0
            return
        self._consecutive += 1
        if self.state == "half_open" or self._consecutive >= self.failures:
            self.state, self._opened_at = "open", self._clock()


def ssl_context(receiver: Receiver) -> ssl.SSLContext | bool:
    """Verification on unless the receiver turns it off; a `ca_file` replaces the system's CAs
    (a private CA is trusted for that receiver alone)."""
    if not receiver.tls_verify:
        return False
    if receiver.ca_file is None:
        # aiohttp's own verified context, built once at import: loading the system's
        # CAs again per receiver would hold the loop for a tenth of a second each.
        return True
    return ssl.create_default_context(cafile=receiver.ca_file)


def default_session(receiver: Receiver) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_context(receiver)))


def retry_after_s(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from `now`: delay-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _epoch_ms(iso: str) -> int | None:
    try:
        return int(datetime.fromisoformat(iso).timestamp() * 1000)
    except (TypeError, ValueError):
        return None


async def _call(fn: Callable[..., Awaitable[None] | None], *args: object) -> None:
    # The history and the undelivered topic may be written synchronously or not.
    result = fn(*args)
    if inspect.isawaitable(result):
        await result


class _Answer(NamedTuple):
    status: int | None
    error: str | None
    retry_after: float | None
    timed_out: bool = False


@dataclass(slots=True)
class _Item:
    delivery: Delivery
    future: asyncio.Future[Attempt]


@dataclass(slots=True)
class _Lane:
    receiver: Receiver
    queue: asyncio.Queue[_Item]
    breaker: Breaker
    session: aiohttp.ClientSession | None = None
    task: asyncio.Task[None] | None = None


class Sender:
    """Delivers to each receiver from its own queue; `submit` returns a future of the final attempt.

    The future's result is the last `Attempt` (outcome delivered, rejected or
    exhausted); it carries the exception a callback raised, and is cancelled
    when `close` gives up on the delivery. A payload `render` cannot build is
    `rejected` without a request, as attempt 0.
    """

    def __init__(
        self,
        receivers: Iterable[Receiver],
        *,
        render: Render,
        sign: Sign,
        on_attempt: OnAttempt,
        on_exhausted: OnExhausted,
        metrics: DeliveryMetrics | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        session_factory: SessionFactory = default_session,
        queue_size: int = 1000,
    ) -> None:
        self._lanes: dict[str, _Lane] = {}
        for r in receivers:
            if r.name in self._lanes:
                raise ValueError(f"two receivers named {r.name!r}")
            breaker = Breaker(r.breaker_failures, r.breaker_reset_s, monotonic)
            self._lanes[r.name] = _Lane(r, asyncio.Queue(queue_size), breaker)
        self._render = render
        self._sign = sign
        self._on_attempt = on_attempt
        self._on_exhausted = on_exhausted
        self._metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._session_factory = session_factory
        self._started = False
        self._closing = False
        self._closed = False

    async def start(self) -> None:
        """Open each receiver's session and start its worker (inside the running loop)."""
        if self._started:
            return
        self._started = True
        for lane in self._lanes.values():
            lane.session = self._session_factory(lane.receiver)
            lane.task = asyncio.create_task(self._work(lane), name=f"deliver:{lane.receiver.name}")
            self._show(lane)

    async def __aenter__(self) -> Sender:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def submit(self, delivery: Delivery) -> asyncio.Future[Attempt]:
        """Queue a delivery (waiting while its receiver's queue is full); the future completes
        when it reached a final outcome."""
        if self._closing:
            raise SenderClosed("the sender is closing")
        lane = self._lanes.get(delivery.receiver)
        if lane is None:
            raise KeyError(f"no receiver named {delivery.receiver!r}")
        await self.start()
        future: asyncio.Future[Attempt] = asyncio.get_running_loop().create_future()
        await lane.queue.put(_Item(delivery, future))
        if self._closed:
            # Queued behind a full queue while close() stopped the worker: never sent.
            future.cancel()
        self._show(lane)
        return future

    async def close(self, timeout: float = 10.0) -> None:
        """Stop accepting; give what was submitted `timeout` seconds to finish, cancel the
        rest (their futures cancelled), close the sessions."""
        if self._closing:
            return
        self._closing = True
        lanes = list(self._lanes.values())
        try:
            await asyncio.wait_for(asyncio.gather(*(ln.queue.join() for ln in lanes)), timeout)
        except TimeoutError:
            waiting = {ln.receiver.name: ln.queue.qsize() for ln in lanes if ln.queue.qsize()}
            log.warning("delivery: closing with deliveries unfinished; queued: %s", waiting)
        tasks = [ln.task for ln in lanes if ln.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._closed = True
        for lane in lanes:
            while not lane.queue.empty():
                lane.queue.get_nowait().future.cancel()
                lane.queue.task_done()
            self._show(lane)
            if lane.session is not None:
                await lane.session.close()

    async def _work(self, lane: _Lane) -> None:
        while True:
            item = await lane.queue.get()
            self._show(lane)
            try:
                if not item.future.done():  # the caller may have given up on it
                    result = await self._deliver(lane, item.delivery)
                    if not item.future.done():
                        item.future.set_result(result)
            except asyncio.CancelledError:
                item.future.cancel()
                raise
            except Exception as exc:
                # A callback failed (the history, the undelivered topic): the caller decides.
                log.exception("delivery: %s to %s failed", item.delivery.key, lane.receiver.name)
                if not item.future.done():
                    item.future.set_exception(exc)
            finally:
                lane.queue.task_done()

    async def _deliver(self, lane: _Lane, delivery: Delivery) -> Attempt:
        r = lane.receiver
        try:
            content_type, body = self._render(r.format, delivery.alert)
        except Exception as exc:
            log.exception("delivery: cannot render %s as %s", delivery.key, r.format)
            return await self._finish(
                lane, delivery, 0, "rejected", None, f"render: {type(exc).__name__}"
            )
        last = max(1, r.max_attempts)
        for n in range(1, last + 1):
            while (wait := lane.breaker.wait_s()) > 0:
                self._show(lane)
                await self._sleep(wait)
            self._show(lane)
            answer = await self._post(lane, delivery, content_type, body)
            status = answer.status
            ok = status is not None and 200 <= status < 300
            retryable = not ok and (status is None or status == 429 or status >= 500)
            lane.breaker.record(ok=not retryable)
            self._show(lane)
            if self._metrics is not None:
                cls = status_class(status, answer.timed_out)
                self._metrics.attempts.labels(r.name, cls).inc()
            if ok or not retryable or n == last:
                outcome: Outcome = (
                    "delivered" if ok else "rejected" if not retryable else "exhausted"
                )
                return await self._finish(lane, delivery, n, outcome, status, answer.error)
            await _call(
                self._on_attempt, self._attempt(delivery, n, "retrying", status, answer.error)
            )
            await self._sleep(self._backoff(r, n, answer.retry_after))
        raise AssertionError("unreachable: the last attempt returns")

    async def _finish(
        self,
        lane: _Lane,
        delivery: Delivery,
        n: int,
        outcome: Outcome,
        status: int | None,
        error: str | None,
    ) -> Attempt:
        attempt = self._attempt(delivery, n, outcome, status, error)
        await _call(self._on_attempt, attempt)
        if outcome == "exhausted":
            await _call(self._on_exhausted, delivery, error or "")
        if self._metrics is not None:
            self._metrics.deliveries.labels(lane.receiver.name, outcome).inc()
            if outcome == "delivered":
                self._metrics.latency.labels(lane.receiver.name).observe(attempt.latency_ms / 1000)
        return attempt

    async def _post(
        self, lane: _Lane, delivery: Delivery, content_type: str, body: bytes
    ) -> _Answer:
        r = lane.receiver
        assert lane.session is not None, "start() opens the sessions"
        headers = {
            "Content-Type": content_type,
            "Idempotency-Key": delivery.key,
            "User-Agent": USER_AGENT,
        }
        if r.secret is not None:
            # Signed per attempt: a fresh timestamp keeps a retry inside the receiver's
            # tolerance window, the same webhook-id lets it drop the duplicate.
            headers.update(self._sign(r.secret, delivery.key, int(self._clock()), body))
        try:
            async with lane.session.post(
                r.url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=r.timeout_s),
                # A redirect would carry a signed alert to a host nobody configured.
                allow_redirects=False,
            ) as resp:
                retry_after = None
                if resp.status in (429, 503):
                    retry_after = retry_after_s(resp.headers.get("Retry-After"), self._clock())
                left = _DRAIN_BYTES
                while left > 0 and (chunk := await resp.content.read(left)):
                    left -= len(chunk)
                # The status line only: an answer's body may echo the alert back.
                error = None if 200 <= resp.status < 300 else f"{resp.status} {resp.reason or ''}"
                return _Answer(resp.status, error and error.strip(), retry_after)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return _Answer(None, type(exc).__name__, None, isinstance(exc, TimeoutError))

    def _backoff(self, r: Receiver, n: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, r.backoff_max_s)
        return self._rng() * min(r.backoff_max_s, r.backoff_initial_s * 2.0 ** min(n - 1, 62))

    def _attempt(
        self, delivery: Delivery, n: int, outcome: Outcome, status: int | None, error: str | None
    ) -> Attempt:
        now_ms = int(self._clock() * 1000)
        emitted_ms = _epoch_ms(delivery.alert["emitted_at"])
        return Attempt(
            alert_id=delivery.alert["alert_id"],
            revision=delivery.alert["revision"],
            receiver=delivery.receiver,
            rule_id=delivery.alert["rule_id"],
            attempt=n,
            outcome=outcome,
            at_ms=now_ms,
            latency_ms=max(0, now_ms - emitted_ms) if emitted_ms is not None else 0,
            status=status,
            error=error,
        )

    def _show(self, lane: _Lane) -> None:
        if self._metrics is not None:
            name = lane.receiver.name
            self._metrics.queue_depth.labels(name).set(lane.queue.qsize())
            self._metrics.breaker_state.labels(name).set(BREAKER_STATES[lane.breaker.state])
