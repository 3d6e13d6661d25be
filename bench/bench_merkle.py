"""Merkle structures: sparse state tree proofs and updates, and the RFC 9162 block tx_root.

Figures (ceilings measured in the same run, so ratios compare across noisy machines):

* per tree size n in 1e3, 1e5, 1e6 keys (in-memory node store):
  - proof generation and proof verification, proofs/s over a seeded sample of half present,
    half absent keys; ceiling: raw ``hashlib.sha256`` computing the same number of 65-byte
    hashes a proof needs (siblings + leaf + value digest), i.e. the hashing floor in Python;
  - the same two against the absolute target of < 1 ms per proof (1,000 proofs/s);
  - apply rate, keys/s, for a 1,000-key batch (half updates, a quarter inserts, a quarter
    deletes) on the full tree; ceiling: raw sha256 of as many hashes as the batch computed;
  - the bulk build itself (measured once, the garbage collector paused for the load, as a node
    restoring a snapshot would), with the process's peak RSS in the notes.
* ``tree_hash`` of a 10,000-transaction block (300-byte encodings); ceiling: raw sha256 of the
  same 10,000 leaves. A Merkle tree needs 2n - 1 hashes, so 0.5 is the structural best.

Run: ``.venv/bin/python -m bench.bench_merkle``. ``BENCH_MERKLE_SIZES=1000,100000`` limits the
sizes (the 1e6 tree takes ~10-20 s to build and ~1.5 GB of memory in pure Python).
"""

from __future__ import annotations

import gc
import hashlib
import os
import random
import resource
import statistics
import time
from collections.abc import Callable

from bench.harness import REPEATS, Report, figure
from cybermesh.protocol.merkle.nodestore import InMemoryNodeStore
from cybermesh.protocol.merkle.sparse import Proof, SparseMerkleTree, verify_proof
from cybermesh.protocol.merkle.transparency import tree_hash

SIZES = tuple(int(s) for s in os.environ.get("BENCH_MERKLE_SIZES",
                                             "1000,100000,1000000").split(","))
SEED = int(os.environ.get("BENCH_SEED", "20240611"))
PROOF_SAMPLE = 2_000
APPLY_BATCH = 1_000
PROOF_TARGET_PER_SECOND = 1_000.0  # issue #4: < 1 ms per proof generation / verification
BLOCK_TXS = 10_000


def key_of(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(8, "big")).digest()


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


