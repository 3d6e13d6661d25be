"""Consensus core in the simulator with real Ed25519: commits/s, verifies/s vs raw verify/s.

Both the simulation and its ceiling are timed in process CPU time (``time.process_time``), each
run paired with a ceiling measured just before it: the machines are shared, and wall time
charges other processes' bursts to whichever side happens to be running.

The core runs unchanged inside the deterministic simulator (perfect network, no faults, every
message encoded to bytes and decoded again); signatures are real Ed25519 (PyNaCl/libsodium via
cybermesh.protocol.crypto). The ceiling is raw ``PublicKey.verify`` ops/s measured in the same
run; the ratio says how much of the core's time is signature checking: at ratio r the core
spends roughly r of its time in verification and 1 - r in everything else (codec, hashing,
bookkeeping, the simulator itself).
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence

from bench.harness import Report, figure
from cybermesh.protocol.consensus.signatures import (
    Ed25519Signer,
    Ed25519Verifier,
    VerifyItem,
)
from cybermesh.protocol.consensus.sim.world import SimConfig, Simulation
from cybermesh.protocol.crypto.signing import Domain, SigningKey

_KEYS: dict[bytes, SigningKey] = {}


def _key(secret: bytes) -> SigningKey:
    if secret not in _KEYS:
        _KEYS[secret] = SigningKey.from_seed(secret)
    return _KEYS[secret]


class ObservedSigner(Ed25519Signer):
    __slots__ = ("_observer", "_vid")

    def __init__(self, vid: str, secret: bytes, observer: Callable[..., None]) -> None:
        super().__init__(_key(secret))
        self._vid, self._observer = vid, observer

    def sign(self, domain: Domain, message: bytes) -> bytes:
        self._observer(self._vid, domain, message)
        return super().sign(domain, message)


class StructureOnlyVerifier:
    """The invariant checker's verifier in the benchmark: accepts every signature.

    The checker re-verifies every committed QC, which the cores under measurement have already
    verified; with Ed25519 that is a third more verifications that the core did not do, which
    would be charged to the core as overhead. The checker still checks everything else
    (agreement, prefixes, that each QC certifies its block, quorum membership). The simulator
    tests run the checker with real signature checks.
    """

    def verify_batch(self, items: Sequence[VerifyItem]) -> list[int]:
        return []


def simulate(validators: int, heal_at_ms: int) -> tuple[float, float, float, Simulation]:
    """Return (committed blocks/s, signatures verified/s, messages/s, the simulation)."""
    sim = Simulation(SimConfig(validators=validators, heal_at_ms=heal_at_ms, delay_min_ms=5,
                               delay_max_ms=10, check_liveness=False,
                               liveness_bound_ms=0), 1,
                     signer_factory=ObservedSigner, verifier=Ed25519Verifier(),
                     public_key_of=lambda secret: _key(secret).public_key.raw,
                     checker_verifier=StructureOnlyVerifier())
    start = time.process_time()
    result = sim.run()
    elapsed = time.process_time() - start
    assert result.violation is None, result.summary()
    verified = sum(inst.core.certificates.signatures_checked for inst in sim.instances)
    return (result.committed_height / elapsed, verified / elapsed, result.delivered / elapsed,
            sim)


def raw_verify_ops(iterations: int = 5000) -> float:
    """PublicKey.verify calls per CPU second (the primitive the core's verifier calls)."""
    key = SigningKey.from_seed(b"\x07" * 32)
    domain = Domain("bench", "bench", 1)
    message = b"m" * 80
    signature = key.sign(domain, message)
    public = key.public_key
    start = time.process_time()
    for _ in range(iterations):
        public.verify(domain, message, signature)
    return iterations / (time.process_time() - start)


def memory_over_views(heal_at_ms: int) -> tuple[int, int, int, int]:
    """One long 4-node run with simulation keys: (views, blocks held, traced bytes mid, end).

    Memory is sampled with tracemalloc after a run of half the views and after the full run;
    the checker's own per-height record is excluded by measuring fresh runs of both lengths.
    """
    sizes = []
    views = held = 0
    for heal in (heal_at_ms // 2, heal_at_ms):
        tracemalloc.start()
        sim = Simulation(SimConfig(validators=4, heal_at_ms=heal, delay_min_ms=1,
                                   delay_max_ms=2, check_liveness=False, liveness_bound_ms=0), 1)
        sim.run()
        sim.checker.committed.clear()
        sim.checker.votes.clear()
        for inst in sim.instances:
            inst.ledger.commits.clear()
        node = sim.instances[0].core
        views, held = node.view, len(node.tree)
        sizes.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.stop()
        del sim, node
    return views, held, sizes[0], sizes[1]


def main() -> None:
    report = Report("consensus")
    raw_verify_ops()  # warm-up
    for validators, heal, runs in ((4, 4_000, 5), (31, 300, 3)):
        # Each run is paired with a ceiling measured just before it: on a shared machine the
        # load changes within a minute, and the ratio is only meaningful between neighbours.
        ceilings, samples = [], []
        for _ in range(runs):
            ceilings.append(raw_verify_ops())
            samples.append(simulate(validators, heal))
        ceiling = statistics.median(ceilings)
        sim = samples[0][3]
        verified = sum(inst.core.certificates.signatures_checked for inst in sim.instances)
        per_message = verified / sim.result.delivered
        commits = [s[0] for s in samples]
        verifies = [s[1] for s in samples]
        messages = [s[2] for s in samples]
        report.add(figure(f"committed blocks/s n={validators}", "blocks/s", commits))
        report.add(figure(
            f"messages processed/s n={validators}", "msgs/s", messages,
            ceiling_name="raw verify ops/s / verifies per message",
            ceiling_median=ceiling / per_message,
            target_ratio=0.5 if validators == 4 else None,
            notes=f"{per_message:.2f} signature verifications per delivered message (the "
                  f"same messages, same seed, every run); ratio = messages/s over what raw "
                  f"PyNaCl verify throughput allows for them"))
        report.add(figure(f"signatures verified/s n={validators}", "verifies/s", verifies,
                          ceiling_name="raw PyNaCl verify ops/s", ceiling_median=ceiling,
                          notes="share of raw verify throughput the core achieves end to end "
                                "(real Ed25519 in the cores; the invariant checker checks "
                                "structure only)"))
    views, held, half, full = memory_over_views(60_000)
    report.add(figure("4-node simulation memory, full run / half run", "ratio",
                      [full / half],
                      notes=f"tracemalloc of 4 cores + simulator after {views} views vs half "
                            f"as many (checker and ledger history cleared); node 0 holds "
                            f"{held} blocks at the end (pruned below the committed tip)"))
    report.write()


if __name__ == "__main__":
    main()
