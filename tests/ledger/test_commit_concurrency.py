"""Real conflicts and real crashes on PostgreSQL: the retry, and kill -9 during a commit.

The retry tests hold one commit open inside its transaction (after it has written every row)
while a second commit of the same height runs into its uncommitted rows; when the first
commits, PostgreSQL aborts the second with SQLSTATE 40001 and ``commit_block`` runs it again.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection, connections
from prometheus_client import REGISTRY

from apps.audit.models import AuditEntry
from apps.ledger.errors import DivergentBlockError
from apps.ledger.models import Block as BlockRow
from apps.ledger.models import OutboxMessage
from apps.ledger.models import Transaction as TransactionRow
from apps.ledger.records import CommitOutcome, CommitStatus
from apps.ledger.services import commit_block
from apps.state.models import StateNode, StateValue, StateVersion
from cybermesh.db import RetryPolicy
from tests.ledger.chain import ChainBuilder, CommittedItem

pytestmark = [
    pytest.mark.integration, pytest.mark.django_db(transaction=True),
]

FAST = RetryPolicy(max_attempts=6, base_delay_s=0.001, max_delay_s=0.01)
REPO = Path(__file__).resolve().parents[2]


def _retries() -> float:
    return REGISTRY.get_sample_value("cybermesh_db_transaction_retries_total",
                                     {"sqlstate": "40001"}) or 0.0


def _lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                       "current_database() AND wait_event_type = 'Lock'")
        return int(cursor.fetchone()[0])


class _Runner(threading.Thread):
    """Runs one commit in its own thread (hence its own database connection)."""

    def __init__(self, call: Callable[[], CommitOutcome]) -> None:
        super().__init__(daemon=True)
        self.call = call
        self.outcome: CommitOutcome | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.outcome = self.call()
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            self.error = error
        finally:
            connections.close_all()


def _race(first: CommittedItem, second: CommittedItem) -> tuple[_Runner, _Runner]:
    """Hold ``first``'s commit open after its writes, start ``second``'s, wait until it is
    blocked on ``first``'s rows, then let ``first`` commit."""
    written, release = threading.Event(), threading.Event()

    def hold() -> None:
        written.set()
        assert release.wait(30), "the test never released the first commit"

    holder = _Runner(lambda: commit_block(block=first.block, qc=first.qc,
                                          execution=first.execution, on_written=hold,
                                          policy=FAST))
    holder.start()
    assert written.wait(30)
    racer = _Runner(lambda: commit_block(block=second.block, qc=second.qc,
                                         execution=second.execution, policy=FAST))
    racer.start()
    deadline = time.monotonic() + 30
    while _lock_waiters() == 0:
        assert time.monotonic() < deadline, "the second commit never blocked on the first"
        time.sleep(0.01)
    release.set()
    holder.join(30)
    racer.join(30)
    assert not holder.is_alive() and not racer.is_alive()
    return holder, racer


def test_a_concurrent_commit_of_the_same_block_is_retried_into_a_noop() -> None:
    items = ChainBuilder().build(3)
    for item in items[:2]:
        commit_block(block=item.block, qc=item.qc, execution=item.execution)
    retries_before = _retries()

    holder, racer = _race(items[2], items[2])

    assert holder.error is None and racer.error is None, (holder.error, racer.error)
    assert holder.outcome is not None and racer.outcome is not None
    assert holder.outcome.status is CommitStatus.COMMITTED and holder.outcome.attempts == 1
    assert racer.outcome.status is CommitStatus.ALREADY_COMMITTED
    assert racer.outcome.attempts >= 2  # the first attempt died on a real 40001
    assert _retries() > retries_before
    assert BlockRow.objects.filter(height=2).count() == 1
    assert OutboxMessage.objects.filter(height=2).count() == 1


def test_a_concurrent_commit_of_another_block_at_the_height_is_retried_into_an_alarm() -> None:
    builder = ChainBuilder()
    items = builder.build(3)
    for item in items[:2]:
        commit_block(block=item.block, qc=item.qc, execution=item.execution)
    # A rival block 2 on the same parent and state (a Byzantine fork at exactly this height).
    rival_block = dataclasses.replace(items[2].block,
                                      timestamp_ms=items[2].block.timestamp_ms + 1)
    rival = CommittedItem(rival_block, builder.sign_qc(rival_block), items[2].execution,
                          items[2].state_root)

    holder, racer = _race(items[2], rival)

    assert holder.error is None and holder.outcome is not None
    assert isinstance(racer.error, DivergentBlockError), racer.error
    assert bytes(BlockRow.objects.get(height=2).block_hash) == items[2].block.block_id
    assert AuditEntry.objects.filter(action="ledger.alarm.divergent_block").count() == 1


def test_kill_9_during_a_commit_leaves_no_partial_block_and_a_retry_succeeds() -> None:
    items = ChainBuilder().build(3)
    for item in items[:2]:
        commit_block(block=item.block, qc=item.qc, execution=item.execution)
    audit_before = AuditEntry.objects.count()
    settings_dict = connection.settings_dict
    url = (f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:"
           f"{settings_dict['PORT']}/{settings_dict['NAME']}")
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "cybermesh.settings"}
    worker = subprocess.Popen([sys.executable, "-m", "tests.ledger.crash_worker", "2"],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "WRITTEN"
        with connection.cursor() as cursor:  # its transaction is open, with rows written
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                           "current_database() AND state = 'idle in transaction'")
            assert cursor.fetchone()[0] >= 1
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.wait(30) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    deadline = time.monotonic() + 30
    while True:  # the server notices the dead client and rolls its transaction back
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                           "current_database() AND state = 'idle in transaction'")
            if cursor.fetchone()[0] == 0:
                break
        assert time.monotonic() < deadline
        time.sleep(0.05)

    assert not BlockRow.objects.filter(height=2).exists()
    assert not TransactionRow.objects.filter(block_height=2).exists()
    assert not StateVersion.objects.filter(version=2).exists()
    assert not StateNode.objects.filter(version=2).exists()
    assert not StateValue.objects.filter(version=2).exists()
    assert not OutboxMessage.objects.filter(height=2).exists()
    assert AuditEntry.objects.count() == audit_before

    outcome = commit_block(block=items[2].block, qc=items[2].qc, execution=items[2].execution)
    assert outcome.status is CommitStatus.COMMITTED
    assert outcome.state_root == items[2].state_root