def sha256_rate(hash_counts: list[int]) -> Callable[[], float]:
    """Operations/s if each operation cost only its count of raw 65-byte sha256 calls."""
    block = b"\x11" + bytes(64)
    sha256 = hashlib.sha256
    total = sum(hash_counts)

    def measure() -> float:
        start = time.perf_counter()
        for _ in range(total):
            sha256(block).digest()
        return len(hash_counts) / (time.perf_counter() - start)

    return measure


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_size(report: Report, size: int, rng: random.Random) -> None:
    label = f"{size:.0e}".replace("+0", "")
    keys = [key_of(i) for i in range(size)]
    store = InMemoryNodeStore()
    tree = SparseMerkleTree(store)

    gc.disable()
    start = time.perf_counter()
    _, batch = tree.apply(None, {key: key[:8] for key in keys}, 0)
    store.write_batch(batch)
    build_seconds = time.perf_counter() - start
    node_count = len(batch.nodes)
    del batch
    gc.enable()
    gc.freeze()  # the loaded tree is long-lived: keep it out of every later GC pass
    report.add(figure(f"smt bulk build n={label}", "keys/s", [size / build_seconds],
                      notes=f"{node_count:,} nodes; GC paused during the load; "
                            f"peak RSS {peak_rss_mb():,.0f} MB; measured once"))

    present = rng.sample(keys, min(PROOF_SAMPLE // 2, size))
    absent = [key_of(size + rng.randrange(10 * size + PROOF_SAMPLE)) for _ in present]
    sample = present + absent
    rng.shuffle(sample)
    proved: list[tuple[bytes, bytes | None, Proof]] = [
        (key, *tree.get_with_proof(0, key)) for key in sample]
    root = tree.root_hash(0)
    assert all(verify_proof(root, key, value, proof) for key, value, proof in proved)
    depths = [len(proof.siblings) for _, _, proof in proved]
    hash_counts = [depth + 2 for depth in depths]  # siblings + leaf + value digest

    def prove_rate() -> float:
        start = time.perf_counter()
        for key in sample:
            tree.prove(0, key)
        return len(sample) / (time.perf_counter() - start)

    def verify_rate() -> float:
        start = time.perf_counter()
        for key, value, proof in proved:
            verify_proof(root, key, value, proof)
        return len(proved) / (time.perf_counter() - start)

    depth_note = (f"proof depth mean {statistics.fmean(depths):.1f}, max {max(depths)}; "
                  f"sample {len(sample)} keys, half absent; seed {SEED}")
    for name, rate in (("prove", prove_rate), ("verify", verify_rate)):
        ours, ceiling = paired(rate, sha256_rate(hash_counts))
        median_us = 1e6 / statistics.median(ours)
        report.add(figure(f"smt {name} n={label}", "proofs/s", ours,
                          ceiling_name="raw sha256 x same hash count",
                          ceiling_median=statistics.median(ceiling),
                          notes=f"median {median_us:.1f} us/proof; {depth_note}"))
        report.add(figure(f"smt {name} n={label} vs 1 ms target", "proofs/s", ours,
                          ceiling_name="absolute target (fixed, not measured)",
                          ceiling_median=PROOF_TARGET_PER_SECOND, target_ratio=1.0,
                          notes=f"median {median_us:.1f} us/proof"))

    updates: dict[bytes, bytes | None] = {}
    changed = rng.sample(keys, min(APPLY_BATCH * 3 // 4, size))
    for position, key in enumerate(changed):
        updates[key] = None if position % 3 == 2 else b"updated"
    for offset in range(APPLY_BATCH - len(updates)):
        updates[key_of(size + 1 + offset)] = b"inserted"
    _, batch = tree.apply(0, updates, 1)
    apply_hashes = len(batch.nodes) + sum(value is not None for value in updates.values())

    def apply_rate() -> float:
        start = time.perf_counter()
        tree.apply(0, updates, 1)
        return len(updates) / (time.perf_counter() - start)

    ours, ceiling = paired(apply_rate, lambda: len(updates) * sha256_rate([apply_hashes])())
    report.add(figure(f"smt apply 1k-key batch n={label}", "keys/s", ours,
                      ceiling_name="raw sha256 x hashes the batch computed",
                      ceiling_median=statistics.median(ceiling),
                      notes=f"{len(batch.nodes):,} nodes written, {len(batch.stale):,} stale; "
                            "1/2 updates, 1/4 deletes, 1/4 inserts"))
    gc.unfreeze()  # this size's tree is garbage once we return


def bench_tx_root(report: Report, rng: random.Random) -> None:
    leaves = [rng.randbytes(300) for _ in range(BLOCK_TXS)]
    sha256 = hashlib.sha256

    def ours() -> float:
        start = time.perf_counter()
        tree_hash(leaves)
        return 1 / (time.perf_counter() - start)

    def ceiling() -> float:
        start = time.perf_counter()
        for leaf in leaves:
            sha256(leaf).digest()
        return 1 / (time.perf_counter() - start)

    ours_samples, ceiling_samples = paired(ours, ceiling)
    report.add(figure("tx_root of a 10k-tx block (RFC 9162)", "blocks/s", ours_samples,
                      ceiling_name="raw sha256 of the same 10k leaves",
                      ceiling_median=statistics.median(ceiling_samples),
                      notes=f"median {1e3 / statistics.median(ours_samples):.2f} ms/block; "
                            "300-byte leaves; 2n-1 hashes vs n, so 0.5 is the floor"))


def main() -> None:
    print(f"bench_merkle: seed {SEED}, sizes {SIZES}")
    rng = random.Random(SEED)
    report = Report("merkle")
    bench_tx_root(report, rng)
    for size in SIZES:
        bench_size(report, size, rng)
        gc.collect()
    report.write()


if __name__ == "__main__":
    main()
