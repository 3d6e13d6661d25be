"""commit_block on real PostgreSQL: what one commit writes, replays, divergence, refusals."""

from __future__ import annotations

import dataclasses

import pytest
from django.db import transaction

from apps.audit.models import AuditEntry
from apps.evidence.models import Evidence
from apps.ledger.errors import DivergentBlockError, LedgerError, LedgerErrorReason
from apps.ledger.models import Block as BlockRow
from apps.ledger.models import OutboxMessage
from apps.ledger.models import Transaction as TransactionRow
from apps.ledger.payload import compute_tx_root, decode_payload, encode_payload
from apps.ledger.records import (
    BlockExecution,
    CommitStatus,
    EvidenceRecord,
    Notification,
    PreparedState,
    StateUpdate,
    ValidatorUpdate,
)
from apps.ledger.rows import load_block
from apps.ledger.services import commit_block
from apps.state.models import StaleNode, StateNode, StateSnapshot, StateValue, StateVersion
from apps.state.services import prepare_state_version
from apps.validators.models import Validator
from apps.validators.services import apply_validator_set
from cybermesh.protocol.consensus.messages import Block
from cybermesh.protocol.merkle.nodestore import InMemoryNodeStore
from cybermesh.protocol.merkle.sparse import SparseMerkleTree
from tests.ledger.chain import ChainBuilder, CommittedItem

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def commit(item: CommittedItem, **kwargs: object):  # type: ignore[no-untyped-def]
    return commit_block(block=item.block, qc=item.qc, execution=item.execution,
                        **kwargs)  # type: ignore[arg-type]


def test_a_commit_writes_block_transactions_state_outbox_and_audit_together() -> None:
    items = ChainBuilder().build(3)
    outcomes = [commit(item, snapshot_interval=2) for item in items]

    assert [o.status for o in outcomes] == [CommitStatus.COMMITTED] * 3
    assert [o.state_root for o in outcomes] == [item.state_root for item in items]
    assert list(BlockRow.objects.values_list("height", flat=True)) == [0, 1, 2]
    assert TransactionRow.objects.count() == 9
    assert set(StateVersion.objects.values_list("version", flat=True)) == {0, 1, 2}
    assert list(StateSnapshot.objects.values_list("version_height", flat=True)) == [0, 2]
    assert StateNode.objects.count() > 0 and StateValue.objects.count() > 0
    commits = OutboxMessage.objects.filter(topic="control.commits.v1")
    assert [m.payload["height"] for m in commits] == [0, 1, 2]
    assert commits.last().payload["state_root"] == items[2].state_root.hex()
    assert AuditEntry.objects.filter(action="ledger.commit_block").count() == 3


def test_a_stored_block_is_rebuilt_byte_for_byte() -> None:
    items = ChainBuilder().build(2)
    for item in items:
        commit(item)
    block, qc = load_block(1)  # type: ignore[misc]
    assert block == items[1].block and block.block_id == items[1].block.block_id
    assert qc == items[1].qc


def test_committing_the_same_block_again_is_a_noop() -> None:
    items = ChainBuilder().build(2)
    for item in items:
        commit(item)
    counts = (BlockRow.objects.count(), TransactionRow.objects.count(),
              OutboxMessage.objects.count(), StateNode.objects.count(),
              AuditEntry.objects.count())

    again = commit(items[1])

    assert again.status is CommitStatus.ALREADY_COMMITTED
    assert again.state_root == items[1].state_root
    assert (BlockRow.objects.count(), TransactionRow.objects.count(),
            OutboxMessage.objects.count(), StateNode.objects.count(),
            AuditEntry.objects.count()) == counts


