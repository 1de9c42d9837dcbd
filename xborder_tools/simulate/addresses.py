"""Server addresses per country, drawn once from the country's networks."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Pool", "pools"]


@dataclass(slots=True)
class Pool:
    v4: list[str]
    v6: list[str]


def _servers(rng: random.Random, cidr: str, n: int) -> list[str]:
    """n distinct-ish server addresses inside a network (never its first or last address)."""
    net = ipaddress.ip_network(cidr, strict=False)
    base, size = int(net.network_address), net.num_addresses
    if size <= 2:
        return [str(net.network_address)]
    # Servers cluster in the low part of a v6 /32 in practice; and a bound keeps randrange cheap.
    span = min(size - 2, 1 << 24)
    cls = ipaddress.IPv4Address if net.version == 4 else ipaddress.IPv6Address
    return [str(cls(base + 1 + rng.randrange(span))) for _ in range(n)]


def pools(rng: random.Random, networks: Mapping[str, Sequence[str]]) -> dict[str, Pool]:
    """country -> 24 addresses of each of its networks; countries without any are left out."""
    out: dict[str, Pool] = {}
    for country in sorted(networks):
        pool = Pool([], [])
        for cidr in networks[country]:
            (pool.v4 if ":" not in cidr else pool.v6).extend(_servers(rng, cidr, 24))
        if pool.v4 or pool.v6:
            out[country] = pool
    return out
