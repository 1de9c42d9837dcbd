"""Prometheus metrics: helpers, and the labels the data path gives its transfer counters."""

from __future__ import annotations

import re
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from monitor.contract.schemas import KafkaSource
from monitor.detect.stages import ingest
from monitor.geo.resolve import Resolver, StaticLookup
from monitor.metrics import (
    LEGAL_BASIS_LABELS,
    OTHER_PLATFORM,
    Metrics,
    legal_basis_label,
)
from tests.support.pack import DISCLOSURES, ENDPOINTS, PACK
from tests.support.records import GEO, T0, api, egress


def test_observe_many_gives_the_histogram_observe_gives() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from monitor.metrics import observe_many

    amounts = [0.0, 0.01, 0.011, 0.5, 3.0, 1e9, 0.01, 2.5]
    one, many = CollectorRegistry(), CollectorRegistry()
    a = Histogram("lag", "x", buckets=(0.01, 0.5, 2.5), registry=one)
    b = Histogram("lag", "x", buckets=(0.01, 0.5, 2.5), registry=many)
    for v in amounts:
        a.observe(v)
    observe_many(b, amounts)
    observe_many(b, [])

    def samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
        return [
            (s.name, s.labels, s.value)
            for m in registry.collect()
            for s in m.samples
            if not s.name.endswith("_created")
        ]

    assert samples(one) == samples(many)
    assert ("lag_count", {}, len(amounts)) in samples(many)


def _ingest_with_metrics(records: list[dict[str, Any]]) -> tuple[Metrics, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = Metrics(registry, platforms=DISCLOSURES.by_platform)
    messages: list[tuple[bytes | None, KafkaSource]] = [
        (orjson.dumps(r), {"topic": "t", "partition": 0, "offset": i})
        for i, r in enumerate(records)
    ]
    ingest(messages, PACK, Resolver(StaticLookup(GEO), ENDPOINTS), 1, metrics, now=T0 / 1000)
    return metrics, registry


def _samples(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == name
    }


def test_transfer_metrics_name_configured_platforms_and_legal_bases_only() -> None:
    records = [
        api("a", T0, records=10, legal_basis="consent"),
        api("b", T0, records=5),  # no legal basis stated
        api("c", T0, records=7, legal_basis="none"),
        api("d", T0, records=3, platform="batchmart"),  # declared nothing: not a label
        egress("e", T0, "211.234.1.1", "8.219.1.1", records=4, platform="temu"),
    ]
    _, registry = _ingest_with_metrics(records)
    carried = _samples(registry, "xborder_personal_records_total")

    def key(platform: str, dst: str, basis: str) -> tuple[tuple[str, str], ...]:
        labels = {"platform": platform, "src_country": "KR", "dst_country": dst}
        return tuple(sorted({**labels, "legal_basis": basis}.items()))

    assert carried == {
        key("aliexpress", "CN", "consent"): 10,
        key("aliexpress", "CN", "absent"): 5,
        key("aliexpress", "CN", "none"): 7,
        key("other", "CN", "absent"): 3,
        key("temu", "SG", "not_applicable"): 4,
    }
    transfers = _samples(registry, "xborder_personal_transfers_total")
    assert {dict(k)["platform"] for k in transfers} == {"aliexpress", "other", "temu"}
    assert {dict(k)["category"] for k in transfers} == {"user.contact"}
    assert sum(transfers.values()) == len(records)
    for labels in [
        *carried,
        *transfers,
        *_samples(registry, "xborder_personal_transfer_bytes_total"),
    ]:
        values = dict(labels)
        assert values["platform"] in {*DISCLOSURES.by_platform, OTHER_PLATFORM}
        assert values.get("legal_basis", "absent") in LEGAL_BASIS_LABELS


def test_transfer_metrics_make_one_call_per_label_set_not_per_record() -> None:
    metrics = Metrics(CollectorRegistry(), platforms=DISCLOSURES.by_platform)
    calls: list[tuple[str, ...]] = []
    for name in ("transfers", "personal_records", "transfer_bytes"):
        counter = getattr(metrics, name)
        real = counter.labels

        def spy(*labels: str, _real: Any = real) -> Any:
            calls.append(labels)
            return _real(*labels)

        counter.labels = spy
    records = [api(f"e{i}", T0, records=1, legal_basis="consent") for i in range(500)]
    records += [api(f"n{i}", T0, records=2, platform=f"shop{i}") for i in range(500)]
    resolver = Resolver(StaticLookup(GEO), ENDPOINTS)
    messages: list[tuple[bytes | None, KafkaSource]] = [
        (orjson.dumps(r), {"topic": "t", "partition": 0, "offset": i})
        for i, r in enumerate(records)
    ]
    ingest(messages, PACK, resolver, 1, metrics, now=T0 / 1000)
    # aliexpress/consent and other/absent: two label sets of each metric (API calls
    # carry no bytes), for 1,000 records.
    assert len(calls) == 2 + 2
    assert metrics.personal_records.labels("other", "KR", "CN", "absent")._value.get() == 1000


def test_processing_errors_are_exported_at_zero_before_any_error() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    errors = _samples(registry, "xborder_processing_errors_total")
    assert errors == {(("stage", s),): 0.0 for s in ("ingest", "state", "group")}


def test_platform_and_legal_basis_labels() -> None:
    metrics = Metrics(CollectorRegistry(), platforms=["temu"])
    assert metrics.platform_label("temu") == "temu"
    assert metrics.platform_label("shop-42") == OTHER_PLATFORM
    assert metrics.platform_label(None) == OTHER_PLATFORM
    assert legal_basis_label("api_call", "adequacy") == "adequacy"
    assert legal_basis_label("api_call", None) == "absent"
    assert legal_basis_label("api_call", "made-up") == "absent"
    assert legal_basis_label("egress", None) == "not_applicable"


def test_the_catalogue_names_every_metric_and_its_labels() -> None:
    from monitor.delivery.metrics import DeliveryMetrics
    from tests.support.paths import ROOT

    suffix = {"counter": "_total", "histogram": "", "gauge": "", "info": "_info"}
    registry = CollectorRegistry()
    Metrics(registry)
    DeliveryMetrics(registry)
    exported = {}
    for collector in registry._collector_to_names:
        for family in collector.describe() if hasattr(collector, "describe") else []:
            labels = getattr(collector, "_labelnames", ())
            exported[family.name + suffix[family.type]] = set(labels)
    exported["xborder_bounds_reached_total"] = {"bound"}
    exported["xborder_geoip_build_info"] = {"build_date", "app_id"}
    exported["xborder_rules_info"] = {"version", "disclosures", "endpoints", "services", "app_id"}
    rows = re.findall(
        r"^\| `(xborder_\w+)` \| \w+ \|([^|]*)\|", (ROOT / "docs" / "metrics.md").read_text(), re.M
    )
    documented = {name: set(re.findall(r"`(\w+)`", labels)) for name, labels in rows}
    assert documented == exported
