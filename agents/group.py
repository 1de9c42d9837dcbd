"""The group agent: hits in, alerts out; and the timer that sends updates held back.

<app>-hits --group--> monitor.alerts
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from agents.context import INFRASTRUCTURE, Context, batch_items, source_of
from agents.sweep import StreamTime, TableSweep
from monitor.alerts.grouping import AlertGrouper, Groups, build_alert
from monitor.detect.stages import Emission, Failures, UpdateLimiter, group_hits
from monitor.engine.model import Hit
from monitor.metrics import country_label

__all__ = ["GroupAgent", "open_groups"]


def open_groups(value: Groups) -> int:
    """Alert groups in a value of the groups table."""
    return len(value["groups"])


@dataclass
class GroupAgent:
    ctx: Context
    table: Any  # the groups table
    grouper: AlertGrouper
    limiter: UpdateLimiter
    sweep: TableSweep[Groups]
    stream_time: StreamTime
    # Partitions whose unsent updates were looked for since this process started.
    scanned: set[int] = field(default_factory=set)

    async def run(self, stream: Any) -> None:
        ctx = self.ctx
        async for event in stream.events():
            started = time.perf_counter()
            # Written by the ingest and state agents (IngestOutput.hits, apply_routed).
            hits = cast(list[Hit], batch_items(event.value))
            self.stream_time.advance(event.message.partition, hits)
            now = time.time()
            sent = []
            failures = Failures(source_of(event.message), passthrough=INFRASTRUCTURE)
            config = ctx.config
            emissions = group_hits(
                hits, config.pack, self.grouper, config.alert_context, now, failures
            )
            await ctx.send_failures("group", failures)
            for emission in emissions:
                if self.limiter.admit(emission.alert_id, emission.group_key, emission.is_new, now):
                    sent.append((emission, await self.emit(emission)))
            if sent:
                # A group is marked emitted only once its alert is on the
                # broker: the table's changelog and the alert are separate
                # writes, and after a crash between them an alert marked
                # emitted but never delivered would be lost for good.
                await asyncio.gather(*(delivery for _, delivery in sent))
                for emission, _ in sent:
                    self.mark_emitted(emission.group_key, emission.alert_id)
            partition = event.message.partition
            if partition not in self.scanned:
                self.scanned.add(partition)
                self.hold_unsent(partition)
            if self.sweep.due(partition):
                self.sweep.run(partition, self.stream_time.horizon(partition), config.pack)
                ctx.metrics.open_groups.set(sum(self.sweep.sizes.values()))
            ctx.metrics.processing.labels("group").observe(time.perf_counter() - started)

    def hold_unsent(self, partition: int) -> None:
        """After a restart: updates that were held back and never sent."""
        for key, value in self.sweep.entries(partition)[0]:
            for g in value["groups"]:
                if g.get("emitted_rev") != g["revision"]:
                    self.limiter.hold(g["alert_id"], key)

    async def emit(self, emission: Emission) -> Any:
        """Send an alert; returns the future of its delivery."""
        delivery = await self.ctx.topics.alerts.send(
            key=emission.alert_id.encode(), value=orjson.dumps(emission.alert)
        )
        action = "new" if emission.is_new else "update"
        metrics = self.ctx.metrics
        alert = emission.alert
        metrics.alerts.labels(
            emission.rule_id,
            emission.severity,
            action,
            metrics.platform_label(alert["platform"]),
            country_label(alert["dst_country"]),
        ).inc()
        return delivery

    def mark_emitted(self, key: str, alert_id: str) -> None:
        value: Groups | None = self.table.get(key)
        for g in value["groups"] if value else ():
            if g["alert_id"] == alert_id and g.get("emitted_rev") != g["revision"]:
                g["emitted_rev"] = g["revision"]
                self.table[key] = value

    async def flush_held_updates(self) -> None:
        """Send the updates the limiter held back, now due (a timer)."""
        now = time.time()
        config = self.ctx.config
        for alert_id, key in self.limiter.due(now):
            value: Groups | None = self.table.get(key)
            groups = value["groups"] if value else []
            group = next((g for g in groups if g["alert_id"] == alert_id), None)
            rule = config.pack.by_id.get(group["rule"]) if group is not None else None
            if group is None or rule is None:
                continue  # expired meanwhile, or its rule left the pack in a reload
            alert = build_alert(rule, group, config.alert_context, int(now * 1000))
            await self.emit(Emission(alert_id, alert, False, rule.id, rule.severity, key))
