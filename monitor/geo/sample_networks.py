"""Networks a country database places in each country, as sample destinations."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from monitor.geo.geoip import GeoIP
from monitor.geo.opening import FETCH_HINT, open_reader
from monitor.geo.readers import record_country

__all__ = ["sample_networks"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Public IPv6 unicast lives in 2000::/3; GeoLite2 carries a few odd entries outside
# it that would make poor sample destinations.
_IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")

# Longest prefixes accepted in the global routing table; geofeed entries can be
# single hosts, which make odd-looking sample destinations.
_ROUTABLE_PREFIX = {4: 24, 6: 48}


def _is_sample_network(network: _Network, routable_only: bool) -> bool:
    if isinstance(network, ipaddress.IPv6Network):
        if not network.subnet_of(_IPV6_GLOBAL_UNICAST):
            return False
        if routable_only and network.prefixlen > _ROUTABLE_PREFIX[6]:
            return False
    elif routable_only and network.prefixlen > _ROUTABLE_PREFIX[4]:
        return False
    return network.network_address.is_global and network.broadcast_address.is_global


def sample_networks(
    db: GeoIP | str | Path,
    countries: list[str],
    per_country: int,
    ip_version: int | None = None,
    routable_only: bool = True,
) -> dict[str, list[str]]:
    """CIDRs of up to `per_country` public networks the database places in each country.

    Walks the database in its own (address) order and stops once every country
    has enough, so the answer is the same for the same file. `ip_version` 4 or 6
    keeps only that family; the IPv4 tree comes first in a dual-stack database,
    so without it a small `per_country` yields IPv4 networks only. With
    `routable_only`, networks longer than /24 (IPv4) or /48 (IPv6) are skipped.
    A country the database never names maps to an empty list.
    """
    if ip_version not in (None, 4, 6):
        raise ValueError("ip_version must be 4, 6 or None")
    wanted = {c.upper() for c in countries}
    found: dict[str, list[str]] = {c.upper(): [] for c in countries}
    if per_country <= 0 or not wanted:
        return found
    path = db.path if isinstance(db, GeoIP) else Path(db)

    def keep(network: _Network) -> bool:
        if ip_version is not None and network.version != ip_version:
            return False
        return _is_sample_network(network, routable_only)

    reader = open_reader(path, "country", FETCH_HINT)
    try:
        for network, record in reader:
            code = record_country(record)
            if code is not None and code in wanted and keep(network):
                found[code].append(str(network))
                if len(found[code]) >= per_country:
                    wanted.discard(code)
                    if not wanted:
                        break
    finally:
        reader.close()
    return found
