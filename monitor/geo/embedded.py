"""The IPv4 address an IPv6 transition address carries, so it is placed where that IPv4 is.

A platform on an IPv6-only network reaches IPv4 hosts through NAT64 (RFC 6052,
RFC 8215), 6to4 (RFC 3056) or Teredo (RFC 4380). The IPv6 address names a
translator or relay, never the receiver: a country database places it nowhere
or at the relay, so a Chinese receiver behind NAT64 would read as unresolved.
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv6Address

__all__ = ["embedded_ipv4", "parse_embedded"]

# The well-known NAT64 prefix (RFC 6052) and the local-use block (RFC 8215).
# Operators carve a /96 out of the local-use /48 in practice; other RFC 6052
# prefix lengths place the IPv4 bits elsewhere and are not read here, since
# the address alone does not say which length the operator chose.
_NAT64_WELL_KNOWN = 0x0064_FF9B << 64  # 64:ff9b::/96, as its top 96 bits
_NAT64_LOCAL_USE = 0x0064_FF9B_0001  # 64:ff9b:1::/48, as its top 48 bits
_LOW32 = 0xFFFF_FFFF


def embedded_ipv4(addr: IPv6Address) -> IPv4Address | None:
    """The IPv4 address inside a NAT64, 6to4 or Teredo address, else None.

    Teredo's last 32 bits hold the client's IPv4 inverted (RFC 4380 4); the
    client, not the Teredo server, is the party the flow reaches.
    """
    value = int(addr)
    if value >> 32 == _NAT64_WELL_KNOWN or value >> 80 == _NAT64_LOCAL_USE:
        return IPv4Address(value & _LOW32)
    if value >> 112 == 0x2002:
        return IPv4Address((value >> 80) & _LOW32)
    if value >> 96 == 0x2001_0000:
        return IPv4Address(~value & _LOW32)
    return None


def parse_embedded(ip: str) -> IPv4Address | None:
    """`embedded_ipv4` of a textual address; None for IPv4 and malformed text."""
    try:
        addr = ipaddress.ip_address(ip)
    except (ValueError, TypeError):
        return None
    return embedded_ipv4(addr) if isinstance(addr, IPv6Address) else None
