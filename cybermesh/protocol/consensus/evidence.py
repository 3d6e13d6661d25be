"""Equivocation evidence: two signed statements by one key for one (epoch, view).

Proposals and votes both sign ``[epoch, view, block_id, height]`` (in different domains), so
two such signatures with different block ids are a proof of misbehaviour that anyone holding
the validator's public key can check, without any other context. The application turns a
verified :class:`Evidence` into a transaction (slashing, quarantine).
"""

from __future__ import annotations

from cybermesh.protocol.consensus.messages import (
    Evidence,
    EvidenceKind,
    SignedStatement,
    block_statement,
)
from cybermesh.protocol.consensus.signatures import Domains, Verifier


def make_evidence(kind: EvidenceKind, *, epoch: int, view: int, validator_id: str,
                  one: SignedStatement, other: SignedStatement) -> Evidence:
    """Build canonical evidence (statements ordered by block id)."""
    first, second = sorted((one, other), key=lambda s: s.block_id)
    return Evidence(kind=kind, epoch=epoch, view=view, validator_id=validator_id,
                    first=first, second=second)


def verify_evidence(evidence: Evidence, public_key: bytes, domains: Domains,
                    verifier: Verifier) -> bool:
    """True when both statements are validly signed by ``public_key`` and conflict."""
    if evidence.first.block_id >= evidence.second.block_id:
        return False  # identical statements are no conflict; unordered ones are not canonical
    domain = domains.vote if evidence.kind is EvidenceKind.DOUBLE_VOTE else domains.proposal
    items = [(public_key, domain,
              block_statement(evidence.epoch, evidence.view, s.block_id, s.height), s.signature)
             for s in (evidence.first, evidence.second)]
    return not verifier.verify_batch(items)
