"""Executor + state update throughput on a realistic transaction mix (issue #4).

What is measured (medians over ``BENCH_REPEATS`` repeats, same process, same blocks):

* ``executor apply_block``: ``apply_block`` alone over blocks of 2000 decoded, verified
  transactions (85% security events over a skewed population of offenders, 8% evidence naming
  recent events, 5% policy changes, 2% audit anchors), on top of a state warmed with earlier
  blocks. Ceiling: decoding the same transactions from their wire bytes (no signature check),
  the cheapest thing any node does with them.
* ``executor + state root``: the same plus applying each block's state updates to the
  versioned sparse Merkle tree (what a node does per committed block). Ceiling: the irreducible
  per-update cost of the same updates, i.e. encoding every changed record and hashing it into
  its leaf (value hash + leaf hash), expressed per transaction.
* ``sparse Merkle tree apply alone`` (updates/s): where the rest of the time goes.

Target (issue #4): executor + state update >= 20_000 tx/s per core.

Times are CPU time of this process (``time.process_time``): the machine is shared, and wall
time under other load measured other processes as much as this one. As a node does after
loading its state (``apps/node/application.py``), the loaded state and each freshly built tree
are ``gc.freeze()``-ed before the clock starts (docs/merkle.md has the figures without it).
Run: ``.venv/bin/python -m bench.bench_executor``.
"""

from __future__ import annotations

import gc
import random
import time
from dataclasses import dataclass

from bench.harness import Report, figure, repeated
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.executor import (
    BlockContext,
    ExecutorParameters,
    State,
    StateRootTracker,
    apply_block,
    genesis_state,
)
from cybermesh.protocol.executor.records import encode_record
from cybermesh.protocol.merkle.sparse_hashing import leaf_hash, value_hash
from cybermesh.protocol.txs import (
    Artifact,
    AuditAnchor,
    Category,
    CustodyAction,
    CustodyEntry,
    Entity,
    Evidence,
    EvidenceKind,
    PolicyAction,
    PolicyChange,
    PolicyOperation,
    SecurityEvent,
    Transaction,
    decode_transaction,
    sign_transaction,
)
from cybermesh.protocol.validator_set import Validator

CHAIN_ID = "cybermesh-bench"
BLOCK_TXS = 2000
WARM_BLOCKS = 10
MEASURED_BLOCKS = 4
BLOCK_INTERVAL_MS = 1000
TARGET_TX_PER_SECOND = 20_000
T0 = 1_700_000_000_000
PRODUCERS = [SigningKey.from_seed(bytes([0x40 + i]) * 32) for i in range(4)]
VALIDATOR_KEYS = [SigningKey.from_seed(bytes([i + 1]) * 32) for i in range(4)]


@dataclass
class Mix:
    """Deterministic transaction generator (seeded), shaped like a busy SOC day."""

    rng: random.Random
    nonce: int = 0

    def __post_init__(self) -> None:
        self.hot = [Entity.of("ip", f"198.51.{i // 256}.{i % 256}") for i in range(1000)]
        self.cold = ([Entity.of("ip", f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}")
                      for i in range(20_000)]
                     + [Entity.of("host", f"host-{i}.corp.example") for i in range(2000)]
                     + [Entity.of("account", f"user{i}@corp") for i in range(1000)])
        self.recent_events: list[bytes] = []
        self.anchor_seq = [0, 0, 0, 0]

    def _entity(self) -> Entity:
        pool = self.hot if self.rng.random() < 0.7 else self.cold
        return pool[self.rng.randrange(len(pool))]

    def _sign(self, payload: object, created: int, key: SigningKey | None = None,
              producer: str | None = None) -> Transaction:
        self.nonce += 1
        index = self.nonce % len(PRODUCERS)
        return sign_transaction(key or PRODUCERS[index], payload,  # type: ignore[arg-type]
                                chain_id=CHAIN_ID, producer_id=producer or f"ai-{index}",
                                nonce=self.nonce, created_at_ms=created)

    def transaction(self, block_time: int) -> Transaction:
        created = block_time - self.rng.randint(100, 30_000)
        roll = self.rng.random()
        if roll < 0.85 or not self.recent_events:
            event = SecurityEvent(
                source=f"sensor-{self.rng.randrange(16)}", offender=self._entity(),
                category=self.rng.choice(list(Category)), severity=self.rng.randint(1, 10),
                confidence_bps=self.rng.randint(3000, 10_000), observed_at_ms=created - 50,
                detector="suricata/7.0", payload_ref=f"s3://alerts/{self.nonce}.json")
            tx = self._sign(event, created)
            self.recent_events.append(tx.tx_id)
            del self.recent_events[:-5000]
            return tx
        if roll < 0.93:
            supports = tuple(sorted({self.rng.choice(self.recent_events)
                                     for _ in range(self.rng.randint(1, 3))}))
            evidence = Evidence(
                EvidenceKind.ARTIFACTS,
                artifacts=(Artifact(self.rng.randbytes(32), "application/vnd.tcpdump.pcap",
                                    self.rng.randint(1000, 10**8)),),
                custody=(CustodyEntry("sensor-1", CustodyAction.COLLECTED, created - 10),),
                supports=supports)
            return self._sign(evidence, created)
        if roll < 0.98:
            entity = self._entity()
            kind = self.rng.random()
            if kind < 0.6:
                change = PolicyChange(PolicyOperation.SET_RULE, entity, "auto rule",
                                      scope=self.rng.choice(["*", "ingress", "egress"]),
                                      action=self.rng.choice(list(PolicyAction)),
                                      expires_at_ms=created + self.rng.randint(60_000, 10**7))
            elif kind < 0.8:
                change = PolicyChange(PolicyOperation.QUARANTINE, entity, "analyst",
                                      expires_at_ms=created + self.rng.randint(60_000, 10**7))
            else:
                change = PolicyChange(PolicyOperation.RELEASE, entity, "analyst")
            return self._sign(change, created)
        index = self.rng.randrange(4)
        self.anchor_seq[index] += 1
        anchor = AuditAnchor(f"validator-{index}", self.anchor_seq[index], self.rng.randbytes(32),
                             "hmac-1")
        return self._sign(anchor, created, VALIDATOR_KEYS[index], f"validator-{index}")

    def block(self, block_time: int) -> list[Transaction]:
        return [self.transaction(block_time) for _ in range(BLOCK_TXS)]


