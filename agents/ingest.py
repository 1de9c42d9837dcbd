"""The ingest agent: telemetry in; dead letters, hits and routed state items out.

telemetry.* --ingest--> <app>-state (by state key)
                   \\--> <app>-hits (by group key)
                    \\--> monitor.dead-letters

Topics of other formats (XBORDER_INPUT_FORMATS) come in beside telemetry.*,
each message read in its topic's format.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import orjson

from agents.context import Context, source_of
from agents.transport import Chunk, outputs_of
from monitor.contract.formats import FormatOptions
from monitor.contract.schemas import KafkaSource
from monitor.detect.stages import ingest

__all__ = ["IngestAgent"]


@dataclass
class IngestAgent:
    ctx: Context
    # What topics of other formats do not say (XBORDER_INPUT_FORMATS).
    format_options: FormatOptions = field(default_factory=FormatOptions)

    async def run(self, stream: Any) -> None:
        settings = self.ctx.settings
        async for events in stream.take_events(settings.batch_size, within=settings.batch_timeout):
            started = time.perf_counter()
            for tp, part in self.by_source(events):
                with outputs_of(tp) if tp is not None else nullcontext():
                    await self.ingest_events(part)
            self.ctx.metrics.processing.labels("ingest").observe(time.perf_counter() - started)

    def by_source(self, events: list[Any]) -> Iterator[tuple[Any, list[Any]]]:
        # Under exactly_once each record's outputs must ride the transaction
        # of the partition it was read from, so a batch is split by source.
        if self.ctx.settings.processing_guarantee != "exactly_once":
            yield None, events
            return
        parts: dict[Any, list[Any]] = {}
        for ev in events:
            parts.setdefault(ev.message.tp, []).append(ev)
        yield from parts.items()

    async def ingest_events(self, events: list[Any]) -> None:
        ctx = self.ctx
        messages: list[tuple[bytes | None, KafkaSource]] = []
        counts: Counter[str] = Counter()
        for ev in events:
            # A run of a partition's records arrives as one event (transport.Chunk).
            value = ev.value
            for m in value.messages if isinstance(value, Chunk) else (ev.message,):
                counts[m.topic] += 1
                messages.append((m.value, source_of(m)))
        for topic, count in counts.items():
            ctx.metrics.messages_in.labels(topic).inc(count)
        config = ctx.config
        out = ingest(
            messages,
            config.pack,
            config.resolver,
            ctx.partitions,
            ctx.metrics,
            max_skew_ms=int(ctx.settings.max_clock_skew * 1000),
            mask_dead_letters=ctx.settings.dead_letter_mask,
            input_formats=ctx.settings.input_formats,
            format_options=self.format_options,
            services=config.services,
        )
        for letter in out.dead_letters:
            await ctx.topics.dead_letters.send(value=orjson.dumps(letter))
        await ctx.send_batches(ctx.topics.hits, out.hits)
        await ctx.send_batches(ctx.topics.state, out.routed)
