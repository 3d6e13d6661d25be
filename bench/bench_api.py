"""Dashboard endpoints over a large ledger: latency (p50/p99) and requests/s.

Tables: ``BENCH_API_BLOCKS`` blocks (default 100,000) with ``BENCH_API_TXS_PER_BLOCK``
transactions each (default 10: 1,000,000 transactions), generated inside PostgreSQL
(``INSERT ... SELECT`` over ``generate_series``, the fastest bulk path; the seeding time is
reported). Rows are shaped like real ones (hashes, a real encoded QC, transaction kinds and
producers) but carry no valid signatures: the endpoints measured do not verify them.

Measured: each endpoint served by the full Django stack (middleware, DRF, token
authentication, throttling, serializers, the database) called in-process through Django's test
client, from ``BENCH_API_WORKERS`` processes (default 2, i.e. two cores) for
``BENCH_API_SECONDS`` per sample. There is no HTTP server or network in the loop: the figures
are the application's and the database's, and a real deployment adds its server's overhead.

Ceiling, in the same run: ``GET /api/v1/health/`` (no database, no authentication): the
framework's floor on this machine. Targets (issue #7): p99 < 50 ms and >= 500 requests/s per
list and detail endpoint on two cores; figures ``... vs 500 req/s`` and ``... p99 vs 50 ms``
compare with those absolute targets (ratio >= 1 meets them).

Database: ``BENCH_DATABASE_URL`` or ``DATABASE_URL`` (default
``postgres://postgres@127.0.0.1:5432/cybermesh_bench``); this script uses its own database
``<name>_api_bench`` on that server. It is kept between runs (seeding takes a while) unless
``BENCH_API_DROP=1``; a database with a different size is re-seeded.

Run: ``.venv/bin/python -m bench.bench_api``.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import statistics
import time
from typing import Any
from urllib.parse import urlparse

import psycopg

from bench.harness import REPEATS, Report, figure
from bench.scratch_database import server_admin_connection

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/cybermesh_bench"
BLOCKS = int(os.environ.get("BENCH_API_BLOCKS", "100000"))
TXS_PER_BLOCK = int(os.environ.get("BENCH_API_TXS_PER_BLOCK", "10"))
WORKERS = int(os.environ.get("BENCH_API_WORKERS", "2"))
SECONDS = float(os.environ.get("BENCH_API_SECONDS", "1.5"))
SAMPLES = min(REPEATS, int(os.environ.get("BENCH_API_SAMPLES", "3")))
TARGET_RPS = 500.0
TARGET_P99_MS = 50.0
GENESIS_MS = 1_700_000_000_000
KINDS = ("security_event", "evidence", "policy", "governance", "audit_anchor")
OFFENDERS = 5000  # distinct offender addresses among the seeded events and policy changes


def bench_database_url(url: str) -> str:
    parsed = urlparse(url)
    name = (parsed.path.lstrip("/") or "cybermesh").removesuffix("_bench")
    return parsed._replace(path=f"/{name}_api_bench").geturl()


def _admin(url: str) -> psycopg.Connection[Any]:
    return server_admin_connection(url)


def _ensure_database(url: str) -> None:
    name = urlparse(url).path.lstrip("/")
    with _admin(url) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                               (name,)).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')


def _drop_database(url: str) -> None:
    name = urlparse(url).path.lstrip("/")
    with _admin(url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cybermesh.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _sample_qc() -> bytes:
    """A real 4-signature QC encoding (the list endpoint decodes every block's QC)."""
    from apps.ledger.rows import encode_qc
    from cybermesh.protocol.consensus.messages import QuorumCert

    return encode_qc(QuorumCert(epoch=0, view=7, block_id=bytes(32), height=7,
                                signatures=tuple((f"v{i}", bytes([i]) * 64)
                                                 for i in range(4))))


def _seed(url: str) -> float:
    """Fill blocks and transactions inside PostgreSQL; returns the seconds it took."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM blocks")
        if cursor.fetchone()[0] == BLOCKS:
            cursor.execute("SELECT count(*), count(offender_id) FROM transactions")
            total, with_offender = cursor.fetchone()
            if total == BLOCKS * TXS_PER_BLOCK and with_offender:
                return 0.0
    started = time.perf_counter()
    qc = _sample_qc()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE blocks, transactions")
        cursor.execute(
            """INSERT INTO blocks (height, hash, parent_hash, epoch, view, proposer_id,
                   timestamp_ms, tx_count, tx_root, state_root, result_state_root,
                   validator_set_hash, justify_qc, qc, next_validators, payload, committed_at)
               SELECT g, sha256(int8send(g)), sha256(int8send(g - 1)), 0, g,
                   'v' || (g %% 4), %s + g * 1000, %s, sha256(int8send(-g)),
                   sha256(int8send(g + 7)), sha256(int8send(g + 8)), sha256('set'::bytea),
                   %s, %s, NULL, NULL, now()
               FROM generate_series(0, %s - 1) AS g""",
            [GENESIS_MS, TXS_PER_BLOCK, qc, qc, BLOCKS])
        cursor.execute(
            """INSERT INTO transactions (block_height, idx, tx_id, kind, payload,
                    content_hash, producer_id, created_at, signature, public_key, is_replay,
                    offender_id, severity)
                SELECT b, i, sha256(int8send(b * 100000 + i)), (%s::text[])[1 + (b + i) %% 5],
                    decode(repeat('ab', 160), 'hex'), sha256(int8send(-(b * 100000 + i))),
                    'producer-' || ((b * 7 + i) %% 20),
                    to_timestamp((%s + b * 1000) / 1000.0), decode(repeat('cd', 64), 'hex'),
                    decode(repeat('ef', 32), 'hex'), false,
                    -- security events (kind 1) and policy changes (kind 3) name an offender
                    -- among OFFENDERS addresses; events carry a severity 1..10.
                    CASE WHEN (b + i) %% 5 IN (0, 2)
                         THEN 'ip:198.51.' || ((b * 7 + i) %% %s / 250) || '.'
                              || ((b * 7 + i) %% %s %% 250) END,
                    CASE WHEN (b + i) %% 5 = 0 THEN 1 + (b * 3 + i) %% 10 END
                FROM generate_series(0::bigint, %s - 1) AS b,
                     generate_series(0::bigint, %s - 1) AS i""",
            [list(KINDS), GENESIS_MS, OFFENDERS, OFFENDERS, BLOCKS, TXS_PER_BLOCK])
        cursor.execute("ANALYZE blocks")
        cursor.execute("ANALYZE transactions")
    return time.perf_counter() - started


def _token() -> str:
    from django.contrib.auth.models import Group, User

    from apps.api.tokens import issue_token

    user, _ = User.objects.get_or_create(username="bench-viewer")
    user.groups.add(Group.objects.get(name="viewer"))
    return issue_token(user=user, name="bench", acting_user="bench").token


def _worker(token: str, seed: int, commands: Any) -> None:
    """A long-lived client process: runs one measurement window per command."""
    from django.db import connections
    from django.test import Client

    connections.close_all()  # its own connection (never share one across fork)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="127.0.0.1")
    rng = random.Random(seed)
    while True:
        command = commands.recv()
        if command is None:
            return
        paths, seconds = command
        latencies: list[float] = []
        started = time.perf_counter()
        deadline = started + seconds
        failure = None
        while time.perf_counter() < deadline:
            path = paths[rng.randrange(len(paths))]
            begun = time.perf_counter()
            response = client.get(path)
            latencies.append(time.perf_counter() - begun)
            if response.status_code != 200:
                failure = f"{path}: {response.status_code} {response.content[:200]!r}"
                break
        commands.send((failure, latencies, time.perf_counter() - started))


class Clients:
    """WORKERS client processes, forked once, driven window by window."""

    def __init__(self, token: str) -> None:
        from django.db import connections

        connections.close_all()
        context = multiprocessing.get_context("fork")
        self.pipes, self.processes = [], []
        for index in range(WORKERS):
            parent, child = context.Pipe()
            process = context.Process(target=_worker, args=(token, 1000 + index, child),
                                      daemon=True)
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)

    def run(self, paths: list[str]) -> tuple[float, list[float]]:
        """One window: every process requests for SECONDS; (requests/s, latencies)."""
        for pipe in self.pipes:
            pipe.send((paths, SECONDS))
        latencies: list[float] = []
        longest = 0.0
        for pipe in self.pipes:
            failure, measured, elapsed = pipe.recv()
            if failure:
                raise RuntimeError(failure)
            latencies += measured
            longest = max(longest, elapsed)
        return len(latencies) / longest, latencies

    def close(self) -> None:
        for pipe, process in zip(self.pipes, self.processes, strict=True):
            pipe.send(None)
            process.join(timeout=10)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _endpoints(token: str) -> dict[str, list[str]]:
    from django.test import Client

    rng = random.Random(7)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="127.0.0.1")
    heights = [rng.randrange(BLOCKS) for _ in range(200)]
    tx_ids = [client.get(f"/api/v1/transactions/?height={h}&limit=1").json()["results"][0]
              ["tx_id"] for h in heights[:100]]
    return {
        "health (ceiling)": ["/api/v1/health/"],
        "blocks list, newest page": ["/api/v1/blocks/?limit=50"],
        "blocks list, deep page": [f"/api/v1/blocks/?limit=50&cursor={_cursor([h])}"
                                   for h in heights],
        "block detail": [f"/api/v1/blocks/{h}/" for h in heights],
        "transactions list, newest page": ["/api/v1/transactions/?limit=50"],
        "transactions list, deep page": [
            f"/api/v1/transactions/?limit=50&cursor={_cursor([h, 3])}" for h in heights],
        "transactions of one block": [f"/api/v1/transactions/?height={h}" for h in heights],
        "transaction detail": [f"/api/v1/transactions/{tx_id}/" for tx_id in tx_ids],
        "transactions of one offender": [
            f"/api/v1/transactions/?offender=ip:198.51.{n // 250}.{n % 250}&limit=50"
            for n in (rng.randrange(OFFENDERS) for _ in range(200))],
        "transactions of one severity, deep page": [
            f"/api/v1/transactions/?severity={1 + h % 10}&limit=50&cursor={_cursor([h, 0])}"
            for h in heights],
        "status": ["/api/v1/status/"],
    }


def _cursor(values: list[int]) -> str:
    from apps.api.pagination import encode_cursor

    fields = tuple((f"k{index}", int) for index in range(len(values)))
    return encode_cursor(values, fields)


def main() -> None:
    url = bench_database_url(os.environ.get("BENCH_DATABASE_URL")
                             or os.environ.get("DATABASE_URL") or DEFAULT_URL)
    _ensure_database(url)
    _setup_django(url)
    from django.conf import settings

    settings.API_THROTTLE_RATES = {"read": "100000000/min", "anon": "100000000/min"}
    seeding = _seed(url)
    token = _token()
    report = Report("api")
    endpoints = _endpoints(token)
    results: dict[str, tuple[list[float], list[float], list[float]]] = {}
    clients = Clients(token)
    try:
        for name, paths in endpoints.items():
            clients.run(paths)  # warm-up: caches, connections, query plans
            rps, p50, p99 = [], [], []
            for _ in range(SAMPLES):
                rate, latencies = clients.run(paths)
                rps.append(rate)
                p50.append(_percentile(latencies, 0.50) * 1000)
                p99.append(_percentile(latencies, 0.99) * 1000)
            results[name] = (rps, p50, p99)
    finally:
        clients.close()
    ceiling_rps = statistics.median(results["health (ceiling)"][0])
    scale = (f"{BLOCKS:,} blocks, {BLOCKS * TXS_PER_BLOCK:,} transactions, {WORKERS} worker "
             f"processes, in-process Django test client (no HTTP server); seeded in "
             f"{seeding:.0f} s" if seeding else "(seeded earlier)")
    for name, (rps, p50, p99) in results.items():
        report.add(figure(f"{name}: req/s", "req/s", rps, ceiling_name="health req/s",
                          ceiling_median=ceiling_rps, notes=scale))
        report.add(figure(f"{name}: p50", "ms", p50))
        report.add(figure(f"{name}: p99", "ms", p99))
        if name != "health (ceiling)":
            report.add(figure(f"{name}: vs 500 req/s", "req/s", rps,
                              ceiling_name="target", ceiling_median=TARGET_RPS,
                              target_ratio=1.0))
            # Latency meets its target when 50 ms / p99 >= 1.
            report.add(figure(f"{name}: p99 vs 50 ms", "x", [TARGET_P99_MS / v for v in p99],
                              ceiling_name="target", ceiling_median=1.0, target_ratio=1.0))
    report.write()
    if os.environ.get("BENCH_API_DROP") == "1":
        from django.db import connections

        connections.close_all()
        _drop_database(url)


if __name__ == "__main__":
    main()
