"""Health endpoints: liveness (is the process serving) for load balancers and orchestrators."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class HealthView(APIView):
    """Liveness: answers 200 while the process can serve requests. Needs no login."""

    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(
        summary="Liveness probe",
        responses={200: inline_serializer("Health", {
            "status": serializers.CharField(),
            "node_id": serializers.CharField(),
            "node_type": serializers.CharField(),
        })},
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok", "node_id": settings.NODE_ID,
                         "node_type": settings.NODE_TYPE})
