"""Prometheus metrics. The registry is passed in; every label has a bounded set of values.

Labels are countries (ISO alpha-2 or `unresolved`), data categories cut to
their first two levels and limited to the known taxonomy, platforms named in
the disclosures file (any other is `other`), the contract's legal bases,
kinds, reason codes, rule ids, severities and configured topics: never
addresses, ids or hosts. The catalogue: docs/metrics.md.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.bounds import BOUND_NAMES, REACHED
from monitor.contract.countries import ISO_ALPHA2
from monitor.contract.schemas import LEGAL_BASES

__all__ = [
    "CATEGORY_LABELS",
    "LEGAL_BASIS_LABELS",
    "OTHER_PLATFORM",
    "STAGES",
    "Metrics",
    "category_label",
    "country_label",
    "legal_basis_label",
    "observe_many",
    "personal_categories",
]

OTHER_PLATFORM: Final = "other"
# An API call that names no legal basis is `absent` (the contract's `none` is
# a basis stated as none); egress telemetry has no such field, and counting it
# as `absent` would read as a missing ground where none could be stated.
LEGAL_BASIS_LABELS: Final = LEGAL_BASES | {"absent", "not_applicable"}
STAGES: Final = ("ingest", "state", "group")

# Second-level fideslang user categories; anything else is `other`.
CATEGORY_LABELS: Final = frozenset(
    {
        "user.account", "user.authorization", "user.behavior", "user.biometric",
        "user.childrens", "user.contact", "user.content", "user.criminal_history",
        "user.demographic", "user.device", "user.financial", "user.government_id",
        "user.health_and_medical", "user.location", "user.name", "user.payment",
        "user.privacy_preferences", "user.sensor", "user.social", "user.unique_id",
        "user.workplace", "user",
    }
)  # fmt: skip

_LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_LAG_BUCKETS: Final = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 21600, 86400)


def country_label(code: str | None) -> str:
    return code if code is not None and code in ISO_ALPHA2 else "unresolved"


def legal_basis_label(kind: str, value: str | None) -> str:
    if kind != "api_call":
        return "not_applicable"
    return value if value is not None and value in LEGAL_BASES else "absent"


def category_label(label: str) -> str:
    parts = label.split(".")
    cut = ".".join(parts[:2])
    return cut if cut in CATEGORY_LABELS else "other"


def observe_many(histogram: Histogram, amounts: Sequence[float]) -> None:
    """`histogram.observe` of each amount, with one increment per bucket touched.

    A histogram observation takes a lock and walks the buckets: per record,
    it cost more than evaluating the record's rules. This writes the same
    bucket and sum values through the histogram's own value objects, as
    prometheus-client 0.26 (pinned) keeps them.
    """
    if not amounts:
        return
    bounds = histogram._upper_bounds
    for i, n in Tally(bisect_left(bounds, a) for a in amounts).items():
        histogram._buckets[i].inc(n)
    histogram._sum.inc(sum(amounts))


def personal_categories(labels: Iterable[str]) -> set[str]:
    """The category labels of a record's personal (user.*) data, cut to the taxonomy."""
    return {category_label(c) for c in labels if c == "user" or c.startswith("user.")}


class BoundsCollector(Collector):
    """`xborder_bounds_reached_total{bound}`: read from monitor.bounds when scraped.

    The core counts in a plain Counter (no metric call on the data path).
    """

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "xborder_bounds_reached",
            "Times a bound of monitor.bounds was reached (sum saturated, list cut)",
            labels=["bound"],
        )
        for name in BOUND_NAMES:
            family.add_metric([name], REACHED[name])
        return [family]


