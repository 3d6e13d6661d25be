"""The admission pipeline: which transactions enter the mempool, checked in a fixed order.

Steps, in exactly this order (a transaction is refused, and counted, by the first that fails):

1. size and version: at most ``max_tx_bytes``; the schema version this code reads;
2. schema: strict canonical decoding of the envelope and the kind's payload, this chain;
3. signature and producer authorisation: the (producer id, public key) pair is allowlisted,
   the Ed25519 signature verifies (one batch per call), the producer may submit this kind;
4. nonce and replay window: created no earlier than ``replay_window_ms`` and no later than
   ``max_future_skew_ms`` around the injected ``now_ms``; the producer's nonce not used by a
   different transaction inside the window (durable ``ProducerNonce`` rows);
5. dedupe: a transaction already in the mempool or the ledger is a *duplicate* (not an error:
   an at-least-once re-delivery gets the same answer every time);
6. per-producer rate limit (token bucket) and quota (most pending transactions);
7. priority: the block builder's integer priority key (severity, evidence weight, age);
8. capacity: when the pool is full, expired rows are purged, then the lowest-priority rows are
   evicted for higher-priority newcomers; a newcomer below everything in a full pool is
   refused as ``POOL_FULL``. Every row that leaves this way (evicted or expired) is kept as
   a ``PendingDeadLetter`` in the same transaction, for the ingest worker to dead-letter;
9. expiry: every row carries ``expires_at_ms = created_at_ms + ttl_ms`` (``services.expire``).

Steps 1-4a are pure and run before the database is touched; steps 4b-8 run in ONE
serializable transaction per call (retried on serialization failures), so when ``admit`` or
``admit_batch`` returns, every admitted transaction is committed to the database. A database
failure that is not a retryable conflict propagates: it never becomes a rejection, and the
caller (the Kafka consumer) retries the call without committing its offsets.

Nothing here keeps per-transaction state in memory: replay protection, rate buckets and the
pool size live in the database, so memory is bounded by the batch size.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, F, Sum

from apps.mempool import metrics, store
from apps.mempool.models import MempoolTransaction, PoolStats, RateBucket
from apps.mempool.producers import AllowlistFile, Producer, ProducerAllowlist
from apps.mempool.ratelimit import Bucket, refill, take
from cybermesh.db import run_serializable
from cybermesh.protocol.block_builder import WEIGHT_UNIT_MS, tx_weight
from cybermesh.protocol.crypto.replay import ReplayVerdict, check_skew
from cybermesh.protocol.crypto.signing import PublicKey, key_id_for, verify_batch
from cybermesh.protocol.txs.envelope import MAX_TX_BYTES, Transaction, decode_transaction
from cybermesh.protocol.txs.errors import TxRejected, TxRejectReason

__all__ = [
    "POOL_STATS_NAME",
    "AdmissionPipeline",
    "AdmissionReason",
    "AdmissionRejected",
    "AdmissionResult",
    "AdmissionStatus",
    "AdmissionStep",
    "MempoolConfig",
    "admit",
    "admit_batch",
    "default_pipeline",
    "nonce_bytes",
    "reset_default_pipeline",
]

POOL_STATS_NAME = "pool"
DEFAULT_MAX_TXS = 100_000
DEFAULT_TTL_MS = 30 * 60 * 1000
DEFAULT_REPLAY_WINDOW_MS = 5 * 60 * 1000
DEFAULT_MAX_FUTURE_SKEW_MS = 5000
DEFAULT_LOCK_TIMEOUT_MS = 5000
MAX_SOURCE_CHARS = 64


class AdmissionStep(enum.IntEnum):
    SIZE_AND_VERSION = 1
    SCHEMA = 2
    AUTHORIZATION = 3
    REPLAY = 4
    DEDUPE = 5
    RATE_LIMIT = 6
    PRIORITY = 7
    CAPACITY = 8


class AdmissionReason(enum.Enum):
    """Why a transaction was refused; the value is the metrics label."""

    TOO_LARGE = "too_large"
    UNSUPPORTED_VERSION = "unsupported_version"
    MALFORMED = "malformed"
    UNKNOWN_KIND = "unknown_kind"
    WRONG_CHAIN = "wrong_chain"
    SCHEMA = "schema"
    UNKNOWN_PRODUCER = "unknown_producer"
    BAD_SIGNATURE = "bad_signature"
    KIND_NOT_PERMITTED = "kind_not_permitted"
    STALE = "stale"
    FROM_FUTURE = "from_future"
    NONCE_REUSED = "nonce_reused"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    POOL_FULL = "pool_full"

    @property
    def step(self) -> AdmissionStep:
        return _STEP_OF[self]

    @property
    def retry_later(self) -> bool:
        """Back-pressure rather than a bad transaction: the same bytes may be admitted later."""
        return self in (AdmissionReason.RATE_LIMITED, AdmissionReason.QUOTA_EXCEEDED,
                        AdmissionReason.POOL_FULL)


_R = AdmissionReason
_STEP_OF: dict[AdmissionReason, AdmissionStep] = {
    _R.TOO_LARGE: AdmissionStep.SIZE_AND_VERSION,
    _R.UNSUPPORTED_VERSION: AdmissionStep.SIZE_AND_VERSION,
    _R.MALFORMED: AdmissionStep.SCHEMA,
    _R.UNKNOWN_KIND: AdmissionStep.SCHEMA,
    _R.WRONG_CHAIN: AdmissionStep.SCHEMA,
    _R.SCHEMA: AdmissionStep.SCHEMA,
    _R.UNKNOWN_PRODUCER: AdmissionStep.AUTHORIZATION,
    _R.BAD_SIGNATURE: AdmissionStep.AUTHORIZATION,
    _R.KIND_NOT_PERMITTED: AdmissionStep.AUTHORIZATION,
    _R.STALE: AdmissionStep.REPLAY,
    _R.FROM_FUTURE: AdmissionStep.REPLAY,
    _R.NONCE_REUSED: AdmissionStep.REPLAY,
    _R.RATE_LIMITED: AdmissionStep.RATE_LIMIT,
    _R.QUOTA_EXCEEDED: AdmissionStep.RATE_LIMIT,
    _R.POOL_FULL: AdmissionStep.CAPACITY,
}
# The transaction layer's reasons that are the size/version step or named schema reasons;
# every other TxRejectReason is SCHEMA (the detail keeps the exact reason and field).
_FROM_TX_REASON: dict[TxRejectReason, AdmissionReason] = {
    TxRejectReason.TOO_LARGE: _R.TOO_LARGE,
    TxRejectReason.UNSUPPORTED_VERSION: _R.UNSUPPORTED_VERSION,
    TxRejectReason.MALFORMED_ENCODING: _R.MALFORMED,
    TxRejectReason.UNKNOWN_KIND: _R.UNKNOWN_KIND,
    TxRejectReason.WRONG_CHAIN: _R.WRONG_CHAIN,
}


class AdmissionRejected(Exception):
    """A refused transaction: ``reason`` (enum, counted), ``detail`` (for humans and the DLQ;
    never key material), ``tx_id`` when the transaction decoded far enough to have one."""

    def __init__(self, reason: AdmissionReason, detail: str, *, tx_id: bytes | None = None,
                 tx_reason: TxRejectReason | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.tx_id = tx_id
        self.tx_reason = tx_reason
        super().__init__(f"{reason.value}: {detail}")


class AdmissionStatus(enum.Enum):
    ADMITTED = "admitted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class AdmissionResult:
    """What happened to one submitted transaction. Every result is final when returned:
    ADMITTED and DUPLICATE are durably in the mempool or the ledger, REJECTED says why."""

    status: AdmissionStatus
    tx_id: bytes | None
    reason: AdmissionReason | None = None
    detail: str = ""
    tx_reason: TxRejectReason | None = None
    priority: int | None = None
    evicted: tuple[bytes, ...] = ()

    @property
    def admitted(self) -> bool:
        return self.status is AdmissionStatus.ADMITTED

    @property
    def durable(self) -> bool:
        """In the mempool or the ledger (admitted now, or earlier)."""
        return self.status is not AdmissionStatus.REJECTED

    @classmethod
    def rejected(cls, error: AdmissionRejected) -> AdmissionResult:
        return cls(AdmissionStatus.REJECTED, error.tx_id, error.reason, error.detail,
                   error.tx_reason)

    def raise_if_rejected(self) -> None:
        if self.reason is not None:
            raise AdmissionRejected(self.reason, self.detail, tx_id=self.tx_id,
                                    tx_reason=self.tx_reason)


@dataclass(frozen=True, slots=True)
class MempoolConfig:
    """Admission limits. ``ttl_ms`` must exceed ``replay_window_ms`` so that every admitted
    transaction lives a positive time; keep it at most the executor's ``tx_max_age_ms`` (a
    block may not carry anything older)."""

    chain_id: str
    max_txs: int = DEFAULT_MAX_TXS
    max_tx_bytes: int = MAX_TX_BYTES
    ttl_ms: int = DEFAULT_TTL_MS
    replay_window_ms: int = DEFAULT_REPLAY_WINDOW_MS
    max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS

    def __post_init__(self) -> None:
        if not self.chain_id:
            raise ImproperlyConfigured("the mempool needs the chain id")
        for name in ("max_txs", "max_tx_bytes", "ttl_ms", "replay_window_ms"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ImproperlyConfigured(f"mempool {name} must be a positive integer")
        for name in ("max_future_skew_ms", "lock_timeout_ms"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ImproperlyConfigured(f"mempool {name} must be an integer >= 0")
        if self.ttl_ms <= self.replay_window_ms:
            raise ImproperlyConfigured("MEMPOOL_TTL_MS must exceed MEMPOOL_REPLAY_WINDOW_MS")

    @classmethod
    def from_settings(cls) -> MempoolConfig:
        chain_id = getattr(settings, "MEMPOOL_CHAIN_ID", "")
        if not chain_id:
            topology = getattr(settings, "CLUSTER_TOPOLOGY", "")
            if not topology:
                raise ImproperlyConfigured("the mempool needs the chain id: set "
                                           "CLUSTER_TOPOLOGY (the genesis file)")
            from cybermesh.topology import configured_genesis

            chain_id = configured_genesis(topology).chain_id
        return cls(
            chain_id=chain_id,
            max_txs=getattr(settings, "MEMPOOL_MAX_TXS", DEFAULT_MAX_TXS),
            max_tx_bytes=min(getattr(settings, "MEMPOOL_MAX_TX_BYTES", MAX_TX_BYTES),
                             MAX_TX_BYTES),
            ttl_ms=getattr(settings, "MEMPOOL_TTL_MS", DEFAULT_TTL_MS),
            replay_window_ms=getattr(settings, "MEMPOOL_REPLAY_WINDOW_MS",
                                     getattr(settings, "CONSENSUS_REPLAY_WINDOW_MS",
                                             DEFAULT_REPLAY_WINDOW_MS)),
            max_future_skew_ms=getattr(settings, "MEMPOOL_MAX_FUTURE_SKEW_MS",
                                       getattr(settings, "CONSENSUS_MAX_CLOCK_SKEW_MS",
                                               DEFAULT_MAX_FUTURE_SKEW_MS)),
            lock_timeout_ms=getattr(settings, "MEMPOOL_LOCK_TIMEOUT_MS",
                                    DEFAULT_LOCK_TIMEOUT_MS),
        )


def nonce_bytes(nonce: int) -> bytes:
    """The stored form of a nonce (0..2**64-1): 8 bytes big-endian."""
    return nonce.to_bytes(8, "big")


@dataclass(slots=True)
class _Pending:
    """A transaction that passed the pure steps, on its way through the database steps."""

    index: int
    transaction: Transaction
    producer: Producer
    key_id: str
    nonce: bytes
    weight: int
    priority: int
    nonce_recorded: bool = False

    @property
    def tx_id(self) -> bytes:
        return self.transaction.tx_id

    @property
    def order(self) -> tuple[int, bytes]:
        """Block order: smaller is earlier (priority descending, tx id ascending)."""
        return (-self.priority, self.transaction.tx_id)


@dataclass(slots=True)
class _DatabaseOutcome:
    results: dict[int, AdmissionResult] = field(default_factory=dict)
    evicted: int = 0
    expired: int = 0
    pool_size: int = 0


class AdmissionPipeline:
    """Admission with one configuration and one producer allowlist (one per node process)."""

    def __init__(self, config: MempoolConfig,
                 allowlist: ProducerAllowlist | AllowlistFile) -> None:
        self.config = config
        self._allowlist = allowlist

    def allowlist(self) -> ProducerAllowlist:
        if isinstance(self._allowlist, AllowlistFile):
            return self._allowlist.current()
        return self._allowlist

    # --- public API -------------------------------------------------------------------------

    def admit(self, raw: bytes, *, now_ms: int, source: str) -> AdmissionResult:
        """Admit one transaction (see :meth:`admit_batch`)."""
        return self.admit_batch([raw], now_ms=now_ms, source=source)[0]

    def admit_batch(self, raws: Sequence[bytes], *, now_ms: int,
                    source: str) -> list[AdmissionResult]:
        """Run every transaction through the pipeline; one result per input, in order.

        Signatures are verified in one batch, the database steps run in one serializable
        transaction. Returns only after that transaction committed; raises (and counts
        nothing) if the database fails, so the caller retries the whole batch.
        """
        if type(now_ms) is not int or now_ms < 0:
            raise ValueError("now_ms must be a non-negative int (milliseconds since the epoch)")
        if not isinstance(source, str) or not 0 < len(source) <= MAX_SOURCE_CHARS \
                or not source.isprintable():
            raise ValueError(f"source must be printable text of 1..{MAX_SOURCE_CHARS} chars")
        started = time.perf_counter()
        results: list[AdmissionResult | None] = [None] * len(raws)
        pending = self._pure_steps(raws, now_ms, results)
        unique, copies = self._in_batch_replays(pending, results)
        outcome = _DatabaseOutcome()
        if unique:
            outcome = run_serializable(lambda: self._database_steps(unique, now_ms, source),
                                       operation="mempool.admit_batch")
        for index, result in outcome.results.items():
            results[index] = result
        for index, first in copies.items():
            original = results[first]
            if original is not None:
                results[index] = (AdmissionResult(AdmissionStatus.DUPLICATE, original.tx_id,
                                                  priority=original.priority)
                                  if original.durable else original)
        final = [result for result in results if result is not None]
        if len(final) != len(raws):  # pragma: no cover - every path above sets a result
            raise RuntimeError("admission left a transaction without a result")
        _count(final, outcome, pending, time.perf_counter() - started, bool(unique))
        return final

    # --- steps 1-4a: pure ------------------------------------------------------------------

    def _decode(self, raw: object) -> Transaction:
        if type(raw) is not bytes:
            raise AdmissionRejected(_R.MALFORMED, f"expected bytes, got {type(raw).__name__}")
        if len(raw) > self.config.max_tx_bytes:
            raise AdmissionRejected(_R.TOO_LARGE, f"{len(raw)} bytes exceed "
                                    f"{self.config.max_tx_bytes}")
        try:
            return decode_transaction(raw, expected_chain_id=self.config.chain_id,
                                      verify=False)
        except TxRejected as error:
            raise AdmissionRejected(_FROM_TX_REASON.get(error.reason, _R.SCHEMA), str(error),
                                    tx_reason=error.reason) from None

    def _check_window(self, transaction: Transaction, now_ms: int) -> None:
        created = transaction.created_at_ms
        if created > now_ms + self.config.max_future_skew_ms:
            raise AdmissionRejected(_R.FROM_FUTURE, f"created {created - now_ms} ms in the "
                                    "future", tx_id=transaction.tx_id)
        if check_skew(created, now_ms, self.config.replay_window_ms) is ReplayVerdict.TOO_OLD:
            raise AdmissionRejected(_R.STALE, f"created {now_ms - created} ms ago, outside "
                                    f"the {self.config.replay_window_ms} ms replay window",
                                    tx_id=transaction.tx_id)

    def _pure_steps(self, raws: Sequence[bytes], now_ms: int,
                    results: list[AdmissionResult | None]) -> list[_Pending]:
        allowlist = self.allowlist()
        authorised: list[tuple[int, Transaction, Producer, PublicKey]] = []
        for index, raw in enumerate(raws):
            try:
                transaction = self._decode(raw)
                found = allowlist.lookup(transaction.producer_id, transaction.public_key)
                if found is None:
                    raise AdmissionRejected(
                        _R.UNKNOWN_PRODUCER, f"producer {transaction.producer_id!r} with key "
                        f"{key_id_for(transaction.public_key)} is not "
                        "allowlisted", tx_id=transaction.tx_id)
                authorised.append((index, transaction, *found))
            except AdmissionRejected as error:
                results[index] = AdmissionResult.rejected(error)
        failed = set(verify_batch([(key, transaction.domain, transaction.body,
                                    transaction.signature)
                                   for _, transaction, _, key in authorised]))
        pending: list[_Pending] = []
        for position, (index, transaction, producer, key) in enumerate(authorised):
            try:
                if position in failed:
                    raise AdmissionRejected(_R.BAD_SIGNATURE, "signature does not verify",
                                            tx_id=transaction.tx_id)
                if not producer.may_submit(transaction.kind):
                    raise AdmissionRejected(_R.KIND_NOT_PERMITTED, f"{producer.producer_id} "
                                            f"may not submit {transaction.kind.value}",
                                            tx_id=transaction.tx_id)
                self._check_window(transaction, now_ms)
            except AdmissionRejected as error:
                results[index] = AdmissionResult.rejected(error)
                continue
            weight = tx_weight(transaction)
            pending.append(_Pending(index=index, transaction=transaction, producer=producer,
                                    key_id=key.key_id, nonce=nonce_bytes(transaction.nonce),
                                    weight=weight,
                                    priority=weight * WEIGHT_UNIT_MS
                                    - transaction.created_at_ms))
        return pending

    @staticmethod
    def _in_batch_replays(pending: list[_Pending], results: list[AdmissionResult | None]
                          ) -> tuple[list[_Pending], dict[int, int]]:
        """Steps 4 and 5 inside one batch: a nonce reused by a different transaction is
        refused; a repeated transaction gets its first copy's answer."""
        first_by_id: dict[bytes, int] = {}
        id_by_nonce: dict[tuple[str, bytes], bytes] = {}
        unique: list[_Pending] = []
        copies: dict[int, int] = {}
        for item in pending:
            nonce_key = (item.producer.producer_id, item.nonce)
            earlier = id_by_nonce.setdefault(nonce_key, item.tx_id)
            if earlier != item.tx_id:
                results[item.index] = AdmissionResult.rejected(AdmissionRejected(
                    _R.NONCE_REUSED, f"nonce {item.transaction.nonce} already used by "
                    f"transaction {earlier.hex()} in this batch", tx_id=item.tx_id))
            elif item.tx_id in first_by_id:
                copies[item.index] = first_by_id[item.tx_id]
            else:
                first_by_id[item.tx_id] = item.index
                unique.append(item)
        return unique, copies

    # --- steps 4b-8: one serializable transaction -------------------------------------------

    def _database_steps(self, pending: list[_Pending], now_ms: int,
                        source: str) -> _DatabaseOutcome:
        # Runs again from scratch after a serialization failure: no state outside the result.
        outcome = _DatabaseOutcome()
        store.set_lock_timeout(self.config.lock_timeout_ms)
        live = self._check_nonces(pending, outcome)
        fresh = self._dedupe(live, outcome)
        allowed = self._rate_and_quota(fresh, now_ms, outcome)
        self._insert_with_capacity(allowed, now_ms, source, outcome)
        return outcome

    @staticmethod
    def _reject(outcome: _DatabaseOutcome, item: _Pending, reason: AdmissionReason,
                detail: str) -> None:
        outcome.results[item.index] = AdmissionResult.rejected(
            AdmissionRejected(reason, detail, tx_id=item.tx_id))

    def _check_nonces(self, pending: list[_Pending], outcome: _DatabaseOutcome
                      ) -> list[_Pending]:
        recorded = store.recorded_nonces(
            list({(item.producer.producer_id, item.nonce) for item in pending}))
        live: list[_Pending] = []
        for item in pending:
            earlier = recorded.get((item.producer.producer_id, item.nonce))
            if earlier is not None and earlier != item.tx_id:
                self._reject(outcome, item, _R.NONCE_REUSED,
                             f"nonce {item.transaction.nonce} already used by transaction "
                             f"{earlier.hex()}")
                continue
            item.nonce_recorded = earlier is not None
            live.append(item)
        return live

    @staticmethod
    def _dedupe(live: list[_Pending], outcome: _DatabaseOutcome) -> list[_Pending]:
        if not live:
            return []
        known = store.known_tx_ids([item.tx_id for item in live])
        fresh: list[_Pending] = []
        for item in live:
            if item.tx_id in known:
                outcome.results[item.index] = AdmissionResult(
                    AdmissionStatus.DUPLICATE, item.tx_id, priority=item.priority)
            else:
                fresh.append(item)
        return fresh

    def _rate_and_quota(self, fresh: list[_Pending], now_ms: int,
                        outcome: _DatabaseOutcome) -> list[_Pending]:
        if not fresh:
            return []
        producer_ids = {item.producer.producer_id for item in fresh}
        buckets: dict[str, Bucket | None] = {
            row.producer_id: Bucket(row.tokens_milli, row.refilled_at_ms)
            for row in RateBucket.objects.filter(producer_id__in=producer_ids)}
        waiting: dict[str, int] = dict(
            MempoolTransaction.objects.filter(producer_id__in=producer_ids)
            .values_list("producer_id").annotate(count=Count("tx_id")).order_by())
        allowed: list[_Pending] = []
        for item in fresh:
            producer = item.producer
            bucket = refill(buckets.get(producer.producer_id), now_ms=now_ms,
                            rate_per_second=producer.rate_per_second, burst=producer.burst)
            spent = take(bucket)
            buckets[producer.producer_id] = bucket if spent is None else spent
            if spent is None:
                self._reject(outcome, item, _R.RATE_LIMITED,
                             f"{producer.producer_id} exceeds {producer.rate_per_second}/s "
                             f"(burst {producer.burst})")
                continue
            if waiting.get(producer.producer_id, 0) >= producer.max_pending:
                self._reject(outcome, item, _R.QUOTA_EXCEEDED,
                             f"{producer.producer_id} already has {producer.max_pending} "
                             "transactions waiting")
                continue
            waiting[producer.producer_id] = waiting.get(producer.producer_id, 0) + 1
            allowed.append(item)
        RateBucket.objects.bulk_create(
            [RateBucket(producer_id=producer_id, tokens_milli=bucket.tokens_milli,
                        refilled_at_ms=bucket.refilled_at_ms)
             for producer_id, bucket in sorted(buckets.items()) if bucket is not None],
            update_conflicts=True, unique_fields=["producer_id"],
            update_fields=["tokens_milli", "refilled_at_ms"])
        return allowed

    def _insert_with_capacity(self, allowed: list[_Pending], now_ms: int, source: str,
                              outcome: _DatabaseOutcome) -> None:
        stats = pool_stats_for_update()
        count = stats.tx_count
        allowed.sort(key=lambda item: item.order)
        room = self.config.max_txs - count
        removed_bytes = 0
        if len(allowed) > room:
            expired_count, expired_bytes = delete_expired_rows(now_ms)
            outcome.expired = expired_count
            count -= expired_count
            removed_bytes += expired_bytes
            room += expired_count
        admitted = allowed[:max(room, 0)]
        evictions: dict[int, bytes] = {}
        why_evicted: dict[bytes, str] = {}
        overflow = allowed[max(room, 0):]
        if overflow:
            victims = list(MempoolTransaction.objects.order_by("priority", "-tx_id")
                           .values_list("tx_id", "priority", "size_bytes")[:len(overflow)])
            taken = 0
            for item in overflow:
                if taken < len(victims):
                    victim_id, victim_priority, victim_size = victims[taken]
                    if item.order < (-victim_priority, bytes(victim_id)):
                        evictions[item.index] = bytes(victim_id)
                        why_evicted[bytes(victim_id)] = (
                            f"evicted from the full mempool ({self.config.max_txs} txs) by "
                            f"{item.tx_id.hex()}, priority {item.priority} > {victim_priority}")
                        removed_bytes += victim_size
                        taken += 1
                        admitted.append(item)
                        continue
                self._reject(outcome, item, _R.POOL_FULL,
                             f"the mempool holds {self.config.max_txs} transactions of "
                             "higher priority")
            if evictions:
                # Same transaction as the delete: an evicted event whose offset is committed
                # is never in neither place (invariant 4); the ingest worker dead-letters it.
                store.record_evictions(why_evicted, removed_at_ms=now_ms)
                MempoolTransaction.objects.filter(tx_id__in=list(evictions.values())).delete()
                outcome.evicted = len(evictions)
        ttl = self.config.ttl_ms
        store.insert_transactions([store.NewTransaction(
            tx_id=item.tx_id, wire=item.transaction.wire, kind=item.transaction.kind.value,
            producer_id=item.producer.producer_id, key_id=item.key_id, nonce=item.nonce,
            created_at_ms=item.transaction.created_at_ms, admitted_at_ms=now_ms,
            expires_at_ms=item.transaction.created_at_ms + ttl, weight=item.weight,
            priority=item.priority, source=source) for item in admitted])
        store.insert_nonces([(item.producer.producer_id, item.nonce, item.tx_id,
                              item.transaction.created_at_ms)
                             for item in admitted if not item.nonce_recorded])
        added_bytes = sum(len(item.transaction.wire) for item in admitted)
        delta = len(admitted) - outcome.evicted - outcome.expired
        adjust_pool_stats(delta, added_bytes - removed_bytes)
        outcome.pool_size = stats.tx_count + delta
        for item in admitted:
            evicted = evictions.get(item.index)
            outcome.results[item.index] = AdmissionResult(
                AdmissionStatus.ADMITTED, item.tx_id, priority=item.priority,
                evicted=() if evicted is None else (evicted,))


