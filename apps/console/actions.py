"""Analyst decisions that change shared state, as signed transactions through consensus.

The path of one decision (e.g. "confirm case -> quarantine its offender"):

1. the policy change is built and signed with the console's producer key (:mod:`.signing`);
2. the signed bytes are stored as a :class:`CaseAction` row (status ``signed``) in the same
   database transaction as the case change that asked for them, with an audit entry: the
   row is an outbox, so the decision is never lost and never applied unrecorded;
3. after that commit, :func:`submit_actions` hands the bytes to this node's mempool
   (:func:`apps.mempool.admission.admit`): ``pending`` when admitted, ``rejected`` with the
   admission reason otherwise (audited either way);
4. consensus orders it into a block and every validator's executor applies it;
   :func:`settle_actions` (run by the ledger sync) marks it ``committed`` with its height,
   or ``expired`` if it left the mempool without a block.

Nothing here writes the quarantine, rule or reputation tables: only the executor does.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from apps.audit.choices import Outcome
from apps.audit.services import record_audit
from apps.console.choices import UNSETTLED_ACTIONS, ActionKind, ActionStatus
from apps.console.errors import ConsoleError, ConsoleProblem
from apps.console.models import Case, CaseAction
from apps.console.signing import ConsoleSigner, SignerUnavailable, configured_signer
from apps.ledger.models import Block
from apps.ledger.models import Transaction as LedgerTransaction
from apps.ledger.rows import ms_to_datetime
from apps.mempool.admission import AdmissionStatus, admit
from apps.mempool.models import MempoolTransaction
from cybermesh.db import run_serializable
from cybermesh.logging import get_logger
from cybermesh.protocol.txs.entity import Entity, EntityKind
from cybermesh.protocol.txs.envelope import Transaction
from cybermesh.protocol.txs.errors import TxRejected
from cybermesh.protocol.txs.policy import PolicyAction, PolicyChange, PolicyOperation

logger = get_logger(__name__)

SOURCE = "console"
MAX_SETTLE_BATCH = 500
_OPERATION = {ActionKind.QUARANTINE: PolicyOperation.QUARANTINE,
              ActionKind.RELEASE: PolicyOperation.RELEASE,
              ActionKind.SET_RULE: PolicyOperation.SET_RULE,
              ActionKind.REMOVE_RULE: PolicyOperation.REMOVE_RULE}
POLICY_ENTITY_KINDS = frozenset(kind.value for kind in EntityKind)


def actor_of(user: Any) -> str:
    return f"user:{user.get_username()}" if user is not None else "system:console"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def entity_of(kind: str, value: str) -> Entity:
    """The canonical entity a policy can name, or ``ConsoleError(BAD_INPUT)``."""
    if kind not in POLICY_ENTITY_KINDS:
        raise ConsoleError(ConsoleProblem.NO_OFFENDER,
                           f"{kind or 'no'} entity: policy acts on "
                           f"{', '.join(sorted(POLICY_ENTITY_KINDS))} only")
    try:
        return Entity.of(kind, value)
    except TxRejected as error:
        raise ConsoleError(ConsoleProblem.BAD_INPUT, f"{kind}:{value} is not a valid entity: "
                           f"{error.detail}") from None


def signer_or_error() -> ConsoleSigner:
    try:
        return configured_signer()
    except SignerUnavailable as error:
        raise ConsoleError(ConsoleProblem.SIGNER_UNAVAILABLE, str(error)) from None


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """A policy change the analyst asked for, signed but not yet recorded."""

    kind: ActionKind
    entity: Entity
    change: PolicyChange
    transaction: Transaction


def sign_action(*, kind: ActionKind, entity: Entity, reason: str, signer: ConsoleSigner,
                at_ms: int, scope: str | None = None, policy_action: PolicyAction | None = None,
                expires_at_ms: int | None = None) -> ActionRequest:
    """Build and sign the policy transaction; ``BAD_INPUT`` when the schema refuses it (a
    reason too long, an expiry out of range, a malformed scope)."""
    try:
        change = PolicyChange(_OPERATION[kind], entity, reason, scope=scope,
                              action=policy_action, expires_at_ms=expires_at_ms)
        transaction = signer.sign(change, now_ms=at_ms)
    except TxRejected as error:
        raise ConsoleError(ConsoleProblem.BAD_INPUT,
                           f"the policy change is not valid: {error}") from None
    return ActionRequest(kind=kind, entity=entity, change=change, transaction=transaction)


def record_action_in_transaction(request: ActionRequest, *, case: Case | None,
                                 acting_user: Any, now: datetime,
                                 request_id: str = "") -> CaseAction:
    """Store the signed transaction (status ``signed``) and audit it, in the caller's
    transaction; :func:`submit_actions` admits it after the commit."""
    change, transaction = request.change, request.transaction
    action = CaseAction.objects.create(
        case=case, kind=request.kind, entity_kind=request.entity.kind.value,
        entity_value=request.entity.value, scope=change.scope or "",
        policy_action=change.action.value if change.action else "", reason=change.reason,
        expires_at_ms=change.expires_at_ms, tx_id=transaction.tx_id.hex(),
        wire=transaction.wire, producer_id=transaction.producer_id,
        created_at_ms=transaction.created_at_ms, status=ActionStatus.SIGNED,
        requested_by=acting_user,
        requested_by_name=acting_user.get_username() if acting_user else "",
        requested_at=now)
    record_audit(actor=actor_of(acting_user), action="console.action.signed",
                 target=f"tx:{action.tx_id}", outcome=Outcome.SUCCESS, request_id=request_id,
                 details={"kind": request.kind.value, "entity": str(request.entity),
                          "case": case.reference if case else None,
                          "producer_id": transaction.producer_id})
    return action


def _move(action_id: Any, *, from_statuses: Iterable[str], values: dict[str, Any],
          audit: dict[str, Any] | None) -> bool:
    """Compare-and-set the action's status; audit in the same transaction. False when another
    process moved it first."""

    def run() -> bool:
        changed = (CaseAction.objects.filter(id=action_id, status__in=list(from_statuses))
                   .update(**values))
        if changed == 1 and audit is not None:
            record_audit(**audit)
        return changed == 1

    return run_serializable(run, operation="console.action.move")


def submit_actions(action_ids: Iterable[Any], *, at_ms: int | None = None,
                   request_id: str = "") -> list[CaseAction]:
    """Hand ``signed`` actions to this node's mempool; return them with their new status.

    Admitted (or already known) -> ``pending``; refused -> ``rejected`` with the admission
    reason. A mempool that is not configured leaves the action ``signed`` (retried by
    ``console resubmit``), with the problem in ``status_detail``."""
    moment = now_ms() if at_ms is None else at_ms
    results = []
    for action in CaseAction.objects.filter(id__in=list(action_ids),
                                            status=ActionStatus.SIGNED).order_by("requested_at"):
        target = f"tx:{action.tx_id}"
        base = {"actor": f"system:{SOURCE}", "target": target, "request_id": request_id}
        try:
            result = admit(bytes(action.wire), now_ms=moment, source=SOURCE)
        except ImproperlyConfigured as error:
            logger.error("console.mempool_unconfigured", error=str(error))
            detail = f"mempool not configured: {error}"[:300]
            CaseAction.objects.filter(id=action.id, status=ActionStatus.SIGNED).update(
                status_detail=detail)
            record_audit(action="console.action.submitted", outcome=Outcome.FAILURE,
                         details={"reason": "mempool_unconfigured"}, **base)
        else:
            if result.status is AdmissionStatus.REJECTED:
                reason = result.reason.value if result.reason else "rejected"
                _move(action.id, from_statuses=[ActionStatus.SIGNED], values={
                    "status": ActionStatus.REJECTED,
                    "status_detail": f"{reason}: {result.detail or ''}"[:300]},
                    audit={"action": "console.action.submitted", "outcome": Outcome.FAILURE,
                           "details": {"reason": reason}, **base})
            else:
                _move(action.id, from_statuses=[ActionStatus.SIGNED], values={
                    "status": ActionStatus.PENDING, "status_detail": result.status.value,
                    "submitted_at": timezone.now()},
                    audit={"action": "console.action.submitted", "outcome": Outcome.SUCCESS,
                           "details": {"admission": result.status.value}, **base})
        action.refresh_from_db()
        results.append(action)
    return results


def settle_in_transaction(*, limit: int = MAX_SETTLE_BATCH) -> int:
    """Inside the caller's transaction: mark unsettled actions whose transaction is in a
    committed block ``committed`` (height, block time), and pending ones that are in neither
    the ledger nor the mempool ``expired``. Returns how many changed."""
    unsettled = list(CaseAction.objects.filter(status__in=list(UNSETTLED_ACTIONS))
                     .order_by("requested_at").only("id", "tx_id", "status")[:limit])
    if not unsettled:
        return 0
    ids = [bytes.fromhex(action.tx_id) for action in unsettled]
    committed = {bytes(tx_id).hex(): height for tx_id, height in
                 LedgerTransaction.objects.filter(tx_id__in=ids, is_replay=False).order_by()
                 .values_list("tx_id", "block_height")}
    times = dict(Block.objects.filter(height__in=set(committed.values())).order_by()
                 .values_list("height", "timestamp_ms"))
    pooled = {bytes(tx_id).hex() for tx_id in MempoolTransaction.objects
              .filter(tx_id__in=ids).values_list("tx_id", flat=True)}
    changed = 0
    for action in unsettled:
        height = committed.get(action.tx_id)
        if height is not None:
            CaseAction.objects.filter(id=action.id).update(
                status=ActionStatus.COMMITTED, committed_height=height,
                committed_at=ms_to_datetime(times.get(height)), status_detail="")
            record_audit(actor=f"system:{SOURCE}", action="console.action.committed",
                         target=f"tx:{action.tx_id}", outcome=Outcome.SUCCESS,
                         details={"height": height})
            changed += 1
        elif action.status == ActionStatus.PENDING and action.tx_id not in pooled:
            CaseAction.objects.filter(id=action.id).update(
                status=ActionStatus.EXPIRED,
                status_detail="left the mempool without being committed")
            record_audit(actor=f"system:{SOURCE}", action="console.action.expired",
                         target=f"tx:{action.tx_id}", outcome=Outcome.FAILURE, details={})
            changed += 1
    return changed


def settle_actions(*, limit: int = MAX_SETTLE_BATCH) -> int:
    return run_serializable(lambda: settle_in_transaction(limit=limit),
                            operation="console.settle_actions")


def live_status(action: CaseAction) -> tuple[str, int | None]:
    """What the action's transaction is right now, read from the ledger and the mempool (the
    stored status may lag until the next sync)."""
    if action.status not in UNSETTLED_ACTIONS:
        return action.status, action.committed_height
    tx_id = bytes.fromhex(action.tx_id)
    height = (LedgerTransaction.objects.filter(tx_id=tx_id, is_replay=False).order_by()
              .values_list("block_height", flat=True).first())
    if height is not None:
        return ActionStatus.COMMITTED, int(height)
    return action.status, None
