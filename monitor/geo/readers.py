"""Readers of the MaxMind DB layouts, behind one interface per lookup (country, ASN).

Two country layouts are read:

* MaxMind GeoIP2/GeoLite2 Country, City and Enterprise databases, through
  `geoip2.database.Reader` (records like ``{"country": {"iso_code": "CN"}}``);
* the flat layout of the ip-location-db project
  (``@ip-location-db/geo-whois-asn-country-mmdb``, records like
  ``{"country_code": "CN"}``), and any other MaxMind DB holding one of the two
  record shapes, through `maxminddb` directly.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import geoip2.database
import geoip2.errors
import maxminddb

__all__ = [
    "Address",
    "AsnSource",
    "CountrySource",
    "country_reader",
    "record_asn",
    "record_country",
]

# geoip2 picks its model by a substring of the metadata database_type, so these
# are the products whose records carry a "country" object it can decode.
_GEOIP2_COUNTRY_METHODS = (("Enterprise", "enterprise"), ("City", "city"), ("Country", "country"))

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _iso_code(value: object) -> str | None:
    if isinstance(value, str) and len(value) == 2 and value.isalpha():
        return value.upper()
    return None


def record_country(record: object) -> str | None:
    """Country code from either record layout; None for any other shape."""
    if not isinstance(record, dict):
        return None
    flat = record.get("country_code")
    if flat is not None:
        return _iso_code(flat)
    # Only "country" (where the block is used), never "registered_country" (where
    # its holder is registered): for a transfer the physical location is what
    # counts, and a guess would hide a gap in the database as a false answer.
    country = record.get("country")
    if isinstance(country, dict):
        return _iso_code(country.get("iso_code"))
    return None


def record_asn(record: object) -> tuple[int, str] | None:
    if not isinstance(record, dict):
        return None
    number = record.get("autonomous_system_number")
    if not isinstance(number, int) or isinstance(number, bool):
        return None
    org = record.get("autonomous_system_organization")
    return number, org if isinstance(org, str) else ""


class CountrySource:
    """Maps one public address to a country code; implementations below."""

    def lookup(self, addr: Address) -> str | None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _Geoip2Country(CountrySource):
    def __init__(self, path: Path, method: str) -> None:
        self._reader = geoip2.database.Reader(str(path))
        self._method = method

    def lookup(self, addr: Address) -> str | None:
        try:
            if self._method == "country":
                model = self._reader.country(addr)
                return _iso_code(model.country.iso_code)
            if self._method == "city":
                return _iso_code(self._reader.city(addr).country.iso_code)
            return _iso_code(self._reader.enterprise(addr).country.iso_code)
        except (geoip2.errors.AddressNotFoundError, ValueError):
            return None

    def close(self) -> None:
        self._reader.close()


class _RecordCountry(CountrySource):
    def __init__(self, reader: maxminddb.Reader) -> None:
        self._reader = reader

    def lookup(self, addr: Address) -> str | None:
        try:
            return record_country(self._reader.get(addr))
        except ValueError:
            return None

    def close(self) -> None:
        self._reader.close()


class AsnSource:
    def __init__(self, path: Path, reader: maxminddb.Reader, use_geoip2: bool) -> None:
        self._raw: maxminddb.Reader | None = None
        self._geoip2: geoip2.database.Reader | None = None
        if use_geoip2:
            reader.close()
            self._geoip2 = geoip2.database.Reader(str(path))
        else:
            self._raw = reader

    def lookup(self, addr: Address) -> tuple[int, str] | None:
        try:
            if self._geoip2 is not None:
                model = self._geoip2.asn(addr)
                if model.autonomous_system_number is None:
                    return None
                return (
                    model.autonomous_system_number,
                    model.autonomous_system_organization or "",
                )
            return None if self._raw is None else record_asn(self._raw.get(addr))
        except (geoip2.errors.AddressNotFoundError, ValueError):
            return None

    def close(self) -> None:
        if self._geoip2 is not None:
            self._geoip2.close()
        if self._raw is not None:
            self._raw.close()


def country_reader(
    path: Path, reader: maxminddb.Reader, database_type: str, first: object
) -> CountrySource | None:
    for marker, method in _GEOIP2_COUNTRY_METHODS:
        if marker in database_type:
            reader.close()
            return _Geoip2Country(path, method)
    if record_country(first) is not None:
        return _RecordCountry(reader)
    return None
