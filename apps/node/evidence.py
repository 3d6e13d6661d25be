"""Equivocation evidence on a node: check it before voting, submit it when the core finds it.

**Checking.** An evidence transaction of kind ``equivocation`` accuses a validator of signing
two different blocks in one view. The executor applies it without looking at the signatures
(it is pure and has no verifier), so the block validator must: a replica refuses a block that
carries an equivocation whose two statements are not both validly signed by the accused
validator's key (``consensus.evidence.verify_evidence``, the same PyNaCl verifier as every
other signature). The key is the accused validator's in the active set of the parent's state;
evidence against a validator that is not in it cannot be checked and is refused too. A leader
applies the same check to its own candidates, so it never proposes what replicas refuse.

**Submitting.** When the consensus core reports equivocation (``ReportEvidence``: two
conflicting votes or proposals it received), the node turns it into an evidence transaction
signed with its own validator key, producer id = its validator id, and admits it into its own
mempool; it goes into the next block this node proposes (equivocation evidence has the second
highest priority). ``init_cluster`` allowlists every validator as a producer of kind
``evidence`` only, with its validator key: the transaction signature domain (``tx/evidence``)
never overlaps a consensus domain, so one key serves both without a cross-protocol risk, and no
second secret per node has to be provisioned. An operator who prefers a separate key lists it
under the validator's id instead; the node then needs it as ``NODE_KEY_PATH``'s sibling (not
supported yet: the validator key is used).
"""

from __future__ import annotations

import time

import structlog

from apps.mempool.admission import AdmissionStatus, admit
from cybermesh.protocol.consensus.evidence import verify_evidence
from cybermesh.protocol.consensus.messages import Evidence as ConsensusEvidence
from cybermesh.protocol.consensus.messages import EvidenceKind, SignedStatement
from cybermesh.protocol.consensus.signatures import Domains, Verifier
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.txs import (
    Equivocation,
    EquivocationType,
    Transaction,
    TxKind,
    sign_transaction,
)
from cybermesh.protocol.txs import (
    EvidenceKind as TxEvidenceKind,
)
from cybermesh.protocol.txs import SignedStatement as TxStatement
from cybermesh.protocol.txs.evidence import Evidence as TxEvidence
from cybermesh.protocol.validator_set import ValidatorSet

logger = structlog.get_logger(__name__)

_KINDS = {EquivocationType.DOUBLE_VOTE: EvidenceKind.DOUBLE_VOTE,
          EquivocationType.DOUBLE_PROPOSAL: EvidenceKind.DOUBLE_PROPOSAL}
_TYPES = {kind: type_ for type_, kind in _KINDS.items()}


def equivocation_of(transaction: Transaction) -> Equivocation | None:
    payload = transaction.payload
    if transaction.kind is not TxKind.EVIDENCE or not isinstance(payload, TxEvidence):
        return None
    return payload.equivocation


def to_consensus(proof: Equivocation) -> ConsensusEvidence:
    return ConsensusEvidence(
        kind=_KINDS[proof.type], epoch=proof.epoch, view=proof.view,
        validator_id=proof.validator_id,
        first=SignedStatement(proof.first.block_id, proof.first.height, proof.first.signature),
        second=SignedStatement(proof.second.block_id, proof.second.height,
                               proof.second.signature))


def from_consensus(evidence: ConsensusEvidence) -> Equivocation:
    return Equivocation(
        validator_id=evidence.validator_id, type=_TYPES[evidence.kind], epoch=evidence.epoch,
        view=evidence.view,
        first=TxStatement(evidence.first.block_id, evidence.first.height,
                          evidence.first.signature),
        second=TxStatement(evidence.second.block_id, evidence.second.height,
                           evidence.second.signature))


def equivocation_problem(proof: Equivocation, *, validators: ValidatorSet, domains: Domains,
                         verifier: Verifier) -> str | None:
    """Why ``proof`` must not be in a block, or None when both signatures verify."""
    validator = validators.get(proof.validator_id)
    if validator is None:
        return f"accuses {proof.validator_id!r}, not an active validator"
    if not verify_evidence(to_consensus(proof), validator.public_key, domains, verifier):
        return f"signatures do not prove {proof.validator_id!r} equivocated"
    return None


def submit_evidence(evidence: ConsensusEvidence, *, signing_key: SigningKey, node_id: str,
                    chain_id: str, now_ms: int | None = None) -> Transaction | None:
    """Sign ``evidence`` as an evidence transaction and admit it into this node's mempool.

    Returns the transaction when it is admitted (or already pooled), None when the mempool
    refused it (logged with the reason: e.g. this node is not allowlisted for evidence).
    """
    created = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    transaction = sign_transaction(
        signing_key, TxEvidence(kind=TxEvidenceKind.EQUIVOCATION,
                                equivocation=from_consensus(evidence)),
        chain_id=chain_id, producer_id=node_id, nonce=time.time_ns() // 1000,
        created_at_ms=created)
    result = admit(transaction.wire, now_ms=created, source="node:evidence")
    if result.status in (AdmissionStatus.ADMITTED, AdmissionStatus.DUPLICATE):
        logger.warning("equivocation evidence submitted", offender=evidence.validator_id,
                       view=evidence.view, tx_id=transaction.tx_id.hex())
        return transaction
    logger.error("equivocation evidence refused by the mempool", offender=evidence.validator_id,
                 reason=getattr(result.reason, "value", str(result.reason)),
                 detail=result.detail)
    return None
