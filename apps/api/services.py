"""Writes through the API: signed transactions into the mempool (and from there consensus).

The API never changes shared state itself. A policy or governance change is a transaction
signed by its producer's key; :func:`do_submit_transaction` checks what the caller may submit,
hands the bytes to the mempool's admission pipeline (which checks signature, producer
allowlist, nonce, replay, rate), and reports the transaction as pending until a block commits
it. Every attempt, admitted or refused, is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework.exceptions import PermissionDenied

from apps.api.errors import ApiProblem, ProblemCode
from apps.api.metrics import WRITES
from apps.api.permissions import has_capability
from apps.api.roles import Capability
from apps.audit.choices import Outcome
from apps.audit.services import record_audit
from apps.ledger.models import Transaction as LedgerTransaction
from apps.mempool.admission import AdmissionReason, AdmissionStatus, admit
from apps.mempool.models import MempoolTransaction
from cybermesh.logging import get_logger
from cybermesh.protocol.txs.envelope import decode_transaction
from cybermesh.protocol.txs.errors import TxRejected
from cybermesh.protocol.txs.kinds import TxKind

logger = get_logger(__name__)

# What may be submitted through the API, and what it takes. Security events and evidence come
# from the AI layer over Kafka; audit anchors from the validators themselves.
KIND_CAPABILITY = {TxKind.POLICY: Capability.SUBMIT_POLICY,
                   TxKind.GOVERNANCE: Capability.SUBMIT_GOVERNANCE}
_BACK_PRESSURE_STATUS = {AdmissionReason.RATE_LIMITED: 429,
                         AdmissionReason.QUOTA_EXCEEDED: 429,
                         AdmissionReason.POOL_FULL: 503}
ACTION = "api.submit_transaction"


@dataclass(frozen=True, slots=True)
class Submission:
    tx_id: bytes
    kind: str
    producer_id: str
    admission: str  # admitted | duplicate
    status: str  # pending | committed


def transaction_status(tx_id: bytes) -> tuple[str, int | None] | None:
    """("committed", height), ("pending", None), or None when this node knows nothing."""
    heights = list(LedgerTransaction.objects.filter(tx_id=tx_id, is_replay=False).order_by()
                   .values_list("block_height", flat=True)[:1])
    if heights:
        return "committed", int(heights[0])
    if MempoolTransaction.objects.filter(tx_id=tx_id).exists():
        return "pending", None
    return None


def _audit(*, actor: str, outcome: str, target: str, request_id: str,
           details: dict[str, Any]) -> None:
    WRITES.labels(action=ACTION, outcome=outcome).inc()
    record_audit(actor=actor, action=ACTION, target=target, outcome=outcome,
                 request_id=request_id, details=details)


def _refused(reason: str, detail: str, *, status: int = 422,
             code: ProblemCode = ProblemCode.TRANSACTION_REJECTED) -> ApiProblem:
    return ApiProblem(code, detail, status=status, extra={"reason": reason})


def do_submit_transaction(*, raw: bytes, acting_user: Any, request_id: str, now_ms: int,
                          via: str = "") -> Submission:
    """Submit one signed transaction (wire bytes) for consensus; raise ApiProblem or
    PermissionDenied when refused. ``via`` names the credential (token prefix) for the
    audit trail."""
    actor = f"user:{acting_user.get_username()}"
    base = {"via": via, "bytes": len(raw)}
    try:
        transaction = decode_transaction(raw, verify=False)
    except TxRejected as error:
        _audit(actor=actor, outcome=Outcome.FAILURE, target="tx:undecodable",
               request_id=request_id, details={**base, "reason": error.reason.value})
        raise _refused(error.reason.value, f"Not a valid transaction: {error}") from None
    target = f"tx:{transaction.tx_id.hex()}"
    details = {**base, "kind": transaction.kind.value, "producer_id": transaction.producer_id}
    capability = KIND_CAPABILITY.get(transaction.kind)
    if capability is None:
        _audit(actor=actor, outcome=Outcome.FAILURE, target=target, request_id=request_id,
               details={**details, "reason": "kind_not_accepted"})
        raise _refused("kind_not_accepted", f"{transaction.kind.value} transactions are not "
                       "submitted through the API (only policy and governance).")
    if not has_capability(acting_user, capability):
        _audit(actor=actor, outcome=Outcome.DENIED, target=target, request_id=request_id,
               details=details)
        raise PermissionDenied(f"Your role may not submit {transaction.kind.value} "
                               "transactions.")
    try:
        result = admit(raw, now_ms=now_ms, source="api")
    except ImproperlyConfigured as error:
        logger.error("api.submit.mempool_unconfigured", error=str(error))
        raise ApiProblem(ProblemCode.SERVICE_UNAVAILABLE, "The mempool of this node is not "
                         "configured to admit transactions.", status=503) from None
    if result.status is AdmissionStatus.REJECTED:
        reason = result.reason.value if result.reason else "rejected"
        _audit(actor=actor, outcome=Outcome.FAILURE, target=target, request_id=request_id,
               details={**details, "reason": reason})
        status = _BACK_PRESSURE_STATUS.get(result.reason, 422) if result.reason else 422
        code = {429: ProblemCode.THROTTLED, 503: ProblemCode.SERVICE_UNAVAILABLE}.get(
            status, ProblemCode.TRANSACTION_REJECTED)
        raise _refused(reason, result.detail or f"Refused by admission: {reason}.",
                       status=status, code=code)
    known = transaction_status(transaction.tx_id)
    submission = Submission(
        tx_id=transaction.tx_id, kind=transaction.kind.value,
        producer_id=transaction.producer_id, admission=result.status.value,
        status=known[0] if known else "pending")
    _audit(actor=actor, outcome=Outcome.SUCCESS, target=target, request_id=request_id,
           details={**details, "admission": submission.admission})
    return submission
