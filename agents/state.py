"""The state agent: routed items of stateful rules in, their hits out.

    <app>-state --state--> <app>-hits (by group key)

One message is one partition's batch: table writes land in that partition's
changelog, where recovery expects them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, cast

from agents import transport
from agents.context import INFRASTRUCTURE, Context, batch_items, source_of
from agents.stores import TableSeen, TableStore
from agents.sweep import StreamTime, TableSweep
from monitor.detect.stages import Failures, RoutedItem, apply_routed
from monitor.engine.ruletypes import StateValue

__all__ = ["StateAgent"]


@dataclass
class StateAgent:
    ctx: Context
    app: Any  # the Faust app, for its producer
    store: TableStore[StateValue]
    seen: TableSeen
    changelog: str  # the state table's changelog topic
    sweep: TableSweep[StateValue]
    stream_time: StreamTime
    # How held changelog writes and direct rows are sent (tests send them without a broker).
    send_held: Any = transport.send_held
    send_rows: Any = transport.send_rows

    async def run(self, stream: Any) -> None:
        ctx = self.ctx
        async for event in stream.events():
            started = time.perf_counter()
            # Written by the ingest agent (IngestOutput.routed).
            items = cast(list[RoutedItem], batch_items(event.value))
            self.stream_time.advance(event.message.partition, items)
            # Under at-least-once, hits and changelog are independent sends; a
            # crash could save state without its hits, and the redelivered
            # record, then a duplicate, would emit nothing: the hits lost for
            # good. So the changelog goes out once the hits are on the broker.
            # State behind its hits is redone on redelivery; hits are idempotent.
            partition = event.message.partition
            failures = Failures(source_of(event.message), passthrough=INFRASTRUCTURE)
            pack = ctx.pack
            with transport.holding_changelogs(self.app.producer) as changelog:
                hits = apply_routed(items, pack, self.store, self.seen, ctx.partitions, failures)
            rows = self.store.take_rows()
            await ctx.send_failures("state", failures)
            await asyncio.gather(*await ctx.send_batches(ctx.topics.hits, hits))
            await self.send_held(self.app.producer, changelog)
            await self.send_rows(self.app.producer, self.changelog, partition, rows)
            if self.sweep.due(partition):
                self.sweep.run(partition, self.stream_time.horizon(partition), pack)
            ctx.metrics.processing.labels("state").observe(time.perf_counter() - started)
