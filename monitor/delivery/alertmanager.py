"""Alerts as Alertmanager API v2 alerts (POST {alertmanager}/api/v2/alerts).

Prometheus metrics cannot say which alert fired: their labels never carry
alert ids (cardinality, and no per-alert data in labels). So the notifier
posts each alert to Alertmanager itself, one Alertmanager alert per
`alert_id`, and Alertmanager's routes (deploy/alertmanager/) take it to case
officers by severity.

Labels identify the finding and drive routing, so they hold only what is the
same in every revision of an alert: a re-post (a later revision) then has the
same fingerprint and updates the alert Alertmanager holds instead of adding
another. Counts and times, which change, go in annotations.
"""

from __future__ import annotations

from datetime import datetime
from time import time
from typing import Final, NotRequired, TypedDict

import orjson

from monitor.alerts.grouping import Alert, iso_ms

__all__ = [
    "ALERTNAME",
    "CONTENT_TYPE",
    "DEFAULT_RESOLVE_AFTER_S",
    "SOURCE",
    "PostableAlert",
    "render_alertmanager",
    "to_alertmanager",
]

ALERTNAME: Final = "XborderFinding"
SOURCE: Final = "xborder-monitor"
CONTENT_TYPE: Final = "application/json"

# Alertmanager resolves an alert that is not re-posted before its endsAt. A
# finding is a record, not a condition that clears, so it stays active for the
# default grouping window (a calendar day): the alert can still grow in that
# time and each revision re-posted pushes endsAt on. Shorter, and a group's
# next notification would no longer list it; the findings routes'
# repeat_interval is longer, so an alert left alone is notified once.
DEFAULT_RESOLVE_AFTER_S: Final = 24 * 3600


class PostableAlert(TypedDict):
    """One element of the API's `postableAlerts` array."""

    labels: dict[str, str]
    annotations: dict[str, str]
    startsAt: str
    endsAt: str
    generatorURL: NotRequired[str]


def _ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts).timestamp() * 1000)


def _summary(alert: Alert) -> str:
    counts = (
        f"{alert['event_count']} events, {alert['records']} records, {alert['bytes']} bytes"
        f" from {alert['first_seen']} to {alert['last_seen']}"
    )
    if alert["truncated"]:
        counts += " (a bound was reached: counts are saturated or labels cut)"
    return counts


def to_alertmanager(
    alert: Alert, *, link: str | None, resolve_after_s: int, now_ms: int | None = None
) -> list[PostableAlert]:
    """The body of one POST to /api/v2/alerts for one alert (a list of one).

    startsAt is the first record's event time. endsAt is `resolve_after_s`
    after the later of now (`now_ms`, the wall clock by default) and the
    last record's event time: from now, because a delivery retried or
    replayed long after the alert was emitted must still arrive active (an
    alert posted already resolved is never notified to a receiver that does
    not send resolved alerts); never before the last record, because
    Alertmanager rejects an alert that ends before it starts, and event
    times may run ahead of the clock.
    """
    now = int(time() * 1000) if now_ms is None else now_ms
    labels = {
        "alertname": ALERTNAME,
        "alert_id": alert["alert_id"],
        "rule_id": alert["rule_id"],
        "severity": alert["severity"],
        "platform": alert["platform"],
        "src_country": alert["src_country"],
        "dst_country": alert["dst_country"],
        "source": SOURCE,
    }
    annotations = {
        "title": alert["title"],
        "legal_ref": alert["legal_ref"],
        "summary": _summary(alert),
        # An annotation, not a label: it grows as records arrive, and a label
        # that changes would make Alertmanager see another alert.
        "dst_orgs": "; ".join(alert.get("dst_orgs", ())) or None,
        # Alertmanager notifies again when a group's set of alerts changes, not
        # when an alert's annotations do: this says how current the counts are.
        "revision": str(alert["revision"]),
        "link": link,
    }
    out: PostableAlert = {
        # A rule not grouping by a field leaves it empty: an empty label is
        # no label to Alertmanager, so it is left out rather than sent as "".
        "labels": {k: v for k, v in labels.items() if v},
        "annotations": {k: v for k, v in annotations.items() if v},
        "startsAt": alert["first_seen"],
        "endsAt": iso_ms(max(now, _ms(alert["last_seen"])) + resolve_after_s * 1000),
    }
    if link:
        out["generatorURL"] = link
    return [out]


def render_alertmanager(
    alert: Alert, link: str | None = None, *, resolve_after_s: int = DEFAULT_RESOLVE_AFTER_S
) -> tuple[str, bytes]:
    """Content type and body for Alertmanager, as the payload renderers return them."""
    body = to_alertmanager(alert, link=link, resolve_after_s=resolve_after_s)
    return CONTENT_TYPE, orjson.dumps(body)