def test_a_different_block_at_a_committed_height_raises_and_leaves_an_alarm() -> None:
    builder = ChainBuilder()
    items = builder.build(2)
    for item in items:
        commit(item)
    other = builder.build(2, salt=7)[1]
    assert other.block.block_id != items[1].block.block_id

    with pytest.raises(DivergentBlockError) as raised:
        commit(other)

    assert raised.value.reason is LedgerErrorReason.DIVERGENT_BLOCK
    assert raised.value.stored_hash == items[1].block.block_id
    assert bytes(BlockRow.objects.get(height=1).block_hash) == items[1].block.block_id
    alarm = AuditEntry.objects.get(action="ledger.alarm.divergent_block")
    assert alarm.outcome == "failure" and alarm.target == "block:1"
    assert alarm.details["offered_hash"] == other.block.block_id.hex()


def test_a_block_that_does_not_extend_the_tip_is_refused_as_divergent() -> None:
    builder = ChainBuilder()
    items = builder.build(2)
    commit(items[0])
    forked = builder.build(3, salt=9)  # another block 0, so its block 1 has another parent
    with pytest.raises(DivergentBlockError) as raised:
        commit(forked[1])
    assert raised.value.reason is LedgerErrorReason.PARENT_MISMATCH
    assert BlockRow.objects.count() == 1
    assert AuditEntry.objects.filter(action="ledger.alarm.parent_mismatch").count() == 1


def test_a_gap_above_the_tip_is_refused_without_writing() -> None:
    items = ChainBuilder().build(3)
    commit(items[0])
    with pytest.raises(LedgerError) as raised:
        commit(items[2])
    assert raised.value.reason is LedgerErrorReason.NOT_CONTIGUOUS
    assert BlockRow.objects.count() == 1 and not StateVersion.objects.filter(version=2).exists()


def test_a_header_state_root_other_than_ours_is_refused_and_alarmed() -> None:
    builder = ChainBuilder()
    items = builder.build(2)
    commit(items[0])
    # Same block 1 but executed differently by us: our root after block 1 differs, so
    # block 2 (whose header carries the builder's root) must be refused.
    tampered = dataclasses.replace(items[1], execution=BlockExecution(
        state_updates=(StateUpdate(b"x" * 32, b"not what the others executed"),)))
    commit(tampered)
    block_2 = builder.build(3)[2]
    with pytest.raises(LedgerError) as raised:
        commit(block_2)
    assert raised.value.reason is LedgerErrorReason.STATE_ROOT_MISMATCH
    assert not BlockRow.objects.filter(height=2).exists()
    assert AuditEntry.objects.filter(action="ledger.alarm.state_root_mismatch").count() == 1


def test_a_qc_for_another_block_is_refused() -> None:
    items = ChainBuilder().build(2)
    commit(items[0])
    with pytest.raises(LedgerError) as raised:
        commit_block(block=items[1].block, qc=items[0].qc)
    assert raised.value.reason is LedgerErrorReason.BAD_BLOCK
    assert BlockRow.objects.count() == 1


def test_a_tx_root_that_does_not_match_the_payload_is_refused() -> None:
    builder = ChainBuilder()
    item = builder.build(1)[0]
    block = dataclasses.replace(item.block, tx_root=b"\x01" * 32)
    with pytest.raises(LedgerError) as raised:
        commit_block(block=block, qc=builder.sign_qc(block))
    assert raised.value.reason is LedgerErrorReason.BAD_BLOCK
    assert not BlockRow.objects.exists()


def test_a_replayed_transaction_is_stored_but_marked_and_does_not_block_the_chain() -> None:
    builder = ChainBuilder()
    items = builder.build(2, txs_per_block=2)
    commit(items[0])
    first_tx = bytes(TransactionRow.objects.get(block_height=0, idx=0).payload)
    block_1 = items[1].block
    payload = encode_payload([first_tx, first_tx, b"fresh transaction"])
    replayed = dataclasses.replace(block_1, payload=payload,
                                   tx_root=compute_tx_root(decode_payload(payload) or ()))
    commit_block(block=replayed, qc=builder.sign_qc(replayed), execution=items[1].execution)
    rows = list(TransactionRow.objects.filter(block_height=1).order_by("idx"))
    assert [row.is_replay for row in rows] == [True, True, False]
    assert TransactionRow.objects.filter(tx_id=rows[0].tx_id, is_replay=False).count() == 1


