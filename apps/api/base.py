"""What every API view shares: authentication, throttling, problem-details errors, request
ids, body size limits and the latency histogram.

Views subclass :class:`ApiView` (or the generic :class:`ApiListView`)
and declare only what is theirs (permissions, serializer, query). Settings-wide defaults in
``REST_FRAMEWORK`` would do the same for DRF's own views; declaring them here keeps the API
correct whatever those defaults are.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from django.http import HttpRequest
from rest_framework import generics
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from apps.api.client_certs import ClientCertificateAuthentication
from apps.api.errors import PayloadTooLarge, problem_exception_handler
from apps.api.metrics import REQUEST_SECONDS
from apps.api.throttling import ClientRateThrottle
from apps.api.tokens import ApiTokenAuthentication

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
DEFAULT_MAX_BODY_BYTES = 64 * 1024
_DIGITS = re.compile(r"^[0-9]{1,18}$")


def _request_id(request: HttpRequest) -> str:
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    return offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex


def _endpoint(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    return f"/{route}" if route else "unmatched"


class ApiMixin:
    # The shared behaviour, mixed into APIView and DRF's generic views. (No docstring: the
    # OpenAPI generator would show it as the description of every view lacking its own.)

    # A bearer token first (its WWW-Authenticate is what a 401 names), then a client
    # certificate vouched for by a trusted TLS proxy, then the console's session.
    authentication_classes: Sequence[type[BaseAuthentication]] = [
        ApiTokenAuthentication, ClientCertificateAuthentication, SessionAuthentication]
    throttle_classes: Sequence[type[BaseThrottle]] = [ClientRateThrottle]
    renderer_classes: Sequence[type[BaseRenderer]] = [JSONRenderer]
    parser_classes: Sequence[type[BaseParser]] = [JSONParser]
    max_body_bytes = DEFAULT_MAX_BODY_BYTES

    def get_exception_handler(self) -> Any:
        return problem_exception_handler

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        request._api_started = time.perf_counter()  # type: ignore[attr-defined]
        request_id = _request_id(request)
        request.request_id = request_id  # type: ignore[attr-defined]
        structlog.contextvars.bind_contextvars(request_id=request_id)
        drf_request: Request = super().initialize_request(  # type: ignore[misc]
            request, *args, **kwargs)
        return drf_request

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        length = request.META.get("CONTENT_LENGTH") or "0"
        # A malformed length is left to the server and the parser; only a stated length
        # above the limit is refused here (ASCII digits: "²".isdigit() is True too).
        if _DIGITS.match(length) and int(length) > self.max_body_bytes:
            # Refused before a byte of the body is read or parsed.
            raise PayloadTooLarge(self.max_body_bytes)
        super().initial(request, *args, **kwargs)  # type: ignore[misc]

    def finalize_response(self, request: Request, response: Response, *args: Any,
                          **kwargs: Any) -> Response:
        response = super().finalize_response(  # type: ignore[misc]
            request, response, *args, **kwargs)
        assert isinstance(response, Response)  # noqa: S101 - DRF returns what it was given
        django_request = request._request if isinstance(request, Request) else request
        request_id = getattr(django_request, "request_id", "")
        if request_id:
            response[REQUEST_ID_HEADER] = request_id
        started = getattr(django_request, "_api_started", None)
        if started is not None:
            REQUEST_SECONDS.labels(endpoint=_endpoint(django_request),
                                   method=django_request.method or "",
                                   status=str(response.status_code)).observe(
                time.perf_counter() - started)
        structlog.contextvars.unbind_contextvars("request_id")
        return response


class ApiView(ApiMixin, APIView):
    pass


class ApiListView(ApiMixin, generics.ListAPIView[Any]):
    pass