class Metrics:
    """Every metric the monitor exports, registered on the given registry.

    `platforms`: those the `platform` label names (the disclosures file's);
    any other platform is counted as `other`.
    """

    def __init__(self, registry: CollectorRegistry, platforms: Iterable[str] = ()) -> None:
        self.registry = registry
        self.platforms = frozenset(platforms)
        self.messages_in = Counter(
            "xborder_messages_in", "Kafka messages consumed", ["topic"], registry=registry
        )
        self.records_in = Counter(
            "xborder_records_in", "Valid telemetry records decoded", ["kind"], registry=registry
        )
        self.records_out = Counter(
            "xborder_records_out",
            "Records fully evaluated against the rule pack",
            ["kind"],
            registry=registry,
        )
        self.lines_skipped = Counter(
            "xborder_lines_skipped",
            "Lines of other input formats that are no transfer (a VPC NODATA record, a "
            "blocked flow), by format and reason",
            ["format", "reason"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "xborder_dead_letters",
            "Invalid records sent to dead letters",
            ["reason"],
            registry=registry,
        )
        self.alerts = Counter(
            "xborder_alerts",
            "Alert emissions (action: new or update), by rule, platform and destination",
            ["rule_id", "severity", "action", "platform", "dst_country"],
            registry=registry,
        )
        self.transfers = Counter(
            "xborder_personal_transfers",
            "Personal-data transfers (records of telemetry), by platform, source, destination "
            "and category",
            ["platform", "src_country", "dst_country", "category"],
            registry=registry,
        )
        self.personal_records = Counter(
            "xborder_personal_records",
            "Personal-data records carried (the records field), by platform, source and "
            "destination country and legal basis",
            ["platform", "src_country", "dst_country", "legal_basis"],
            registry=registry,
        )
        self.transfer_bytes = Counter(
            "xborder_personal_transfer_bytes",
            "Bytes of personal-data flows, by platform, source and destination country",
            ["platform", "src_country", "dst_country"],
            registry=registry,
        )
        self.geoip_misses = Counter(
            "xborder_geoip_misses",
            "Addresses the GeoIP database could not place",
            registry=registry,
        )
        self.processing = Histogram(
            "xborder_processing_seconds",
            "Time from receiving a message to having produced its outputs",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.event_lag = Histogram(
            "xborder_event_lag_seconds",
            "Wall-clock time minus the record's event time, when processed",
            buckets=_LAG_BUCKETS,
            registry=registry,
        )
        # Info metrics: exported as xborder_geoip_build_info{build_date=...} 1.
        self.geoip_build = Info(
            "xborder_geoip_build", "Build date of the GeoIP database in use", registry=registry
        )
        self.rules_info = Info(
            "xborder_rules",
            "Rule pack version in use, digests of the disclosures, endpoint registry and "
            "service registry it reads, and the application (consumer group) of the worker",
            registry=registry,
        )
        # Reloads while the worker runs (agents/reload.py); `what` is a part:
        # rules, disclosures, endpoints or geoip.
        self.config_reloads = Counter(
            "xborder_config_reloads",
            "Reloads of a part of the configuration (result: success, or error: the "
            "previous version kept)",
            ["what", "result"],
            registry=registry,
        )
        self.config_reload_ok = Gauge(
            "xborder_config_last_reload_successful",
            "1 when the last load of the part succeeded, 0 when its files on disk were refused",
            ["what"],
            registry=registry,
        )
        self.config_reload_time = Gauge(
            "xborder_config_last_reload_success_timestamp_seconds",
            "When the part running now was loaded (start-up or reload)",
            ["what"],
            registry=registry,
        )
        self.open_groups = Gauge(
            "xborder_open_alert_groups",
            "Alert groups currently open in this worker",
            registry=registry,
        )
        self.processing_errors = Counter(
            "xborder_processing_errors",
            "Records or items a stage raised on, dead-lettered as processing_error",
            ["stage"],
            registry=registry,
        )
        # Exported at 0 from the start: a series born at its first error would
        # hide that error from increase() and rate().
        for stage in STAGES:
            self.processing_errors.labels(stage)
        self.consumer_lag = Gauge(
            "xborder_consumer_lag_records",
            "Records behind on the partitions this worker consumes: log end minus committed "
            "offset, summed per topic",
            ["topic"],
            registry=registry,
        )
        registry.register(BoundsCollector())

    def platform_label(self, platform: str | None) -> str:
        return platform if platform is not None and platform in self.platforms else OTHER_PLATFORM
