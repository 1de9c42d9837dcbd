"""The reference receiver: what a case officers' system does with a signed alert.

It answers POST on any path. A request is accepted when its signature verifies
and its timestamp is within the tolerance; 401 otherwise, and 401 too for a
replay: the same `webhook-id` with the same signature it already accepted.
Accepted pairs are kept for the tolerance window and then dropped, since by
then the timestamp they carry is refused as stale anyway. A retry (the same
id, a fresh timestamp and signature) is answered 200 but stored once: receivers
drop duplicates by webhook-id, the sender's idempotency key.

What it accepts is appended to a JSON Lines store, and one short line per
alert goes to standard output. `xborder receive` runs it (monitor/cli/receive.py);
tests start it in process with `make_app` or `start`.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

import orjson
from aiohttp import web

from monitor.delivery.signing import Secrets, SignatureError, Verified, verify_message
from monitor.errors import XborderError

__all__ = [
    "Inbox",
    "ReceiverConfig",
    "alert_lines",
    "make_app",
    "serve",
    "start",
]

log = logging.getLogger(__name__)

_CLOUDEVENTS: Final = "application/cloudevents+json"


@dataclass
class ReceiverConfig:
    secret: Secrets
    store: Path | None = None  # JSON Lines; None keeps accepted ids in memory only
    tolerance_s: float = 300
    out: IO[str] = field(default_factory=lambda: sys.stdout)  # one line per alert
    clock: Callable[[], float] = time.time


def _iso(now: float) -> str:
    return (
        datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


class Inbox:
    """What the receiver has accepted: ids stored, (id, signature) pairs in the window."""

    def __init__(self, config: ReceiverConfig) -> None:
        self.config = config
        self.stored: set[str] = set()
        self._pairs: set[tuple[str, str]] = set()
        self._expiry: list[tuple[float, tuple[str, str]]] = []  # heap, soonest first
        self._file: IO[bytes] | None = None
        if config.store is not None:
            self._file = self._open(config.store)

    def _open(self, path: Path) -> IO[bytes]:
        """The store for appending, after reading back what it holds: a restart keeps
        dropping duplicates, and refusing replays of what came within the window."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            f = path.open("a+b")
        except OSError as e:
            raise XborderError(f"cannot open the store {path}: {e.strerror or e}") from None
        try:
            f.seek(0)
            last = b"\n"
            for line in f:
                last = line
                try:
                    r = orjson.loads(line)
                    self.stored.add(r["webhook_id"])
                    self.remember(Verified(r["webhook_id"], r["webhook_timestamp"], r["signature"]))
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue  # a line a crash cut short: its sender retries it
            if not last.endswith(b"\n"):
                f.write(b"\n")  # the next record starts on a line of its own
        except OSError as e:
            f.close()
            raise XborderError(f"cannot read the store {path}: {e.strerror or e}") from None
        return f

    def replayed(self, v: Verified, now: float) -> bool:
        while self._expiry and self._expiry[0][0] < now:
            self._pairs.discard(heapq.heappop(self._expiry)[1])
        return (v.msg_id, v.signature) in self._pairs

    def remember(self, v: Verified) -> None:
        pair = (v.msg_id, v.signature)
        if pair not in self._pairs:
            self._pairs.add(pair)
            heapq.heappush(self._expiry, (v.timestamp + self.config.tolerance_s, pair))

    def store(self, v: Verified, content_type: str, body: Any, now: float) -> None:
        record = {
            "received_at": _iso(now),
            "webhook_id": v.msg_id,
            # With the id, what a replay repeats: refused after a restart too.
            "webhook_timestamp": v.timestamp,
            "signature": v.signature,
            "content_type": content_type,
            "body": body,
        }
        if self._file is not None:
            self._file.write(orjson.dumps(record) + b"\n")
            self._file.flush()
        self.stored.add(v.msg_id)
        self.remember(v)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


INBOX: Final = web.AppKey("inbox", Inbox)


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(key)
    return doc


def _alerts(content_type: str, body: Any) -> Iterator[Mapping[str, Any]]:
    """Each alert a body carries, as the fields of one line, whichever format it came in."""
    if content_type == _CLOUDEVENTS or _get(body, "specversion"):
        yield from _alerts("application/json", _get(body, "data"))
    elif _get(body, "class_uid") is not None:  # OCSF
        extra = _get(body, "unmapped") or {}
        yield {
            **extra,
            "alert_id": _get(body, "finding_info", "uid"),
            "rule_id": (_get(body, "finding_info", "types") or [None])[0],
            "severity": str(_get(body, "severity") or "").lower() or None,
        }
    elif isinstance(_get(body, "alerts"), list):  # Alertmanager's webhook
        for alert in body["alerts"]:
            labels = _get(alert, "labels") or {}
            yield {**labels, "rule_id": labels.get("rule_id") or labels.get("alertname")}
    elif isinstance(body, Mapping):
        yield body


def alert_lines(content_type: str, body: Any) -> list[str]:
    """One short line per alert: id, revision, rule, severity, platform, countries."""
    lines = []
    for a in _alerts(content_type, body):
        route = f"{a.get('src_country') or '??'}->{a.get('dst_country') or '??'}"
        lines.append(
            f"alert {a.get('alert_id') or '?'} rev {a.get('revision') or '?'} "
            f"{a.get('rule_id') or '?'} {a.get('severity') or '?'} "
            f"{a.get('platform') or '?'} {route}"
        )
    return lines


def _refuse(status: int, reason: str) -> web.Response:
    log.warning("refused (%d): %s", status, reason)
    return web.json_response({"status": "refused", "reason": reason}, status=status)


async def _receive(request: web.Request) -> web.Response:
    inbox = request.app[INBOX]
    config = inbox.config
    body = await request.read()
    now = config.clock()
    try:
        v = verify_message(config.secret, request.headers, body, now, config.tolerance_s)
    except SignatureError as e:
        return _refuse(401, e.reason)
    if inbox.replayed(v, now):
        return _refuse(401, "replayed: this webhook-id and signature were already accepted")
    if v.msg_id in inbox.stored:
        inbox.remember(v)
        return web.json_response({"status": "duplicate", "webhook_id": v.msg_id})
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _refuse(400, "body is not JSON")
    inbox.store(v, request.content_type, doc, now)
    for line in alert_lines(request.content_type, doc):
        print(line, file=config.out, flush=True)
    return web.json_response({"status": "stored", "webhook_id": v.msg_id})


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "stored": len(request.app[INBOX].stored)})


def make_app(config: ReceiverConfig) -> web.Application:
    """The receiver as an aiohttp application (aiohttp's test client takes it as is)."""
    app = web.Application()
    inbox = Inbox(config)
    app[INBOX] = inbox

    async def close(_: web.Application) -> None:
        inbox.close()

    app.on_cleanup.append(close)
    app.router.add_get("/healthz", _health)
    app.router.add_post("/{path:.*}", _receive)
    return app


async def start(
    config: ReceiverConfig, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Listening: the runner (`await runner.cleanup()` stops it) and the URL it answers on.

    Port 0 takes a free one; the URL says which.
    """
    # No access log: a line per request would name senders' addresses, and the
    # accepted alerts already have their line.
    runner = web.AppRunner(make_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        raise XborderError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return runner, f"http://{shown}:{bound_port}/"


async def serve(config: ReceiverConfig, host: str, port: int, ready: Callable[[str], None]) -> None:
    """Run until SIGINT or SIGTERM; `ready` gets the URL once it listens."""
    runner, url = await start(config, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        ready(url)
        await stop.wait()
    finally:
        await runner.cleanup()
