"""Governance writes: approve a proposal, submit it (or a policy change) as a signed
transaction through this node's mempool, and follow it to commit and to its epoch boundary.

Nothing here changes shared state directly. A governance change takes effect only through
consensus: the transaction is admitted by the mempool's pipeline (the producer key must be
allowlisted for the ``governance`` kind), ordered into a block, checked by the executor
(epoch, approvals, quorum, validity) and applied at the end of the epoch. Every approval and
every submission, admitted or refused, is audited.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from apps.audit.choices import Outcome
from apps.audit.services import record_audit
from apps.governance.errors import GovernanceError, GovernanceProblem
from apps.governance.proposals import Proposal, change_summary
from apps.governance.queries import (
    GovernanceView,
    committed_transaction,
    governance_view,
    in_mempool,
)
from apps.governance.validation import check_change, diagnose, tally
from apps.ledger.models import Block as BlockRow
from apps.mempool.admission import AdmissionStatus, admit
from cybermesh.logging import get_logger
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.txs.envelope import Transaction, decode_transaction, sign_transaction
from cybermesh.protocol.txs.errors import TxRejected
from cybermesh.protocol.txs.governance import Approval, GovernanceChange, approval_domain
from cybermesh.protocol.txs.policy import PolicyChange

__all__ = [
    "SOURCE",
    "Stage",
    "Submitted",
    "TxStatus",
    "approve",
    "build_transaction",
    "do_approve",
    "do_submit_policy",
    "do_submit_proposal",
    "follow",
    "live_submission",
    "transaction_status",
]

logger = get_logger(__name__)
SOURCE = "governance"
_P = GovernanceProblem


class Stage(enum.StrEnum):
    """Where a submitted transaction is, in the order it gets there."""

    UNKNOWN = "unknown"  # neither in this node's mempool nor in its ledger
    MEMPOOL = "mempool"  # admitted, waiting for a block
    COMMITTED = "committed"  # in a committed block (policy; governance whose outcome is pruned)
    SCHEDULED = "scheduled"  # governance accepted, applies at the end of its epoch
    ACTIVE = "active"  # governance applied at the epoch boundary
    IGNORED = "ignored"  # committed, but the executor ignored it (``reason``)


COMMITTED_STAGES = frozenset({Stage.COMMITTED, Stage.SCHEDULED, Stage.ACTIVE, Stage.IGNORED})
FINAL_STAGES = frozenset({Stage.COMMITTED, Stage.ACTIVE, Stage.IGNORED})


@dataclass(frozen=True, slots=True)
class TxStatus:
    tx_id: bytes
    stage: Stage
    kind: str | None = None
    height: int | None = None
    index: int | None = None
    epoch: int | None = None  # the epoch a governance change was approved in
    applies_after_height: int | None = None  # SCHEDULED: the last block of that epoch
    reason: str | None = None  # IGNORED: the executor's reason, as far as it can be told
    change: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"tx_id": self.tx_id.hex(), "stage": self.stage.value, "kind": self.kind,
                "height": self.height, "index": self.index, "epoch": self.epoch,
                "applies_after_height": self.applies_after_height, "reason": self.reason,
                "change": self.change}


@dataclass(frozen=True, slots=True)
class Submitted:
    tx_id: bytes
    admission: str  # admitted | duplicate
    transaction: Transaction = field(repr=False)
    proposal: Proposal | None = None


def approve(proposal: Proposal, *, view: GovernanceView, signing_key: SigningKey,
            validator_id: str) -> Proposal:
    """``proposal`` with ``validator_id``'s approval, signed with its node key. Refused when
    the change cannot apply, the id is not an active validator, or the key is not its key."""
    check_change(view, proposal)
    entry = view.validators.get(validator_id)
    if entry is None or validator_id not in view.validators.active:
        raise GovernanceError(_P.NOT_A_VALIDATOR, f"{validator_id!r} is not an active "
                              f"validator in epoch {view.chain.epoch}; only they approve")
    if entry.public_key != signing_key.public_key.raw:
        raise GovernanceError(_P.KEY, f"the key given is not {validator_id!r}'s registered "
                              "validator key")
    signature = signing_key.sign(approval_domain(proposal.chain_id), proposal.message)
    return proposal.with_approval(Approval(validator_id, signature))


def _audit(action: str, *, actor: str, outcome: str, target: str,
           details: dict[str, Any]) -> None:
    record_audit(actor=actor, action=action, target=target, outcome=outcome, details=details)


def do_approve(proposal: Proposal, *, view: GovernanceView, signing_key: SigningKey,
               validator_id: str, actor: str) -> Proposal:
    """:func:`approve`, audited (a validator key signed something that moves the chain)."""
    target = f"proposal:{proposal.proposal_id.hex()}"
    details = {"change": change_summary(proposal.change), "validator_id": validator_id}
    try:
        approved = approve(proposal, view=view, signing_key=signing_key,
                           validator_id=validator_id)
    except GovernanceError as error:
        _audit("governance.approve", actor=actor, outcome=Outcome.FAILURE, target=target,
               details={**details, "reason": error.problem.value})
        raise
    _audit("governance.approve", actor=actor, outcome=Outcome.SUCCESS, target=target,
           details=details)
    return approved


def build_transaction(payload: GovernanceChange | PolicyChange, *, chain_id: str,
                      producer_key: SigningKey, producer_id: str, nonce: int,
                      now_ms: int) -> Transaction:
    try:
        return sign_transaction(producer_key, payload, chain_id=chain_id,
                                producer_id=producer_id, nonce=nonce, created_at_ms=now_ms)
    except TxRejected as error:
        raise GovernanceError(_P.BAD_ARGUMENT, f"cannot build the transaction: {error}") from None


def _admit(transaction: Transaction, *, actor: str, now_ms: int,
           details: dict[str, Any]) -> Submitted:
    target = f"tx:{transaction.tx_id.hex()}"
    details = {**details, "kind": transaction.kind.value,
               "producer_id": transaction.producer_id, "via": "mempool"}
    try:
        result = admit(transaction.wire, now_ms=now_ms, source=SOURCE)
    except ImproperlyConfigured as error:
        _audit("governance.submit", actor=actor, outcome=Outcome.FAILURE, target=target,
               details={**details, "reason": "mempool_unconfigured"})
        raise GovernanceError(_P.REJECTED, f"this node's mempool cannot admit: {error}") from None
    if result.status is AdmissionStatus.REJECTED:
        reason = result.reason.value if result.reason else "rejected"
        _audit("governance.submit", actor=actor, outcome=Outcome.FAILURE, target=target,
               details={**details, "reason": reason})
        hint = (" (allowlist the producer key for this kind in MEMPOOL_PRODUCERS_PATH)"
                if reason in ("unknown_producer", "kind_not_permitted") else "")
        raise GovernanceError(_P.REJECTED, f"the mempool refused the transaction: {reason}"
                              f"{': ' + result.detail if result.detail else ''}{hint}")
    _audit("governance.submit", actor=actor, outcome=Outcome.SUCCESS, target=target,
           details={**details, "admission": result.status.value})
    logger.info("governance.submitted", tx_id=transaction.tx_id.hex(),
                kind=transaction.kind.value, admission=result.status.value)
    return Submitted(tx_id=transaction.tx_id, admission=result.status.value,
                     transaction=transaction)


def do_submit_proposal(proposal: Proposal, *, view: GovernanceView, producer_key: SigningKey,
                       producer_id: str, actor: str, now_ms: int, nonce: int) -> Submitted:
    """Check the proposal (chain, epoch, validity, approvals, quorum) on ``view``, sign the
    governance transaction with the producer key and admit it to this node's mempool."""
    target = f"proposal:{proposal.proposal_id.hex()}"
    details: dict[str, Any] = {"proposal_id": proposal.proposal_id.hex(),
                               "change": change_summary(proposal.change)}
    try:
        check_change(view, proposal)
        counted = tally(view, proposal)
        if not counted.has_quorum:
            raise GovernanceError(_P.NO_QUORUM, f"approvals hold power {counted.power} of the "
                                  f"{counted.quorum_power} a quorum needs; not yet approved by "
                                  f"{', '.join(counted.missing) or 'anyone else'}")
    except GovernanceError as error:
        _audit("governance.submit", actor=actor, outcome=Outcome.FAILURE, target=target,
               details={**details, "reason": error.problem.value})
        raise
    transaction = build_transaction(proposal.signed_change(), chain_id=proposal.chain_id,
                                    producer_key=producer_key, producer_id=producer_id,
                                    nonce=nonce, now_ms=now_ms)
    submitted = _admit(transaction, actor=actor, now_ms=now_ms,
                       details={**details, "approvers": list(counted.approvers)})
    return Submitted(tx_id=submitted.tx_id, admission=submitted.admission,
                     transaction=transaction, proposal=proposal.with_submission(submitted.tx_id))


