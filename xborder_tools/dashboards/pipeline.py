"""The operators' dashboard: what comes in, what is rejected, how far behind the workers
are, how fast they process, what GeoIP cannot place, and whether alerts reach receivers."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders import statetimeline
from grafana_foundation_sdk.models import dashboard as dash_models

from xborder_tools.dashboards.panels import (
    PanelBuilder,
    framed,
    label_stat,
    new_dashboard,
    query,
    rule_pack_panel,
    stat_panel,
    timeseries_panel,
)

__all__ = ["UID", "pipeline_dashboard"]

UID = "xborder-pipeline"

RATE = "[$__rate_interval]"
PER_SECOND = "suffix: /s"


def _percentiles(bucket: str, by: str, legend: str) -> list[prom.Dataquery]:
    """p50, p95 and p99 of a histogram, one query each."""
    keep = f"le, {by}" if by else "le"
    return [
        query(
            f"histogram_quantile({q}, sum by ({keep}) (rate({bucket}{RATE})))",
            f"p{round(q * 100)}{legend}",
            ref=ref,
        )
        for ref, q in (("A", 0.5), ("B", 0.95), ("C", 0.99))
    ]


def _intake() -> list[PanelBuilder]:
    return [
        stat_panel(
            "Workers up",
            "Worker replicas Prometheus scrapes successfully.",
            query('sum(up{job="xborder-worker"})', instant=True),
            "none",
            w=4,
        ),
        stat_panel(
            "Notifier up",
            "`xborder notify` processes Prometheus scrapes successfully.",
            query('sum(up{job="xborder-notify"}) or vector(0)', instant=True),
            "none",
            w=4,
        ),
        stat_panel(
            "Dead-letter share",
            "Share of incoming records rejected to dead letters (XborderDeadLettersHigh fires "
            "over 5% for 10 minutes).",
            query(
                f"sum(rate(xborder_dead_letters_total{RATE})) / (sum(rate(xborder_records_in_total"
                f"{RATE})) + sum(rate(xborder_dead_letters_total{RATE})))",
                instant=True,
            ),
            "percentunit",
            w=4,
        ),
        stat_panel(
            "Open alert groups",
            "Alert groups the workers hold open (one per rule, platform, route and day).",
            query("sum(xborder_open_alert_groups)", instant=True),
            "none",
            w=4,
        ),
        label_stat(
            "GeoIP database",
            "Build date of the GeoIP database each worker uses (`xborder geoip fetch` refreshes "
            "it).",
            "xborder_geoip_build_info",
            "build_date",
        ),
        rule_pack_panel(),
        timeseries_panel(
            "Records in, by kind",
            "Valid telemetry records decoded per second.",
            [query(f"sum by (kind) (rate(xborder_records_in_total{RATE}))", "{{kind}}")],
            PER_SECOND,
            w=8,
        ),
        timeseries_panel(
            "Messages in, by topic",
            "Kafka messages consumed per second (a message may hold many records).",
            [query(f"sum by (topic) (rate(xborder_messages_in_total{RATE}))", "{{topic}}")],
            PER_SECOND,
            w=8,
        ),
        timeseries_panel(
            "Dead letters, by reason",
            "Invalid records per second, by the contract's reason code (monitor.dead-letters).",
            [query(f"sum by (reason) (rate(xborder_dead_letters_total{RATE}))", "{{reason}}")],
            PER_SECOND,
            w=8,
            stacked=True,
        ),
    ]


def _lags() -> list[PanelBuilder]:
    return [
        timeseries_panel(
            "Consumer lag, by topic",
            "Records behind on the topics the workers consume: log end minus committed offset, "
            "summed over partitions and replicas.",
            [query("sum by (topic) (xborder_consumer_lag_records)", "{{topic}}")],
            "short",
            w=8,
        ),
        timeseries_panel(
            "Event lag",
            "Wall-clock time minus the record's event time when it is processed "
            "(XborderEventLagHigh fires over 15 minutes at p99).",
            _percentiles("xborder_event_lag_seconds_bucket", "", ""),
            "s",
            w=8,
        ),
        timeseries_panel(
            "Processing latency, by stage",
            "Time to process a batch, from receiving it to having produced its outputs "
            "(XborderProcessingSlow fires over 1 s at p99).",
            _percentiles("xborder_processing_seconds_bucket", "stage", " {{stage}}"),
            "s",
            w=8,
        ),
        timeseries_panel(
            "Processing errors, by stage",
            "Records or items a stage raised on, dead-lettered as processing_error: a bug of "
            "the monitor, not of the input.",
            [query(f"sum by (stage) (rate(xborder_processing_errors_total{RATE}))", "{{stage}}")],
            PER_SECOND,
            w=8,
        ),
        timeseries_panel(
            "GeoIP misses",
            "Share of records whose destination address the GeoIP database could not place "
            "(XborderGeoIPMissesHigh fires over 10%); they fall back to the endpoint registry.",
            [
                query(
                    f"sum(rate(xborder_geoip_misses_total{RATE})) / "
                    f"sum(rate(xborder_records_in_total{RATE}))",
                    "misses per record",
                )
            ],
            "percentunit",
            w=8,
        ),
        timeseries_panel(
            "Bounds reached",
            "Times a bound of monitor.bounds was reached (a sum saturated, a list cut); the "
            "alert says truncated: true.",
            [query(f"sum by (bound) (rate(xborder_bounds_reached_total{RATE}))", "{{bound}}")],
            PER_SECOND,
            w=8,
        ),
    ]


def _delivery() -> list[PanelBuilder]:
    breaker = (
        framed(
            statetimeline.Panel(),
            "Breaker state, by receiver",
            "Each receiver's circuit breaker: closed (delivering), half-open (trying one), "
            "open (holding deliveries until its reset).",
            "none",
            12,
            8,
        )
        .with_target(query("max by (receiver) (xborder_delivery_breaker_state)", "{{receiver}}"))
        .mappings(
            [
                dash_models.ValueMap(
                    options={
                        "0": dash_models.ValueMappingResult(text="closed", color="green"),
                        "1": dash_models.ValueMappingResult(text="half-open", color="orange"),
                        "2": dash_models.ValueMappingResult(text="open", color="red"),
                    }
                )
            ]
        )
    )
    return [
        timeseries_panel(
            "Deliveries, by receiver and outcome",
            "Webhook deliveries that reached a final outcome (delivered, rejected, exhausted, "
            "duplicate), per second.",
            [
                query(
                    f"sum by (receiver, outcome) (rate(xborder_deliveries_total{RATE}))",
                    "{{receiver}} {{outcome}}",
                )
            ],
            PER_SECOND,
        ),
        timeseries_panel(
            "Delivery attempts, by answer",
            "HTTP attempts per second by the class of the receiver's answer (or timeout, network).",
            [
                query(
                    f"sum by (receiver, status_class) (rate(xborder_delivery_attempts_total{RATE}))",
                    "{{receiver}} {{status_class}}",
                )
            ],
            PER_SECOND,
        ),
        timeseries_panel(
            "Delivery latency, by receiver",
            "From the alert's emission to the receiver's 2xx.",
            _percentiles("xborder_delivery_latency_seconds_bucket", "receiver", " {{receiver}}"),
            "s",
        ),
        timeseries_panel(
            "Delivery queue, by receiver",
            "Deliveries waiting in each receiver's queue.",
            [query("sum by (receiver) (xborder_delivery_queue_depth)", "{{receiver}}")],
            "short",
        ),
        breaker,
    ]


def pipeline_dashboard() -> dash.Dashboard:
    board = (
        new_dashboard(
            "Pipeline health",
            UID,
            "The monitor's data path and alert delivery: intake and dead letters, lags, "
            "latency, GeoIP, bounds, webhook deliveries. Generated by `xborder dashboards "
            "generate`; metrics in docs/metrics.md, alerting rules in deploy/prometheus.",
            ["xborder", "operations"],
        )
        .time("now-6h", "now")
        .refresh("30s")
    )
    for title, panels in (
        ("Intake", _intake()),
        ("Lag, latency and resolution", _lags()),
        ("Alert delivery", _delivery()),
    ):
        board = board.with_row(dash.Row(title))
        for panel in panels:
            board = board.with_panel(panel)
    return board
