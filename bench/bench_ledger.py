"""Block commit throughput into PostgreSQL, against raw bulk inserts of the same rows.

Measured: ``commit_block`` (one serializable transaction per block: block row, transaction rows,
the state version's Merkle nodes and stale index, materialized values, root, outbox rows, audit
entry), over a chain of blocks of real signed security events whose execution was done
beforehand, as the node does (it needs each block's state root before the block commits,
because the next header carries it): the figure is the storage layer's, in transactions per
second. A second figure recomputes the tree batch from the database inside the transaction.

Ceiling, measured in the same run: the *same rows* the commits wrote, copied with binary
``COPY`` into scratch tables of identical shape (``CREATE TABLE ... (LIKE ... INCLUDING
ALL)``: same keys and indexes), one transaction per block. That is what PostgreSQL can ingest
of this data with no logic at all. Target: commit >= 50% of it. A second, informational
figure copies only the transaction rows (the data a naive ledger would store).

Database: ``BENCH_DATABASE_URL`` or ``DATABASE_URL`` (default
``postgres://postgres@127.0.0.1:5432/cybermesh_bench``); this script uses its own database
named ``<name>_ledger_bench`` on that server, created and dropped by it.

Run: ``.venv/bin/python -m bench.bench_ledger``.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlparse

import psycopg

from bench.scratch_database import database_name, server_admin_connection

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/cybermesh_bench"
TARGET_RATIO = 0.5
TXS_PER_BLOCK = int(os.environ.get("BENCH_LEDGER_TXS_PER_BLOCK", "1000"))
BLOCKS_PER_SAMPLE = int(os.environ.get("BENCH_LEDGER_BLOCKS", "2"))
GENESIS_MS = 1_700_000_000_000
CHAIN = "cybermesh-bench"
COPIED_TABLES = ("blocks", "transactions", "state_nodes", "state_stale_nodes", "state_kv",
                 "state_versions", "ledger_outbox", "audit_auditentry")


def bench_database_url(url: str) -> str:
    """This benchmark's own database on the server of ``url`` (it is dropped afterwards)."""
    parsed = urlparse(url)
    name = (parsed.path.lstrip("/") or "cybermesh").removesuffix("_bench")
    return parsed._replace(path=f"/{name}_ledger_bench").geturl()


def _admin_connection(url: str) -> tuple[psycopg.Connection, str]:
    return server_admin_connection(url), database_name(url)


def _setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cybermesh.settings")
    import django

    django.setup()
    from django.apps import apps
    from django.db import connection

    with connection.schema_editor() as editor:
        for label in ("ledger", "state", "validators", "evidence", "audit"):
            for model in apps.get_app_config(label).get_models():
                editor.create_model(model)