def do_submit_policy(change: PolicyChange, *, chain_id: str, producer_key: SigningKey,
                     producer_id: str, actor: str, now_ms: int, nonce: int) -> Submitted:
    """Sign a policy change with the producer key and admit it to this node's mempool."""
    transaction = build_transaction(change, chain_id=chain_id, producer_key=producer_key,
                                    producer_id=producer_id, nonce=nonce, now_ms=now_ms)
    return _admit(transaction, actor=actor, now_ms=now_ms,
                  details={"op": change.operation.value, "entity": str(change.entity)})


# --- following a transaction --------------------------------------------------------------------


def _block_time(height: int) -> int | None:
    stamp = BlockRow.objects.filter(height=height).values_list("timestamp_ms", flat=True).first()
    return None if stamp is None else int(stamp)


def _diagnosis(transaction: Transaction, proposal: Proposal, height: int) -> str | None:
    """Why the executor would have ignored the transaction in block ``height`` (None: no
    reason found on the state before the block)."""
    try:
        before = governance_view(height - 1)
    except GovernanceError:
        return "unknown (the state before its block is pruned)"
    block_time = _block_time(height)
    if block_time is not None:
        if block_time - transaction.created_at_ms > before.parameters.tx_max_age_ms:
            return "stale"
        if transaction.created_at_ms - block_time > before.parameters.tx_max_future_ms:
            return "from_the_future"
    return diagnose(before, proposal)


