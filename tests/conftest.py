"""Shared fixtures: GeoIP databases built for the tests, and (as a plugin) the brokers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.geoip_build import TEST_NETWORKS, build_country_db

pytest_plugins = ["tests.broker_fixtures"]

# 2026-06-17: the build date every test database carries.
BUILD_EPOCH = 1781654400


@pytest.fixture(scope="session")
def country_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("geoip") / "country.mmdb"
    build_country_db(path, TEST_NETWORKS, build_epoch=BUILD_EPOCH)
    return path
