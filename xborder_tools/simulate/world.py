"""The world the simulated platforms live in, read from the configuration the monitor reads.

The platforms, what each disclosed (country, recipient, items, purpose), the
hosts the endpoint registry places, the home region, the watch countries and
the bulk threshold come from the rule pack and its configuration files,
through the monitor's own loaders: lawful traffic stays lawful, and every
injection is a violation, under whatever those files say. What no file says
is in traffic.py.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.config.disclosures import Disclosure, Disclosures, EndpointRegistry
from monitor.config.runtime import load_config
from monitor.config.settings import Settings
from monitor.engine.model import RulePack
from xborder_tools.simulate.traffic import (
    GEOIP_ONLY_HOSTS,
    POOL_COUNTRIES,
    SERVICE_NAMES,
    STORAGE_PRODUCTS,
    STREAM_PRODUCTS,
)
from xborder_tools.simulate.violations import RULE_OF

__all__ = ["World", "load_world", "networks_from_geoip", "service_of", "world_from"]

# A pack without the bulk rule: any cap on lawful volumes will do; these are detections-v1's.
_BULK_FALLBACK = (100_000, 3_600_000)


@dataclass(frozen=True)
class World:
    """What the configuration says about the platforms, as the simulator uses it."""

    home: str
    watch_countries: frozenset[str]
    adequacy_recognised: frozenset[str]  # countries a transfer may rest on adequacy to
    bulk_threshold: int
    bulk_window_ms: int
    disclosed: Mapping[str, tuple[Disclosure, ...]]  # in the file's order
    endpoints: EndpointRegistry
    hosts: Mapping[str, Mapping[str, tuple[str, ...]]]  # country -> service -> host names

    @property
    def platforms(self) -> tuple[str, ...]:
        """Platforms that disclosed an overseas transfer: the ones there is traffic of."""
        return tuple(p for p, entries in self.disclosed.items() if entries)

    def discloses(self, platform: str, country: str) -> bool:
        return any(d.country == country for d in self.disclosed.get(platform, ()))

    def registry_places(self, host: str, country: str) -> bool:
        """Whether a call to `host` without a dst_ip still resolves to `country`."""
        return self.endpoints.country(host) == country

    @property
    def countries(self) -> tuple[str, ...]:
        """Every country the world names: address pools are wanted for these."""
        named = {self.home, *self.watch_countries, *self.hosts}
        named.update(d.country for entries in self.disclosed.values() for d in entries)
        return tuple(sorted(named))


def service_of(host: str) -> str:
    """The service a host offers ("storage", "stream" or "api"), by the product its first
    label names."""
    product = re.match(r"[a-z0-9]*", host.split(".", 1)[0])
    name = product.group() if product else ""
    if name in STORAGE_PRODUCTS:
        return "storage"
    return "stream" if name in STREAM_PRODUCTS else "api"


def _suffix_hosts(suffix: str) -> list[str]:
    """Service hosts under a registry suffix, named as the provider names them."""
    domain = suffix.lstrip(".")
    providers = [p for p in SERVICE_NAMES if domain == p or domain.endswith("." + p)]
    labels = SERVICE_NAMES[max(providers, key=len)] if providers else ("api",)
    # API gateway hosts start with a random API id; one per suffix, stable across runs.
    api_id = hashlib.blake2b(domain.encode(), digest_size=3).hexdigest()
    return [f"{label.format(api_id=api_id)}.{domain}" for label in labels]


def _hosts(endpoints: EndpointRegistry) -> dict[str, dict[str, tuple[str, ...]]]:
    found: dict[str, dict[str, set[str]]] = {}
    names = [
        *endpoints.hosts,
        *(h for suffix, _ in endpoints.suffixes for h in _suffix_hosts(suffix)),
    ]
    # Filed where the registry places each, whichever entry wins for it.
    named = [(host, c) for host in names if (c := endpoints.country(host)) is not None]
    # A call to one of these leaves GeoIP out only where the registry agrees (registry_places).
    named += [(host, country) for country, hosts in GEOIP_ONLY_HOSTS.items() for host in hosts]
    for host, country in named:
        found.setdefault(country, {}).setdefault(service_of(host), set()).add(host)
    # Sorted, so the world does not depend on the order of the registry's entries.
    return {c: {s: tuple(sorted(h)) for s, h in by.items()} for c, by in sorted(found.items())}


def world_from(pack: RulePack, disclosures: Disclosures, endpoints: EndpointRegistry) -> World:
    bulk = pack.by_id.get(RULE_OF["bulk_volume"])
    threshold, window = _BULK_FALLBACK
    if bulk is not None:
        threshold, window = int(bulk.params["at_least"]), int(bulk.params["window"])
    return World(
        home=pack.home_region,
        watch_countries=frozenset(str(c) for c in pack.params.get("watch_countries", ())),
        adequacy_recognised=frozenset(str(c) for c in pack.params.get("adequacy_recognised", ())),
        bulk_threshold=threshold,
        bulk_window_ms=window,
        disclosed=dict(disclosures.by_platform),
        endpoints=endpoints,
        hosts=_hosts(endpoints),
    )


def load_world(settings: Settings | None = None) -> World:
    """The world of the files the monitor reads with `settings` (default: this environment's,
    so XBORDER_RULES, XBORDER_DISCLOSURES, XBORDER_ENDPOINTS and XBORDER_HOME_REGION count,
    and without them the bundled rule pack). Raises ConfigError(s) as the monitor would."""
    return world_from(*load_config(settings if settings is not None else Settings.from_env()))


def networks_from_geoip(
    path: str | Path, countries: Sequence[str] = POOL_COUNTRIES, per_country: int = 8
) -> dict[str, list[str]]:
    """Networks the database itself places in each country, IPv4 and (when it has them) IPv6.

    Drawing from the database the monitor will use makes every address land where the
    generator meant it, whatever database the demo ships.
    """
    from monitor.geo.sample_networks import sample_networks

    v4 = sample_networks(path, list(countries), per_country, ip_version=4)
    v6 = sample_networks(path, list(countries), max(1, per_country // 2), ip_version=6)
    return {c: v4.get(c, []) + v6.get(c, []) for c in countries if v4.get(c) or v6.get(c)}
