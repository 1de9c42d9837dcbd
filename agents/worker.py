"""Running the worker: `xborder worker`, and the diagnostics a stalled worker is read by."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from agents.app import create_app, ensure_topics
from agents.ready import READY_PATH, Readiness, serve_metrics
from agents.reload import ConfigReload
from monitor.config.reload import snapshot, watched_files
from monitor.config.runtime import load_runtime
from monitor.config.settings import Settings
from monitor.metrics import Metrics

__all__ = ["run_worker"]

log = logging.getLogger("xborder.worker")


def _flow_state(app: Any) -> str:
    """Where Faust's consumer stands: the first thing to read when a worker stalls."""
    consumer = app.consumer
    try:
        assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in consumer.assignment())
    except Exception as exc:  # not started yet
        assigned = [repr(exc)]
    paused = sorted(f"{tp.topic}:{tp.partition}" for tp in consumer._paused_partitions)
    positions = []
    try:
        subscription = consumer._thread._ensure_consumer()._subscription.subscription
        for tp in sorted(subscription.assignment.tps):
            st = subscription.assignment.state_value(tp)
            pos = st.position if st.has_valid_position else "-"
            flags = ("P" if st.paused else "") + ("R" if st.awaiting_reset else "")
            positions.append(
                f"{tp.topic.rsplit('.', 1)[-1]}:{tp.partition}@{pos}/{st.highwater}{flags}"
            )
    except Exception as exc:  # diagnostics must never fail
        positions.append(repr(exc))
    return (
        f"positions={positions} "
        f"flow_active={consumer.flow_active} can_resume_flow={consumer.can_resume_flow.is_set()} "
        f"flow_control_active={app.flow_control.is_active()} rebalancing={app.rebalancing} "
        f"recovery_completed={app.tables.recovery.completed.is_set()} "
        f"assigned={assigned} paused={paused}"
    )


def _await_chains() -> list[str]:
    """For each task, the whole chain of awaits down to where it waits.

    Asyncio's own task stacks stop at the first async generator, and
    Faust's streams are async generators: this follows them too.
    """
    import asyncio
    import gc

    out = []
    for task in asyncio.all_tasks():
        frames: list[str] = []
        obj: Any = task.get_coro()
        for _ in range(64):
            if obj is None:
                break
            frame = next(
                (getattr(obj, a) for a in ("cr_frame", "ag_frame", "gi_frame") if hasattr(obj, a)),
                None,
            )
            if frame is None:
                # Wrappers (an async generator's asend, a coroutine wrapper)
                # expose what they wrap only to the garbage collector.
                frames.append(type(obj).__name__)
                obj = next(
                    (
                        r
                        for r in gc.get_referents(obj)
                        if any(hasattr(r, a) for a in ("cr_frame", "ag_frame", "gi_frame"))
                    ),
                    None,
                )
                continue
            frames.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
            obj = next(
                (
                    getattr(obj, a)
                    for a in ("cr_await", "ag_await", "gi_yieldfrom")
                    if hasattr(obj, a)
                ),
                None,
            )
        out.append(f"{task.get_name()} " + " > ".join(frames))
    return sorted(out)


class _Worker(faust.Worker):
    """faust.Worker with diagnostics fit for a service, and reloads on SIGHUP.

    `kill -USR1 <pid>` logs the consumer's flow state, then every asyncio
    task's stack (mode's own dump); SIGUSR2 logs the flow state alone
    (mode would enter the debugger, which hangs a worker without a terminal).
    `kill -HUP <pid>` reloads the rules and configuration (agents/reload.py);
    without a handler it would end the worker.
    """

    def __init__(self, app: faust.App, reload: ConfigReload, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.reload = reload

    def install_signal_handlers(self) -> None:
        super().install_signal_handlers()
        self.loop.add_signal_handler(signal.SIGHUP, self.reload.request)

    def _on_sigusr1(self) -> None:
        log.warning("flow state: %s", _flow_state(self.app))
        for line in _await_chains():
            log.warning("await chain: %s", line)
        super()._on_sigusr1()

    def _on_sigusr2(self) -> None:
        log.warning("flow state: %s", _flow_state(self.app))


def run_worker(settings: Settings) -> int:
    """`xborder worker`: load everything (failing fast), serve metrics, run until stopped."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # Before loading: a file changed during the load is then reloaded, not missed.
    stamps = snapshot(watched_files(settings))
    runtime = load_runtime(settings, require_subject_key=True)
    registry = CollectorRegistry()
    metrics = Metrics(registry, platforms=runtime.disclosures.by_platform)
    readiness = Readiness()
    serve_metrics(settings.metrics_port, settings.metrics_host, registry, readiness)
    log.info(
        "metrics on http://%s:%d/metrics, readiness on %s; rules %s; geoip %s",
        settings.metrics_host,
        settings.metrics_port,
        READY_PATH,
        runtime.pack.version,
        runtime.resolver().geoip_build,
    )
    ensure_topics(settings)
    # Faust makes its data directory when it starts, but not the folders above it.
    settings.state_path.mkdir(parents=True, exist_ok=True)
    worker = create_app(settings, runtime, metrics, stamps)
    readiness.watch(worker.app)
    # faust.Worker handles SIGINT/SIGTERM itself: it stops agents, flushes the
    # producer and commits what was processed before exiting.
    fw = _Worker(worker.app, worker.reload, loglevel=settings.log_level.upper(), quiet=True)
    profile = os.environ.get("XBORDER_PROFILE")
    profiler = _start_profiler() if profile else None
    try:
        fw.execute_from_commandline()
    finally:
        # The database running now: a reload may have replaced (and closed) the first.
        worker.reload.close()
        if profiler is not None and profile:
            profiler.stop()
            Path(profile).write_text(
                profiler.output_text(
                    show_all=bool(os.environ.get("XBORDER_PROFILE_ALL")), timeline=False
                )
            )
    return 0


def _start_profiler() -> Any:
    """A sampling profile of the worker's event loop, written at exit (XBORDER_PROFILE=path).

    For measuring where time goes (docs/performance.md); needs pyinstrument,
    a development dependency.
    """
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    return profiler
