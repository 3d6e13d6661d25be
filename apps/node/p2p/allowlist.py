"""The CIDR allowlist (``ALLOWED_IPS``) that every peer connection's IP must fall into.

Fail closed: an empty allowlist allows nothing (production refuses to start with one, see
``cybermesh.checks``). IPv4-mapped IPv6 addresses (``::ffff:10.0.0.5``, what a dual-stack
listener reports for an IPv4 client) are checked as the IPv4 address they carry, so an IPv4
rule cannot be bypassed, nor an IPv4 peer refused, by the listener's socket family.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from apps.node.p2p.errors import P2PConfigError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Allowlist:
    networks: tuple[IPNetwork, ...]

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str]) -> Allowlist:
        """Parse ``"10.0.0.0/8"``-style entries (a bare IP means that one host).

        Entries with host bits set (``10.0.0.1/8``) are refused rather than silently widened or
        narrowed: the operator meant something, and we cannot tell what.
        """
        networks: list[IPNetwork] = []
        for entry in cidrs:
            text = entry.strip()
            if not text:
                continue
            try:
                networks.append(ipaddress.ip_network(text, strict=True))
            except ValueError as error:
                raise P2PConfigError(f"ALLOWED_IPS entry {text!r} is not a CIDR: {error}") from None
        return cls(tuple(networks))

    def allows(self, ip_text: str) -> bool:
        """Whether ``ip_text`` (as reported by a socket) is inside one of the networks."""
        try:
            address = ipaddress.ip_address(ip_text.split("%", 1)[0])  # drop an IPv6 zone id
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address.version == network.version and address in network
                   for network in self.networks)
