"""IPv6 transition addresses are placed by the IPv4 address they carry."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import orjson
import pytest

from monitor.contract.decode import decode_line
from monitor.contract.schemas import Record
from monitor.detect.local import LocalDetector
from monitor.geo.embedded import embedded_ipv4, parse_embedded
from monitor.geo.geoip import GeoIP
from monitor.geo.resolve import Resolver, StaticLookup
from tests.support.geoip_build import TEST_NETWORKS, build_country_db
from tests.support.pack import ENDPOINTS, PACK


@pytest.mark.parametrize(
    ("ip", "inner"),
    [
        ("64:ff9b::2f5c:10a", "47.92.1.10"),  # well-known NAT64 prefix
        ("64:ff9b::47.92.1.10", "47.92.1.10"),
        ("64:ff9b:1:ffff::808:808", "8.8.8.8"),  # a /96 from the local-use /48
        ("2002:2f5c:10a::1", "47.92.1.10"),  # 6to4: bits 16..47
        ("2002:d3ea:10a:5::99", "211.234.1.10"),
        # RFC 4380 section 4's example: server 65.54.227.120, client 192.0.2.45
        # behind its NAT, stored inverted in the last 32 bits.
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),
        ("2001:0:4136:e378:8000:63bf:d0a3:fef5", "47.92.1.10"),
    ],
)
def test_embedded_ipv4_of_transition_addresses(ip: str, inner: str) -> None:
    assert embedded_ipv4(ipaddress.IPv6Address(ip)) == ipaddress.IPv4Address(inner)
    assert parse_embedded(ip) == ipaddress.IPv4Address(inner)


@pytest.mark.parametrize(
    "ip",
    [
        "240e::1",  # plain IPv6 (China Telecom)
        "64:ff9b::1:2f5c:10a",  # outside the /96
        "64:ff9b:2::2f5c:10a",  # beside the local-use /48
        "2001:1::2f5c:10a",  # 2001::/23 but not Teredo's /32
        "2001:db8::1",
        "::ffff:47.92.1.10",  # mapped, handled by GeoIP itself
        "::1",
        "47.92.1.10",
        "not an address",
    ],
)
def test_other_addresses_carry_none(ip: str) -> None:
    assert parse_embedded(ip) is None


@pytest.fixture(scope="module")
def geo(tmp_path_factory: pytest.TempPathFactory) -> GeoIP:
    path: Path = tmp_path_factory.mktemp("geoip") / "country.mmdb"
    build_country_db(path, TEST_NETWORKS)
    return GeoIP.open(path)


@pytest.mark.parametrize(
    ("ip", "country"),
    [
        ("64:ff9b::2f5c:10a", "CN"),
        ("64:ff9b:1:ab::8db:10a", "SG"),
        ("2002:d3ea:10a::1", "KR"),
        ("2001:0:4136:e378:8000:63bf:d0a3:fef5", "CN"),
        ("64:ff9b::a01:203", None),  # 10.1.2.3 behind NAT64 is still private
        ("64:ff9b::101:101", None),  # 1.1.1.1: public, not in the test database
    ],
)
def test_geoip_places_transition_addresses_by_their_ipv4(
    geo: GeoIP, ip: str, country: str | None
) -> None:
    assert geo.country(ip) == country


def _record(**fields: object) -> Record:
    got = decode_line(orjson.dumps(fields), {"file": "t", "line": 1})
    assert isinstance(got, Record)
    return got


def test_chinese_receiver_behind_nat64_fires_the_china_rules(geo: GeoIP) -> None:
    detector = LocalDetector(PACK, Resolver(geo, ENDPOINTS))
    record = _record(
        kind="api_call",
        event_id="n1",
        ts="2026-10-01T10:00:00+09:00",
        platform="temu",
        operation="orders.export",
        endpoint="api.example.invalid",
        dst_ip="64:ff9b::2f5c:10a",
        src_country="KR",
        subject_region="KR",
        data_categories=["user.contact.email"],
        stores=True,
    )
    fired = {rule.id for rule, _ in detector.process(record, {"file": "t", "line": 1})}
    assert fired == {
        "pipa.xborder.no_legal_basis",
        "pipa.xborder.undisclosed_destination",
        "pipa.xborder.stored_in_watch_country",
    }


def test_static_lookup_unwraps_like_geoip() -> None:
    lookup = StaticLookup({"47.92.1.10": "CN", "64:ff9b::1": "US"})
    assert lookup.country("64:ff9b::2f5c:10a") == "CN"
    assert lookup.country("64:ff9b::1") == "US"  # an explicit entry wins
    assert lookup.country("2001:db8::1") is None
