"""What the delivery modules share: receivers, one delivery, one attempt's outcome.

An alert is delivered once per revision to each receiver its routes name. The
idempotency key (alert id and revision) is what a receiver drops duplicates by
and what the history answers "already delivered?" with, so a restart never
sends again what a receiver has acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from monitor.alerts.grouping import Alert

__all__ = [
    "FORMATS",
    "OUTCOMES",
    "SEVERITIES",
    "Attempt",
    "Delivery",
    "Format",
    "Outcome",
    "Receiver",
    "idempotency_key",
    "severity_rank",
]

# Lowest first: a receiver's `min_severity` admits its own and every later one.
SEVERITIES: Final = ("low", "medium", "high", "critical")

Format = Literal["native", "cloudevents", "ocsf", "alertmanager"]
FORMATS: Final[tuple[Format, ...]] = ("native", "cloudevents", "ocsf", "alertmanager")

# delivered: the receiver answered 2xx. retrying: a network error, 429 or 5xx,
# another attempt follows. rejected: another 4xx, never retried. exhausted: the
# last attempt failed, the delivery went to the undelivered topic. duplicate:
# the history already had it delivered, nothing was sent.
Outcome = Literal["delivered", "retrying", "rejected", "exhausted", "duplicate"]
OUTCOMES: Final[tuple[Outcome, ...]] = (
    "delivered",
    "retrying",
    "rejected",
    "exhausted",
    "duplicate",
)


def severity_rank(severity: str) -> int:
    """Position in SEVERITIES; an unknown severity ranks above every known one
    (a rule pack's new severity is delivered rather than dropped)."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        return len(SEVERITIES)


@dataclass(frozen=True, slots=True)
class Receiver:
    """A destination of alerts, as configured (the secret read from env or file)."""

    name: str
    url: str
    format: Format = "native"
    min_severity: str = "low"
    secret: bytes | None = None  # HMAC key; never in the config file or in logs
    tls_verify: bool = True
    ca_file: str | None = None
    timeout_s: float = 10.0
    max_attempts: int = 8
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0
    breaker_failures: int = 5  # consecutive failures that open the breaker
    breaker_reset_s: float = 30.0  # open this long, then one trial request

    def __repr__(self) -> str:
        # The secret never reaches a log line through a repr.
        return f"Receiver(name={self.name!r}, format={self.format!r})"


def idempotency_key(alert: Alert) -> str:
    """The same alert revision gives the same key, on every attempt and after restarts."""
    return f"{alert['alert_id']}.{alert['revision']}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One alert revision on its way to one receiver."""

    alert: Alert
    receiver: str

    @property
    def key(self) -> str:
        return idempotency_key(self.alert)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt's outcome, as the history keeps it (no payload, no personal data)."""

    alert_id: str
    revision: int
    receiver: str
    rule_id: str
    attempt: int  # 1 for the first
    outcome: Outcome
    at_ms: int  # wall clock when the attempt ended
    latency_ms: int  # from the alert's emission to this outcome
    status: int | None = None  # HTTP status, None on a network error
    error: str | None = None  # short text: status line or exception class, never a body
