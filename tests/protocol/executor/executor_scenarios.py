"""Random block sequences for determinism tests, described by plain data and replayable.

A scenario is a list of blocks ``(advance_ms, [op, ...])``; an op is a tuple naming a
transaction to build (``("event", entity_index, severity, confidence)``...). Building turns
ops into signed transactions (Ed25519 signing is deterministic), so the same scenario always
gives the same blocks, and a failing example prints as readable data.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cybermesh.protocol.codec import encode
from cybermesh.protocol.executor import BlockContext, State, apply_block
from cybermesh.protocol.executor.events import DomainEvent
from cybermesh.protocol.executor.root import StateRootTracker
from cybermesh.protocol.txs import (
    CustodyAction,
    CustodyEntry,
    Entity,
    GovernanceOperation,
    PolicyAction,
    PolicyOperation,
    Transaction,
)
from tests.protocol.executor.executor_chain import event_tx, genesis
from tests.protocol.txs.tx_builders import (
    anchor,
    artifact_evidence,
    equivocation,
    governance,
    policy,
    quarantine,
    release,
    signed,
)

ENTITIES = [
    Entity.of("ip", "203.0.113.7"), Entity.of("ip", "203.0.113.8"),
    Entity.of("cidr", "203.0.113.0/24"), Entity.of("host", "c2.evil.example"),
    Entity.of("account", "svc-backup"), Entity.of("ip", "2001:db8::5"),
]
SCOPES = ["*", "ingress", "auth"]
Op = tuple[Any, ...]
Scenario = list[tuple[int, list[Op]]]


def _tx_for(  # noqa: PLR0911 -- one flat dispatch over op names reads best
    op: Op, now: int, nonce: int, history: tuple[list[Transaction], list[Transaction]],
    epoch: int,
) -> Transaction | None:
    events, earlier = history
    name = op[0]
    created = now - 500
    if name == "event":
        _, entity, severity, confidence = op
        target = ENTITIES[entity]
        return event_tx(target.value, kind=target.kind.value, severity=severity,
                        confidence_bps=confidence, nonce=nonce, created_at_ms=created)
    if name == "evidence":
        if not events:
            return None
        ids = tuple(sorted({events[index % len(events)].tx_id for index in op[1]}))
        custody = (CustodyEntry("sensor-eu-1", CustodyAction.COLLECTED, created - 1),)
        return signed(artifact_evidence(supports=ids, custody=custody), nonce=nonce,
                      created_at_ms=created)
    if name == "rule":
        _, entity, scope, deny, lifetime = op
        action = PolicyAction.DENY if deny else PolicyAction.ALLOW
        return signed(policy(entity=ENTITIES[entity], scope=SCOPES[scope], action=action,
                             expires_at_ms=created + lifetime), nonce=nonce,
                      created_at_ms=created)
    if name == "unrule":
        _, entity, scope, deny = op
        action = PolicyAction.DENY if deny else PolicyAction.ALLOW
        return signed(policy(operation=PolicyOperation.REMOVE_RULE, entity=ENTITIES[entity],
                             scope=SCOPES[scope], action=action, expires_at_ms=None),
                      nonce=nonce, created_at_ms=created)
    if name == "quarantine":
        return signed(quarantine(ENTITIES[op[1]], created + op[2]), nonce=nonce,
                      created_at_ms=created)
    if name == "release":
        return signed(release(ENTITIES[op[1]]), nonce=nonce, created_at_ms=created)
    if name == "equivocation":
        return signed(equivocation(f"validator-{op[1]}", view=op[2]), nonce=nonce,
                      created_at_ms=created)
    if name == "power":
        return signed(governance(GovernanceOperation.CHANGE_POWER, epoch=epoch,
                                 validator_id=f"validator-{op[1]}", power=op[2]),
                      nonce=nonce, created_at_ms=created)
    if name == "anchor":
        return signed(anchor(f"validator-{op[1]}", op[2]), nonce=nonce, created_at_ms=created)
    if name == "replay":
        return earlier[op[1] % len(earlier)] if earlier else None
    raise ValueError(f"unknown op {name!r}")


class Builder:
    """Turns a scenario's blocks into (timestamp, transactions), one block at a time."""

    def __init__(self, start_ms: int) -> None:
        self.now = start_ms
        self.nonce = 0
        self.events: list[Transaction] = []
        self.earlier: list[Transaction] = []

    def next_block(self, advance_ms: int, ops: Sequence[Op], epoch: int = 0,
                   ) -> tuple[int, list[Transaction]]:
        """``epoch`` is the one governance ops target (the epoch the block lands in)."""
        self.now += advance_ms
        txs = []
        for op in ops:
            self.nonce += 1
            tx = _tx_for(op, self.now, self.nonce, (self.events, self.earlier), epoch)
            if tx is None:
                continue
            txs.append(tx)
            if op[0] == "event":
                self.events.append(tx)
        self.earlier.extend(txs)
        return self.now, txs


