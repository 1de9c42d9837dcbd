"""Load what detection needs, once, failing at start-up with errors that name their source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.disclosures import Disclosures, EndpointRegistry, load_disclosures, load_endpoints
from monitor.engine.loader import load_pack
from monitor.engine.model import RulePack
from monitor.errors import ConfigError
from monitor.resolve import CountryLookup, Resolver
from monitor.settings import Settings

__all__ = ["Runtime", "load_config", "load_runtime"]


@dataclass
class Runtime:
    settings: Settings
    pack: RulePack
    disclosures: Disclosures
    endpoints: EndpointRegistry
    geoip: CountryLookup | None

    def resolver(self) -> Resolver:
        return Resolver(self.geoip, self.endpoints)

    def close(self) -> None:
        close = getattr(self.geoip, "close", None)
        if close is not None:
            close()


def load_config(settings: Settings) -> tuple[RulePack, Disclosures, EndpointRegistry]:
    """Rules and their configuration, without the GeoIP database."""
    overrides: dict[str, Any] = {}
    if settings.home_region is not None:
        from monitor.countries import ISO_ALPHA2

        if settings.home_region not in ISO_ALPHA2:
            raise ConfigError(
                f"home region must be an ISO 3166-1 alpha-2 code: {settings.home_region!r}"
            )
        overrides["home_region"] = settings.home_region
    disclosures = load_disclosures(settings.disclosures_path)
    endpoints = load_endpoints(settings.endpoints_path)
    pack = load_pack(settings.rules_dir, disclosures, overrides)
    return pack, disclosures, endpoints


def load_runtime(settings: Settings) -> Runtime:
    pack, disclosures, endpoints = load_config(settings)
    geoip: CountryLookup | None = None
    if settings.use_geoip:
        from monitor.geoip import GeoIP

        geoip = GeoIP.open(settings.geoip_country_path, settings.geoip_asn_path)
    return Runtime(settings, pack, disclosures, endpoints, geoip)
