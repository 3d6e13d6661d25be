"""Serializable transactions with client-side retry.

Every consensus-critical write runs at SERIALIZABLE isolation (CockroachDB always, PostgreSQL
because settings ask for it). At that level the database may abort a transaction that would
otherwise have produced a non-serializable history: SQLSTATE ``40001`` (serialization failure,
CockroachDB's "restart transaction") or ``40P01`` (deadlock detected). The abort is the
database doing its job; the client is expected to run the whole transaction again.
django-cockroachdb does not do that for us, so this module does:

* the function runs inside ``transaction.atomic(durable=True)``, so it is always the outermost
  transaction: retrying an inner block would be meaningless, because the abort rolled back the
  caller's work too, and ``durable=True`` turns that mistake into an immediate ``RuntimeError``;
* the retryable SQLSTATE is looked for anywhere in the exception's ``__cause__`` /
  ``__context__`` chain, because Django wraps psycopg errors (``OperationalError`` from
  ``psycopg.errors.SerializationFailure``) and callers may wrap Django's in turn;
* attempts are separated by exponential backoff with full jitter (two transactions that
  collided once should not collide again in lockstep), up to a limit, after which
  :class:`TransactionRetryExhausted` is raised with the last database error as its cause;
* anything else (integrity errors, programming errors, connection loss, CockroachDB's
  ambiguous-result ``40003``) propagates at once: retrying those could apply a write twice or
  hide a bug.

Side effects (publishing, sending, writing files) belong in ``transaction.on_commit``: Django
discards the callbacks of a rolled-back attempt, so they run exactly once, after the attempt
that committed.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, overload

from django.db import DEFAULT_DB_ALIAS, transaction
from prometheus_client import Counter

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "RETRYABLE_SQLSTATES",
    "RetryPolicy",
    "TransactionRetryExhausted",
    "retryable_sqlstate",
    "run_serializable",
    "serializable_transaction",
]

# 40001 serialization_failure (PostgreSQL SSI aborts, CockroachDB "restart transaction"),
# 40P01 deadlock_detected. Both mean: nothing was committed, running again is safe.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
# CockroachDB's retry errors carry SQLSTATE 40001; this text is the fallback for a driver or
# wrapper that lost the code but kept the message.
_COCKROACH_RESTART_TEXT = "restart transaction"

TRANSACTION_RETRIES = Counter(
    "cybermesh_db_transaction_retries",
    "Serializable transactions run again after a retryable abort, by SQLSTATE.",
    ["sqlstate"],
)
TRANSACTION_RETRIES_EXHAUSTED = Counter(
    "cybermesh_db_transaction_retries_exhausted",
    "Serializable transactions given up after the retry limit.",
)

P = ParamSpec("P")
R = TypeVar("R")


class TransactionRetryExhausted(Exception):
    """The transaction kept aborting with a retryable error until the attempt limit.

    ``__cause__`` is the last database error. This exception deliberately stops the
    cause-chain search of :func:`retryable_sqlstate`, so an outer retry loop does not retry a
    transaction that an inner one already gave up on.
    """

    def __init__(self, *, attempts: int, sqlstate: str, operation: str) -> None:
        super().__init__(f"{operation}: gave up after {attempts} attempts, the database kept "
                         f"aborting the transaction (SQLSTATE {sqlstate})")
        self.attempts = attempts
        self.sqlstate = sqlstate
        self.operation = operation


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to run a transaction again.

    The delay before retry ``n`` (1-based) is uniform in ``[0, min(max_delay_s,
    base_delay_s * 2**(n-1))]`` ("full jitter").
    """

    max_attempts: int = 8
    base_delay_s: float = 0.005
    max_delay_s: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("retry delays must not be negative")

    def delay_before_retry(self, retry_number: int, rng: Callable[[], float]) -> float:
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** (retry_number - 1))
        return ceiling * rng()


DEFAULT_RETRY_POLICY = RetryPolicy()


def _sqlstate_of(error: BaseException) -> str | None:
    # psycopg 3 exposes .sqlstate, psycopg2 .pgcode; Django's wrappers expose neither but keep
    # the driver error as __cause__.
    for attribute in ("sqlstate", "pgcode"):
        code = getattr(error, attribute, None)
        if isinstance(code, str) and code:
            return code
    return None


def retryable_sqlstate(error: BaseException) -> str | None:
    """Return the retryable SQLSTATE found in ``error``'s cause/context chain, else None."""
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen or isinstance(current, TransactionRetryExhausted):
            continue
        seen.add(id(current))
        code = _sqlstate_of(current)
        if code in RETRYABLE_SQLSTATES:
            return code
        if code is None and _COCKROACH_RESTART_TEXT in str(current):
            return "40001"
        pending.extend(link for link in (current.__cause__, current.__context__) if link)
    return None


def run_serializable(
    function: Callable[[], R],
    *,
    using: str = DEFAULT_DB_ALIAS,
    policy: RetryPolicy = DEFAULT_RETRY_POLICY,
    operation: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
) -> R:
    """Run ``function()`` in an outermost transaction, again after each retryable abort.

    ``function`` may run several times: it must read what it needs inside the transaction
    and leave side effects to ``transaction.on_commit``. Raises whatever non-retryable error
    the function or the commit raised, or :class:`TransactionRetryExhausted`.
    """
    name = operation or str(getattr(function, "__qualname__", repr(function)))
    attempt = 1
    while True:
        try:
            with transaction.atomic(using=using, durable=True):
                return function()
        except Exception as error:
            sqlstate = retryable_sqlstate(error)
            if sqlstate is None:
                raise
            if attempt >= policy.max_attempts:
                TRANSACTION_RETRIES_EXHAUSTED.inc()
                raise TransactionRetryExhausted(
                    attempts=attempt, sqlstate=sqlstate, operation=name) from error
            TRANSACTION_RETRIES.labels(sqlstate=sqlstate).inc()
            sleep(policy.delay_before_retry(attempt, rng))
            attempt += 1


@overload
def serializable_transaction(function: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def serializable_transaction(
    function: None = None, /, *, using: str = ..., policy: RetryPolicy = ...,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def serializable_transaction(
    function: Callable[..., Any] | None = None,
    /,
    *,
    using: str = DEFAULT_DB_ALIAS,
    policy: RetryPolicy = DEFAULT_RETRY_POLICY,
) -> Any:
    """Decorator form of :func:`run_serializable`.

    ``@serializable_transaction`` or ``@serializable_transaction(policy=RetryPolicy(...))``.
    Each call of the decorated function is one outermost transaction, retried as a whole.
    """

    def decorate(inner: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(inner)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return run_serializable(lambda: inner(*args, **kwargs), using=using, policy=policy,
                                    operation=inner.__qualname__)

        return wrapper

    if function is not None:
        return decorate(function)
    return decorate
