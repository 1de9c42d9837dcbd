"""Build small MaxMind DB files for tests (not a test module).

The layouts mirror the real databases the monitor reads: GeoLite2-Country,
GeoLite2-ASN and the flat ``country_code`` layout of ip-location-db. Every
database is IPv6 with the IPv4 space under ::/96, as MaxMind's own files are,
so one file answers both families.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdb_writer import MmdbU32, MMDBWriter
from netaddr import IPNetwork, IPSet

from xborder_tools.simulate.traffic import BUILTIN_NETWORKS

__all__ = [
    "TEST_NETWORKS",
    "build_asn_db",
    "build_country_db",
    "build_flat_country_db",
]

# Shared by the project's tests: real-looking public ranges with fixed countries, the
# simulator's own address networks, so a simulated stream resolves with these databases.
TEST_NETWORKS: dict[str, str] = {
    cidr: country for country, cidrs in BUILTIN_NETWORKS.items() for cidr in cidrs
}

_NAMES = {
    "CN": "China",
    "DE": "Germany",
    "HK": "Hong Kong",
    "IE": "Ireland",
    "JP": "Japan",
    "KR": "South Korea",
    "RU": "Russia",
    "SG": "Singapore",
    "US": "United States",
    "VN": "Vietnam",
}


class _Writer(MMDBWriter):
    """MMDBWriter whose metadata build_epoch can be fixed (it always stamps 'now')."""

    def __init__(self, database_type: str, build_epoch: int | None, description: str) -> None:
        super().__init__(
            ip_version=6,
            database_type=database_type,
            languages=["en"],
            description=description,
            # Puts IPv4 networks under ::/96, where maxminddb readers look IPv4 up.
            ipv4_compatible=True,
        )
        self._build_epoch = build_epoch

    def _build_meta(self) -> dict[str, Any]:
        meta = super()._build_meta()
        if self._build_epoch is not None:
            meta["build_epoch"] = self._build_epoch
        return meta


def _write(writer: _Writer, path: str | Path, records: dict[str, Any]) -> Path:
    for cidr, record in records.items():
        writer.insert_network(IPSet([IPNetwork(cidr)]), record)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer.to_db_file(str(out))
    return out


def _country(code: str) -> dict[str, Any]:
    return {"iso_code": code, "names": {"en": _NAMES.get(code, code)}}


def build_country_db(
    path: str | Path,
    networks: dict[str, str],
    build_epoch: int | None = None,
    database_type: str = "GeoLite2-Country",
) -> Path:
    """GeoLite2-Country layout: ``{"country": {"iso_code": ..., "names": {"en": ...}}}``.

    The same records under database_type "GeoLite2-City" stand in for a City database.
    """
    writer = _Writer(database_type, build_epoch, "Test GeoIP2 country database")
    records = {
        cidr: {"country": _country(code), "registered_country": _country(code)}
        for cidr, code in networks.items()
    }
    return _write(writer, path, records)


def build_flat_country_db(
    path: str | Path,
    networks: dict[str, str],
    build_epoch: int | None = None,
) -> Path:
    """ip-location-db layout: ``{"country_code": ...}`` and its "country ipvAll" type."""
    writer = _Writer("country ipvAll", build_epoch, "Test flat country database")
    return _write(writer, path, {cidr: {"country_code": code} for cidr, code in networks.items()})


def build_asn_db(
    path: str | Path,
    networks: dict[str, tuple[int, str]],
    build_epoch: int | None = None,
    database_type: str = "GeoLite2-ASN",
) -> Path:
    """GeoLite2-ASN layout; another `database_type` exercises the plain-record reader."""
    writer = _Writer(database_type, build_epoch, "Test ASN database")
    records = {
        cidr: {
            # MaxMind stores AS numbers as uint32; "auto" would pick narrower types.
            "autonomous_system_number": MmdbU32(number),
            "autonomous_system_organization": org,
        }
        for cidr, (number, org) in networks.items()
    }
    return _write(writer, path, records)