def _build_chain(blocks: int) -> list[Any]:
    """Blocks 0..blocks-1 (0: genesis) of signed security events, executed in memory."""
    from apps.ledger.payload import compute_tx_root, decode_payload, encode_payload
    from apps.ledger.records import PreparedState
    from apps.state.execution import execute_block, genesis_execution
    from cybermesh.protocol.consensus.messages import (
        ZERO_HASH,
        Block,
        QuorumCert,
        block_statement,
        genesis_qc,
    )
    from cybermesh.protocol.consensus.signatures import Domains
    from cybermesh.protocol.crypto.signing import SigningKey
    from cybermesh.protocol.executor import StateRootTracker, genesis_state
    from cybermesh.protocol.merkle.sparse_hashing import EMPTY_HASH
    from cybermesh.protocol.txs import Category, Entity, SecurityEvent, sign_transaction
    from cybermesh.protocol.validator_set import Validator, ValidatorSet

    keys = [SigningKey.from_seed(bytes([index + 1]) * 32) for index in range(4)]
    validator_set = ValidatorSet(0, tuple(
        Validator(f"v{index}", key.public_key.raw, 1, f"127.0.0.1:{7000 + index}")
        for index, key in enumerate(keys)))
    vote = Domains.for_chain(CHAIN).vote
    producer = SigningKey.from_seed(b"\x42" * 32)
    rng = random.Random(7)
    state = genesis_state(chain_id=CHAIN, genesis_time_ms=GENESIS_MS,
                          validators=validator_set.validators)
    tracker = StateRootTracker(state)

    def sign_qc(block: Block) -> QuorumCert:
        statement = block_statement(block.epoch, block.view, block.block_id, block.height)
        return QuorumCert(block.epoch, block.view, block.block_id, block.height, tuple(
            sorted((f"v{i}", key.sign(vote, statement)) for i, key in enumerate(keys))))

    genesis = Block(epoch=0, view=0, height=0, parent_id=ZERO_HASH, proposer="",
                    timestamp_ms=GENESIS_MS, payload=encode_payload([]),
                    tx_root=compute_tx_root(()), state_root=EMPTY_HASH,
                    validator_set_hash=validator_set.digest(), qc=genesis_qc(0, ZERO_HASH, 0))
    chain = [(genesis, genesis_qc(0, genesis.block_id, 0), genesis_execution(state))]
    parent, parent_qc = chain[0][0], chain[0][1]
    for height in range(1, blocks):
        now = GENESIS_MS + height * 2000
        wires = [sign_transaction(producer, SecurityEvent(
            source="sensor-1", offender=Entity.of("ip", f"10.{rng.randrange(256)}."
                                                        f"{rng.randrange(256)}.{rng.randrange(256)}"),
            category=Category.SCAN, severity=rng.randint(1, 10),
            confidence_bps=rng.randint(0, 10_000), observed_at_ms=now - 1000, detector="d/1",
            payload_ref="f" * 64), chain_id=CHAIN, producer_id="ai-1",
            nonce=height * TXS_PER_BLOCK + index, created_at_ms=now - 500).wire
            for index in range(TXS_PER_BLOCK)]
        payload = encode_payload(wires)
        block = Block(epoch=0, view=height, height=height, parent_id=parent.block_id,
                      proposer=f"v{height % 4}", timestamp_ms=now, payload=payload,
                      tx_root=compute_tx_root(decode_payload(payload) or ()),
                      state_root=tracker.root(), validator_set_hash=validator_set.digest(),
                      qc=parent_qc)
        executed = execute_block(state, block)
        base_root = tracker.root()
        _, batch = tracker.apply({u.key: u.value for u in executed.execution.state_updates},
                                 height)
        tracker.prune(height - 1)
        qc = sign_qc(block)
        execution = replace(executed.execution,
                            prepared_state=PreparedState(base_root=base_root, batch=batch))
        chain.append((block, qc, execution))
        state, parent, parent_qc = executed.state, block, qc
    return chain


