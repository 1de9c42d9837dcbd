"""Destination IP -> country (and optionally ASN) from MaxMind-format databases.

The database layouts are read in `monitor.geo.readers`; the files are opened
and checked in `monitor.geo.opening`.

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
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, TypeVar

from monitor.errors import GeoIPDatabaseError
from monitor.geo.embedded import embedded_ipv4
from monitor.geo.opening import FETCH_HINT, DatabaseInfo, open_asn_source, open_country_source
from monitor.geo.readers import Address, AsnSource, CountrySource

__all__ = ["CacheInfo", "GeoIP"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class CacheInfo(NamedTuple):
    """Lookup-cache statistics; `misses` here are cache misses, not unknown addresses."""

    hits: int
    misses: int
    maxsize: int | None
    currsize: int


def _parse_public(ip: str) -> Address | None:
    """The address to look up, or None when it cannot have a country."""
    try:
        addr = ipaddress.ip_address(ip)
    except (ValueError, TypeError):
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        # Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d; databases built
        # with IPv4 in ::/96 (ip-location-db, mmdb-writer) have nothing under ::ffff:0:0/96.
        addr = addr.ipv4_mapped
    elif isinstance(addr, ipaddress.IPv6Address):
        addr = embedded_ipv4(addr) or addr
    if not addr.is_global:
        return None
    return addr


class GeoIP:
    """Country and ASN lookups with a per-instance LRU cache.

    Not meant for concurrent use from several threads: the counters are plain
    integers, which is all an asyncio stream processor needs.
    """

    def __init__(
        self,
        country: CountrySource,
        country_info: DatabaseInfo,
        asn: AsnSource | None = None,
        asn_info: DatabaseInfo | None = None,
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
        country, country_info = open_country_source(Path(country_db))
        if asn_db is None:
            return cls(country, country_info, cache_size=cache_size)
        try:
            asn, asn_info = open_asn_source(Path(asn_db))
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

    def _lookup(self, lookup: Callable[[Address], _T], path: Path | None, ip: str) -> _T | None:
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
