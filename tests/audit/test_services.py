"""Appending to the audit chain: linking, transactions, validation, heads, mirror, concurrency."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from django.db import connections, transaction

from apps.audit.chain import GENESIS_HASH, EntryContent
from apps.audit.choices import Outcome
from apps.audit.keyring import configured_keyring
from apps.audit.models import AppendOnlyError, AuditEntry, AuditHead
from apps.audit.services import (
    AuditInputError,
    append_entry_in_transaction,
    record_audit,
    sign_head,
)
from apps.audit.verify import verify_chain
from cybermesh.db import run_serializable

pytestmark = pytest.mark.integration


def _record(index: int = 0, **overrides: Any) -> AuditEntry:
    fields: dict[str, Any] = {
        "actor": f"analyst-{index}", "action": "policy.approve", "target": f"policy/{index}",
        "outcome": Outcome.SUCCESS, "request_id": f"req-{index}", "details": {"n": index}}
    fields.update(overrides)
    return record_audit(**fields)


@pytest.mark.django_db
def test_entries_are_numbered_from_one_and_each_links_to_the_previous() -> None:
    first, second, third = (_record(index) for index in range(3))
    assert [first.seq, second.seq, third.seq] == [1, 2, 3]
    assert first.prev_hash == GENESIS_HASH.hex()
    assert second.prev_hash == first.entry_hash
    assert third.prev_hash == second.entry_hash
    stored = AuditEntry.objects.get(seq=2)
    recomputed = EntryContent(
        seq=2, timestamp=stored.timestamp, actor="analyst-1", action="policy.approve",
        target="policy/1", outcome="success", request_id="req-1", details={"n": 1},
        prev_hash=bytes.fromhex(first.entry_hash)).entry_hash()
    assert stored.entry_hash == recomputed.hex()
    assert stored.key_id == configured_keyring().current_key_id
    assert verify_chain().ok


@pytest.mark.django_db
def test_details_are_stored_as_the_database_returns_them_and_verify() -> None:
    entry = _record(details={"tags": ("a", "b"), "nested": {"z": 1, "a": [None, True]},
                             "big": 2**63, "text": "ünïcode"})
    assert AuditEntry.objects.get(seq=entry.seq).details == {
        "tags": ["a", "b"], "nested": {"z": 1, "a": [None, True]}, "big": 2**63,
        "text": "ünïcode"}
    assert verify_chain().ok


@pytest.mark.django_db
@pytest.mark.parametrize(("overrides", "complaint"), [
    ({"actor": ""}, "actor must not be empty"),
    ({"action": "x" * 101}, "action is longer than 100"),
    ({"target": "a\x00b"}, "NUL"),
    ({"outcome": "maybe"}, "outcome must be one of"),
    ({"details": {"latency": 0.5}}, "floats"),
    ({"details": {"n": 2**64}}, "64-bit"),
    ({"details": {1: "x"}}, "keys must be strings"),
    ({"details": {"blob": b"bytes"}}, "cannot hold a bytes"),
    ({"details": ["not", "a", "dict"]}, "JSON object"),
    ({"details": {"s": "x" * 70_000}}, "exceed"),
])
def test_bad_input_is_refused_and_writes_nothing(overrides: dict[str, Any],
                                                 complaint: str) -> None:
    with pytest.raises(AuditInputError, match=complaint):
        _record(**overrides)
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db
def test_deeply_nested_details_are_refused() -> None:
    details: dict[str, Any] = {}
    inner = details
    for _ in range(20):
        inner["d"] = {}
        inner = inner["d"]
    with pytest.raises(AuditInputError, match="nest deeper"):
        _record(details=details)


@pytest.mark.django_db(transaction=True)
def test_inside_an_outer_transaction_the_entry_rolls_back_with_the_work() -> None:
    _record(0)
    with pytest.raises(RuntimeError, match="business failure"), transaction.atomic():
        _record(1)
        assert AuditEntry.objects.count() == 2
        raise RuntimeError("business failure")
    assert list(AuditEntry.objects.values_list("seq", flat=True)) == [1]
    assert _record(2).seq == 2  # the rolled-back seq is reused; the chain has no gap
    assert verify_chain().ok


@pytest.mark.django_db(transaction=True)
def test_append_in_transaction_joins_a_serializable_unit_of_work() -> None:
    def commit_block() -> int:
        entry = append_entry_in_transaction(actor="node-0", action="ledger.commit",
                                            target="block/7", outcome="success")
        return entry.seq

    assert run_serializable(commit_block) == 1
    assert AuditEntry.objects.get(seq=1).target == "block/7"


@pytest.mark.django_db(transaction=True)
def test_append_in_transaction_refuses_to_run_without_one() -> None:
    with pytest.raises(transaction.TransactionManagementError, match="record_audit"):
        append_entry_in_transaction(actor="a", action="b", outcome="success")


@pytest.mark.django_db
def test_rows_refuse_to_be_changed_or_deleted_through_the_orm() -> None:
    entry = _record()
    entry.actor = "mallory"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    head = sign_head()
    assert head is not None
    with pytest.raises(AppendOnlyError):
        head.delete()
    assert AuditEntry.objects.get(seq=entry.seq).actor == "analyst-0"


@pytest.mark.django_db
def test_a_head_is_signed_every_interval_entries(settings: Any) -> None:
    settings.AUDIT_HEAD_INTERVAL = 3
    for index in range(7):
        _record(index)
    assert list(AuditHead.objects.order_by("seq").values_list("seq", flat=True)) == [3, 6]
    head = AuditHead.objects.get(seq=6)
    assert head.entry_hash == AuditEntry.objects.get(seq=6).entry_hash


@pytest.mark.django_db
def test_signing_the_head_twice_at_the_same_seq_keeps_one_row() -> None:
    assert sign_head() is None  # empty chain: nothing to sign
    _record()
    first, again = sign_head(), sign_head()
    assert first is not None and again is not None and first.pk == again.pk
    assert AuditHead.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_mirror_file_gets_committed_entries_only(settings: Any, tmp_path: Path) -> None:
    mirror = tmp_path / "audit.jsonl"
    settings.AUDIT_LOG_PATH = str(mirror)
    _record(0)
    with pytest.raises(RuntimeError), transaction.atomic():
        _record(1)
        raise RuntimeError("rolled back")
    _record(2)
    lines = [json.loads(line) for line in mirror.read_text().splitlines()]
    assert [(line["seq"], line["actor"]) for line in lines] == [(1, "analyst-0"),
                                                                (2, "analyst-2")]
    assert lines[1]["prev_hash"] == lines[0]["entry_hash"]
    assert mirror.stat().st_mode & 0o077 == 0


@pytest.mark.django_db(transaction=True)
def test_an_unwritable_mirror_does_not_fail_the_audited_action(settings: Any,
                                                               tmp_path: Path) -> None:
    settings.AUDIT_LOG_PATH = str(tmp_path / "missing-dir" / "audit.jsonl")
    assert _record().seq == 1
    assert AuditEntry.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_appenders_produce_one_unbroken_chain() -> None:
    workers, per_worker = 6, 8
    barrier = threading.Barrier(workers, timeout=30)
    errors: list[BaseException] = []

    def append_many(worker: int) -> None:
        try:
            barrier.wait()
            for index in range(per_worker):
                _record(worker * 100 + index)
        except BaseException as error:  # noqa: BLE001 - reported to the test thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=append_many, args=(worker,)) for worker in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert list(AuditEntry.objects.values_list("seq", flat=True)) == list(
        range(1, workers * per_worker + 1))
    actors = set(AuditEntry.objects.values_list("actor", flat=True))
    assert len(actors) == workers * per_worker  # every append landed exactly once
    result = verify_chain()
    assert result.ok, result.problem
    assert result.entries_checked == workers * per_worker


@pytest.mark.django_db(transaction=True)
def test_an_appender_that_read_a_stale_head_is_aborted_and_retried_after_the_winner() -> None:
    # Deterministic race: our transaction takes its snapshot, another appender commits #1,
    # then we append from our stale view of the head (also #1). The primary key turns the
    # fork into a serialization failure; the retry appends #2 after the winner.
    attempts: list[int] = []

    def append_after_a_rival() -> AuditEntry:
        attempts.append(1)
        AuditEntry.objects.count()  # the snapshot is taken here
        if len(attempts) == 1:
            rival = threading.Thread(target=lambda: (_record(1), connections.close_all()))
            rival.start()
            rival.join(timeout=30)
        return append_entry_in_transaction(actor="us", action="ledger.commit", outcome="success")

    ours = run_serializable(append_after_a_rival)
    assert len(attempts) == 2
    assert ours.seq == 2
    assert list(AuditEntry.objects.values_list("actor", flat=True)) == ["analyst-1", "us"]
    assert verify_chain().ok
