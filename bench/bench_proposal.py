"""A replica's check of a proposed block, per transaction, without the database (issue #5).

What a validator does with each proposal before it votes (``apps/node/application.py``
``Application._check``), minus the database lookups: ``validate_payload`` (size, strict decode of
every transaction, duplicates, ages, canonical order, every signature), speculative execution
(``execute_block``: ``apply_block`` and the block's rows and events) and the state tree update
for the block's state root. Blocks of 2000 transactions from ``bench_executor``'s mix, on the
same warmed state, executed in a chain.

Figures (medians over ``BENCH_REPEATS``, CPU time of this process, since the machine is shared):

* ``proposal check (validate + execute + state root)`` in tx/s. Ceiling: raw Ed25519
  verification of the same transactions' signatures, the one check no node may skip.
* Its parts, each in tx/s: ``validate_payload``, ``execute_block``, the tree update.

Run: ``.venv/bin/python -m bench.bench_proposal``.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cybermesh.settings")
import django  # execute_block builds notifications from the settings' topics

django.setup()

from apps.state.execution import execute_block  # noqa: E402
from bench.bench_executor import (  # noqa: E402
    BLOCK_INTERVAL_MS,
    BLOCK_TXS,
    CHAIN_ID,
    MEASURED_BLOCKS,
    T0,
    WARM_BLOCKS,
    Mix,
    _apply_all,
    _genesis,
    freeze_loaded,
)
from bench.harness import Report, figure, repeated  # noqa: E402
from cybermesh.protocol.block_builder import (  # noqa: E402
    BlockLimits,
    Candidate,
    build_payload,
    validate_payload,
)
from cybermesh.protocol.consensus.messages import ZERO_HASH, Block, QuorumCert  # noqa: E402
from cybermesh.protocol.crypto.signing import verify_batch  # noqa: E402
from cybermesh.protocol.executor import State, StateRootTracker  # noqa: E402
from cybermesh.protocol.txs.envelope import public_key_of  # noqa: E402
from cybermesh.protocol.txs.signature_memory import SignatureMemory  # noqa: E402

LIMITS = BlockLimits(max_txs=10_000, max_bytes=16 << 20, max_tx_age_ms=10**9,
                     max_future_ms=10**9)


@dataclass
class Timings:
    validate: float = 0.0
    execute: float = 0.0
    tree: float = 0.0

    @property
    def total(self) -> float:
        return self.validate + self.execute + self.tree


def _proposals(base: State, mix: Mix) -> list[Block]:
    blocks = []
    genesis_qc = QuorumCert(0, 0, ZERO_HASH, 0, ())
    for index in range(MEASURED_BLOCKS):
        block_time = T0 + (WARM_BLOCKS + index + 1) * BLOCK_INTERVAL_MS
        built = build_payload([Candidate.from_transaction(tx) for tx in mix.block(block_time)],
                              limits=LIMITS, block_time_ms=block_time)
        blocks.append(Block(epoch=0, view=index + 1, height=base.height + index + 1,
                            parent_id=ZERO_HASH, proposer="validator-0",
                            timestamp_ms=block_time, payload=built.payload,
                            tx_root=built.tx_root, state_root=ZERO_HASH,
                            validator_set_hash=ZERO_HASH, qc=genesis_qc))
    return blocks


def check_chain(base: State, blocks: list[Block], clock: Callable[[], float]) -> Timings:
    """Check and execute ``blocks`` in order as a replica does; time each part."""
    timings = Timings()
    tracker = StateRootTracker(base)  # the state tree as loaded, before the clock starts
    freeze_loaded()
    state = base
    # A replica sees these transactions for the first time: nothing verified yet.
    signatures = SignatureMemory()
    for block in blocks:
        start = clock()
        validated = validate_payload(block.payload, limits=LIMITS,
                                     block_time_ms=block.timestamp_ms, chain_id=CHAIN_ID,
                                     signatures=signatures)
        validated_at = clock()
        executed = execute_block(state, block, transactions=validated.transactions)
        executed_at = clock()
        tracker.apply({update.key: update.value
                       for update in executed.execution.state_updates}, block.height)
        timings.validate += validated_at - start
        timings.execute += executed_at - validated_at
        timings.tree += clock() - executed_at
        state = executed.state
    return timings


def main() -> None:
    print("building transactions ...", flush=True)
    mix = Mix(random.Random(20240504))
    warm = [(T0 + (h + 1) * BLOCK_INTERVAL_MS, mix.block(T0 + (h + 1) * BLOCK_INTERVAL_MS))
            for h in range(WARM_BLOCKS)]
    base = _apply_all(_genesis(), warm)[-1][0]
    blocks = _proposals(base, mix)
    tx_count = MEASURED_BLOCKS * BLOCK_TXS
    signed = [tx for block in blocks
              for tx in validate_payload(block.payload, limits=LIMITS,
                                         block_time_ms=block.timestamp_ms, chain_id=CHAIN_ID,
                                         verify_signatures=False).transactions]
    items = [(public_key_of(tx.public_key), tx.domain, tx.body, tx.signature) for tx in signed]
    # What a node does after loading its state (apps/node/application.py): the loaded state
    # and everything built so far is long-lived, so later collections need not scan it.
    freeze_loaded()

    parts: dict[str, list[float]] = {"validate": [], "execute": [], "tree": [], "total": []}

    def whole() -> float:
        timings = check_chain(base, blocks, time.process_time)
        for name, samples in parts.items():
            samples.append(tx_count / getattr(timings, name))
        return tx_count / timings.total

    def verify_ceiling() -> float:
        start = time.process_time()
        assert not verify_batch(items)  # the bench's own transactions: all valid
        return tx_count / (time.process_time() - start)

    totals = repeated(whole)
    for samples in parts.values():
        del samples[0]  # the warm-up run of ``repeated``
    report = Report("proposal")
    report.add(figure("proposal check (validate + execute + root)", "tx/s", totals,
                      ceiling_name="raw Ed25519 verify of the same txs",
                      ceiling_median=figure("", "", repeated(verify_ceiling)).median,
                      notes=f"{BLOCK_TXS}-tx blocks, {len(base.entries())} records at start, "
                            "CPU time, after gc.freeze() of the loaded state"))
    report.add(figure("  validate_payload (decode, order, signatures)", "tx/s",
                      parts["validate"]))
    report.add(figure("  execute_block (decoded txs)", "tx/s", parts["execute"]))
    report.add(figure("  state tree update", "tx/s", parts["tree"]))
    report.write()


if __name__ == "__main__":
    main()