# --- pool bookkeeping shared with the services ----------------------------------------------

def pool_stats_for_update() -> PoolStats:
    """The pool counter row, created (from a real count) if missing. Inside a transaction."""
    stats = PoolStats.objects.filter(name=POOL_STATS_NAME).first()
    if stats is not None:
        return stats
    totals = MempoolTransaction.objects.aggregate(count=Count("tx_id"),
                                                  total=Sum("size_bytes"))
    stats = PoolStats(name=POOL_STATS_NAME, tx_count=totals["count"] or 0,
                      total_bytes=totals["total"] or 0)
    # A concurrent creator makes this insert conflict; at SERIALIZABLE that aborts this
    # transaction with a serialization failure and the retry reads the winner's row.
    PoolStats.objects.bulk_create([stats], ignore_conflicts=True)
    return stats


def adjust_pool_stats(tx_delta: int, bytes_delta: int) -> None:
    if tx_delta or bytes_delta:
        PoolStats.objects.filter(name=POOL_STATS_NAME).update(
            tx_count=F("tx_count") + tx_delta, total_bytes=F("total_bytes") + bytes_delta)


def delete_expired_rows(now_ms: int) -> tuple[int, int]:
    """Delete rows whose TTL passed, keeping them as pending dead letters (reason
    ``expired``); return (count, bytes). Inside a transaction; the caller adjusts the pool
    counter."""
    expired = MempoolTransaction.objects.filter(expires_at_ms__lte=now_ms)
    total_bytes = expired.aggregate(total=Sum("size_bytes"))["total"] or 0
    if total_bytes:  # something expired (every row has bytes)
        store.record_expired(now_ms)
    count, _ = expired.delete()
    return count, total_bytes


