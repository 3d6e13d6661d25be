"""Evidence on a node with a real ledger: the leader proposes only verified equivocation
evidence, a replica refuses a block carrying a forged one, and ReportEvidence becomes an
admitted transaction signed by the node."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.mempool.admission import AdmissionStatus, admit, reset_default_pipeline
from apps.node.application import PROPOSALS_REFUSED, Application
from apps.node.bootstrap import Tip, load_or_create_tip
from apps.node.evidence import from_consensus, submit_evidence
from cybermesh.protocol.block_builder import BlockLimits, Candidate, build_payload
from cybermesh.protocol.consensus.messages import Block, genesis_qc
from cybermesh.protocol.executor.params import ExecutorParameters
from cybermesh.protocol.genesis import Genesis, genesis_document, parse_genesis
from cybermesh.protocol.txs import EvidenceKind as TxEvidenceKind
from cybermesh.protocol.txs import sign_transaction
from cybermesh.protocol.txs.evidence import Evidence as TxEvidence
from tests.node.test_evidence import CHAIN, KEYS, double_vote

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def genesis() -> Genesis:
    document = genesis_document(
        chain_id=CHAIN, genesis_time_ms=time.time_ns() // 1_000_000 - 60_000,
        validators=[(vid, key.public_key.raw, 1, f"127.0.0.1:{7000 + i}")
                    for i, (vid, key) in enumerate(KEYS.items())])
    return parse_genesis(json.dumps(document))


@pytest.fixture
def node(settings: Any, tmp_path: Path, genesis: Genesis) -> Iterator[tuple[Application, Tip]]:
    producers = {"producers": [
        {"producer_id": vid, "keys": [{"public_key": key.public_key.raw.hex()}],
         "kinds": ["evidence"], "rate_per_second": 10, "burst": 100, "max_pending": 100}
        for vid, key in KEYS.items()]}
    path = tmp_path / "producers.json"
    path.write_text(json.dumps(producers))
    settings.MEMPOOL_PRODUCERS_PATH = str(path)
    settings.MEMPOOL_CHAIN_ID = CHAIN
    reset_default_pipeline()
    tip = load_or_create_tip(genesis, node_id="node-0")
    limits = BlockLimits.from_parameters(genesis.consensus, ExecutorParameters())
    app = Application(chain_id=CHAIN, node_id="node-0", limits=limits, executor=tip.executor,
                      committed=tip.block, committed_root=tip.state_root,
                      lookup=lambda _block_id: None)
    yield app, tip
    reset_default_pipeline()


def block_with(app: Application, tip: Tip, payload: bytes, tx_root: bytes, now: int) -> Block:
    return Block(epoch=0, view=1, height=1, parent_id=tip.block.block_id, proposer="node-0",
                 timestamp_ms=now, payload=payload, tx_root=tx_root,
                 state_root=tip.state_root, validator_set_hash=tip.block.validator_set_hash,
                 qc=genesis_qc(0, tip.block.block_id, 0))


def refusals(reason: str) -> float:
    return PROPOSALS_REFUSED.labels(reason)._value.get()


def test_reported_equivocation_is_admitted_proposed_and_accepted(
        node: tuple[Application, Tip]) -> None:
    app, tip = node
    transaction = submit_evidence(double_vote("node-1"), signing_key=KEYS["node-0"],
                                  node_id="node-0", chain_id=CHAIN)
    assert transaction is not None
    now = time.time_ns() // 1_000_000
    content = app.build(parent_id=tip.block.block_id, height=1, now_ms=now)
    assert content is not None and content.payload is not None
    assert transaction.wire in content.payload
    assert app.check(block_with(app, tip, content.payload, content.tx_root, now))


def test_forged_equivocation_is_not_proposed_and_a_block_carrying_it_is_refused(
        node: tuple[Application, Tip]) -> None:
    app, tip = node
    evidence = double_vote("node-1")
    bad = bytearray(evidence.first.signature)
    bad[5] ^= 0x10
    forged = dataclasses.replace(evidence, first=dataclasses.replace(
        evidence.first, signature=bytes(bad)))
    now = time.time_ns() // 1_000_000
    transaction = sign_transaction(
        KEYS["node-2"], TxEvidence(kind=TxEvidenceKind.EQUIVOCATION,
                                   equivocation=from_consensus(forged)),
        chain_id=CHAIN, producer_id="node-2", nonce=7, created_at_ms=now)
    # Admission checks the envelope signature only; the accusation is checked by validators.
    assert admit(transaction.wire, now_ms=now, source="test").status is AdmissionStatus.ADMITTED
    content = app.build(parent_id=tip.block.block_id, height=1, now_ms=now)
    assert content is not None and content.payload is None
    limits = app.limits
    built = build_payload([Candidate.from_transaction(transaction)], limits=limits,
                          block_time_ms=now)
    before = refusals("evidence")
    assert not app.check(block_with(app, tip, built.payload, built.tx_root, now))
    assert refusals("evidence") == before + 1
