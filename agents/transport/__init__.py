"""The worker's Kafka transport: Faust's aiokafka driver with the patches below, one a module.

- `fetch_wait`: the consumer's fetch wait is ours to set (Faust fixes 1.5 s).
- `transactions`: under exactly-once, an output joins the transaction of
  the record that caused it, not of the partition it is written to.
- `batched`: a partition's run of fetched records reaches its stream as one
  message, committed as a whole.
- `reread`: fetched records that Faust or aiokafka skip or drop before
  they are processed are read again.
- `producer_buffer`: a flush of Faust's producer buffer waits for every
  message.
- `changelogs`: table changelog writes go out as one aiokafka batch per
  partition, when the agent chooses.

`consumer.Consumer` and the classes here compose them. Each module quotes
the upstream code it replaces or relies on; tests/unit/agents/test_framework_pins.py
checks that code is still there.

Registered under the URL scheme `xkafka://` by `register`, and as the
`faust.transports` entry point `xkafka` (pyproject.toml). Faust looks a
broker URL's scheme up in its transport registry, aliases first (mode's
`FactoryMapping.by_name`: `symbol_by_name(name, aliases=self.aliases)`), so
an alias added at run time needs no installed entry point.
"""

from __future__ import annotations

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as driver

from agents.transport.batched import BATCHED_TOPICS, Chunk, chunk_message
from agents.transport.changelogs import holding_changelogs, send_held, send_rows
from agents.transport.consumer import Consumer
from agents.transport.fetch_wait import FETCH_MAX_WAIT_MS
from agents.transport.producer_buffer import FlushedBuffer
from agents.transport.transactions import TransactionManager, outputs_of

__all__ = [
    "BATCHED_TOPICS",
    "SCHEME",
    "Chunk",
    "Consumer",
    "Producer",
    "Transport",
    "chunk_message",
    "holding_changelogs",
    "outputs_of",
    "register",
    "send_held",
    "send_rows",
]

SCHEME = "xkafka"


class Producer(FlushedBuffer):
    """Faust's aiokafka producer; its one patch is the buffer (`producer_buffer`)."""


class Transport(driver.Transport):
    Consumer = Consumer
    Producer = Producer
    TransactionManager = TransactionManager


def register(fetch_max_wait_ms: int) -> str:
    """Make `xkafka://` resolve to this transport; returns the scheme."""
    FETCH_MAX_WAIT_MS["value"] = fetch_max_wait_ms
    TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
    return SCHEME