# --- metrics ----------------------------------------------------------------------------------

def _count(results: list[AdmissionResult], outcome: _DatabaseOutcome,
           pending: list[_Pending], elapsed_s: float, touched_database: bool) -> None:
    kinds = {item.index: item.transaction.kind.value for item in pending}
    # Tallied first, then one increment per label: a batch is 500 results, not 500 updates.
    admitted: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    schema_rejected: Counter[str] = Counter()
    duplicates = 0
    for index, result in enumerate(results):
        if result.status is AdmissionStatus.ADMITTED:
            admitted[kinds.get(index, "unknown")] += 1
        elif result.status is AdmissionStatus.DUPLICATE:
            duplicates += 1
        elif result.reason is not None:
            rejected[result.reason.value] += 1
            if result.tx_reason is not None:
                schema_rejected[result.tx_reason.value] += 1
    for kind, count in admitted.items():
        metrics.ADMITTED.labels(kind=kind).inc(count)
    for reason, count in rejected.items():
        metrics.REJECTIONS.labels(reason=reason).inc(count)
    for tx_reason, count in schema_rejected.items():
        metrics.SCHEMA_REJECTIONS.labels(tx_reason=tx_reason).inc(count)
    if duplicates:
        metrics.DUPLICATES.inc(duplicates)
    if outcome.evicted:
        metrics.EVICTED.inc(outcome.evicted)
    if outcome.expired:
        metrics.EXPIRED.inc(outcome.expired)
    if touched_database:
        metrics.POOL_TXS.set(outcome.pool_size)
    metrics.ADMIT_BATCH_SECONDS.observe(elapsed_s)


