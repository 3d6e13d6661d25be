"""The memory of verified transaction signatures saves work and never admits anything."""

from __future__ import annotations

import pytest

from cybermesh.protocol.block_builder import PayloadRejected, PayloadRejectReason, validate_payload
from cybermesh.protocol.codec import decode, encode
from cybermesh.protocol.txs import signature_memory
from cybermesh.protocol.txs.envelope import Transaction, decode_transaction
from cybermesh.protocol.txs.signature_memory import SignatureMemory
from tests.protocol.test_block_builder import CHAIN, LIMITS, NOW, _canonical, many

pytestmark = pytest.mark.unit


def forged(transaction: Transaction) -> Transaction:
    """The same body (so the same tx id) with one bit of the signature flipped."""
    body, signature = decode(transaction.wire)  # type: ignore[misc]
    return decode_transaction(encode([body, bytes([signature[0] ^ 1]) + signature[1:]]),
                              verify=False)


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many signatures each call really verified."""
    counts: list[int] = []
    real = signature_memory.verify_batch

    def counting(items):  # type: ignore[no-untyped-def]
        counts.append(len(items))
        return real(items)

    monkeypatch.setattr(signature_memory, "verify_batch", counting)
    return counts


def test_a_verified_signature_is_not_verified_again(verifications: list[int]) -> None:
    memory = SignatureMemory()
    transactions = many(5)
    assert memory.failed(transactions) == []
    assert memory.failed(transactions[1:3]) == []
    assert verifications == [5, 0]


def test_a_forged_signature_of_a_remembered_transaction_is_still_refused() -> None:
    memory = SignatureMemory()
    good = many(3)
    assert memory.failed(good) == []
    assert memory.failed([good[0], forged(good[1]), good[2]]) == [1]


def test_failures_are_not_remembered(verifications: list[int]) -> None:
    memory = SignatureMemory()
    bad = forged(many(1)[0])
    assert memory.failed([bad]) == [0]
    assert memory.failed([bad]) == [0]
    assert verifications == [1, 1] and len(memory) == 0


def test_the_memory_is_bounded_and_forgets_the_oldest(verifications: list[int]) -> None:
    memory = SignatureMemory(capacity=3)
    transactions = many(5)
    memory.failed(transactions)
    assert len(memory) == 3
    memory.failed(transactions[:2])  # the two oldest were forgotten: verified again
    memory.failed(transactions[2:])  # ... which pushed out 2 and 3, kept 4
    assert verifications == [5, 2, 2]


def test_validate_payload_refuses_a_forged_copy_after_the_original_passed() -> None:
    memory = SignatureMemory()
    good = _canonical(many(2))
    validate_payload(encode([tx.wire for tx in good]), limits=LIMITS, block_time_ms=NOW,
                     chain_id=CHAIN, signatures=memory)
    payload = encode([good[0].wire, forged(good[1]).wire])
    with pytest.raises(PayloadRejected) as refusal:
        validate_payload(payload, limits=LIMITS, block_time_ms=NOW, chain_id=CHAIN,
                         signatures=memory)
    assert refusal.value.reason is PayloadRejectReason.BAD_SIGNATURE
    assert refusal.value.index == 1


def test_validate_payload_returns_the_decoded_transactions_in_payload_order() -> None:
    good = _canonical(many(4))
    validated = validate_payload(encode([tx.wire for tx in good]), limits=LIMITS,
                                 block_time_ms=NOW, chain_id=CHAIN)
    assert [tx.wire for tx in validated.transactions] == [tx.wire for tx in good]


def test_validate_payload_uses_the_memory_it_is_given_even_an_empty_one(
        verifications: list[int]) -> None:
    good = _canonical(many(3))
    payload = encode([tx.wire for tx in good])
    validate_payload(payload, limits=LIMITS, block_time_ms=NOW, chain_id=CHAIN)  # global
    memory = SignatureMemory()
    validate_payload(payload, limits=LIMITS, block_time_ms=NOW, chain_id=CHAIN,
                     signatures=memory)
    assert len(memory) == 3 and verifications[-1] == 3
