"""After admission: removal of committed transactions, TTL expiry, block candidates."""

from __future__ import annotations

import pytest
from django.db import transaction

from apps.mempool.admission import AdmissionPipeline, AdmissionStatus
from apps.mempool.models import MempoolTransaction, PoolStats, ProducerNonce
from apps.mempool.queries import block_candidates, pool_size, propose_payload
from apps.mempool.services import expire, remove_committed, remove_committed_in_transaction
from cybermesh.protocol.block_builder import BlockLimits, priority_key, validate_payload
from tests.mempool.factories import CHAIN, NOW, event, sample

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

LIMITS = BlockLimits(max_txs=100, max_bytes=1 << 20, max_tx_age_ms=3_600_000,
                     max_future_ms=300_000)


def _admit_all(pipeline: AdmissionPipeline, count: int, **kwargs: int) -> list[bytes]:
    transactions = [event(nonce, severity=1 + nonce % 10, **kwargs) for nonce in range(count)]
    results = pipeline.admit_batch([t.wire for t in transactions], now_ms=NOW, source="test")
    assert all(result.admitted for result in results)
    return [t.tx_id for t in transactions]


def _counter_matches() -> bool:
    stats = PoolStats.objects.get(name="pool")
    size = pool_size()
    return (stats.tx_count, stats.total_bytes) == (size.tx_count, size.total_bytes)


def test_committed_transactions_leave_the_mempool_once(pipeline: AdmissionPipeline) -> None:
    ids = _admit_all(pipeline, 5)
    before = sample("cybermesh_mempool_removed_committed_total")
    assert remove_committed([ids[0], ids[2], bytes(32)]) == 2
    assert remove_committed([ids[0], ids[2]]) == 0
    assert pool_size().tx_count == 3
    assert _counter_matches()
    assert sample("cybermesh_mempool_removed_committed_total") == before + 2


def test_the_nonce_stays_taken_after_its_transaction_was_committed(
        pipeline: AdmissionPipeline) -> None:
    first = event(1)
    pipeline.admit(first.wire, now_ms=NOW, source="test")
    remove_committed([first.tx_id])
    result = pipeline.admit(event(1, severity=9).wire, now_ms=NOW + 1000, source="test")
    assert result.reason is not None and result.reason.value == "nonce_reused"


def test_removal_joins_the_callers_transaction_and_rolls_back_with_it(
        pipeline: AdmissionPipeline) -> None:
    ids = _admit_all(pipeline, 2)
    with pytest.raises(RuntimeError, match="open transaction"):
        remove_committed_in_transaction(ids)

    class BlockCommitFailed(Exception):
        pass

    with pytest.raises(BlockCommitFailed), transaction.atomic():
        assert remove_committed_in_transaction(ids) == 2
        raise BlockCommitFailed
    assert pool_size().tx_count == 2
    with transaction.atomic():
        assert remove_committed_in_transaction(ids) == 2
    assert pool_size().tx_count == 0
    assert _counter_matches()


def test_transactions_expire_after_their_ttl(pipeline: AdmissionPipeline) -> None:
    ttl = pipeline.config.ttl_ms
    old = event(1, created_at_ms=NOW - 1000)
    new = event(2, created_at_ms=NOW)
    pipeline.admit_batch([old.wire, new.wire], now_ms=NOW, source="test")
    assert expire(NOW - 1000 + ttl - 1, config=pipeline.config).expired == 0
    before = sample("cybermesh_mempool_expired_total")
    assert expire(NOW - 1000 + ttl, config=pipeline.config).expired == 1
    assert {bytes(tx_id) for tx_id in MempoolTransaction.objects.values_list(
        "tx_id", flat=True)} == {new.tx_id}
    assert sample("cybermesh_mempool_expired_total") == before + 1
    assert _counter_matches()


def test_expiry_prunes_nonces_only_once_they_are_outside_the_replay_window(
        pipeline: AdmissionPipeline) -> None:
    window = pipeline.config.replay_window_ms
    first = event(1)
    pipeline.admit(first.wire, now_ms=NOW, source="test")
    assert expire(NOW + window, config=pipeline.config).nonces_pruned == 0
    assert expire(NOW + window + 1, config=pipeline.config).nonces_pruned == 1
    assert not ProducerNonce.objects.exists()
    # Whatever could reuse that nonce now is stale anyway: the window check comes first.
    reuse = pipeline.admit(event(1, severity=9).wire, now_ms=NOW + window + 1, source="test")
    assert reuse.reason is not None and reuse.reason.value == "stale"


