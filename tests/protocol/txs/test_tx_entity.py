"""Entities: one canonical form per address, network, host; non-canonical wire refused."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cybermesh.protocol.txs import Entity, EntityKind, TxRejected, TxRejectReason

pytestmark = pytest.mark.unit


@given(st.ip_addresses())
def test_ip_normalises_to_one_canonical_form(address: ipaddress.IPv4Address
                                             | ipaddress.IPv6Address) -> None:
    entity = Entity.of(EntityKind.IP, address.exploded.upper())
    expected = address
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        expected = address.ipv4_mapped
    assert entity == Entity(EntityKind.IP, str(expected))
    assert Entity.of(EntityKind.IP, entity.value) == entity  # idempotent
    assert Entity.from_cbor(entity.to_cbor()) == entity


@given(st.ip_addresses(v=4), st.integers(0, 32))
def test_cidr_normalises_and_full_prefix_becomes_ip(address: ipaddress.IPv4Address,
                                                    prefix: int) -> None:
    network = ipaddress.ip_network((address, prefix), strict=False)
    entity = Entity.of(EntityKind.CIDR, network.with_prefixlen)
    if prefix == 32:
        assert entity == Entity(EntityKind.IP, str(network.network_address))
    else:
        assert entity == Entity(EntityKind.CIDR, network.with_prefixlen)
    assert Entity.from_cbor(entity.to_cbor()) == entity


def test_ipv4_mapped_ipv6_network_is_the_ipv4_network() -> None:
    assert Entity.of("cidr", "::ffff:10.0.0.0/104") == Entity(EntityKind.CIDR, "10.0.0.0/8")


@pytest.mark.parametrize(("kind", "raw", "canonical"), [
    ("ip", "2001:DB8:0:0::1", "2001:db8::1"),
    ("host", "Mail.Example.COM.", "mail.example.com"),
    ("account", "Alice@Corp", "Alice@Corp"),
    ("other", "asset:srv-42", "asset:srv-42"),
])
def test_producer_input_is_normalised(kind: str, raw: str, canonical: str) -> None:
    assert Entity.of(kind, raw).value == canonical


@pytest.mark.parametrize(("kind", "raw"), [
    ("ip", "01.2.3.4"),
    ("ip", "1.2.3.4/32"),
    ("ip", "fe80::1%eth0"),
    ("cidr", "10.0.0.1/8"),
    ("cidr", "10.0.0.0"),
    ("host", "-bad.example"),
    ("host", "a..b"),
    ("host", "127.0.0.1"),
    ("host", "ex\u00e4mple.com"),
    ("host", "a" * 64 + ".com"),
    ("account", "two words"),
    ("account", ""),
    ("other", "zero\u200bwidth"),
    ("mac", "00:11:22:33:44:55"),
])
def test_invalid_entities_are_refused(kind: str, raw: str) -> None:
    with pytest.raises(TxRejected) as refused:
        Entity.of(kind, raw)
    assert refused.value.reason is TxRejectReason.BAD_ENTITY


@pytest.mark.parametrize("wire", [
    ["ip", "2001:DB8::1"],
    ["host", "Example.com"],
    ["cidr", "10.0.0.5/32"],
    ["host", "example.com."],
])
def test_wire_accepts_only_the_canonical_form(wire: list[str]) -> None:
    with pytest.raises(TxRejected) as refused:
        Entity.from_cbor(wire)
    assert refused.value.reason is TxRejectReason.BAD_ENTITY


@pytest.mark.parametrize(("canonical", "variant"), [
    (["ip", "2001:db8::1"], ["ip", "2001:DB8::1"]),
    (["host", "example.com"], ["host", "Example.com"]),
    (["ip", "10.0.0.5"], ["cidr", "10.0.0.5/32"]),
])
def test_a_parsed_canonical_entity_does_not_make_its_variants_acceptable(
        canonical: list[str], variant: list[str]) -> None:
    first = Entity.from_cbor(canonical)
    assert Entity.from_cbor(canonical) == first  # the remembered parse
    with pytest.raises(TxRejected) as refused:
        Entity.from_cbor(variant)
    assert refused.value.reason is TxRejectReason.BAD_ENTITY


def test_the_memory_of_parsed_entities_is_bounded() -> None:
    from cybermesh.protocol.txs import entity as entity_module

    for index in range(entity_module._CANONICAL_CAPACITY + 10):
        Entity.from_cbor(["account", f"user{index}@corp"])
    assert len(entity_module._canonical) <= entity_module._CANONICAL_CAPACITY
