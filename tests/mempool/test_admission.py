"""The admission pipeline on real PostgreSQL: every rejection reason, the order of the steps,
dedupe, rate limits, quotas, capacity and eviction, batching, metrics."""

from __future__ import annotations

import pytest

from apps.ledger.models import Transaction as LedgerTransaction
from apps.mempool import admission as admission_module
from apps.mempool.admission import (
    AdmissionPipeline,
    AdmissionReason,
    AdmissionRejected,
    AdmissionStatus,
    AdmissionStep,
)
from apps.mempool.models import MempoolTransaction, PoolStats, ProducerNonce
from apps.mempool.queries import pool_size
from cybermesh.protocol.block_builder import priority_key
from cybermesh.protocol.codec import encode
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.txs import TxKind
from tests.mempool.conftest import MakePipeline
from tests.mempool.factories import (
    ALICE,
    BOB,
    CHAIN,
    MALLORY,
    NOW,
    allowlist,
    event,
    policy,
    producer,
    rejections,
    sample,
    with_body,
    with_signature,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

_R = AdmissionReason


def _refused(pipeline: AdmissionPipeline, raw: bytes, reason: AdmissionReason,
             now_ms: int = NOW) -> None:
    before = rejections(reason.value)
    result = pipeline.admit(raw, now_ms=now_ms, source="test")
    assert result.status is AdmissionStatus.REJECTED, result
    assert result.reason is reason, result
    assert rejections(reason.value) == before + 1
    with pytest.raises(AdmissionRejected) as caught:
        result.raise_if_rejected()
    assert caught.value.reason is reason


def _admitted(pipeline: AdmissionPipeline, raw: bytes, now_ms: int = NOW) -> bytes:
    result = pipeline.admit(raw, now_ms=now_ms, source="test")
    assert result.status is AdmissionStatus.ADMITTED, result
    assert result.tx_id is not None
    return result.tx_id


def _pool_ids() -> set[bytes]:
    return {bytes(tx_id) for tx_id in MempoolTransaction.objects.values_list("tx_id", flat=True)}


def _assert_counter_matches_rows() -> None:
    stats = PoolStats.objects.get(name="pool")
    size = pool_size()
    assert (stats.tx_count, stats.total_bytes) == (size.tx_count, size.total_bytes)


# --- the happy path -------------------------------------------------------------------------

def test_a_valid_transaction_is_admitted_and_stored_with_its_priority(
        pipeline: AdmissionPipeline) -> None:
    transaction = event(severity=7)
    before = sample("cybermesh_mempool_admitted_total", kind="security_event")
    result = pipeline.admit(transaction.wire, now_ms=NOW + 50, source="kafka:ai.anomalies.v1")
    assert result.admitted and result.durable
    assert result.tx_id == transaction.tx_id
    assert result.priority == priority_key(transaction)
    row = MempoolTransaction.objects.get(tx_id=transaction.tx_id)
    assert bytes(row.wire) == transaction.wire
    assert (row.kind, row.producer_id, row.source) == ("security_event", "ai-1",
                                                       "kafka:ai.anomalies.v1")
    assert row.expires_at_ms == transaction.created_at_ms + pipeline.config.ttl_ms
    assert row.admitted_at_ms == NOW + 50
    assert ProducerNonce.objects.filter(producer_id="ai-1").count() == 1
    assert sample("cybermesh_mempool_admitted_total", kind="security_event") == before + 1
    _assert_counter_matches_rows()


# --- every rejection reason -------------------------------------------------------------------

def test_an_oversized_transaction_is_refused_before_decoding(make_pipeline: MakePipeline
                                                             ) -> None:
    small = make_pipeline(max_tx_bytes=200)
    _refused(small, event().wire, _R.TOO_LARGE)
    pipeline = make_pipeline()
    _refused(pipeline, encode([b"\x00" * 60_000, b"\x00" * 64]), _R.TOO_LARGE)


def test_an_unknown_schema_version_is_refused(pipeline: AdmissionPipeline) -> None:
    _refused(pipeline, with_body(event(), {0: 2}), _R.UNSUPPORTED_VERSION)


@pytest.mark.parametrize("raw", [b"", b"\xff", b"not cbor at all", encode([b"x"]),
                                 encode({"body": b"", "sig": b""})])
def test_undecodable_bytes_are_refused_as_malformed_or_schema(pipeline: AdmissionPipeline,
                                                             raw: bytes) -> None:
    result = pipeline.admit(raw, now_ms=NOW, source="test")
    assert result.status is AdmissionStatus.REJECTED
    assert result.reason is not None
    assert result.reason.step is AdmissionStep.SCHEMA
    assert result.tx_id is None


def test_non_canonical_cbor_is_refused_as_malformed(pipeline: AdmissionPipeline) -> None:
    _refused(pipeline, b"\x82\x58\x01x\x40", _R.MALFORMED)  # 1-byte string in a 2-byte head
    _refused(pipeline, bytearray(event().wire), _R.MALFORMED)  # type: ignore[arg-type]


def test_an_unknown_kind_is_refused(pipeline: AdmissionPipeline) -> None:
    _refused(pipeline, with_body(event(), {1: "weather"}), _R.UNKNOWN_KIND)


def test_another_chains_transaction_is_refused(pipeline: AdmissionPipeline) -> None:
    _refused(pipeline, event(chain_id="other-chain").wire, _R.WRONG_CHAIN)


def test_a_schema_violation_is_refused_with_the_transaction_layers_reason(
        pipeline: AdmissionPipeline) -> None:
    payload = event().payload.to_cbor()
    assert isinstance(payload, dict)
    raw = with_body(event(), {7: {**payload, "severity": 11}})
    before = sample("cybermesh_mempool_schema_rejections_total", tx_reason="bad_severity")
    _refused(pipeline, raw, _R.SCHEMA)
    assert sample("cybermesh_mempool_schema_rejections_total",
                  tx_reason="bad_severity") == before + 1


def test_an_unlisted_key_or_producer_is_refused(pipeline: AdmissionPipeline) -> None:
    _refused(pipeline, event(key=MALLORY).wire, _R.UNKNOWN_PRODUCER)
    # Bob's key is listed, but for ai-2: it cannot speak for ai-1.
    _refused(pipeline, event(key=BOB, producer_id="ai-1").wire, _R.UNKNOWN_PRODUCER)
    _refused(pipeline, event(producer_id="ai-9").wire, _R.UNKNOWN_PRODUCER)


def test_a_bad_signature_is_refused(pipeline: AdmissionPipeline) -> None:
    transaction = event()
    _refused(pipeline, with_signature(transaction, bytes(64)), _R.BAD_SIGNATURE)
    other = BOB.sign(transaction.domain, transaction.body)
    _refused(pipeline, with_signature(transaction, other), _R.BAD_SIGNATURE)
    assert not MempoolTransaction.objects.exists()


def test_a_kind_the_producer_may_not_submit_is_refused(pipeline: AdmissionPipeline) -> None:
    _refused(pipeline, policy().wire, _R.KIND_NOT_PERMITTED)
    operator = AdmissionPipeline(pipeline.config, allowlist(
        producer("ai-1", kinds=(TxKind.POLICY,))))
    _admitted(operator, policy().wire)


def test_stale_and_future_transactions_are_refused(pipeline: AdmissionPipeline) -> None:
    window = pipeline.config.replay_window_ms
    skew = pipeline.config.max_future_skew_ms
    _refused(pipeline, event(1, created_at_ms=NOW - window - 1).wire, _R.STALE)
    _refused(pipeline, event(2, created_at_ms=NOW + skew + 1).wire, _R.FROM_FUTURE)
    _admitted(pipeline, event(3, created_at_ms=NOW - window).wire)
    _admitted(pipeline, event(4, created_at_ms=NOW + skew).wire)


def test_a_nonce_reused_by_a_different_transaction_is_refused(pipeline: AdmissionPipeline
                                                              ) -> None:
    _admitted(pipeline, event(7, severity=3).wire)
    _refused(pipeline, event(7, severity=4).wire, _R.NONCE_REUSED)
    # Another producer's nonce 7 is its own.
    _admitted(pipeline, event(7, producer_id="ai-2", key=BOB).wire)


def test_the_rate_limit_refuses_a_burst_and_refills_with_time(make_pipeline: MakePipeline
                                                              ) -> None:
    pipeline = make_pipeline(allowlist(producer(rate_per_second=2, burst=3)))
    for nonce in range(3):
        _admitted(pipeline, event(nonce).wire)
    _refused(pipeline, event(3).wire, _R.RATE_LIMITED)
    # Half a second later one token has come back (2 per second), not two.
    _admitted(pipeline, event(4).wire, now_ms=NOW + 500)
    _refused(pipeline, event(5).wire, _R.RATE_LIMITED, now_ms=NOW + 500)
    assert _R.RATE_LIMITED.retry_later


def test_the_pending_quota_refuses_beyond_max_pending(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(allowlist(producer(max_pending=2), producer("ai-2", BOB)))
    _admitted(pipeline, event(1).wire)
    _admitted(pipeline, event(2).wire)
    _refused(pipeline, event(3).wire, _R.QUOTA_EXCEEDED)
    _admitted(pipeline, event(1, producer_id="ai-2", key=BOB).wire)


def test_a_full_pool_refuses_a_transaction_below_everything_in_it(make_pipeline: MakePipeline
                                                                   ) -> None:
    pipeline = make_pipeline(max_txs=3)
    for nonce in range(3):
        _admitted(pipeline, event(nonce, severity=5).wire)
    _refused(pipeline, event(9, severity=4).wire, _R.POOL_FULL)
    assert len(_pool_ids()) == 3
    _assert_counter_matches_rows()


def test_every_reason_belongs_to_a_step_in_pipeline_order() -> None:
    steps = [reason.step for reason in AdmissionReason]
    assert steps == sorted(steps)
    assert {reason for reason in AdmissionReason if reason.retry_later} == {
        _R.RATE_LIMITED, _R.QUOTA_EXCEEDED, _R.POOL_FULL}


# --- the order of the steps -----------------------------------------------------------------

def test_an_unsigned_transaction_over_the_rate_is_counted_as_a_bad_signature(
        make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(allowlist(producer(rate_per_second=1, burst=1)))
    _admitted(pipeline, event(1).wire)
    unsigned = with_signature(event(2), bytes(64))
    rate_limited_before = rejections("rate_limited")
    _refused(pipeline, unsigned, _R.BAD_SIGNATURE)
    assert rejections("rate_limited") == rate_limited_before


def test_an_unknown_producer_with_a_bad_signature_is_counted_as_unknown(
        pipeline: AdmissionPipeline) -> None:
    _refused(pipeline, with_signature(event(key=MALLORY), bytes(64)), _R.UNKNOWN_PRODUCER)


def test_a_wrong_chain_transaction_with_a_bad_signature_is_counted_as_wrong_chain(
        pipeline: AdmissionPipeline) -> None:
    _refused(pipeline, with_signature(event(chain_id="other-chain"), bytes(64)),
             _R.WRONG_CHAIN)


def test_a_duplicate_does_not_spend_a_rate_token(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(allowlist(producer(rate_per_second=1, burst=1)))
    transaction = event(1)
    _admitted(pipeline, transaction.wire)
    for _ in range(3):
        again = pipeline.admit(transaction.wire, now_ms=NOW, source="test")
        assert again.status is AdmissionStatus.DUPLICATE
        assert again.durable and not again.admitted


def test_a_stale_copy_of_an_admitted_transaction_is_refused_before_dedupe(
        pipeline: AdmissionPipeline) -> None:
    transaction = event(1)
    _admitted(pipeline, transaction.wire)
    _refused(pipeline, transaction.wire, _R.STALE,
             now_ms=NOW + pipeline.config.replay_window_ms + 1)


def test_a_rate_limited_producer_over_its_quota_is_counted_as_rate_limited(
        make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(allowlist(producer(rate_per_second=1, burst=1, max_pending=1)))
    _admitted(pipeline, event(1).wire)
    _refused(pipeline, event(2).wire, _R.RATE_LIMITED)
    _refused(pipeline, event(3).wire, _R.QUOTA_EXCEEDED, now_ms=NOW + 1000)


# --- dedupe -----------------------------------------------------------------------------------

def test_a_transaction_already_in_the_ledger_is_a_duplicate(pipeline: AdmissionPipeline
                                                            ) -> None:
    transaction = event(1)
    LedgerTransaction.objects.create(block_height=1, idx=0, tx_id=transaction.tx_id,
                                     kind="security_event", payload=transaction.wire,
                                     content_hash=transaction.wire_hash, producer_id="ai-1")
    before = sample("cybermesh_mempool_duplicates_total")
    result = pipeline.admit(transaction.wire, now_ms=NOW, source="test")
    assert result.status is AdmissionStatus.DUPLICATE
    assert not MempoolTransaction.objects.exists()
    assert sample("cybermesh_mempool_duplicates_total") == before + 1


# --- capacity and eviction ------------------------------------------------------------------

def test_a_higher_priority_transaction_evicts_the_lowest_from_a_full_pool(
        make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(max_txs=3)
    low = [event(nonce, severity=2) for nonce in range(3)]
    for transaction in low:
        _admitted(pipeline, transaction.wire)
    # Equal priority: the one a block would take last (largest tx id) goes first.
    victim = max(low, key=lambda transaction: transaction.tx_id)
    evicted_before = sample("cybermesh_mempool_evicted_total")
    result = pipeline.admit(event(9, severity=8).wire, now_ms=NOW, source="test")
    assert result.admitted
    assert result.evicted == (victim.tx_id,)
    assert victim.tx_id not in _pool_ids()
    assert len(_pool_ids()) == 3
    assert sample("cybermesh_mempool_evicted_total") == evicted_before + 1
    _assert_counter_matches_rows()


def test_older_transactions_of_equal_weight_outrank_newer_ones_in_a_full_pool(
        make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(max_txs=1)
    _admitted(pipeline, event(1, created_at_ms=NOW - 1000).wire)
    _refused(pipeline, event(2, created_at_ms=NOW).wire, _R.POOL_FULL)


def test_a_batch_into_a_nearly_full_pool_keeps_the_highest_priorities(
        make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(max_txs=3)
    _admitted(pipeline, event(100, severity=5).wire)
    batch = [event(nonce, severity=severity) for nonce, severity
             in enumerate([1, 9, 3, 7, 5])]
    results = pipeline.admit_batch([transaction.wire for transaction in batch], now_ms=NOW,
                                   source="test")
    statuses = [(result.status, result.reason) for result in results]
    admitted = AdmissionStatus.ADMITTED, None
    full = AdmissionStatus.REJECTED, _R.POOL_FULL
    # Severities 9 and 7 make room for themselves by evicting 5s: the earlier 5 (nonce 100)
    # or the batch's 5, whichever a block would take last; 1 and 3 do not fit.
    assert statuses[0] == full and statuses[2] == full
    assert statuses[1] == admitted and statuses[3] == admitted
    assert len(_pool_ids()) == 3
    _assert_counter_matches_rows()


def test_expired_rows_make_room_before_anything_is_evicted(make_pipeline: MakePipeline
                                                          ) -> None:
    pipeline = make_pipeline(max_txs=2, ttl_ms=400_000, replay_window_ms=300_000)
    _admitted(pipeline, event(1, severity=9).wire)
    _admitted(pipeline, event(2, severity=9).wire)
    later = NOW + 400_000
    expired_before = sample("cybermesh_mempool_expired_total")
    result = pipeline.admit(event(3, severity=1, created_at_ms=later).wire, now_ms=later,
                            source="test")
    assert result.admitted and result.evicted == ()
    assert sample("cybermesh_mempool_expired_total") == expired_before + 2
    assert _pool_ids() == {result.tx_id}
    _assert_counter_matches_rows()


# --- batches ----------------------------------------------------------------------------------

def test_a_batch_verifies_signatures_once_and_answers_in_input_order(
        pipeline: AdmissionPipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = admission_module.verify_batch

    def counting(items: list) -> list[int]:  # type: ignore[type-arg]
        calls.append(len(items))
        return real(items)

    monkeypatch.setattr(admission_module, "verify_batch", counting)
    good = [event(nonce) for nonce in range(20)]
    forged = with_signature(event(50), bytes(64))
    reused = event(3, severity=9)  # nonce 3 again, different content
    raws = [t.wire for t in good[:10]] + [forged, good[0].wire, reused.wire, b"junk"] + [
        t.wire for t in good[10:]]
    results = pipeline.admit_batch(raws, now_ms=NOW, source="test")
    assert calls == [len(raws) - 1]  # everything that decoded and is allowlisted, once
    assert [result.status for result in results[:10]] == [AdmissionStatus.ADMITTED] * 10
    assert results[10].reason is _R.BAD_SIGNATURE
    assert results[11].status is AdmissionStatus.DUPLICATE
    assert results[12].reason is _R.NONCE_REUSED
    assert results[13].reason is _R.MALFORMED
    assert all(result.admitted for result in results[14:])
    assert _pool_ids() == {transaction.tx_id for transaction in good}


def test_a_repeat_inside_a_batch_gets_its_first_copys_answer(make_pipeline: MakePipeline
                                                              ) -> None:
    pipeline = make_pipeline(allowlist(producer(rate_per_second=1, burst=1)))
    first, second = event(1), event(2)
    results = pipeline.admit_batch([first.wire, second.wire, second.wire, first.wire],
                                   now_ms=NOW, source="test")
    assert results[0].admitted
    assert results[1].reason is _R.RATE_LIMITED
    assert results[2].reason is _R.RATE_LIMITED
    assert results[3].status is AdmissionStatus.DUPLICATE


def test_an_empty_batch_and_an_all_invalid_batch_touch_nothing(
        pipeline: AdmissionPipeline) -> None:
    assert pipeline.admit_batch([], now_ms=NOW, source="test") == []
    results = pipeline.admit_batch([b"x", b"y"], now_ms=NOW, source="test")
    assert all(result.status is AdmissionStatus.REJECTED for result in results)
    assert not PoolStats.objects.exists()


@pytest.mark.parametrize(("now_ms", "source"), [(-1, "test"), (1.5, "test"), (NOW, ""),
                                                (NOW, "x" * 65), (NOW, "bad\nsource")])
def test_bad_call_arguments_are_programming_errors(pipeline: AdmissionPipeline, now_ms: object,
                                                   source: str) -> None:
    with pytest.raises(ValueError):
        pipeline.admit(event().wire, now_ms=now_ms, source=source)  # type: ignore[arg-type]


def test_keys_of_one_producer_rotate_without_a_gap(make_pipeline: MakePipeline) -> None:
    new_key = SigningKey.from_seed(bytes([9]) * 32)
    rotating = producer()
    rotating = type(rotating)(producer_id="ai-1", keys=(ALICE.public_key, new_key.public_key),
                              kinds=rotating.kinds, rate_per_second=100, burst=100,
                              max_pending=100)
    pipeline = make_pipeline(allowlist(rotating))
    _admitted(pipeline, event(1).wire)
    _admitted(pipeline, event(2, key=new_key).wire)
    assert set(MempoolTransaction.objects.values_list("key_id", flat=True)) == {
        ALICE.key_id, new_key.key_id}


def test_chain_and_config_are_checked_when_the_pipeline_is_built() -> None:
    from django.core.exceptions import ImproperlyConfigured

    from apps.mempool.admission import MempoolConfig

    with pytest.raises(ImproperlyConfigured):
        MempoolConfig(chain_id="")
    with pytest.raises(ImproperlyConfigured, match="TTL"):
        MempoolConfig(chain_id=CHAIN, ttl_ms=1000, replay_window_ms=1000)
    with pytest.raises(ImproperlyConfigured):
        MempoolConfig(chain_id=CHAIN, max_txs=0)


def test_every_rejection_reason_has_a_test_in_this_module() -> None:
    import re
    from pathlib import Path

    source = Path(__file__).read_text()
    refused = set(re.findall(r"_refused\((?:(?!_refused\(|\ndef ).)*?_R\.([A-Z_]+)", source,
                             flags=re.DOTALL))
    refused |= set(re.findall(r"reason is _R\.([A-Z_]+)", source))
    missing = {reason.name for reason in AdmissionReason} - refused
    assert not missing, f"no test produces {sorted(missing)}"
