"""Mempool admission rate on PostgreSQL, against raw PyNaCl verification in the same run.

Measured: ``AdmissionPipeline.admit_batch`` over pre-signed security events, batches of 500
(what the Kafka consumer does): decode, allowlist lookup, one signature batch, window check,
then ONE serializable transaction per batch for nonces, dedupe (mempool and ledger), rate
buckets, the pool counter and the inserts. The pool is emptied between repeats.

Ceiling: raw ``nacl.bindings.crypto_sign_open`` over the same signed bytes, i.e. what the
signature check alone would allow on one core. Target: admission at >= 25% of it (a
transaction also has to be decoded strictly, which costs more than verifying it, and written).
Extra figures show the pure steps alone (no database) and single-transaction admission (one
database transaction per transaction), to show where the time goes and what batching buys.

Database: ``BENCH_DATABASE_URL`` or ``DATABASE_URL`` (default
``postgres://postgres@127.0.0.1:5432/cybermesh_bench``), with ``_bench`` appended to the
database name unless it already ends so; created and dropped by this script. Only the tables
the mempool reads and writes are created (the mempool's and the ledger's transactions table),
straight from the models.

Run: ``.venv/bin/python -m bench.bench_mempool``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from urllib.parse import urlparse

import psycopg

from bench.scratch_database import database_name, server_admin_connection

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/cybermesh_bench"
TARGET_RATIO = 0.25
BATCH = 500
TXS = 5000
SINGLE_TXS = 300
NOW = 1_700_000_000_000
CHAIN = "cybermesh-bench"


def bench_database_url(url: str) -> str:
    """``url`` with a database name ending in ``_bench``: this script drops that database, so
    it never runs against (and never drops) a database that is not its own."""
    parsed = urlparse(url)
    name = parsed.path.lstrip("/") or "cybermesh"
    if not name.endswith("_bench"):
        name = f"{name}_bench"
    return parsed._replace(path=f"/{name}").geturl()


def _admin_connection(url: str) -> tuple[psycopg.Connection, str]:
    return server_admin_connection(url), database_name(url)


def _setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cybermesh.settings")
    import django

    django.setup()
    from django.db import connection

    from apps.ledger.models import Transaction as LedgerTransaction
    from apps.mempool.models import MempoolTransaction, PoolStats, ProducerNonce, RateBucket

    with connection.schema_editor() as editor:
        for model in (MempoolTransaction, ProducerNonce, RateBucket, PoolStats,
                      LedgerTransaction):
            editor.create_model(model)


def _interleaved(*measures: Callable[[], float]) -> list[list[float]]:
    from bench.harness import REPEATS

    for measure in measures:
        measure()
    samples: list[list[float]] = [[] for _ in measures]
    for _ in range(REPEATS):
        for index, measure in enumerate(measures):
            samples[index].append(measure())
    return samples


def _run() -> None:
    import nacl.bindings
    from django.db import connection

    from apps.mempool.admission import AdmissionPipeline, MempoolConfig
    from apps.mempool.producers import Producer, ProducerAllowlist
    from bench.harness import Report, figure
    from cybermesh.protocol.crypto.signing import SigningKey
    from cybermesh.protocol.txs import Entity, SecurityEvent, TxKind, sign_transaction

    keys = [SigningKey.from_seed(bytes([index + 1]) * 32) for index in range(4)]
    allowlist = ProducerAllowlist.of(
        Producer(producer_id=f"ai-{index}", keys=(key.public_key,),
                 kinds=frozenset({TxKind.SECURITY_EVENT}), rate_per_second=1_000_000,
                 burst=1_000_000, max_pending=1_000_000)
        for index, key in enumerate(keys))
    pipeline = AdmissionPipeline(MempoolConfig(chain_id=CHAIN, max_txs=1_000_000), allowlist)
    transactions = []
    for number in range(TXS):
        producer_index = number % len(keys)
        payload = SecurityEvent(
            source="ids-1", offender=Entity.of("ip", f"10.{number // 65536}."
                                                     f"{number // 256 % 256}.{number % 256}"),
            category="scan", severity=1 + number % 10, confidence_bps=number % 10_001,
            observed_at_ms=NOW - 100_000, detector="det-1", payload_ref="f" * 64)
        transactions.append(sign_transaction(
            keys[producer_index], payload, chain_id=CHAIN, producer_id=f"ai-{producer_index}",
            nonce=number, created_at_ms=NOW - number % 60_000))
    raws = [transaction.wire for transaction in transactions]
    signed = [(transaction.signature + transaction.domain.tag() + transaction.body,
               transaction.public_key) for transaction in transactions]

    def empty_pool() -> None:
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE mempool_transactions, mempool_producer_nonces, "
                           "mempool_rate_buckets, mempool_stats")

    def raw_verify() -> float:
        start = time.perf_counter()
        for signed_message, public_key in signed:
            nacl.bindings.crypto_sign_open(signed_message, public_key)
        return len(signed) / (time.perf_counter() - start)

    def admit_batched() -> float:
        empty_pool()
        start = time.perf_counter()
        admitted = 0
        for offset in range(0, len(raws), BATCH):
            results = pipeline.admit_batch(raws[offset:offset + BATCH], now_ms=NOW,
                                           source="bench")
            admitted += sum(result.admitted for result in results)
        elapsed = time.perf_counter() - start
        if admitted != len(raws):
            raise RuntimeError(f"only {admitted} of {len(raws)} admitted")
        return admitted / elapsed

    def pure_steps() -> float:
        # Steps 1-4a exactly as admit_batch runs them, without the database transaction.
        start = time.perf_counter()
        for offset in range(0, len(raws), BATCH):
            results: list[object] = [None] * BATCH
            pipeline._pure_steps(raws[offset:offset + BATCH], NOW, results)  # type: ignore[arg-type]
        return len(raws) / (time.perf_counter() - start)

    def admit_single() -> float:
        empty_pool()
        start = time.perf_counter()
        for raw in raws[:SINGLE_TXS]:
            if not pipeline.admit(raw, now_ms=NOW, source="bench").admitted:
                raise RuntimeError("a single admission failed")
        return SINGLE_TXS / (time.perf_counter() - start)

    verify, batched, pure, single = _interleaved(raw_verify, admit_batched, pure_steps,
                                                 admit_single)
    report = Report("mempool")
    ceiling = figure("raw PyNaCl crypto_sign_open", "verify/s", verify)
    report.add(ceiling)
    report.add(figure(f"admit_batch ({BATCH}/batch, PostgreSQL)", "tx/s", batched,
                      ceiling_name=ceiling.name, ceiling_median=ceiling.median,
                      target_ratio=TARGET_RATIO,
                      notes="decode + allowlist + batched verify + one serializable "
                            "transaction per batch (nonces, dedupe, buckets, inserts)"))
    report.add(figure("pure steps only (decode+verify, no DB)", "tx/s", pure,
                      ceiling_name=ceiling.name, ceiling_median=ceiling.median,
                      notes="the ceiling of admission on this core without any database work"))
    report.add(figure("admit one at a time (PostgreSQL)", "tx/s", single,
                      ceiling_name=ceiling.name, ceiling_median=ceiling.median,
                      notes="one serializable transaction per transaction"))
    report.write()


def main() -> None:
    url = bench_database_url(os.environ.get("BENCH_DATABASE_URL")
                             or os.environ.get("DATABASE_URL", DEFAULT_URL))
    admin, name = _admin_connection(url)
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            _setup_django(url)
            _run()
        finally:
            from django.db import connections

            connections.close_all()
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
