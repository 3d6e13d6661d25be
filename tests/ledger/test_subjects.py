"""The offender and severity columns of transaction rows: what each kind names, written by the
commit, and filled in for rows committed before the columns existed (the migration's backfill)."""

from __future__ import annotations

import pytest

from apps.ledger.models import Transaction as TransactionRow
from apps.ledger.payload import describe_transaction
from apps.ledger.services import commit_block
from apps.ledger.subjects import Subject, backfill_subjects, subject_of, subject_of_wire
from cybermesh.protocol.txs import Entity
from tests.ledger.chain import ChainBuilder, executed_chain
from tests.protocol.txs.tx_builders import (
    PAYLOAD_BUILDERS,
    anchor,
    artifact_evidence,
    equivocation,
    governance,
    policy,
    quarantine,
    security_event,
    signed,
)


@pytest.mark.unit
@pytest.mark.parametrize(("payload", "expected"), [
    (security_event(offender=Entity.of("ip", "203.0.113.7"), severity=9),
     Subject("ip:203.0.113.7", 9)),
    (policy(), Subject("cidr:198.51.100.0/24")),
    (quarantine(Entity.of("host", "evil.example.com")), Subject("host:evil.example.com")),
    (equivocation(validator_id="validator-3"), Subject("validator-3")),
    (artifact_evidence(), Subject()),
    (governance(), Subject()),
    (anchor(), Subject()),
])
def test_each_kind_names_its_offender_and_severity(payload: object, expected: Subject) -> None:
    transaction = signed(payload)
    assert subject_of(transaction) == expected
    assert subject_of_wire(transaction.wire) == expected
    record = describe_transaction(0, transaction.wire)
    assert (record.offender_id, record.severity) == (expected.offender_id, expected.severity)


@pytest.mark.unit
def test_bytes_that_are_no_transaction_name_nothing() -> None:
    assert subject_of_wire(b"\xa0not cbor") == Subject()
    assert describe_transaction(0, b"\xa0not cbor").offender_id is None


@pytest.fixture
def committed(db: None) -> None:
    for item in executed_chain(ChainBuilder(), 8, seed=11):
        commit_block(block=item.block, qc=item.qc, execution=item.execution)


def _columns() -> list[tuple[int, int, str | None, int | None]]:
    return list(TransactionRow.objects.order_by("block_height", "idx")
                .values_list("block_height", "idx", "offender_id", "severity"))


@pytest.mark.integration
@pytest.mark.django_db
def test_the_commit_stores_what_each_transaction_names(committed: None) -> None:
    rows = list(TransactionRow.objects.order_by("block_height", "idx"))
    assert {row.kind for row in rows} >= {"security_event", "policy"}
    for row in rows:
        expected = subject_of_wire(bytes(row.payload))
        assert (row.offender_id, row.severity) == (expected.offender_id, expected.severity)
        if row.kind == "security_event":
            assert row.offender_id and row.offender_id.startswith("ip:")
            assert 1 <= (row.severity or 0) <= 10
        elif row.kind == "policy":
            assert row.offender_id and row.severity is None
        else:
            assert (row.offender_id, row.severity) == (None, None)


@pytest.mark.integration
@pytest.mark.django_db
def test_the_backfill_restores_the_columns_of_older_rows_and_can_run_again(
        committed: None) -> None:
    expected = _columns()
    named = sum(1 for _, _, offender, _ in expected if offender is not None)
    assert named > 3
    TransactionRow.objects.update(offender_id=None, severity=None)
    assert all(offender is None for _, _, offender, _ in _columns())
    # A small batch makes the walk cross many pages (and page boundaries inside a block).
    assert backfill_subjects(TransactionRow, batch_size=2) == named
    assert _columns() == expected
    assert backfill_subjects(TransactionRow, batch_size=1000) == named
    assert _columns() == expected


@pytest.mark.unit
def test_every_kind_is_covered() -> None:
    # A new transaction kind must be placed in the table above (offender or not).
    assert {kind.value for kind in PAYLOAD_BUILDERS} == {
        "security_event", "evidence", "policy", "governance", "audit_anchor"}
