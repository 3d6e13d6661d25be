"""Health (liveness), readiness and node status.

Liveness answers while the process serves requests; readiness also needs the database and a
synced node (a load balancer should not send dashboards to a node that is catching up); status
is what a dashboard shows about this node and the validator set.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api import queries
from apps.api.base import ApiView
from apps.api.errors import ProblemCode, problem_response, problem_responses
from apps.api.permissions import requires
from apps.api.roles import Capability
from apps.api.serializers import (
    StatusSerializer,
    block_item,
    node_status_item,
    validator_item,
)


class HealthView(ApiView):
    """Liveness: answers 200 while the process can serve requests. Needs no login."""

    permission_classes = [AllowAny]
    authentication_classes = ()
    throttle_classes = ()

    @extend_schema(
        tags=["health"],
        operation_id="getHealth",
        summary="Liveness probe",
        auth=[],
        responses={200: inline_serializer("Health", {
            "status": serializers.CharField(),
            "node_id": serializers.CharField(),
            "node_type": serializers.CharField(),
        })},
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok", "node_id": settings.NODE_ID,
                         "node_type": settings.NODE_TYPE})


class ReadyView(ApiView):
    """Readiness: 200 when the database answers and this node is synced; 503 otherwise."""

    permission_classes = [AllowAny]
    authentication_classes = ()
    throttle_classes = ()

    @extend_schema(
        tags=["health"],
        operation_id="getReady",
        summary="Readiness probe (database reachable, node synced and status fresh)",
        auth=[],
        responses={200: inline_serializer("Ready", {
            "status": serializers.CharField(),
            "node_id": serializers.CharField(),
            "checks": serializers.DictField(child=serializers.CharField()),
        }), **problem_responses(503)},
    )
    def get(self, request: Request) -> Response:
        result = queries.readiness()
        if not result.ready:
            failing = ", ".join(f"{name}: {why}" for name, why in result.checks.items()
                                if why != "ok")
            return problem_response(code=ProblemCode.SERVICE_UNAVAILABLE, status=503,
                                    detail=f"Not ready ({failing}).", request=request,
                                    extra={"checks": result.checks})
        return Response({"status": "ready", "node_id": settings.NODE_ID,
                         "checks": result.checks})


class StatusView(ApiView):
    """This node's status row, the latest committed block, and the active validator set with
    its quorum arithmetic."""

    permission_classes = [requires(Capability.READ_LEDGER)]

    @extend_schema(tags=["status"], operation_id="getStatus",
                   summary="This node's status, the latest block and the active validator set",
                   responses={200: StatusSerializer, **problem_responses(401, 403, 429)})
    def get(self, request: Request) -> Response:
        # Built by the item functions (StatusSerializer documents the shape; a test checks
        # they agree): the nested serializers cost more than the three queries.
        validators = queries.active_validators()
        quorum = queries.active_quorum(validators)
        node = queries.node_status()
        latest = queries.latest_block_row()
        return Response({
            "node_id": settings.NODE_ID,
            "node": None if node is None else node_status_item(node),
            "latest_block": None if latest is None else block_item(latest),
            "validators": [validator_item(validator) for validator in validators],
            "quorum": None if quorum is None else {
                "total_power": quorum.total_power,
                "max_faulty_power": quorum.max_faulty_power,
                "quorum_power": quorum.quorum_power},
        })


class UnknownEndpointView(ApiView):
    """Anything under /api/v1/ that matches no endpoint: a problem-details 404, whatever the
    method (Django's own 404 page would be HTML)."""

    permission_classes = [AllowAny]
    authentication_classes = ()
    throttle_classes = ()
    schema = None

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        super().initial(request, *args, **kwargs)
        raise NotFound("No such API endpoint.")
