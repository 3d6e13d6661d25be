"""Envelope: round trips, the id rule, domain separation, and corruption always refused."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermesh.protocol.codec import encode
from cybermesh.protocol.crypto.hashing import sha256
from cybermesh.protocol.crypto.signing import Domain, PublicKey
from cybermesh.protocol.txs import (
    Entity,
    GovernanceOperation,
    Transaction,
    TxKind,
    TxRejected,
    TxRejectReason,
    decode_transaction,
    sign_transaction,
    tx_domain,
)
from tests.protocol.txs.tx_builders import (
    CHAIN_ID,
    PAYLOAD_BUILDERS,
    PRODUCER_KEY,
    T0,
    anchor,
    equivocation,
    governance,
    mutated_wire,
    policy,
    quarantine,
    release,
    security_event,
    signed,
)

pytestmark = pytest.mark.unit

ALL_PAYLOADS = [
    *[builder() for builder in PAYLOAD_BUILDERS.values()],
    equivocation(),
    quarantine(Entity.of("host", "c2.evil.example")),
    release(Entity.of("account", "svc-backup@corp")),
    policy(operation="remove_rule", expires_at_ms=None),
    *[governance(operation) for operation in GovernanceOperation],
]


@pytest.mark.parametrize("payload", ALL_PAYLOADS, ids=lambda p: type(p).__name__)
def test_every_kind_round_trips_through_the_wire(payload: object) -> None:
    tx = signed(payload)
    decoded = decode_transaction(tx.wire, expected_chain_id=CHAIN_ID)
    assert decoded == tx
    assert decoded.tx_id == tx.tx_id
    assert decoded.wire == tx.wire
    assert decoded.kind is payload.KIND  # type: ignore[attr-defined]


def test_tx_id_is_the_hash_of_exactly_the_signed_message() -> None:
    tx = signed(security_event())
    domain = tx_domain(TxKind.SECURITY_EVENT, CHAIN_ID)
    assert tx.tx_id == sha256(domain.tag() + tx.body)
    assert PublicKey.from_bytes(tx.public_key).verify(domain, tx.body, tx.signature)


def test_another_signature_over_the_same_body_is_the_same_transaction() -> None:
    tx = signed(security_event())
    other = dataclasses.replace(tx, signature=bytes(64))
    assert other.tx_id == tx.tx_id  # re-signing never makes a "new" transaction
    assert other.wire_hash != tx.wire_hash  # but the stored row's content hash differs
    with pytest.raises(TxRejected) as refused:
        decode_transaction(other.wire)
    assert refused.value.reason is TxRejectReason.BAD_SIGNATURE


def test_nonce_and_creation_time_make_distinct_ids() -> None:
    ids = {signed(security_event(), nonce=n, created_at_ms=T0 + t).tx_id
           for n in range(3) for t in range(3)}
    assert len(ids) == 9


def test_signature_is_bound_to_chain_and_kind() -> None:
    tx = signed(security_event())
    public_key = PublicKey.from_bytes(tx.public_key)
    assert not public_key.verify(tx_domain(TxKind.SECURITY_EVENT, "other-chain"), tx.body,
                                 tx.signature)
    assert not public_key.verify(tx_domain(TxKind.POLICY, CHAIN_ID), tx.body, tx.signature)
    assert not public_key.verify(Domain("vote", CHAIN_ID, 1), tx.body, tx.signature)


def test_moving_a_transaction_to_another_chain_breaks_its_signature() -> None:
    tx = signed(security_event())
    body_bytes = tx.body.replace(CHAIN_ID.encode(), b"cybermesh-tesu")
    with pytest.raises(TxRejected) as refused:
        decode_transaction(encode([body_bytes, tx.signature]))
    assert refused.value.reason is TxRejectReason.BAD_SIGNATURE


def test_decode_without_verification_skips_only_the_signature() -> None:
    tx = signed(security_event())
    forged = dataclasses.replace(tx, signature=b"\x01" * 64)
    assert decode_transaction(forged.wire, verify=False).tx_id == tx.tx_id


def test_audit_anchor_must_be_produced_by_its_validator() -> None:
    with pytest.raises(TxRejected) as refused:
        sign_transaction(PRODUCER_KEY, anchor("validator-1"), chain_id=CHAIN_ID,
                         producer_id="validator-0", nonce=1, created_at_ms=T0)
    assert refused.value.reason is TxRejectReason.BAD_VALIDATOR_ID


def test_known_answer_vector_pins_the_canonical_encoding() -> None:
    """A change to field order, key names or the id rule changes this id (and breaks every
    validator's agreement on existing ledgers): update docs/transactions.md with it."""
    tx = signed(security_event(), nonce=7)
    assert tx.tx_id.hex() == KNOWN_EVENT_ID
    assert len(tx.wire) == KNOWN_EVENT_WIRE_LENGTH


KNOWN_EVENT_ID = "7300b80a706fc42ae60cb86ff435ce8834e1c7517a04fcf812b69c667994a359"
KNOWN_EVENT_WIRE_LENGTH = 344


VALID_WIRES = [signed(payload).wire for payload in ALL_PAYLOADS]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VALID_WIRES), st.data())
def test_any_single_byte_corruption_is_refused(wire: bytes, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(wire) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="mask")
    corrupted = wire[:position] + bytes([wire[position] ^ mask]) + wire[position + 1:]
    with pytest.raises(TxRejected):
        decode_transaction(corrupted)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_tx_rejected(data: bytes) -> None:
    with contextlib.suppress(TxRejected):  # anything else escaping fails the test
        decode_transaction(data)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(VALID_WIRES), st.integers(1, 64))
def test_truncation_is_refused(wire: bytes, cut: int) -> None:
    with pytest.raises(TxRejected):
        decode_transaction(wire[:-cut])


def test_mutated_wire_helper_resigns_so_schema_rules_are_what_refuse() -> None:
    tx = signed(security_event())
    same = mutated_wire(tx, lambda body: None)
    assert decode_transaction(same) == tx


def test_transaction_constructor_refuses_a_foreign_payload() -> None:
    tx = signed(security_event())
    with pytest.raises(TxRejected) as refused:
        dataclasses.replace(tx, payload="not a payload")  # type: ignore[arg-type]
    assert refused.value.reason is TxRejectReason.UNKNOWN_KIND
    assert isinstance(tx, Transaction)


def test_a_schema_that_does_not_reproduce_its_input_is_caught(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from cybermesh.protocol.txs.security_event import SecurityEvent

    tx = signed(security_event())
    original = SecurityEvent.to_cbor

    def lossy(self: SecurityEvent) -> object:
        body = original(self)
        assert isinstance(body, dict)
        body["severity"] = 1  # a buggy serializer
        return body

    monkeypatch.setattr(SecurityEvent, "to_cbor", lossy)
    with pytest.raises(TxRejected) as refused:
        decode_transaction(tx.wire, verify=False)
    assert refused.value.reason is TxRejectReason.MALFORMED_ENCODING