def _governance_status(base: TxStatus, transaction: Transaction,
                       change: GovernanceChange) -> TxStatus:
    height, index = base.height, base.index
    assert height is not None and index is not None  # noqa: S101 -- committed
    base = replace(base, epoch=change.epoch, change=change_summary(change))
    try:
        after = governance_view(height)
        latest = governance_view()
    except GovernanceError:
        return replace(base, reason="outcome unknown (state pruned)")
    if any(pending.height == height and pending.index == index
           for pending in after.pending.changes):
        if latest.chain.epoch > change.epoch:
            return replace(base, stage=Stage.ACTIVE)
        return replace(base, stage=Stage.SCHEDULED,
                       applies_after_height=latest.epoch_end_height)
    proposal = Proposal(chain_id=transaction.chain_id, message=change.approval_message(),
                        approvals=change.approvals)
    reason = _diagnosis(transaction, proposal, height)
    if reason is None and after.chain.epoch > change.epoch:
        return replace(base, stage=Stage.ACTIVE)  # accepted by its epoch's last block
    return replace(base, stage=Stage.IGNORED, reason=reason or "duplicate, or in conflict with "
                   "a change earlier in the same block")


def transaction_status(tx_id: bytes) -> TxStatus:
    """Where ``tx_id`` is on this node; for governance, whether the executor scheduled it,
    ignored it (and the likely reason), or its epoch boundary has applied it."""
    committed = committed_transaction(tx_id)
    if committed is None:
        return TxStatus(tx_id, Stage.MEMPOOL if in_mempool(tx_id) else Stage.UNKNOWN)
    base = TxStatus(tx_id, Stage.COMMITTED, height=committed.height, index=committed.index)
    try:
        transaction = decode_transaction(committed.wire, verify=False)
    except TxRejected:
        return base
    base = replace(base, kind=transaction.kind.value)
    if not isinstance(transaction.payload, GovernanceChange):
        return base
    return _governance_status(base, transaction, transaction.payload)


def live_submission(proposal: Proposal) -> TxStatus | None:
    """The latest transaction built from ``proposal`` that is still on its way or took effect
    (in the mempool, committed, scheduled, active), or None. Submitting the proposal again
    would only make a second transaction that the executor ignores as a duplicate change."""
    for tx_id in reversed(proposal.submitted):
        status = transaction_status(tx_id)
        if status.stage not in (Stage.UNKNOWN, Stage.IGNORED):
            return status
    return None


def follow(tx_id: bytes, *, until: frozenset[Stage] = COMMITTED_STAGES, timeout_s: float,
           poll_interval_s: float = 0.5, on_change: Callable[[TxStatus], None] | None = None,
           clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep) -> TxStatus:
    """Poll :func:`transaction_status` until a stage in ``until`` (or a final one) is reached.

    ``GovernanceError(TIMEOUT)`` after ``timeout_s``; ``UNKNOWN_TRANSACTION`` when the
    transaction was in the mempool and left it without a block (expired or evicted)."""
    deadline = clock() + timeout_s
    seen: TxStatus | None = None
    while True:
        status = transaction_status(tx_id)
        if seen is None or status.stage is not seen.stage:
            if on_change is not None:
                on_change(status)
            if (status.stage is Stage.UNKNOWN and seen is not None
                    and seen.stage is Stage.MEMPOOL):
                raise GovernanceError(_P.UNKNOWN_TRANSACTION, f"transaction {tx_id.hex()} left "
                                      "the mempool without being committed (expired or "
                                      "evicted); submit it again")
            seen = status
        if status.stage in until or status.stage in FINAL_STAGES:
            return status
        if clock() >= deadline:
            raise GovernanceError(_P.TIMEOUT, f"transaction {tx_id.hex()} is still at "
                                  f"stage {status.stage.value} after {timeout_s:g} s; check later "
                                  f"with: manage.py governance status {tx_id.hex()}")
        sleep(poll_interval_s)
