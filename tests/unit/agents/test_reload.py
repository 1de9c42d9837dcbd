"""The worker's reload task: the swap, the metrics and the log line, SIGHUP's forced reload."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agents.context import Context
from agents.reload import ConfigReload
from monitor.config.reload import Loaded, Reloader
from monitor.config.runtime import load_runtime
from monitor.config.settings import Settings
from monitor.metrics import Metrics
from tests.support.geoip_build import TEST_NETWORKS, build_country_db
from tests.support.pack import copy_pack, replace_file

BUILD_EPOCH = 1781654400  # 2026-06-17


def worker_reload(tmp_path: Path, interval: float = 0.0) -> tuple[Path, ConfigReload, Any]:
    rules = copy_pack(tmp_path)
    db = tmp_path / "country.mmdb"
    build_country_db(db, TEST_NETWORKS, build_epoch=BUILD_EPOCH)
    settings = Settings(rules_dir=rules, geoip_country=db, app_id="reload-test")
    runtime = load_runtime(settings)
    config = Loaded.of(runtime)
    registry = CollectorRegistry()
    ctx = Context(settings, config, Metrics(registry), topics=None)  # type: ignore[arg-type]
    reload = ConfigReload(ctx, Reloader(settings, config, runtime.subject_key), interval)
    reload.started()
    return rules, reload, registry


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_start_up_publishes_versions_and_counts_as_a_success(tmp_path: Path) -> None:
    _, reload, registry = worker_reload(tmp_path)
    version = reload.ctx.config.versions
    info = {"app_id": "reload-test", "version": version["rules"]}
    info |= {"disclosures": version["disclosures"], "endpoints": version["endpoints"]}
    info |= {"services": version["services"]}
    assert sample(registry, "xborder_rules_info", **info) == 1
    geoip = {"app_id": "reload-test", "build_date": "2026-06-17"}
    assert sample(registry, "xborder_geoip_build_info", **geoip) == 1
    for part in ("rules", "disclosures", "endpoints", "geoip"):
        assert sample(registry, "xborder_config_last_reload_successful", what=part) == 1
        assert sample(registry, "xborder_config_last_reload_success_timestamp_seconds", what=part)


def test_a_reload_swaps_the_one_reference_and_republishes(tmp_path: Path) -> None:
    rules, reload, registry = worker_reload(tmp_path)
    before = reload.ctx.config
    pack = rules / "pack.yaml"
    replace_file(pack, pack.read_text().replace("[CN]", "[CN, SG]"))
    outcome = reload.reloader.reload(["rules"])
    reload.apply(outcome)
    assert reload.ctx.config is outcome.loaded and reload.ctx.pack is outcome.loaded.pack
    # The resolver (and its GeoIP database) came along unchanged.
    assert reload.ctx.config.resolver.geoip is before.geoip
    new = outcome.loaded.versions["rules"]
    assert new != before.versions["rules"]
    assert sample(registry, "xborder_config_reloads_total", what="rules", result="success") == 1
    text = registry_text(registry)
    assert f'version="{new}"' in text and before.versions["rules"] not in text


def test_a_refused_part_is_counted_logged_with_its_place_and_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rules, reload, registry = worker_reload(tmp_path)
    before = reload.ctx.config
    rule = rules / "detections" / "bulk_volume.yaml"
    replace_file(rule, rule.read_text().replace("severity: medium", "severity: extreme"))
    with caplog.at_level(logging.INFO, logger="xborder.reload"):
        reload.apply(reload.reloader.reload(["rules"]))
    assert reload.ctx.config is before
    assert sample(registry, "xborder_config_reloads_total", what="rules", result="error") == 1
    assert sample(registry, "xborder_config_last_reload_successful", what="rules") == 0
    (line,) = [r.getMessage() for r in caplog.records]
    assert f"rules refused, still running rules {before.versions['rules']}: {rule}:" in line
    # The file's lines are not in the log, only the short token naming the value.
    assert not any(text in line for text in rule.read_text().splitlines() if len(text) > 12)


def test_a_replaced_geoip_database_is_closed(tmp_path: Path) -> None:
    _, reload, _ = worker_reload(tmp_path)
    old = reload.ctx.config.geoip
    closed = []
    old.close = lambda: closed.append(True)  # type: ignore[union-attr]
    reload.apply(reload.reloader.reload(["geoip"]))
    assert closed == [True] and reload.ctx.config.geoip is not old


def test_sighup_forces_a_reload_of_every_part(tmp_path: Path) -> None:
    _, reload, registry = worker_reload(tmp_path, interval=0.0)  # no polling: SIGHUP only

    async def main() -> None:
        task = asyncio.create_task(reload.run())
        try:
            await asyncio.sleep(0.05)
            assert (
                sample(registry, "xborder_config_reloads_total", what="rules", result="success")
                is None
            )
            reload.request()
            for _ in range(200):
                if sample(registry, "xborder_config_reloads_total", what="geoip", result="success"):
                    break
                await asyncio.sleep(0.05)
        finally:
            task.cancel()

    asyncio.run(main())
    for part in ("rules", "disclosures", "endpoints", "geoip"):
        assert sample(registry, "xborder_config_reloads_total", what=part, result="success") == 1


def registry_text(registry: CollectorRegistry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()