def freeze_loaded() -> None:
    """What the node does once its state is loaded (``apps.node.application``): collect, then
    keep everything alive now out of later collections."""
    gc.collect()
    gc.freeze()


def _genesis() -> State:
    return genesis_state(
        chain_id=CHAIN_ID, genesis_time_ms=T0,
        parameters=ExecutorParameters(epoch_length_blocks=100_000),
        validators=[Validator(f"validator-{i}", key.public_key.raw, 10, f"10.0.0.{i}:7000")
                    for i, key in enumerate(VALIDATOR_KEYS)])


def _apply_all(state: State, blocks: list[tuple[int, list[Transaction]]],
               tracker: StateRootTracker | None = None,
               ) -> list[tuple[State, dict[bytes, bytes | None]]]:
    results = []
    for timestamp, txs in blocks:
        state, _, updates = apply_block(state, BlockContext(state.height + 1, timestamp), txs)
        if tracker is not None:
            tracker.apply(updates, state.height)
        results.append((state, updates))
    return results


def main() -> None:
    print("building transactions ...", flush=True)
    mix = Mix(random.Random(20240504))
    state = _genesis()
    warm = [(T0 + (h + 1) * BLOCK_INTERVAL_MS, mix.block(T0 + (h + 1) * BLOCK_INTERVAL_MS))
            for h in range(WARM_BLOCKS)]
    base = _apply_all(state, warm)[-1][0]
    measured = [(T0 + (WARM_BLOCKS + h + 1) * BLOCK_INTERVAL_MS,
                 mix.block(T0 + (WARM_BLOCKS + h + 1) * BLOCK_INTERVAL_MS))
                for h in range(MEASURED_BLOCKS)]
    tx_count = MEASURED_BLOCKS * BLOCK_TXS
    wires = [tx.wire for _, txs in measured for tx in txs]
    # The typed records behind every state update of the measured blocks (None: deleted).
    changed = [(key, after.get(key)) for after, updates in _apply_all(base, measured)
               for key in updates]
    print(f"state at start: {len(base.entries())} records; measured: {tx_count} txs, "
          f"{len(changed)} state updates", flush=True)
    freeze_loaded()

    def executor_only() -> float:
        start = time.process_time()
        _apply_all(base, measured)
        return tx_count / (time.process_time() - start)

    def executor_and_root() -> float:
        fresh = StateRootTracker(base)  # the tree as of the warmed state, built untimed
        freeze_loaded()
        start = time.process_time()
        _apply_all(base, measured, fresh)
        return tx_count / (time.process_time() - start)

    def decode_ceiling() -> float:
        start = time.process_time()
        for wire in wires:
            decode_transaction(wire, verify=False)
        return tx_count / (time.process_time() - start)

    def encode_hash_ceiling() -> float:
        start = time.process_time()
        for key, record in changed:
            if record is not None:
                leaf_hash(key, value_hash(encode_record(record)))
        return tx_count / (time.process_time() - start)

    report = Report("executor")
    executor_samples = repeated(executor_only)
    decode_samples = repeated(decode_ceiling)
    report.add(figure(
        "executor apply_block", "tx/s", executor_samples,
        ceiling_name="decode same txs (no signature check)",
        ceiling_median=figure("", "", decode_samples).median,
        notes=f"{BLOCK_TXS}-tx blocks, {len(base.entries())} records at start"))
    combined = repeated(executor_and_root)
    ceiling = repeated(encode_hash_ceiling)
    per_block = _apply_all(base, measured)
    update_count = sum(len(updates) for _, updates in per_block)

    def tree_only() -> float:
        fresh = StateRootTracker(base)
        freeze_loaded()
        start = time.process_time()
        for after, updates in per_block:
            fresh.apply(updates, after.height)
        return update_count / (time.process_time() - start)

    report.add(figure(
        "sparse Merkle tree apply alone", "updates/s", repeated(tree_only),
        notes=f"{update_count / tx_count:.2f} state updates per transaction; "
              "cybermesh/protocol/merkle/sparse.py"))
    combined_figure = report.add(figure(
        "executor + state root update", "tx/s", combined,
        ceiling_name="encode+hash of the same state updates",
        ceiling_median=figure("", "", ceiling).median,
        notes=f"target >= {TARGET_TX_PER_SECOND} tx/s per core (absolute)"))
    meets = combined_figure.median >= TARGET_TX_PER_SECOND
    combined_figure.notes += f"; {'meets' if meets else 'MISSES'} the absolute target"
    report.write()


if __name__ == "__main__":
    main()
