"""Canonical CBOR codec throughput, against cbor2's C extension measured in the same run.

Figures:
* strict decode of a consensus vote (8-key map: ints, 32-byte hashes, a 64-byte signature,
  short strings); ceiling: ``cbor2.loads`` (C, not strict). Also held against the absolute
  target of 50,000 decodes/s on one core (a fixed number, recorded as the "ceiling" of its own
  figure so ``meets_target`` answers it).
* encode of the same vote; ceiling: ``cbor2.dumps(canonical=True)`` (C, RFC 7049 order).
* strict decode of a 100-transaction block body, in MB/s; ceiling: ``cbor2.loads``.
* strict transaction decode (``decode_transaction`` without the signature check: canonical
  CBOR of the wire and the body, every schema rule, the id) of security events as the SDK's
  traffic generator signs them, in transactions/s; ceiling: ``cbor2.loads`` of the same wire
  and then of its body (C, no canonical or schema check).

Run: ``.venv/bin/python -m bench.bench_codec``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import cbor2

from bench.harness import REPEATS, Report, figure, ops_per_second
from cybermesh.protocol.codec import CborValue, decode, encode
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.txs import TxKind, decode_transaction
from cybermesh.sdk import TrafficGenerator

DECODE_TARGET_PER_SECOND = 50_000.0


def _digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def vote_message() -> dict[CborValue, CborValue]:
    return {
        "type": "vote",
        "chain_id": "cybermesh-devnet",
        "version": 1,
        "height": 1_204_331,
        "view": 1_204_402,
        "block_hash": _digest("block"),
        "voter": "validator-07",
        "signature": _digest("sig-a") + _digest("sig-b"),
    }


def block_body(transactions: int = 100) -> dict[CborValue, CborValue]:
    return {
        "height": 1_204_331,
        "parent": _digest("parent"),
        "txs": [
            {"kind": "event", "producer": "ai-anomaly-3", "nonce": _digest(f"n{i}")[:16],
             "created_at": 1_700_000_000 + i, "payload": b"\x01" * 120,
             "severity": i % 10, "signature": _digest(f"s{i}") * 2}
            for i in range(transactions)
        ],
    }


def security_event_wires(count: int = 1000) -> list[bytes]:
    """Signed security events as producers send them (the ingest bench's traffic)."""
    traffic = TrafficGenerator(SigningKey.from_seed(b"\x01" * 32), producer_id="ai-0",
                               chain_id="cybermesh-bench", seed=1)
    now_ms = 1_760_000_000_000
    return [traffic.valid(now_ms, TxKind.SECURITY_EVENT).transaction.wire
            for _ in range(count)]


def paired(ours: Callable[[], float], ceiling: Callable[[], float]) -> tuple[list[float],
                                                                            list[float]]:
    """Alternate the two measurements so machine noise hits both alike (one warm-up each)."""
    ours()
    ceiling()
    ours_samples, ceiling_samples = [], []
    for _ in range(REPEATS):
        ours_samples.append(ours())
        ceiling_samples.append(ceiling())
    return ours_samples, ceiling_samples


def main() -> None:
    report = Report("codec")
    vote = vote_message()
    vote_bytes = encode(vote)
    assert decode(vote_bytes) == vote
    iterations = 20_000

    ours, ceiling = paired(
        lambda: ops_per_second(lambda: decode(vote_bytes), iterations=iterations),
        lambda: ops_per_second(lambda: cbor2.loads(vote_bytes), iterations=iterations),
    )
    cbor2_decode = figure("cbor2.loads vote (C, not strict)", "ops/s", ceiling)
    report.add(figure("decode vote (strict, pure Python)", "ops/s", ours,
                      ceiling_name=cbor2_decode.name, ceiling_median=cbor2_decode.median,
                      notes=f"{len(vote_bytes)}-byte 8-key map; ceiling is a C extension"))
    report.add(figure("decode vote vs 50k/s target", "ops/s", ours,
                      ceiling_name="absolute target (fixed, not measured)",
                      ceiling_median=DECODE_TARGET_PER_SECOND, target_ratio=1.0,
                      notes="issue #2: >= 50,000 strict decodes/s of a vote on one core"))

    ours, ceiling = paired(
        lambda: ops_per_second(lambda: encode(vote), iterations=iterations),
        lambda: ops_per_second(lambda: cbor2.dumps(vote, canonical=True),
                               iterations=iterations),
    )
    cbor2_encode = figure("cbor2.dumps vote canonical (C)", "ops/s", ceiling)
    report.add(figure("encode vote (deterministic, pure Python)", "ops/s", ours,
                      ceiling_name=cbor2_encode.name, ceiling_median=cbor2_encode.median,
                      notes="cbor2 canonical uses RFC 7049 key order; ours RFC 8949"))

    block_bytes = encode(block_body())
    megabytes = len(block_bytes) / 1e6
    block_iterations = 200
    ours, ceiling = paired(
        lambda: megabytes * ops_per_second(lambda: decode(block_bytes),
                                           iterations=block_iterations),
        lambda: megabytes * ops_per_second(lambda: cbor2.loads(block_bytes),
                                           iterations=block_iterations),
    )
    report.add(figure("decode 100-tx block body (strict)", "MB/s", ours,
                      ceiling_name="cbor2.loads block (C)", ceiling_median=figure(
                          "c", "MB/s", ceiling).median,
                      notes=f"{len(block_bytes)} bytes, 700 map pairs"))

    wires = security_event_wires()

    def strict_transactions() -> float:
        start = time.perf_counter()
        for wire in wires:
            decode_transaction(wire, verify=False)
        return len(wires) / (time.perf_counter() - start)

    def cbor2_transactions() -> float:
        start = time.perf_counter()
        for wire in wires:
            cbor2.loads(cbor2.loads(wire)[0])
        return len(wires) / (time.perf_counter() - start)

    ours, ceiling = paired(lambda: max(strict_transactions() for _ in range(5)),
                           lambda: max(cbor2_transactions() for _ in range(5)))
    report.add(figure("strict transaction decode (security event, no signature)", "tx/s",
                      ours, ceiling_name="cbor2.loads of the wire, then of its body (C)",
                      ceiling_median=figure("c", "tx/s", ceiling).median,
                      notes=f"{len(wires)} distinct {len(wires[0])}-byte wires; canonical "
                            "CBOR, schema, id; the ceiling checks nothing"))
    report.write()


if __name__ == "__main__":
    main()
