"""Restricted writes: submit a signed policy or governance transaction; follow it to commit.

``POST /api/v1/submissions/`` answers 202 with the transaction id once the mempool holds the
transaction durably; consensus commits it later. ``GET /api/v1/submissions/<tx_id>/`` says
``pending`` until a committed block holds it, then ``committed`` with the height.
"""

from __future__ import annotations

import time
from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api import idempotency
from apps.api.base import ApiView
from apps.api.errors import problem_responses
from apps.api.fields import Base64Field, HexField
from apps.api.permissions import requires, requires_any
from apps.api.queries import BadIdentifier, parse_hash
from apps.api.roles import Capability
from apps.api.services import do_submit_transaction, transaction_status
from cybermesh.protocol.txs.envelope import MAX_TX_BYTES

# base64 of the largest transaction, plus the JSON around it.
MAX_SUBMIT_BODY_BYTES = 4 * (MAX_TX_BYTES // 3 + 1) + 1024


class SubmitRequestSerializer(serializers.Serializer[Any]):
    tx = Base64Field(max_bytes=MAX_TX_BYTES,
                     help_text="The signed transaction's wire bytes, base64")


class SubmissionSerializer(serializers.Serializer[Any]):
    tx_id = HexField()
    kind = serializers.CharField()
    producer_id = serializers.CharField()
    admission = serializers.ChoiceField(choices=["admitted", "duplicate"],
                                        help_text="duplicate: already pending or committed")
    status = serializers.ChoiceField(choices=["pending", "committed"])
    status_url = serializers.CharField()


class SubmissionStatusSerializer(serializers.Serializer[Any]):
    tx_id = HexField()
    status = serializers.ChoiceField(choices=["pending", "committed"])
    block_height = serializers.IntegerField(allow_null=True)


class SubmissionView(ApiView):
    """Submit a signed policy (operator) or governance (admin) transaction for consensus."""

    permission_classes = [requires_any(Capability.SUBMIT_POLICY, Capability.SUBMIT_GOVERNANCE)]
    max_body_bytes = MAX_SUBMIT_BODY_BYTES

    @extend_schema(
        tags=["submissions"], operation_id="submitTransaction",
        summary="Submit a signed policy or governance transaction",
        request=SubmitRequestSerializer,
        parameters=[idempotency.PARAMETER],
        responses={202: OpenApiResponse(SubmissionSerializer,
                                        description="Durably pending (or already committed)"),
                   **problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 503)})
    def post(self, request: Request) -> Response:
        return idempotency.respond_once(request, self.handle_exception,
                                        lambda: self._submit(request))

    def _submit(self, request: Request) -> Response:
        body = SubmitRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        submission = do_submit_transaction(
            raw=body.validated_data["tx"], acting_user=request.user,
            request_id=getattr(request, "request_id", ""), now_ms=time.time_ns() // 1_000_000,
            via=getattr(request.auth, "prefix", "session"))
        tx_id = submission.tx_id.hex()
        return Response({
            "tx_id": tx_id, "kind": submission.kind, "producer_id": submission.producer_id,
            "admission": submission.admission, "status": submission.status,
            "status_url": f"/api/v1/submissions/{tx_id}/"}, status=202)


class SubmissionStatusView(ApiView):
    """Whether a submitted transaction is still pending or committed (and where)."""

    permission_classes = [requires(Capability.READ_LEDGER)]

    @extend_schema(
        tags=["submissions"], operation_id="getSubmission",
        summary="Pending or committed?",
        parameters=[OpenApiParameter("tx_id", str, OpenApiParameter.PATH,
                                     description="Transaction id (64 hex)",
                                     pattern=r"^[0-9a-fA-F]{64}$")],
        responses={200: SubmissionStatusSerializer,
                   **problem_responses(400, 401, 403, 404, 429)})
    def get(self, request: Request, tx_id: str) -> Response:
        try:
            raw_id = parse_hash(tx_id, "transaction")
        except BadIdentifier as error:
            raise ValidationError({"id": [str(error)]}) from None
        known = transaction_status(raw_id)
        if known is None:
            raise NotFound("This node has no pending or committed transaction with this id.")
        return Response({"tx_id": raw_id.hex(), "status": known[0], "block_height": known[1]})
