"""Load what detection needs, once, failing at start-up with errors that name their source."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from monitor.config.disclosures import (
    Disclosures,
    EndpointRegistry,
    load_disclosures,
    load_endpoints,
)
from monitor.config.services import load_services
from monitor.config.settings import Settings
from monitor.config.subject_key import random_key, subject_key
from monitor.contract.attribution import NO_SERVICES, ServiceRegistry
from monitor.engine.loader import load_pack
from monitor.engine.model import RulePack
from monitor.engine.ruletypes.consent import ConsentRule
from monitor.errors import ConfigError
from monitor.geo.resolve import CountryLookup, Resolver

if TYPE_CHECKING:
    from monitor.delivery.routing import DeliveryConfig

__all__ = [
    "Runtime",
    "key_subjects",
    "load_config",
    "load_delivery_config",
    "load_rules",
    "load_runtime",
    "load_service_registry",
    "open_geoip",
]


@dataclass
class Runtime:
    settings: Settings
    pack: RulePack
    disclosures: Disclosures
    endpoints: EndpointRegistry
    geoip: CountryLookup | None
    # The key the pack's consent state was keyed with: a pack loaded later needs the same.
    subject_key: bytes = field(default=b"", repr=False)
    services: ServiceRegistry = NO_SERVICES

    def resolver(self) -> Resolver:
        return Resolver(self.geoip, self.endpoints)

    def close(self) -> None:
        close = getattr(self.geoip, "close", None)
        if close is not None:
            close()


def load_config(settings: Settings) -> tuple[RulePack, Disclosures, EndpointRegistry]:
    """Rules and their configuration, without the GeoIP database."""
    pack, disclosures = load_rules(settings)
    return pack, disclosures, load_endpoints(settings.endpoints_path)


def load_service_registry(settings: Settings) -> ServiceRegistry:
    """The service registry (flow attribution). Without the default file, an empty one
    (rule folders made before it existed); a file named explicitly must exist."""
    path = settings.services_path
    if settings.services is None and not os.path.lexists(path):
        return NO_SERVICES
    return load_services(path)


def load_rules(settings: Settings) -> tuple[RulePack, Disclosures]:
    """The rule pack and the disclosures it is compiled with (they are read together)."""
    overrides: dict[str, Any] = {}
    if settings.home_region is not None:
        from monitor.contract.countries import ISO_ALPHA2

        if settings.home_region not in ISO_ALPHA2:
            raise ConfigError(
                f"home region must be an ISO 3166-1 alpha-2 code: {settings.home_region!r}"
            )
        overrides["home_region"] = settings.home_region
    if settings.time_zone is not None:
        from monitor.alerts.windows import load_zone

        if load_zone(settings.time_zone) is None:
            raise ConfigError(f"time zone must be an IANA name: {settings.time_zone!r}")
        overrides["time_zone"] = settings.time_zone
    disclosures = load_disclosures(settings.disclosures_path)
    return load_pack(settings.rules_dir, disclosures, overrides), disclosures


def load_delivery_config(
    settings: Settings,
    *,
    resolve: bool = True,
    rule_ids: Collection[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> DeliveryConfig:
    """Receivers and routes (monitor.delivery.routing.load_delivery), secrets from `env`
    (default: os.environ). Without the default file, an empty configuration: nothing is
    delivered, alerts stay on the alerts topic. A file named explicitly must exist."""
    from monitor.delivery.routing import DeliveryConfig, load_delivery

    path = settings.delivery_config_path
    if settings.delivery_config is None and not os.path.lexists(path):
        return DeliveryConfig({}, None)
    return load_delivery(
        path,
        (path.parent,),
        os.environ if env is None else env,
        resolve=resolve,
        rule_ids=rule_ids,
    )


def key_subjects(pack: RulePack, key: bytes) -> None:
    """Key the subject hashes of the pack's consent state with `key`."""
    for rule in pack.stateful:
        if isinstance(rule.type, ConsentRule):
            rule.type.subject_key = key


def load_runtime(settings: Settings, require_subject_key: bool = False) -> Runtime:
    """Everything detection needs; `require_subject_key` where state outlives the process."""
    pack, disclosures, endpoints = load_config(settings)
    services = load_service_registry(settings)
    geoip = open_geoip(settings)
    key = subject_key(settings)
    if key is None and require_subject_key:
        raise ConfigError(
            "no subject key: set XBORDER_SUBJECT_KEY_FILE (or XBORDER_SUBJECT_KEY) to a secret "
            "of at least 16 bytes shared by every worker, e.g. from "
            "`head -c 32 /dev/urandom > subject.key`"
        )
    # Replay's state lives for one run: a random key keeps it unlinkable.
    key = key if key is not None else random_key()
    key_subjects(pack, key)
    return Runtime(settings, pack, disclosures, endpoints, geoip, key, services)


def open_geoip(settings: Settings) -> CountryLookup | None:
    """The GeoIP database of the settings, checked (None when GeoIP is off)."""
    if not settings.use_geoip:
        return None
    from monitor.geo.geoip import GeoIP

    return GeoIP.open(settings.geoip_country_path, settings.geoip_asn_path)
