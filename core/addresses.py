"""What an address or host name reaches: loopback hosts, and the IPv4 inside IPv6 forms."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def is_loopback_host(host: str) -> bool:
    """True for `localhost`, `*.localhost` and loopback addresses."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries and reaches (mapped, IPv4-compatible, 6to4,
    NAT64), or None."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in network for network in NAT64) or (
            address in IPV4_COMPATIBLE and int(address) > 1):  # not :: or ::1
        return ipaddress.IPv4Address(address.packed[-4:])
    return None


def refused_address(address: IPAddress, allowed: Iterable[Network]) -> IPAddress | None:
    """What a connection to `address` would reach that is neither public nor `allowed`.

    An IPv4-mapped address is its IPv4. The IPv4 inside an IPv4-compatible, 6to4 or NAT64
    address must be public: allowed networks name where connections may go, not what a
    relay reaches on their behalf.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not is_public(address) and not any(address in network for network in allowed):
        return address
    inner = embedded_ipv4(address)
    return inner if inner is not None and not is_public(inner) else None


def is_public(address: IPAddress) -> bool:
    """True if `address` is a public unicast address (not multicast, reserved, ...)."""
    return address.is_global and not (address.is_multicast or address.is_reserved
                                      or address.is_unspecified)
