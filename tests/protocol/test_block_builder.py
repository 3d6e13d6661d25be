"""Block builder: deterministic selection and order, limits, validation, tx root and proofs."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermesh.protocol.block_builder import (
    AUDIT_ANCHOR_WEIGHT,
    EQUIVOCATION_WEIGHT,
    GOVERNANCE_WEIGHT,
    POLICY_WEIGHT,
    WEIGHT_UNIT_MS,
    BlockLimits,
    Candidate,
    PayloadRejected,
    PayloadRejectReason,
    build_payload,
    payload_size,
    priority_key,
    tx_inclusion_proof,
    tx_root,
    tx_weight,
    validate_payload,
    verify_tx_inclusion,
)
from cybermesh.protocol.codec import decode, encode
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.executor.params import ExecutorParameters
from cybermesh.protocol.genesis import ConsensusParameters
from cybermesh.protocol.merkle.transparency import verify_inclusion
from cybermesh.protocol.txs import (
    Artifact,
    AuditAnchor,
    CustodyEntry,
    Entity,
    Evidence,
    PolicyChange,
    SecurityEvent,
    Transaction,
    sign_transaction,
)

pytestmark = pytest.mark.unit

CHAIN = "cybermesh-test"
NOW = 1_700_000_000_000
KEY = SigningKey.from_seed(bytes(range(32)))
LIMITS = BlockLimits(max_txs=100, max_bytes=1 << 20, max_tx_age_ms=3_600_000,
                     max_future_ms=300_000)


def event(*, severity: int = 5, confidence_bps: int = 5000, created_at_ms: int = NOW,
          nonce: int = 1, detector: str = "det-1", key: SigningKey = KEY,
          chain_id: str = CHAIN) -> Transaction:
    payload = SecurityEvent(source="ids-1", offender=Entity.of("ip", f"10.0.0.{nonce % 250}"),
                            category="scan", severity=severity, confidence_bps=confidence_bps,
                            observed_at_ms=created_at_ms - 10, detector=detector,
                            payload_ref="f" * 64)
    return sign_transaction(key, payload, chain_id=chain_id, producer_id="ai-1", nonce=nonce,
                            created_at_ms=created_at_ms)


def many(count: int, seed: int = 7) -> list[Transaction]:
    rng = random.Random(seed)
    return [event(severity=rng.randint(1, 10), confidence_bps=rng.randint(0, 10_000),
                  created_at_ms=NOW - rng.randint(0, 600_000), nonce=index)
            for index in range(count)]


def candidates(transactions: list[Transaction]) -> list[Candidate]:
    return [Candidate.from_transaction(transaction) for transaction in transactions]


def raw_payload(transactions: list[Transaction]) -> bytes:
    return encode([transaction.wire for transaction in transactions])


# --- weights and priority -------------------------------------------------------------------

def test_more_severe_and_more_confident_events_weigh_more() -> None:
    assert tx_weight(event(severity=6, confidence_bps=0)) > tx_weight(
        event(severity=5, confidence_bps=10_000))
    assert tx_weight(event(confidence_bps=9000)) > tx_weight(event(confidence_bps=1000))


def test_kind_weights_put_evidence_policy_and_anchors_above_events() -> None:
    top_event = event(severity=10, confidence_bps=10_000)
    evidence = sign_transaction(KEY, Evidence(
        "artifacts", artifacts=(Artifact(bytes(32), "pcap", 10),),
        custody=(CustodyEntry("analyst-1", "collected", NOW - 5),),
        supports=(top_event.tx_id,)), chain_id=CHAIN, producer_id="ai-1", nonce=2,
        created_at_ms=NOW)
    policy = sign_transaction(KEY, PolicyChange("quarantine", Entity.of("ip", "10.0.0.9"),
                                                "worm", expires_at_ms=NOW + 60_000),
                              chain_id=CHAIN, producer_id="ai-1", nonce=3, created_at_ms=NOW)
    anchor = sign_transaction(KEY, AuditAnchor("ai-1", 7, bytes(32), "hmac-1"),
                              chain_id=CHAIN, producer_id="ai-1", nonce=4, created_at_ms=NOW)
    assert tx_weight(evidence) == 540
    assert tx_weight(policy) == POLICY_WEIGHT
    assert tx_weight(anchor) == AUDIT_ANCHOR_WEIGHT
    assert GOVERNANCE_WEIGHT > EQUIVOCATION_WEIGHT > POLICY_WEIGHT > AUDIT_ANCHOR_WEIGHT
    assert AUDIT_ANCHOR_WEIGHT > tx_weight(top_event) > tx_weight(evidence) - 500


def test_priority_key_trades_one_weight_point_for_one_second_of_age() -> None:
    heavy_new = event(severity=6, confidence_bps=0, created_at_ms=NOW)
    light_old = event(severity=5, confidence_bps=0, created_at_ms=NOW - 99 * WEIGHT_UNIT_MS)
    lighter_older = event(severity=5, confidence_bps=0,
                          created_at_ms=NOW - 101 * WEIGHT_UNIT_MS)
    assert priority_key(heavy_new) > priority_key(light_old)
    assert priority_key(lighter_older) > priority_key(heavy_new)


# --- building -------------------------------------------------------------------------------

def test_payload_is_the_canonical_cbor_list_of_wire_bytes() -> None:
    transactions = many(30)
    built = build_payload(candidates(transactions), limits=LIMITS, block_time_ms=NOW)
    by_id = {transaction.tx_id: transaction for transaction in transactions}
    assert built.payload == encode([by_id[tx_id].wire for tx_id in built.tx_ids])
    assert decode(built.payload) == [by_id[tx_id].wire for tx_id in built.tx_ids]
    assert built.tx_root == tx_root(built.tx_ids)
    assert payload_size([by_id[tx_id].wire for tx_id in built.tx_ids]) == len(built.payload)


def test_order_is_priority_descending_then_tx_id_ascending() -> None:
    same_key = [event(severity=3, confidence_bps=0, nonce=nonce) for nonce in range(5)]
    heavy = event(severity=9, nonce=99)
    built = build_payload(candidates([*same_key, heavy]), limits=LIMITS, block_time_ms=NOW)
    assert built.tx_ids[0] == heavy.tx_id
    assert list(built.tx_ids[1:]) == sorted(transaction.tx_id for transaction in same_key)


def test_empty_mempool_gives_the_empty_payload_and_the_empty_tree_root() -> None:
    built = build_payload([], limits=LIMITS, block_time_ms=NOW)
    assert built.payload == encode([])
    assert built.tx_count == 0
    assert validate_payload(built.payload, limits=LIMITS, block_time_ms=NOW,
                            chain_id=CHAIN).tx_root == built.tx_root


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), max_txs=st.integers(0, 40),
       max_bytes=st.integers(1, 12_000))
def test_same_candidates_in_any_order_give_the_same_block(seed: int, max_txs: int,
                                                          max_bytes: int) -> None:
    print(f"seed={seed}")
    pool = candidates(_POOL)
    shuffled = list(pool)
    random.Random(seed).shuffle(shuffled)
    limits = BlockLimits(max_txs=max_txs, max_bytes=max_bytes, max_tx_age_ms=3_600_000,
                         max_future_ms=300_000)
    first = build_payload(pool, limits=limits, block_time_ms=NOW)
    second = build_payload(shuffled + shuffled[:5], limits=limits, block_time_ms=NOW)
    assert first == second
    assert first.tx_count <= max_txs
    assert len(first.payload) <= max_bytes
    validated = validate_payload(first.payload, limits=limits, block_time_ms=NOW,
                                 chain_id=CHAIN)
    assert validated.tx_ids == first.tx_ids
    assert validated.tx_root == first.tx_root


_POOL = many(40, seed=11)


def test_count_limit_keeps_the_highest_priorities() -> None:
    transactions = many(50)
    built = build_payload(candidates(transactions), limits=BlockLimits(
        max_txs=10, max_bytes=1 << 20, max_tx_age_ms=3_600_000, max_future_ms=300_000),
        block_time_ms=NOW)
    best = sorted(transactions, key=lambda tx: (-priority_key(tx), tx.tx_id))[:10]
    assert built.tx_ids == tuple(transaction.tx_id for transaction in best)


def test_byte_limit_skips_a_transaction_that_does_not_fit_and_takes_smaller_ones() -> None:
    big = sign_transaction(KEY, Evidence(
        "artifacts", artifacts=tuple(Artifact(bytes([index]) * 32, "pcap", 10)
                                     for index in range(40)),
        custody=(CustodyEntry("analyst-1", "collected", NOW - 5),),
        supports=(bytes(32),)), chain_id=CHAIN, producer_id="ai-1", nonce=500,
        created_at_ms=NOW)
    small = [event(severity=1, nonce=nonce) for nonce in range(3)]
    limit = payload_size([transaction.wire for transaction in small]) + 10
    assert len(big.wire) > limit
    built = build_payload(candidates([big, *small]), limits=BlockLimits(
        max_txs=100, max_bytes=limit, max_tx_age_ms=3_600_000, max_future_ms=300_000),
        block_time_ms=NOW)
    assert big.tx_id not in built.tx_ids
    assert set(built.tx_ids) == {transaction.tx_id for transaction in small}
    assert len(built.payload) <= limit


def test_transactions_outside_the_age_window_are_left_out() -> None:
    fresh = event(nonce=1)
    stale = event(nonce=2, created_at_ms=NOW - LIMITS.max_tx_age_ms - 1)
    oldest_allowed = event(nonce=3, created_at_ms=NOW - LIMITS.max_tx_age_ms)
    future = event(nonce=4, created_at_ms=NOW + LIMITS.max_future_ms + 1)
    built = build_payload(candidates([fresh, stale, oldest_allowed, future]), limits=LIMITS,
                          block_time_ms=NOW)
    assert set(built.tx_ids) == {fresh.tx_id, oldest_allowed.tx_id}


def test_limits_come_from_genesis_and_executor_parameters() -> None:
    limits = BlockLimits.from_parameters(ConsensusParameters(max_block_txs=7,
                                                             max_block_bytes=999),
                                         ExecutorParameters(tx_max_age_ms=60_000,
                                                            tx_max_future_ms=2000))
    assert limits == BlockLimits(max_txs=7, max_bytes=999, max_tx_age_ms=60_000,
                                 max_future_ms=2000)
    with pytest.raises(ValueError, match="max_txs"):
        BlockLimits(max_txs=-1, max_bytes=1, max_tx_age_ms=1, max_future_ms=1)


# --- validation -----------------------------------------------------------------------------

def _canonical(transactions: list[Transaction]) -> list[Transaction]:
    return sorted(transactions, key=lambda tx: (-priority_key(tx), tx.tx_id))


def _refusal(payload: bytes, limits: BlockLimits = LIMITS) -> PayloadRejected:
    with pytest.raises(PayloadRejected) as caught:
        validate_payload(payload, limits=limits, block_time_ms=NOW, chain_id=CHAIN)
    return caught.value


def test_a_misordered_payload_is_refused() -> None:
    ordered = _canonical(many(6))
    swapped = [ordered[0], ordered[2], ordered[1], *ordered[3:]]
    refusal = _refusal(raw_payload(swapped))
    assert refusal.reason is PayloadRejectReason.NOT_CANONICAL_ORDER
    assert refusal.index == 2
    validate_payload(raw_payload(ordered), limits=LIMITS, block_time_ms=NOW, chain_id=CHAIN)


def test_equal_priority_in_descending_tx_id_order_is_refused() -> None:
    same = sorted([event(severity=2, confidence_bps=0, nonce=nonce) for nonce in range(2)],
                  key=lambda tx: tx.tx_id, reverse=True)
    assert _refusal(raw_payload(same)).reason is PayloadRejectReason.NOT_CANONICAL_ORDER


def test_a_repeated_transaction_is_refused() -> None:
    one = event()
    assert _refusal(raw_payload([one, one])).reason is PayloadRejectReason.DUPLICATE_TX


def test_too_many_transactions_are_refused() -> None:
    limits = BlockLimits(max_txs=3, max_bytes=1 << 20, max_tx_age_ms=3_600_000,
                         max_future_ms=300_000)
    refusal = _refusal(raw_payload(_canonical(many(4))), limits)
    assert refusal.reason is PayloadRejectReason.TOO_MANY_TXS


def test_an_oversized_payload_is_refused() -> None:
    payload = raw_payload(_canonical(many(4)))
    limits = BlockLimits(max_txs=100, max_bytes=len(payload) - 1, max_tx_age_ms=3_600_000,
                         max_future_ms=300_000)
    assert _refusal(payload, limits).reason is PayloadRejectReason.TOO_LARGE


@pytest.mark.parametrize("payload", [
    b"",
    encode({"txs": []}),
    encode([1, 2]),
    encode([b"x"])[:-1],
    bytes.fromhex("9fff"),  # indefinite-length array
])
def test_a_payload_that_is_not_a_canonical_list_of_byte_strings_is_refused(
        payload: bytes) -> None:
    assert _refusal(payload).reason is PayloadRejectReason.MALFORMED


def test_an_undecodable_or_foreign_chain_transaction_is_refused() -> None:
    assert _refusal(encode([b"\x00"])).reason is PayloadRejectReason.BAD_TRANSACTION
    foreign = event(chain_id="other-chain")
    refusal = _refusal(raw_payload([foreign]))
    assert refusal.reason is PayloadRejectReason.BAD_TRANSACTION
    assert "wrong_chain" in refusal.detail


def test_stale_and_future_transactions_are_refused() -> None:
    stale = event(created_at_ms=NOW - LIMITS.max_tx_age_ms - 1)
    future = event(created_at_ms=NOW + LIMITS.max_future_ms + 1)
    assert _refusal(raw_payload([stale])).reason is PayloadRejectReason.TX_TOO_OLD
    assert _refusal(raw_payload([future])).reason is PayloadRejectReason.TX_FROM_FUTURE


def test_a_forged_signature_is_refused() -> None:
    good, victim = _canonical(many(2))
    body, signature = decode(victim.wire)  # type: ignore[misc]
    forged = encode([body, bytes([signature[0] ^ 1]) + signature[1:]])
    payload = encode([good.wire, forged])
    refusal = _refusal(payload)
    assert refusal.reason is PayloadRejectReason.BAD_SIGNATURE
    assert refusal.index == 1
    # Without the signature batch (a caller that verified them already) the payload passes.
    validate_payload(payload, limits=LIMITS, block_time_ms=NOW, chain_id=CHAIN,
                     verify_signatures=False)


# --- tx root and inclusion proofs ----------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(count=st.integers(1, 40), data=st.data())
def test_every_transaction_has_an_rfc9162_inclusion_proof(count: int,
                                                          data: st.DataObject) -> None:
    built = build_payload(candidates(_POOL[:count]), limits=LIMITS, block_time_ms=NOW)
    index = data.draw(st.integers(0, built.tx_count - 1))
    proof = tx_inclusion_proof(built.tx_ids, index)
    tx_id = built.tx_ids[index]
    assert verify_tx_inclusion(tx_id, index, built.tx_count, proof, built.tx_root)
    assert verify_inclusion(tx_id, index, built.tx_count, proof, built.tx_root)
    assert not verify_tx_inclusion(bytes(32), index, built.tx_count, proof, built.tx_root)
    if built.tx_count > 1:
        other = (index + 1) % built.tx_count
        assert not verify_tx_inclusion(tx_id, other, built.tx_count, proof, built.tx_root)


def test_tx_root_matches_a_known_rfc9162_shape() -> None:
    # Two leaves: SHA-256(0x01 || SHA-256(0x00 || a) || SHA-256(0x00 || b)).
    import hashlib

    first, second = b"\x01" * 32, b"\x02" * 32
    leaf = [hashlib.sha256(b"\x00" + value).digest() for value in (first, second)]
    assert tx_root([first, second]) == hashlib.sha256(b"\x01" + leaf[0] + leaf[1]).digest()