def _column_types(table: str) -> list[str]:
    """The table's column types in column order, as binary COPY needs them."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = "
                       "%s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                       [table])
        names = [row[0] for row in cursor.fetchall()]
    aliases = {"bigint": "int8", "integer": "int4", "boolean": "bool", "character varying":
               "varchar", "timestamp with time zone": "timestamptz"}
    return [aliases.get(name, name) for name in names]


def _copy_rows(table: str, heights: tuple[int, int]) -> list[tuple[Any, ...]]:
    """The rows of ``table`` written for blocks ``heights[0]..heights[1]``."""
    from django.db import connection

    where = {
        "blocks": "height BETWEEN %s AND %s",
        "transactions": "block_height BETWEEN %s AND %s",
        "state_nodes": "version BETWEEN %s AND %s",
        "state_stale_nodes": "stale_since BETWEEN %s AND %s",
        "state_kv": "version BETWEEN %s AND %s",
        "state_versions": "version BETWEEN %s AND %s",
        "ledger_outbox": "height BETWEEN %s AND %s",
        "audit_auditentry": "target LIKE 'block:%%' AND "
                            "split_part(target, ':', 2)::bigint BETWEEN %s AND %s",
    }[table]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE {where}", heights)  # noqa: S608
        return list(cursor.fetchall())


class _Sampler:
    """Commits the next ``BLOCKS_PER_SAMPLE`` blocks (timed), then COPYs the rows those
    commits wrote into the scratch tables (timed), one transaction per block."""

    def __init__(self, chain: list[Any]) -> None:
        from django.db import connection

        self.chain = chain
        self.next_height = 1
        self.batches: dict[str, list[list[tuple[Any, ...]]]] = {}
        with connection.cursor() as cursor:
            for table in COPIED_TABLES:
                cursor.execute(f"CREATE TABLE raw_{table} (LIKE {table} INCLUDING ALL)")
                cursor.execute(f"CREATE TABLE rawtx_{table} (LIKE {table} INCLUDING ALL)")
        self.raw = psycopg.connect(**_psycopg_params(connection.settings_dict),
                                   autocommit=False)
        self.types = {table: _column_types(table) for table in COPIED_TABLES}

    def commit(self, *, prepared: bool) -> float:
        """Commit the next blocks; ``prepared``: with the tree batch computed at execution
        (the node's path), else recomputed from the database inside the transaction."""
        from apps.ledger.services import commit_block

        first = self.next_height
        heights = range(first, first + BLOCKS_PER_SAMPLE)
        work = []
        for height in heights:
            block, qc, execution = self.chain[height]
            work.append((block, qc, execution if prepared
                         else replace(execution, prepared_state=None)))
        begin = time.perf_counter()
        for block, qc, execution in work:
            commit_block(block=block, qc=qc, execution=execution, snapshot_interval=0)
        elapsed = time.perf_counter() - begin
        self.next_height = first + BLOCKS_PER_SAMPLE
        self.batches = {table: [_copy_rows(table, (height, height)) for height in heights]
                        for table in COPIED_TABLES}
        return BLOCKS_PER_SAMPLE * TXS_PER_BLOCK / elapsed

    def copy(self, tables: tuple[str, ...], prefix: str) -> float:
        """Binary COPY (the fastest way PostgreSQL ingests rows) of the sampled rows."""
        begin = time.perf_counter()
        for index in range(BLOCKS_PER_SAMPLE):
            with self.raw.cursor() as cursor:
                for table in tables:
                    with cursor.copy(f"COPY {prefix}{table} FROM STDIN (FORMAT BINARY)"
                                     ) as copy:
                        copy.set_types(self.types[table])
                        for row in self.batches[table][index]:
                            copy.write_row(row)
            self.raw.commit()
        return BLOCKS_PER_SAMPLE * TXS_PER_BLOCK / (time.perf_counter() - begin)


def _run() -> None:
    from apps.ledger.services import commit_block
    from bench.harness import REPEATS, Report, figure

    blocks_needed = 1 + 2 * (REPEATS + 1) * BLOCKS_PER_SAMPLE
    started = time.perf_counter()
    chain = _build_chain(blocks_needed)
    print(f"built and executed {blocks_needed - 1} blocks of {TXS_PER_BLOCK} txs in "
          f"{time.perf_counter() - started:.1f}s")
    block, qc, execution = chain[0]
    commit_block(block=block, qc=qc, execution=execution, snapshot_interval=0)
    sampler = _Sampler(chain)
    commits: list[float] = []
    recomputing: list[float] = []
    ceilings: list[float] = []
    tx_only: list[float] = []
    for repeat in range(REPEATS + 1):  # the first round warms up and is dropped
        commit_rate = sampler.commit(prepared=True)
        all_rate = sampler.copy(COPIED_TABLES, "raw_")
        tx_rate = sampler.copy(("transactions",), "rawtx_")
        recompute_rate = sampler.commit(prepared=False)
        if repeat:
            commits.append(commit_rate)
            recomputing.append(recompute_rate)
            ceilings.append(all_rate)
            tx_only.append(tx_rate)
    sampler.raw.close()
    rows_per_block = {table: len(sampler.batches[table][0]) for table in COPIED_TABLES}
    print("rows written per block:", rows_per_block)

    report = Report("ledger")
    ceiling = report.add(figure("binary COPY of the same rows (ceiling)", "tx/s", ceilings,
                                notes="every row the commits wrote, binary COPY into tables "
                                      "of the same shape, one transaction per block"))
    report.add(figure(f"commit_block ({TXS_PER_BLOCK} tx/block)", "tx/s", commits,
                      ceiling_name=ceiling.name, ceiling_median=ceiling.median,
                      target_ratio=TARGET_RATIO,
                      notes="serializable commit per block, state tree batch computed at "
                            f"execution (the node's path); rows per block: {rows_per_block}"))
    report.add(figure("commit_block, tree recomputed in the transaction", "tx/s", recomputing,
                      ceiling_name=ceiling.name, ceiling_median=ceiling.median,
                      notes="the same commit when the tree batch is computed from the "
                            "database inside the transaction (pure-Python tree hashing)"))
    report.add(figure("binary COPY of transaction rows only", "tx/s", tx_only,
                      notes="informational: a ledger storing only transaction rows"))
    report.write()


def _psycopg_params(settings_dict: dict[str, Any]) -> dict[str, Any]:
    return {"dbname": settings_dict["NAME"], "user": settings_dict["USER"] or "postgres",
            "password": settings_dict["PASSWORD"] or None,
            "host": settings_dict["HOST"] or "127.0.0.1",
            "port": int(settings_dict["PORT"] or 5432)}


def main() -> None:
    url = bench_database_url(os.environ.get("BENCH_DATABASE_URL")
                             or os.environ.get("DATABASE_URL") or DEFAULT_URL)
    admin, name = _admin_connection(url)
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
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
