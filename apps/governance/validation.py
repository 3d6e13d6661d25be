"""Checking a governance change the way the executor will, before anyone signs or submits it.

The executor ignores a governance transaction that cannot take effect (``TxIgnored``: wrong
epoch, bad approval, no quorum, duplicate, too many pending, invalid change) and the block goes
on; the operator would only see that nothing happened. These checks run the same rules
(``executor.governance``: the same quorum arithmetic, the same ``project`` of the registry and
parameters, libsodium signatures) on this node's latest committed state first, so a change
that cannot apply is refused at the command line with the reason, and :func:`diagnose` names
the likely reason afterwards for a transaction that a block committed but ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.governance.errors import GovernanceError, GovernanceProblem
from apps.governance.proposals import Proposal
from apps.governance.queries import GovernanceView
from cybermesh.protocol.crypto.signing import PublicKey
from cybermesh.protocol.executor.governance import MAX_PENDING, InvalidChange, project
from cybermesh.protocol.executor.records import PendingChange
from cybermesh.protocol.txs.governance import GovernanceChange, approval_domain
from cybermesh.protocol.validator_set import quorum_math

__all__ = ["Tally", "check_change", "diagnose", "pending_form", "tally"]

_P = GovernanceProblem


@dataclass(frozen=True, slots=True)
class Tally:
    """Approvals against the active set: who approved, their power, what a quorum needs."""

    approvers: tuple[str, ...]
    power: int
    quorum_power: int
    total_power: int
    missing: tuple[str, ...]  # active validators that have not approved

    @property
    def has_quorum(self) -> bool:
        return self.power >= self.quorum_power


def pending_form(change: GovernanceChange, *, height: int = 0, index: int = 0) -> PendingChange:
    return PendingChange(height, index, change.operation, change.validator_id,
                         change.public_key, change.power, change.address, change.parameter,
                         change.value)


def _content(change: PendingChange) -> object:
    return change.to_cbor()[2:]  # type: ignore[index]  # without (height, index)


def check_change(view: GovernanceView, proposal: Proposal) -> None:
    """Raise :class:`GovernanceError` unless ``proposal`` can still take effect on ``view``
    (its chain and epoch, and the registry/parameters after the changes already pending)."""
    change = proposal.change
    if proposal.chain_id != view.chain.chain_id:
        raise GovernanceError(_P.WRONG_CHAIN, f"the proposal is for chain "
                              f"{proposal.chain_id!r}, this node runs {view.chain.chain_id!r}")
    if change.epoch != view.chain.epoch:
        raise GovernanceError(_P.WRONG_EPOCH, f"the proposal names epoch {change.epoch}, the "
                              f"chain is in epoch {view.chain.epoch}: approvals do not carry "
                              "over, propose the change again")
    new = pending_form(change)
    if any(_content(old) == _content(new) for old in view.pending.changes):
        raise GovernanceError(_P.DUPLICATE_CHANGE, "the same change is already pending for "
                              f"the end of epoch {view.chain.epoch}")
    if len(view.pending.changes) >= MAX_PENDING:
        raise GovernanceError(_P.TOO_MANY_PENDING, f"{MAX_PENDING} changes are already "
                              "pending; wait for the epoch boundary")
    try:
        project(view.validators.registered, view.parameters, (*view.pending.changes, new))
    except InvalidChange as error:
        raise GovernanceError(_P.INVALID_CHANGE, f"the change cannot apply after the pending "
                              f"ones: {error}") from None


def tally(view: GovernanceView, proposal: Proposal) -> Tally:
    """Verify every approval against the active validators' keys and add up their power;
    raise ``GovernanceError(BAD_APPROVAL)`` naming the first approval that fails."""
    active = {entry.validator_id: entry for entry in view.validators.active_entries()}
    domain = approval_domain(proposal.chain_id)
    for approval in proposal.approvals:
        entry = active.get(approval.validator_id)
        if entry is None:
            raise GovernanceError(_P.BAD_APPROVAL, f"approval by {approval.validator_id!r}, "
                                  f"which is not an active validator in epoch "
                                  f"{view.chain.epoch}")
        if not PublicKey.from_bytes(entry.public_key).verify(domain, proposal.message,
                                                             approval.signature):
            raise GovernanceError(_P.BAD_APPROVAL, f"the approval by {approval.validator_id!r} "
                                  "does not verify with its registered key")
    approvers = tuple(approval.validator_id for approval in proposal.approvals)
    total = sum(entry.power for entry in active.values())
    return Tally(approvers=approvers,
                 power=sum(active[validator_id].power for validator_id in approvers),
                 quorum_power=quorum_math(total).quorum_power, total_power=total,
                 missing=tuple(sorted(set(active) - set(approvers))))


def diagnose(view: GovernanceView, proposal: Proposal) -> str | None:
    """Why ``proposal`` would be ignored on ``view`` (the state before its block), or None."""
    try:
        check_change(view, proposal)
        if not tally(view, proposal).has_quorum:
            return "no_quorum"
    except GovernanceError as error:
        return error.problem.value
    return None
