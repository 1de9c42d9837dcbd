"""Long simulated streams through the detection core: 30,000 lawful records, slow and
fast, raise no alert and no dead letter."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from monitor.config.runtime import Runtime
from tests.support.geoip_build import TEST_NETWORKS, build_country_db
from tests.support.simulation import START, detect, simulation_runtime
from xborder_tools.simulate import SimConfig, generate_items


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    geo_db = build_country_db(tmp_path_factory.mktemp("sim") / "country.mmdb", TEST_NETWORKS)
    yield from simulation_runtime(geo_db)


@pytest.mark.parametrize("events_per_second", [10.0, 500.0])
def test_lawful_traffic_raises_no_alert(runtime: Runtime, events_per_second: float) -> None:
    cfg = SimConfig(
        seed=21,
        count=30_000,
        start_ms=START,
        events_per_second=events_per_second,
        violation_rates={},
        invalid_rate=0.0,
        duplicate_rate=10.0,
    )
    items = list(generate_items(cfg))
    assert {i.label for i in items} == {"lawful", "duplicate"}
    kinds = Counter(i.kind for i in items)
    assert kinds["egress"] and kinds["api_call"] and kinds["consent"]
    fired, dead = detect(runtime, items)
    assert fired == Counter()
    assert dead == Counter()
    # The lawful traffic is not trivially lawful: it does go abroad, on consent, with RRNs at home.
    recs = [i.record for i in items if i.record is not None]
    assert any(r.get("legal_basis") == "consent" and r.get("subject_ids") for r in recs)
    assert any(r.get("kind") == "consent" and r["granted"] is False for r in recs)
    assert any(
        "user.government_id.national_identification_number" in r.get("data_categories", ())
        for r in recs
    )
