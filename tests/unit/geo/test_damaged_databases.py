"""Damaged GeoIP databases: refused at open when the damage shows, a miss (logged once) when
a lookup reaches damage the start-up probe did not."""

from __future__ import annotations

from pathlib import Path

import maxminddb
import pytest

from monitor.errors import GeoIPDatabaseError
from monitor.geo.geoip import GeoIP
from tests.support.hostile_config import damaged_copies


@pytest.mark.parametrize("damage", ["truncated", "garbage", "zeroed_tree", "garbage_records"])
@pytest.mark.parametrize("layout", ["geolite2", "flat"])
def test_damaged_country_database_is_refused_at_open(
    tmp_path: Path, geo_dbs: dict[str, Path], layout: str, damage: str
) -> None:
    bad = damaged_copies(geo_dbs[layout], tmp_path)[damage]
    with pytest.raises(GeoIPDatabaseError) as err:
        GeoIP.open(bad)
    assert str(bad) in str(err.value) and "xborder geoip fetch" in str(err.value)


@pytest.mark.parametrize("damage", ["garbage", "garbage_records"])
def test_damaged_asn_database_is_refused_at_open(
    tmp_path: Path, geo_dbs: dict[str, Path], damage: str
) -> None:
    bad = damaged_copies(geo_dbs["asn"], tmp_path)[damage]
    with pytest.raises(GeoIPDatabaseError, match="ASN database is corrupt") as err:
        GeoIP.open(geo_dbs["geolite2"], bad)
    assert str(bad) in str(err.value)


def test_lookup_in_a_damaged_part_is_a_miss_not_a_crash(
    geo_dbs: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Damage the start-up probe did not reach: the address is unknown, the error logged once."""
    with GeoIP.open(geo_dbs["geolite2"], geo_dbs["asn"]) as geo:

        def damaged(_addr: object) -> None:
            raise maxminddb.InvalidDatabaseError("The MaxMind DB file's search tree is corrupt")

        geo._country_source.lookup = damaged  # type: ignore[method-assign,assignment]
        geo._asn_source.lookup = damaged  # type: ignore[method-assign,union-attr]
        assert geo.country("47.92.1.1") is None and geo.country("8.219.1.1") is None
        assert geo.asn("8.8.8.8") is None
        assert geo.misses == 2
    damaged_logs = [r for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(damaged_logs) == 1 and str(geo_dbs["geolite2"]) in damaged_logs[0].getMessage()
