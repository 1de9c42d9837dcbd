"""Reloading while the worker runs: on SIGHUP, and when the files change.

The looking and loading (`monitor.config.reload.Reloader.poll`) run in a
thread, so compiling a pack or checking a GeoIP database never holds up the
event loop; only the swap runs on the loop: one assignment of `Context.config`,
between two batches of every agent (they read it once per batch). Nothing on
the data path checks for a reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from agents.context import Context
from monitor.config.reload import Loaded, Outcome, Part, Reloader
from monitor.metrics import Metrics

__all__ = ["ConfigReload", "publish_versions"]

log = logging.getLogger("xborder.reload")


def publish_versions(metrics: Metrics, config: Loaded, app_id: str) -> None:
    """The versions a worker runs, as info metrics (labelled with its application, so
    workers of one consumer group running different versions can be told)."""
    v = config.versions
    metrics.rules_info.info(
        {
            "app_id": app_id,
            "version": v["rules"],
            "disclosures": v["disclosures"],
            "endpoints": v["endpoints"],
            "services": v["services"],
        }
    )
    if v["geoip"]:
        metrics.geoip_build.info({"app_id": app_id, "build_date": v["geoip"]})


@dataclass
class ConfigReload:
    """The worker's reload task: polls every `interval` seconds (0: only when asked)."""

    ctx: Context
    reloader: Reloader
    interval: float
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _forced: bool = False

    def started(self) -> None:
        """The start-up load counts as each part's first successful load."""
        now = time.time()
        metrics = self.ctx.metrics
        for part in self.reloader.parts:
            metrics.config_reload_ok.labels(part).set(1)
            metrics.config_reload_time.labels(part).set(now)
        publish_versions(metrics, self.ctx.config, self.ctx.settings.app_id)

    def request(self) -> None:
        """Reload every part now (SIGHUP)."""
        self._forced = True
        self._wake.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):  # the interval passed: look anyway
                await asyncio.wait_for(self._wake.wait(), self.interval or None)
            self._wake.clear()
            forced, self._forced = self._forced, False
            if forced:
                log.info("config reload: asked (SIGHUP), reloading every part")
            outcome = await asyncio.to_thread(self.reloader.poll, forced)
            if outcome is not None:
                self.apply(outcome)

    def apply(self, outcome: Outcome) -> None:
        """Swap in what was loaded; count, log and publish each part's result."""
        ctx = self.ctx
        before = ctx.config
        ctx.config = outcome.loaded
        metrics = ctx.metrics
        now = time.time()
        for part, why in sorted(outcome.results.items()):
            metrics.config_reloads.labels(part, "error" if why else "success").inc()
            metrics.config_reload_ok.labels(part).set(0 if why else 1)
            if why:
                log.error(
                    "config reload: %s refused, still running %s %s: %s",
                    part,
                    part,
                    _shown(before, part),
                    why,
                )
                continue
            metrics.config_reload_time.labels(part).set(now)
            log.info(
                "config reload: %s %s (was %s)",
                part,
                _shown(outcome.loaded, part),
                _shown(before, part),
            )
        if outcome.replaced is None:
            return
        publish_versions(metrics, outcome.loaded, ctx.settings.app_id)
        old = outcome.replaced.geoip
        if old is not None and old is not outcome.loaded.geoip:
            # Nothing holds the old database any more: agents read the resolver
            # from ctx.config once per batch, and batches run on this loop.
            _close(old)

    def close(self) -> None:
        """Close the GeoIP database running now (at exit)."""
        _close(self.ctx.config.geoip)


def _close(geoip: object) -> None:
    close = getattr(geoip, "close", None)
    if close is not None:
        close()


def _shown(config: Loaded, part: Part) -> str:
    return config.versions[part] or "none"
