"""The serializable-transaction retry helper, against real PostgreSQL at SERIALIZABLE.

Conflicts here are genuine: a second connection commits a write between our read and our
write, concurrent threads increment one row, two threads make a write-skew that only
serializable snapshot isolation catches, two threads lock rows in opposite order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from django.db import IntegrityError, OperationalError, connection, connections, transaction
from prometheus_client import REGISTRY

from cybermesh.db import (
    RetryPolicy,
    TransactionRetryExhausted,
    retryable_sqlstate,
    run_serializable,
    serializable_transaction,
)

FAST = RetryPolicy(max_attempts=8, base_delay_s=0.001, max_delay_s=0.01)


def _retries(sqlstate: str) -> float:
    return REGISTRY.get_sample_value("cybermesh_db_transaction_retries_total",
                                     {"sqlstate": sqlstate}) or 0.0


def _exhausted() -> float:
    return REGISTRY.get_sample_value("cybermesh_db_transaction_retries_exhausted_total") or 0.0


# --- pure: finding the retryable SQLSTATE in an exception chain -----------------------------

def _raise_wrapped(driver_error: Exception) -> Exception:
    """Wrap a driver error the way Django does (OperationalError from psycopg error)."""
    try:
        try:
            raise driver_error
        except psycopg.Error as error:
            raise OperationalError(*error.args) from error
    except OperationalError as wrapped:
        return wrapped


@pytest.mark.unit
def test_serialization_failure_is_found_behind_djangos_wrapper() -> None:
    wrapped = _raise_wrapped(psycopg.errors.SerializationFailure("could not serialize"))
    assert retryable_sqlstate(wrapped) == "40001"


@pytest.mark.unit
def test_deadlock_is_found_in_the_implicit_context_chain() -> None:
    try:
        try:
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        except psycopg.Error:
            raise RuntimeError("while handling it, something else broke")  # noqa: B904
    except RuntimeError as error:
        assert retryable_sqlstate(error) == "40P01"


@pytest.mark.unit
def test_cockroach_restart_message_without_a_code_is_retryable() -> None:
    error = OperationalError("restart transaction: TransactionRetryWithProtoRefreshError: ...")
    assert retryable_sqlstate(error) == "40001"


@pytest.mark.unit
@pytest.mark.parametrize("driver_error", [
    psycopg.errors.UniqueViolation("duplicate key"),
    psycopg.errors.StatementCompletionUnknown("result is ambiguous"),  # CockroachDB 40003
    psycopg.errors.UndefinedTable("no such table"),
])
def test_other_database_errors_are_not_retryable(driver_error: Exception) -> None:
    assert retryable_sqlstate(_raise_wrapped(driver_error)) is None


@pytest.mark.unit
def test_an_exhausted_retry_is_not_retried_again_by_an_outer_loop() -> None:
    exhausted = TransactionRetryExhausted(attempts=3, sqlstate="40001", operation="op")
    exhausted.__cause__ = _raise_wrapped(psycopg.errors.SerializationFailure("x"))
    assert retryable_sqlstate(exhausted) is None


@pytest.mark.unit
def test_cyclic_exception_chains_terminate() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    assert retryable_sqlstate(first) is None


@pytest.mark.unit
def test_backoff_grows_exponentially_up_to_the_cap_and_is_jittered() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.01, max_delay_s=0.05)
    assert [policy.delay_before_retry(n, lambda: 1.0) for n in (1, 2, 3, 4)] == \
        pytest.approx([0.01, 0.02, 0.04, 0.05])
    assert policy.delay_before_retry(3, lambda: 0.5) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


# --- real PostgreSQL ---------------------------------------------------------------------

@pytest.fixture
def probe_table(transactional_db: Any) -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE retry_probe (id integer PRIMARY KEY, value integer NOT NULL)")
        cursor.execute("INSERT INTO retry_probe VALUES (1, 0), (2, 0)")
    yield
    connections.close_all()
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE retry_probe")


def _other_connection() -> psycopg.Connection[Any]:
    """A second, independent connection to the test database (autocommit)."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("server_side_binding", None)
    return psycopg.connect(**params, autocommit=True)


def _value(row_id: int = 1) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM retry_probe WHERE id = %s", [row_id])
        return int(cursor.fetchone()[0])


