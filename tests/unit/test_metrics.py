"""Prometheus metrics helpers."""

from __future__ import annotations


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