def test_an_expired_transaction_is_admitted_again_only_while_it_is_fresh(
        make_pipeline: object) -> None:
    from apps.mempool.admission import MempoolConfig
    from tests.mempool.factories import allowlist

    pipeline = AdmissionPipeline(MempoolConfig(chain_id=CHAIN, ttl_ms=2000,
                                               replay_window_ms=1000), allowlist())
    transaction_ = event(1)
    assert pipeline.admit(transaction_.wire, now_ms=NOW, source="test").admitted
    assert expire(NOW + 2000, config=pipeline.config).expired == 1
    again = pipeline.admit(transaction_.wire, now_ms=NOW + 2000, source="test")
    assert again.reason is not None and again.reason.value == "stale"


def test_block_candidates_come_best_first_and_leave_out_expired_and_stale(
        pipeline: AdmissionPipeline) -> None:
    ids = _admit_all(pipeline, 12)
    candidates = block_candidates(block_time_ms=NOW, limits=LIMITS)
    assert {candidate.tx_id for candidate in candidates} == set(ids)
    keys = [(-candidate.priority, candidate.tx_id) for candidate in candidates]
    assert keys == sorted(keys)
    after_ttl = NOW + pipeline.config.ttl_ms
    assert block_candidates(block_time_ms=after_ttl, limits=LIMITS) == []
    short = BlockLimits(max_txs=100, max_bytes=1 << 20, max_tx_age_ms=10,
                        max_future_ms=300_000)
    assert block_candidates(block_time_ms=NOW + 11, limits=short) == []


def test_the_proposed_payload_is_valid_and_deterministic(pipeline: AdmissionPipeline) -> None:
    _admit_all(pipeline, 30)
    limits = BlockLimits(max_txs=10, max_bytes=1 << 20, max_tx_age_ms=3_600_000,
                         max_future_ms=300_000)
    first = propose_payload(block_time_ms=NOW + 5, limits=limits)
    second = propose_payload(block_time_ms=NOW + 5, limits=limits)
    assert first == second
    assert first.tx_count == 10
    validated = validate_payload(first.payload, limits=limits, block_time_ms=NOW + 5,
                                 chain_id=CHAIN)
    assert validated.tx_root == first.tx_root
    stored = dict(MempoolTransaction.objects.values_list("tx_id", "priority"))
    for transaction_ in validated.transactions:
        assert stored[transaction_.tx_id] == priority_key(transaction_)


def test_an_admitted_duplicate_in_a_committed_block_is_not_readmitted(
        pipeline: AdmissionPipeline) -> None:
    from apps.ledger.models import Transaction as LedgerTransaction

    committed = event(1)
    pipeline.admit(committed.wire, now_ms=NOW, source="test")
    LedgerTransaction.objects.create(block_height=1, idx=0, tx_id=committed.tx_id,
                                     kind="security_event", payload=committed.wire,
                                     content_hash=committed.wire_hash, producer_id="ai-1")
    remove_committed([committed.tx_id])
    result = pipeline.admit(committed.wire, now_ms=NOW + 10, source="test")
    assert result.status is AdmissionStatus.DUPLICATE
    assert pool_size().tx_count == 0


def test_the_node_pipeline_is_built_from_settings(settings: object, tmp_path: object) -> None:
    import json
    from pathlib import Path

    from django.core.exceptions import ImproperlyConfigured

    from apps.mempool import admission
    from tests.mempool.factories import ALICE

    assert isinstance(tmp_path, Path)
    path = tmp_path / "producers.json"
    path.write_text(json.dumps({"producers": [{
        "producer_id": "ai-1", "keys": [{"public_key": ALICE.public_key.raw.hex()}],
        "kinds": ["security_event"], "rate_per_second": 5, "burst": 5, "max_pending": 5}]}))
    settings.MEMPOOL_CHAIN_ID = CHAIN  # type: ignore[attr-defined]
    settings.MEMPOOL_PRODUCERS_PATH = ""  # type: ignore[attr-defined]
    admission.reset_default_pipeline()
    with pytest.raises(ImproperlyConfigured, match="MEMPOOL_PRODUCERS_PATH"):
        admission.admit(event(1).wire, now_ms=NOW, source="test")
    settings.MEMPOOL_PRODUCERS_PATH = str(path)  # type: ignore[attr-defined]
    settings.MEMPOOL_MAX_TXS = 7  # type: ignore[attr-defined]
    try:
        assert admission.admit(event(1).wire, now_ms=NOW, source="test").admitted
        results = admission.admit_batch([event(2).wire, event(3).wire], now_ms=NOW,
                                        source="test")
        assert all(result.admitted for result in results)
        assert admission.default_pipeline().config.max_txs == 7
        assert expire(NOW).expired == 0
    finally:
        admission.reset_default_pipeline()
