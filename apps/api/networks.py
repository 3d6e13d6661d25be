"""Whether a peer address is in a configured list of networks (metrics scrapers, the
TLS-terminating proxies trusted with client-certificate headers)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def parse_networks(spec: tuple[str, ...]) -> tuple[Network, ...]:
    """``("10.0.0.0/8", "192.0.2.7")`` -> networks (a bare address is a one-address network);
    ``ValueError`` names a malformed entry."""
    return tuple(ipaddress.ip_network(item, strict=False) for item in spec)


def address_in(address: str, spec: Iterable[str]) -> bool:
    """``address`` (``REMOTE_ADDR``) is inside one of the networks of ``spec``."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in parse_networks(tuple(spec)))