def test_a_payload_that_is_not_a_transaction_array_is_kept_verbatim() -> None:
    builder = ChainBuilder()
    item = builder.build(1)[0]
    block = dataclasses.replace(item.block, payload=b"\xff not cbor")
    commit_block(block=block, qc=builder.sign_qc(block))
    row = BlockRow.objects.get(height=0)
    assert row.tx_count == 0 and bytes(row.payload) == b"\xff not cbor"
    assert load_block(0)[0].block_id == block.block_id  # type: ignore[index]


def test_evidence_validators_and_notifications_from_execution_are_written() -> None:
    builder = ChainBuilder()
    item = builder.build(1)[0]
    with transaction.atomic():
        apply_validator_set(validator_set=builder.validator_set, height=0)
    evidence = EvidenceRecord(evidence_id=b"e" * 32, kind="double_vote", offender_id="v3",
                              epoch=0, view=5, height=4, reporter_id="v0", proof=b"proof")
    execution = dataclasses.replace(
        item.execution, evidence=(evidence, evidence),
        validator_updates=(ValidatorUpdate("v3", reputation=250_000),),
        notifications=(Notification("control.evidence.v1", "v3", {"offender": "v3"}),))
    commit_block(block=item.block, qc=item.qc, execution=execution)
    assert Evidence.objects.get().offender_id == "v3"
    assert Validator.objects.get(validator_id="v3").reputation == 250_000
    assert list(OutboxMessage.objects.values_list("dedupe_id", flat=True)) == [
        "block:0:0", "block:0:1"]


def test_a_reconfiguration_block_switches_the_active_validator_set() -> None:
    builder = ChainBuilder()
    item = builder.build(1)[0]
    new_set = builder.validator_set.validators[:3]
    block = Block(**{f.name: getattr(item.block, f.name) for f in dataclasses.fields(Block)
                     if f.init and f.name != "next_validators"}, next_validators=new_set)
    commit_block(block=block, qc=builder.sign_qc(block), execution=item.execution)
    assert sorted(Validator.objects.filter(active=True).values_list("validator_id", flat=True)
                  ) == ["v0", "v1", "v2"]
    assert Validator.objects.get(validator_id="v0").joined_epoch == 1


def test_the_commit_node_cache_is_not_trusted_across_a_rebuilt_database() -> None:
    builder = ChainBuilder()
    for item in builder.build(3):
        commit(item)
    for model in (TransactionRow, BlockRow, OutboxMessage, StateValue, StateNode, StaleNode,
                  StateVersion, StateSnapshot):
        model.objects.all().delete()
    other = builder.build(3, salt=3)  # same heights and versions, other content
    outcomes = [commit(item) for item in other]
    assert [o.state_root for o in outcomes] == [item.state_root for item in other]


def test_a_prepared_state_batch_built_on_another_base_is_recomputed() -> None:
    builder = ChainBuilder()
    items = builder.build(3)
    commit(items[0])
    commit(items[1])
    _, wrong = SparseMerkleTree(InMemoryNodeStore()).apply(None, {b"w" * 32: b"x"}, 2)
    execution = dataclasses.replace(items[2].execution, prepared_state=PreparedState(
        base_root=b"\x09" * 32, batch=wrong))
    outcome = commit_block(block=items[2].block, qc=items[2].qc, execution=execution)
    assert outcome.state_root == items[2].state_root


def test_a_prepared_state_batch_on_the_stored_base_is_written_as_it_is() -> None:
    builder = ChainBuilder()
    items = builder.build(2)
    commit(items[0])
    prepared = prepare_state_version(version=1, base_version=0,
                                     updates=items[1].execution.state_updates)
    execution = dataclasses.replace(items[1].execution, prepared_state=prepared)
    outcome = commit_block(block=items[1].block, qc=items[1].qc, execution=execution)
    assert outcome.state_root == prepared.batch.root_hash == items[1].state_root
