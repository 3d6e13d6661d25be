"""Typed entities: what a security event, a policy rule or a quarantine is about.

An entity is a ``(kind, value)`` pair with one canonical text form per kind, so the same
address always lands on the same reputation and policy keys:

* ``ip``: an IPv4 or IPv6 address in Python's canonical form (IPv6 compressed and lowercase,
  IPv4-mapped IPv6 turned into IPv4, no zone id, no leading zeros);
* ``cidr``: a network with its host bits zero, e.g. ``10.0.0.0/8``; a full-length prefix is an
  ``ip``, and an IPv4-mapped IPv6 network is the IPv4 network;
* ``host``: a DNS name, lowercase, without a trailing dot, not all-numeric labels;
* ``account``: an account name, case kept, no whitespace;
* ``other``: any other typed identifier (``"asset:srv-42"``), bounded text.

:meth:`Entity.of` normalises what a producer has; :meth:`Entity.from_cbor` (wire input) accepts
only the canonical form, because a signed transaction's bytes must re-encode identically.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass

from cybermesh.protocol.codec import CborValue
from cybermesh.protocol.txs.errors import TxRejected, TxRejectReason
from cybermesh.protocol.txs.schema import expect_enum, expect_list, expect_text

__all__ = ["MAX_ACCOUNT_BYTES", "MAX_OTHER_BYTES", "Entity", "EntityKind", "IpNetwork"]

_R = TxRejectReason
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_IP_CHARS = 64
MAX_HOST_BYTES = 253
MAX_ACCOUNT_BYTES = 128
MAX_OTHER_BYTES = 256
_HOST_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
# Canonical wire forms already parsed: a few thousand offenders make most of the traffic, and
# parsing an address or a host name costs a few microseconds each time a transaction or a
# stored record names it. Only a (kind, text) that parsed to exactly itself is remembered, so
# a non-canonical text is never found here and is refused as before. Bounded: cleared when
# full (a dict read or write is atomic under the GIL, so threads at worst parse again).
_CANONICAL_CAPACITY = 16_384
# Keyed by the wire's own (kind text, value text): plain str keys hash in C, where an enum
# member's hash is a Python call.
_canonical: dict[tuple[str, str], Entity] = {}
_NO_SPACE = re.compile(r"[^\s\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]+")


class EntityKind(enum.StrEnum):
    IP = "ip"
    CIDR = "cidr"
    HOST = "host"
    ACCOUNT = "account"
    OTHER = "other"


def _bad(detail: str, field: str) -> TxRejected:
    return TxRejected(_R.BAD_ENTITY, detail, field)


def _parse_ip(text: str, field: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if len(text) > MAX_IP_CHARS or "%" in text or "/" in text:
        raise _bad("not an IP address (no zone ids or prefixes)", field)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise _bad("not an IP address", field) from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _parse_network(text: str, field: str) -> IpNetwork:
    if len(text) > MAX_IP_CHARS + 4 or "%" in text or "/" not in text:
        raise _bad("not a CIDR network (address/prefix)", field)
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        raise _bad("not a CIDR network with zero host bits", field) from None
    if isinstance(network, ipaddress.IPv6Network):
        mapped = network.network_address.ipv4_mapped
        if mapped is not None and network.prefixlen >= 96:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def _normalise_host(text: str, field: str) -> str:
    host = text.lower()
    if host.endswith("."):
        host = host[:-1]
    if not host or len(host) > MAX_HOST_BYTES or not host.isascii():
        raise _bad("not a DNS name (ASCII, at most 253 characters)", field)
    labels = host.split(".")
    for label in labels:
        if _HOST_LABEL.fullmatch(label) is None:
            raise _bad("not a DNS name (bad label)", field)
    if all(label.isdigit() for label in labels):
        raise _bad("an all-numeric host name is an IP address, use kind ip", field)
    return host


def _normalise(kind: EntityKind, text: str, field: str) -> tuple[EntityKind, str]:
    """The canonical (kind, value) of what a producer wrote."""
    if kind is EntityKind.IP:
        return kind, str(_parse_ip(text, field))
    if kind is EntityKind.CIDR:
        network = _parse_network(text, field)
        if network.prefixlen == network.max_prefixlen:
            return EntityKind.IP, str(network.network_address)
        return kind, network.with_prefixlen
    if kind is EntityKind.HOST:
        return kind, _normalise_host(text, field)
    if kind is EntityKind.ACCOUNT:
        return kind, expect_text(text, field, MAX_ACCOUNT_BYTES, _R.BAD_ENTITY, _NO_SPACE)
    return kind, expect_text(text, field, MAX_OTHER_BYTES, _R.BAD_ENTITY)


@dataclass(frozen=True, slots=True, order=True)
class Entity:
    """A canonical typed entity. Build it with :meth:`of` (normalising) or parse the wire."""

    kind: EntityKind
    value: str

    @classmethod
    def of(cls, kind: EntityKind | str, value: str, field: str = "entity") -> Entity:
        """Normalise and validate; raise :class:`TxRejected` (``BAD_ENTITY``) if invalid."""
        entity_kind = expect_enum(str(kind), EntityKind, field, _R.BAD_ENTITY)
        if type(value) is not str:
            raise _bad("value must be text", field)
        normal_kind, normal_value = _normalise(entity_kind, value, field)
        return cls(normal_kind, normal_value)

    @classmethod
    def from_cbor(cls, value: object, field: str = "entity") -> Entity:
        """Parse ``[kind, value]``; the value must already be in canonical form."""
        items = expect_list(value, field, 2, 2)
        kind_text, text = items
        # A hit is a pair of exact str that already passed every check below.
        if type(kind_text) is str and type(text) is str:
            known = _canonical.get((kind_text, text))
            if known is not None:
                return known
        kind = expect_enum(kind_text, EntityKind, field, _R.BAD_ENTITY)
        text = expect_text(text, field, MAX_OTHER_BYTES, _R.BAD_ENTITY)
        entity = cls.of(kind, text, field)
        if entity.kind is not kind or entity.value != text:
            raise _bad(f"not in canonical form (expected {entity.kind.value} "
                       f"{entity.value[:80]!r})", field)
        if len(_canonical) >= _CANONICAL_CAPACITY:
            _canonical.clear()
        _canonical[(kind.value, text)] = entity
        return entity

    def to_cbor(self) -> list[CborValue]:
        return [self.kind.value, self.value]

    def network(self) -> IpNetwork | None:
        """The IP network this entity covers (an ``ip`` is a full-length network), or None."""
        if self.kind is EntityKind.IP:
            return ipaddress.ip_network(self.value)
        if self.kind is EntityKind.CIDR:
            return ipaddress.ip_network(self.value)
        return None

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.value}"
