"""`/ready` beside `/metrics`: whether this replica holds partitions and has recovered its tables.

Kubernetes keeps a rolling update waiting on it (a new pod counts only once it
owns partitions with their state loaded, not as soon as its process serves
metrics); liveness stays on `/metrics`, which answers from start-up.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import CollectorRegistry, make_wsgi_app

__all__ = ["READY_PATH", "Readiness", "serve_metrics"]

READY_PATH = "/ready"


class Readiness:
    """The last answer the event loop worked out, read by the metrics server's threads.

    The consumer and its recovery are only touched on the event loop (`update`,
    from a Faust timer): the HTTP threads read one attribute, never Faust's
    objects mid-rebalance.
    """

    def __init__(self) -> None:
        self.reason: str | None = "starting"  # None: ready

    def update(self, app: Any) -> None:
        try:
            assigned = bool(app.consumer.assignment())
        except Exception:  # consumer not started yet
            assigned = False
        recovery = app.tables.recovery
        if not assigned:
            # Also a replica beyond the partition count: it would sit idle.
            self.reason = "no partitions assigned"
        elif recovery.in_recovery or not recovery.completed.is_set():
            self.reason = "recovering tables from their changelogs"
        else:
            self.reason = None

    def watch(self, app: Any, interval: float = 1.0) -> None:
        """Re-check every `interval` seconds on the app's event loop, once it runs."""

        async def check() -> None:
            self.update(app)

        app.timer(interval, name="readiness")(check)

    def wrap(self, metrics_app: WSGIApplication) -> WSGIApplication:
        def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            if environ.get("PATH_INFO") != READY_PATH:
                return metrics_app(environ, start_response)
            reason = self.reason
            status = "200 OK" if reason is None else "503 Service Unavailable"
            body = b"ready\n" if reason is None else f"not ready: {reason}\n".encode()
            start_response(
                status,
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
            )
            return [body]

        return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in flight never holds up the worker's exit


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a line per probe and scrape would drown the worker's log


def serve_metrics(
    port: int, host: str, registry: CollectorRegistry, readiness: Readiness
) -> WSGIServer:
    """Serve `/ready` and, on every other path, the metrics, from a daemon thread.

    Returns the server (`server_port`, `shutdown()`). Not prometheus_client's
    `start_http_server`: its app cannot be wrapped before it starts serving, and
    a probe in between would read metrics as "ready".
    """
    server_class = _Server6 if ":" in host else _Server
    httpd = make_server(
        host, port, readiness.wrap(make_wsgi_app(registry)), server_class, _QuietHandler
    )
    threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True).start()
    return httpd
