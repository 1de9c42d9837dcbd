"""Prometheus metrics of alert delivery. Labels: the receiver's configured name,
the outcome and the status class; never an alert id, a URL or a payload."""

from __future__ import annotations

from typing import Final, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["BREAKER_STATES", "BreakerState", "DeliveryMetrics", "status_class"]

BreakerState = Literal["closed", "half_open", "open"]
# The gauge's value: a dashboard can alert on `> 0` and tell open from half-open.
BREAKER_STATES: Final[dict[BreakerState, int]] = {"closed": 0, "half_open": 1, "open": 2}

# Emission to delivered spans seconds (a healthy receiver) to hours (a long
# outage drained through the breaker), so the buckets do too.
_LATENCY_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400)


def status_class(status: int | None, timed_out: bool = False) -> str:
    """`1xx` .. `5xx` for an answer; `timeout` or `network` when none came."""
    if status is not None:
        return f"{min(max(status // 100, 1), 5)}xx"
    return "timeout" if timed_out else "network"


class DeliveryMetrics:
    """Every delivery metric, registered on the given registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "xborder_deliveries",
            "Deliveries that reached a final outcome (delivered, rejected, exhausted)",
            ["receiver", "outcome"],
            registry=registry,
        )
        self.attempts = Counter(
            "xborder_delivery_attempts",
            "HTTP attempts, by the class of the answer (or timeout, network)",
            ["receiver", "status_class"],
            registry=registry,
        )
        self.latency = Histogram(
            "xborder_delivery_latency_seconds",
            "Time from the alert's emission to the receiver's 2xx",
            ["receiver"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "xborder_delivery_queue_depth",
            "Deliveries waiting in a receiver's queue (the one being attempted not counted)",
            ["receiver"],
            registry=registry,
        )
        self.breaker_state = Gauge(
            "xborder_delivery_breaker_state",
            "A receiver's circuit breaker: 0 closed, 1 half-open, 2 open",
            ["receiver"],
            registry=registry,
        )
