"""Shared fixtures: GeoIP databases built for the tests, the scenario as a file, a
PostgreSQL server, and (as a plugin) the brokers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.geoip_build import (
    TEST_NETWORKS,
    build_asn_db,
    build_country_db,
    build_flat_country_db,
)
from tests.support.postgres import PostgresServer, find_bin_dir
from tests.support.scenario import lines

pytest_plugins = ["tests.support.broker_fixtures"]

# 2026-06-17: the build date every test database carries.
BUILD_EPOCH = 1781654400


@pytest.fixture(scope="session")
def country_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("geoip") / "country.mmdb"
    build_country_db(path, TEST_NETWORKS, build_epoch=BUILD_EPOCH)
    return path


@pytest.fixture(scope="module")
def geo_dbs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A database of each layout the monitor reads, to damage copies of."""
    d = tmp_path_factory.mktemp("geo")
    return {
        "geolite2": build_country_db(d / "country.mmdb", TEST_NETWORKS),
        "flat": build_flat_country_db(d / "flat.mmdb", TEST_NETWORKS),
        "asn": build_asn_db(d / "asn.mmdb", {"8.8.8.0/24": (15169, "Google LLC")}),
    }


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hand-written scenario (tests/support/scenario.py) as a JSON Lines export."""
    path = tmp_path_factory.mktemp("scenario") / "scenario.jsonl"
    path.write_bytes(b"\n".join(lines()) + b"\n")
    return path


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session (about a second to start)."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql): "
            "`make system-deps` installs it"
        )
    server = PostgresServer(bin_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database of the session's server."""
    return postgres_server.create_database()