def _read_then_write_with_interference(interfere: Callable[[], bool], add: int) -> int:
    """Read, let another connection commit a write to the same row, then write read+add."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM retry_probe WHERE id = 1")
        seen = int(cursor.fetchone()[0])
        if interfere():
            with _other_connection() as other:
                other.execute("UPDATE retry_probe SET value = value + 1 WHERE id = 1")
        cursor.execute("UPDATE retry_probe SET value = %s WHERE id = 1", [seen + add])
    return seen


@pytest.mark.integration
def test_a_genuine_serialization_failure_is_retried_and_the_result_is_correct(
        probe_table: None) -> None:
    attempts: list[int] = []
    sleeps: list[float] = []
    retries_before = _retries("40001")

    def body() -> int:
        attempts.append(1)
        return _read_then_write_with_interference(lambda: len(attempts) == 1, add=10)

    seen = run_serializable(body, policy=FAST, sleep=sleeps.append)

    assert len(attempts) == 2
    assert len(sleeps) == 1
    # The retry read the other connection's committed +1, so no update was lost.
    assert seen == 1
    assert _value() == 11
    assert _retries("40001") == retries_before + 1


@pytest.mark.integration
def test_the_retry_limit_is_enforced_and_the_last_error_is_chained(probe_table: None) -> None:
    attempts: list[int] = []
    sleeps: list[float] = []
    exhausted_before = _exhausted()

    def body() -> int:
        attempts.append(1)
        return _read_then_write_with_interference(lambda: True, add=10)

    with pytest.raises(TransactionRetryExhausted) as caught:
        run_serializable(body, policy=RetryPolicy(max_attempts=3, base_delay_s=0.001),
                         operation="probe-increment", sleep=sleeps.append)

    assert len(attempts) == 3
    assert len(sleeps) == 2
    assert caught.value.attempts == 3
    assert caught.value.sqlstate == "40001"
    assert "probe-increment" in str(caught.value)
    assert isinstance(caught.value.__cause__, OperationalError)
    assert isinstance(caught.value.__cause__.__cause__, psycopg.errors.SerializationFailure)
    assert _exhausted() == exhausted_before + 1
    # Only the interfering connection's three commits survive; all our attempts rolled back.
    assert _value() == 3


@pytest.mark.integration
def test_an_integrity_error_is_not_retried(probe_table: None) -> None:
    attempts: list[int] = []
    sleeps: list[float] = []

    @serializable_transaction(policy=FAST)
    def insert_duplicate() -> None:
        attempts.append(1)
        with connection.cursor() as cursor:
            cursor.execute("UPDATE retry_probe SET value = 5 WHERE id = 2")
            cursor.execute("INSERT INTO retry_probe VALUES (1, 99)")

    with pytest.raises(IntegrityError):
        insert_duplicate()
    assert len(attempts) == 1
    assert sleeps == []
    assert _value(2) == 0  # the whole transaction rolled back


@pytest.mark.integration
def test_on_commit_side_effects_run_once_after_the_attempt_that_committed(
        probe_table: None) -> None:
    attempts: list[int] = []
    published: list[int] = []

    def body() -> None:
        attempts.append(1)
        seen = _read_then_write_with_interference(lambda: len(attempts) == 1, add=1)
        transaction.on_commit(lambda: published.append(seen))

    run_serializable(body, policy=FAST, sleep=lambda _delay: None)
    assert len(attempts) == 2
    assert published == [1]


@pytest.mark.integration
def test_it_refuses_to_run_inside_an_outer_transaction(probe_table: None) -> None:
    calls: list[int] = []
    with transaction.atomic(), pytest.raises(RuntimeError, match="durable"):
        run_serializable(lambda: calls.append(1))
    assert calls == []


def _run_threads(count: int, target: Callable[[int], None]) -> list[BaseException]:
    errors: list[BaseException] = []

    def runner(index: int) -> None:
        try:
            target(index)
        except BaseException as error:  # noqa: BLE001 - reported to the test thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=runner, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return errors


@pytest.mark.integration
def test_concurrent_read_then_write_increments_lose_no_update(probe_table: None) -> None:
    workers = 4
    barrier = threading.Barrier(workers, timeout=20)
    retries_before = _retries("40001")

    def increment(_index: int) -> None:
        first = [True]

        @serializable_transaction(policy=RetryPolicy(max_attempts=20, base_delay_s=0.002))
        def body() -> None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT value FROM retry_probe WHERE id = 1")
                seen = int(cursor.fetchone()[0])
                if first[0]:
                    first[0] = False
                    barrier.wait()  # every worker has read the same value before any writes
                cursor.execute("UPDATE retry_probe SET value = %s WHERE id = 1", [seen + 1])

        body()

    assert _run_threads(workers, increment) == []
    assert _value() == workers
    assert _retries("40001") >= retries_before + workers - 1


@pytest.mark.integration
def test_write_skew_is_aborted_and_the_retry_keeps_the_invariant(probe_table: None) -> None:
    # Rows 1 and 2 are "on call" (value 1). Each worker goes off call only if the other is
    # still on call. Snapshot isolation would let both go off; SERIALIZABLE aborts one.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE retry_probe SET value = 1")
    barrier = threading.Barrier(2, timeout=20)
    attempts = [0, 0]

    def go_off_call(index: int) -> None:
        row_id = index + 1

        def body() -> None:
            attempts[index] += 1
            with connection.cursor() as cursor:
                cursor.execute("SELECT sum(value) FROM retry_probe")
                on_call = int(cursor.fetchone()[0])
                if attempts[index] == 1:
                    barrier.wait()
                if on_call >= 2:
                    cursor.execute("UPDATE retry_probe SET value = 0 WHERE id = %s", [row_id])

        run_serializable(body, policy=FAST)

    assert _run_threads(2, go_off_call) == []
    assert _value(1) + _value(2) == 1
    # One worker was aborted at least once (how often depends on when the winner commits).
    assert min(attempts) == 1 and max(attempts) >= 2


@pytest.mark.integration
def test_a_deadlock_is_retried(probe_table: None) -> None:
    barrier = threading.Barrier(2, timeout=20)
    retries_before = _retries("40P01")

    def lock_in_order(index: int) -> None:
        first_row, second_row = (1, 2) if index == 0 else (2, 1)
        attempt = [0]

        def body() -> None:
            attempt[0] += 1
            with connection.cursor() as cursor:
                cursor.execute("UPDATE retry_probe SET value = value + 1 WHERE id = %s",
                               [first_row])
                if attempt[0] == 1:
                    barrier.wait()
                cursor.execute("UPDATE retry_probe SET value = value + 1 WHERE id = %s",
                               [second_row])

        run_serializable(body, policy=FAST)

    assert _run_threads(2, lock_in_order) == []
    assert (_value(1), _value(2)) == (2, 2)
    assert _retries("40P01") >= retries_before + 1
