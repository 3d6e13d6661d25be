"""Equivocation evidence: what a replica refuses, and the transaction a node submits."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from apps.node.evidence import (
    equivocation_of,
    equivocation_problem,
    from_consensus,
    to_consensus,
)
from cybermesh.protocol.consensus.evidence import make_evidence
from cybermesh.protocol.consensus.messages import EvidenceKind, SignedStatement, block_statement
from cybermesh.protocol.consensus.signatures import Domains, Ed25519Signer, Ed25519Verifier
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.txs import EvidenceKind as TxEvidenceKind
from cybermesh.protocol.txs import decode_transaction, sign_transaction
from cybermesh.protocol.txs.evidence import Evidence as TxEvidence
from cybermesh.protocol.validator_set import Validator, ValidatorSet

pytestmark = pytest.mark.unit
CHAIN = "evidence-test"
DOMAINS = Domains.for_chain(CHAIN)
KEYS = {f"node-{i}": SigningKey.from_seed(hashlib.sha256(f"k{i}".encode()).digest())
        for i in range(4)}
VALIDATORS = ValidatorSet(0, tuple(Validator(vid, key.public_key.raw, 1)
                                   for vid, key in KEYS.items()))


def double_vote(voter: str = "node-1", *, signer: str | None = None,
                kind: EvidenceKind = EvidenceKind.DOUBLE_VOTE):
    key = KEYS[signer or voter]
    domain = DOMAINS.vote if kind is EvidenceKind.DOUBLE_VOTE else DOMAINS.proposal
    statements = []
    for block_id in (b"\x01" * 32, b"\x02" * 32):
        signature = Ed25519Signer(key).sign(domain, block_statement(0, 7, block_id, 3))
        statements.append(SignedStatement(block_id, 3, signature))
    return make_evidence(kind, epoch=0, view=7, validator_id=voter, one=statements[0],
                         other=statements[1])


def problem(evidence) -> str | None:
    return equivocation_problem(from_consensus(evidence), validators=VALIDATORS,
                                domains=DOMAINS, verifier=Ed25519Verifier())


@pytest.mark.parametrize("kind", list(EvidenceKind))
def test_genuine_equivocation_passes(kind: EvidenceKind) -> None:
    assert problem(double_vote(kind=kind)) is None


def test_statements_signed_by_another_key_are_refused() -> None:
    assert "do not prove" in (problem(double_vote("node-1", signer="node-2")) or "")


def test_a_flipped_signature_bit_is_refused() -> None:
    evidence = double_vote()
    bad = bytearray(evidence.second.signature)
    bad[0] ^= 1
    forged = dataclasses.replace(evidence, second=dataclasses.replace(
        evidence.second, signature=bytes(bad)))
    assert problem(forged) is not None


def test_a_vote_presented_as_a_proposal_is_refused() -> None:
    evidence = dataclasses.replace(double_vote(), kind=EvidenceKind.DOUBLE_PROPOSAL)
    assert problem(evidence) is not None


def test_evidence_against_a_stranger_is_refused() -> None:
    stranger = dataclasses.replace(double_vote(), validator_id="node-9")
    assert "not an active validator" in (problem(stranger) or "")


def test_the_transaction_form_round_trips_and_is_found_in_a_transaction() -> None:
    evidence = double_vote()
    assert to_consensus(from_consensus(evidence)) == evidence
    transaction = sign_transaction(
        KEYS["node-0"], TxEvidence(kind=TxEvidenceKind.EQUIVOCATION,
                                   equivocation=from_consensus(evidence)),
        chain_id=CHAIN, producer_id="node-0", nonce=1, created_at_ms=1_000)
    decoded = decode_transaction(transaction.wire, expected_chain_id=CHAIN)
    assert equivocation_of(decoded) == from_consensus(evidence)