@dataclass
class Trace:
    roots: list[bytes]
    events: list[tuple[DomainEvent, ...]]
    updates: list[dict[bytes, bytes | None]]
    states: list[State]
    blocks: list[tuple[int, list[Transaction]]]

    def digest(self) -> str:
        """One hash over roots, events and updates: equal digests, equal runs."""
        hasher = hashlib.sha256()
        for root, events, updates in zip(self.roots, self.events, self.updates, strict=True):
            hasher.update(root)
            hasher.update(encode([event.to_cbor() for event in events]))
            hasher.update(encode([[key, value] for key, value in updates.items()]))
        return hasher.hexdigest()


def run(scenario: Scenario, state: State | None = None) -> Trace:
    """Apply a scenario from genesis (or ``state``); roots from the incremental tree."""
    state = state or genesis()
    tracker = StateRootTracker(state)
    builder = Builder(state.chain.timestamp_ms)
    trace = Trace([], [], [], [], [])
    for advance_ms, ops in scenario:
        timestamp, txs = builder.next_block(advance_ms, ops, state.chain.epoch)
        state, events, updates = apply_block(state, BlockContext(state.height + 1, timestamp),
                                             txs)
        root, _ = tracker.apply(updates, state.height)
        trace.roots.append(root)
        trace.events.append(events)
        trace.updates.append(updates)
        trace.states.append(state)
        trace.blocks.append((timestamp, txs))
    return trace


def replay(blocks: Sequence[tuple[int, Sequence[Transaction]]], state: State,
           ) -> list[tuple[State, tuple[DomainEvent, ...], dict[bytes, bytes | None]]]:
    """Apply already-built blocks (e.g. permuted) from ``state``."""
    results = []
    for timestamp, txs in blocks:
        state, events, updates = apply_block(state, BlockContext(state.height + 1, timestamp),
                                             txs)
        results.append((state, events, updates))
    return results


def random_scenario(seed: int, blocks: int = 8, ops_per_block: int = 12) -> Scenario:
    """A seeded scenario for the subprocess (hash-seed) test and the benchmark."""
    rng = random.Random(seed)
    scenario: Scenario = []
    for _ in range(blocks):
        ops: list[Op] = []
        for _ in range(rng.randint(0, ops_per_block)):
            kind = rng.choice(["event"] * 6 + ["evidence", "rule", "unrule", "quarantine",
                                               "release", "replay"])
            if kind == "event":
                ops.append(("event", rng.randrange(len(ENTITIES)), rng.randint(1, 10),
                            rng.randint(0, 10_000)))
            elif kind == "evidence":
                ops.append(("evidence", [rng.randrange(50) for _ in range(rng.randint(1, 3))]))
            elif kind == "rule":
                ops.append(("rule", rng.randrange(len(ENTITIES)), rng.randrange(len(SCOPES)),
                            rng.random() < 0.5, rng.randint(1000, 90_000)))
            elif kind == "unrule":
                ops.append(("unrule", rng.randrange(len(ENTITIES)),
                            rng.randrange(len(SCOPES)), rng.random() < 0.5))
            elif kind == "quarantine":
                ops.append(("quarantine", rng.randrange(len(ENTITIES)),
                            rng.randint(1000, 90_000)))
            elif kind == "release":
                ops.append(("release", rng.randrange(len(ENTITIES))))
            else:
                ops.append(("replay", rng.randrange(100)))
        scenario.append((rng.choice([0, 1000, 5000, 60_000, 3_700_000]), ops))
    return scenario
