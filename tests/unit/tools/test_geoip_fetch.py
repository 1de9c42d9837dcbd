"""`xborder geoip fetch`: the demo's databases from a pinned npm package, checked against
its pin, reused once fetched, and a clear message without npm."""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import pytest

from monitor.errors import XborderError
from tests.support.geoip_build import TEST_NETWORKS, build_flat_country_db
from xborder_tools.geoip_fetch import COUNTRY_SOURCES, fetch_demo_databases

# 2024-06-16T23:59:59Z, as in tests/unit/geo/test_geoip.py: the date the fetched file shows.
BUILD_EPOCH = 1718582399


def test_fetch_without_npm_names_what_to_install(tmp_path: Path):
    with pytest.raises(XborderError, match="npm") as err:
        fetch_demo_databases(tmp_path, npm="no-such-npm-client-xb", asn=False)
    assert "install Node.js and npm" in str(err.value)


def test_fetch_keeps_existing_files(tmp_path: Path):
    """Files already fetched from the pinned package are reused without npm."""
    package = COUNTRY_SOURCES["ip-location-db"]
    build_flat_country_db(tmp_path / "country.mmdb", TEST_NETWORKS, build_epoch=BUILD_EPOCH)
    (tmp_path / "SOURCES.md").write_text(f"- Package: `{package.spec}`\n", encoding="utf-8")
    got = fetch_demo_databases(tmp_path, npm="no-such-npm-client-xb", asn=False)
    assert got.downloaded == ()
    assert got.country == tmp_path / "country.mmdb"
    assert got.country_build_date == "2024-06-16"
    assert got.asn is None
    sources = (tmp_path / "SOURCES.md").read_text(encoding="utf-8")
    assert package.spec in sources
    assert "CC BY 4.0" in sources


def test_fetch_refuses_a_tarball_that_does_not_match_its_pin(tmp_path: Path):
    """A stand-in npm client serves a tarball whose digest differs from the pinned one."""
    payload = tmp_path / "payload"
    (payload / "package").mkdir(parents=True)
    build_flat_country_db(payload / "package" / "geo-whois-asn-country.mmdb", TEST_NETWORKS)
    tgz = tmp_path / "served.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(payload / "package", arcname="package")
    fake_npm = tmp_path / "fake-npm"
    fake_npm.write_text(
        f"#!{sys.executable}\n"
        "import shutil, sys\n"
        "dest = sys.argv[sys.argv.index('--pack-destination') + 1]\n"
        f"shutil.copy({str(tgz)!r}, dest + '/pkg.tgz')\n"
        'print(\'[{"filename": "pkg.tgz"}]\')\n',
        encoding="utf-8",
    )
    fake_npm.chmod(0o755)
    dest = tmp_path / "dest"
    with pytest.raises(XborderError, match="integrity"):
        fetch_demo_databases(dest, npm=str(fake_npm), asn=False)
    assert not (dest / "country.mmdb").exists()