# --- the node's pipeline ----------------------------------------------------------------------

_default: AdmissionPipeline | None = None
_default_lock = threading.Lock()


def default_pipeline() -> AdmissionPipeline:
    """This process's pipeline, built once from settings (chain id from the genesis file,
    producers from ``MEMPOOL_PRODUCERS_PATH``)."""
    global _default  # noqa: PLW0603 -- one pipeline per process, built on first use
    if _default is None:
        with _default_lock:
            if _default is None:
                path = getattr(settings, "MEMPOOL_PRODUCERS_PATH", "")
                if not path:
                    raise ImproperlyConfigured("MEMPOOL_PRODUCERS_PATH is not set: the mempool "
                                               "admits only allowlisted producers")
                _default = AdmissionPipeline(MempoolConfig.from_settings(), AllowlistFile(path))
    return _default


def reset_default_pipeline() -> None:
    """Forget the process pipeline (tests, or after changing settings)."""
    global _default  # noqa: PLW0603
    with _default_lock:
        _default = None


def admit(raw: bytes, *, now_ms: int, source: str) -> AdmissionResult:
    """Admit one transaction with the node's pipeline."""
    return default_pipeline().admit(raw, now_ms=now_ms, source=source)


def admit_batch(raws: Sequence[bytes], *, now_ms: int, source: str) -> list[AdmissionResult]:
    """Admit a batch with the node's pipeline (signatures batched, one DB transaction)."""
    return default_pipeline().admit_batch(raws, now_ms=now_ms, source=source)
