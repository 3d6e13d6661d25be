"""One error body for every API failure: RFC 9457 problem details (``application/problem+json``).

::

    {"type": "urn:cybermesh:problem:validation_error", "title": "Invalid request",
     "status": 400, "detail": "...", "code": "validation_error", "instance": "/api/v1/...",
     "request_id": "...", "errors": {"limit": ["Ensure this value is less than ..."]}}

``type`` is a URN (RFC 9457 3.1.1 allows a non-resolvable URI); ``code`` repeats its last part
so clients can switch on a plain string; ``errors`` appears only on validation problems; a
refused transaction adds ``reason`` (the admission/validation reason enum value).
:func:`problem_exception_handler` is the DRF exception handler; ``docs/api.md`` lists the codes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:cybermesh:problem:"


class ProblemCode(enum.StrEnum):
    VALIDATION_ERROR = "validation_error"
    MALFORMED_REQUEST = "malformed_request"
    NOT_AUTHENTICATED = "not_authenticated"
    AUTHENTICATION_FAILED = "authentication_failed"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    THROTTLED = "throttled"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    IDEMPOTENCY_IN_PROGRESS = "idempotency_in_progress"
    TRANSACTION_REJECTED = "transaction_rejected"
    CASE_STATE_CONFLICT = "case_state_conflict"
    CASE_ACTION_REFUSED = "case_action_refused"
    STATE_UNAVAILABLE = "state_unavailable"
    SERVICE_UNAVAILABLE = "service_unavailable"


_TITLES: dict[ProblemCode, str] = {
    ProblemCode.VALIDATION_ERROR: "Invalid request",
    ProblemCode.MALFORMED_REQUEST: "Malformed request body",
    ProblemCode.NOT_AUTHENTICATED: "Authentication required",
    ProblemCode.AUTHENTICATION_FAILED: "Authentication failed",
    ProblemCode.PERMISSION_DENIED: "Permission denied",
    ProblemCode.NOT_FOUND: "Not found",
    ProblemCode.METHOD_NOT_ALLOWED: "Method not allowed",
    ProblemCode.NOT_ACCEPTABLE: "Not acceptable",
    ProblemCode.UNSUPPORTED_MEDIA_TYPE: "Unsupported media type",
    ProblemCode.PAYLOAD_TOO_LARGE: "Request body too large",
    ProblemCode.THROTTLED: "Too many requests",
    ProblemCode.IDEMPOTENCY_KEY_REUSED: "Idempotency key reused with another request",
    ProblemCode.IDEMPOTENCY_IN_PROGRESS: "Request with this idempotency key in progress",
    ProblemCode.TRANSACTION_REJECTED: "Transaction rejected",
    ProblemCode.CASE_STATE_CONFLICT: "The case's status does not allow this",
    ProblemCode.CASE_ACTION_REFUSED: "The case does not allow this action",
    ProblemCode.STATE_UNAVAILABLE: "State not available",
    ProblemCode.SERVICE_UNAVAILABLE: "Service unavailable",
}

# DRF's own exceptions, by class, to our codes (the most specific class first).
_DRF_CODES: tuple[tuple[type[exceptions.APIException], ProblemCode], ...] = (
    (exceptions.ValidationError, ProblemCode.VALIDATION_ERROR),
    (exceptions.ParseError, ProblemCode.MALFORMED_REQUEST),
    (exceptions.NotAuthenticated, ProblemCode.NOT_AUTHENTICATED),
    (exceptions.AuthenticationFailed, ProblemCode.AUTHENTICATION_FAILED),
    (exceptions.PermissionDenied, ProblemCode.PERMISSION_DENIED),
    (exceptions.NotFound, ProblemCode.NOT_FOUND),
    (exceptions.MethodNotAllowed, ProblemCode.METHOD_NOT_ALLOWED),
    (exceptions.NotAcceptable, ProblemCode.NOT_ACCEPTABLE),
    (exceptions.UnsupportedMediaType, ProblemCode.UNSUPPORTED_MEDIA_TYPE),
    (exceptions.Throttled, ProblemCode.THROTTLED),
)


class ApiProblem(exceptions.APIException):
    """An API error of this project: a code, a status, a detail and optional extra members."""

    def __init__(self, code: ProblemCode, detail: str, *, status: int,
                 extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail=detail, code=code.value)
        self.status_code = status
        self.problem_code = code
        self.extra = dict(extra or {})


class PayloadTooLarge(ApiProblem):
    def __init__(self, limit: int) -> None:
        super().__init__(ProblemCode.PAYLOAD_TOO_LARGE,
                         f"The request body is larger than {limit} bytes.", status=413,
                         extra={"limit_bytes": limit})


def _flatten(detail: Any) -> Any:
    """DRF ErrorDetail trees -> plain lists/dicts of strings."""
    if isinstance(detail, Mapping):
        return {str(key): _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list | tuple):
        return [_flatten(item) for item in detail]
    return str(detail)


def _validation_errors(detail: Any) -> dict[str, Any]:
    flat = _flatten(detail)
    if isinstance(flat, dict):
        return flat
    return {"non_field_errors": flat if isinstance(flat, list) else [flat]}


def problem_body(*, code: ProblemCode, status: int, detail: str, request: Request | None,
                 extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code.value,
        "title": _TITLES[code],
        "status": status,
        "detail": detail,
        "code": code.value,
    }
    if request is not None:
        body["instance"] = request.path
        request_id = getattr(request, "request_id", "")
        if request_id:
            body["request_id"] = request_id
    if extra:
        body.update(extra)
    return body


def problem_response(*, code: ProblemCode, status: int, detail: str, request: Request | None,
                     extra: Mapping[str, Any] | None = None,
                     headers: Mapping[str, str] | None = None) -> Response:
    return Response(problem_body(code=code, status=status, detail=detail, request=request,
                                 extra=extra),
                    status=status, headers=dict(headers or {}),
                    content_type=PROBLEM_CONTENT_TYPE)


def _code_of(exc: exceptions.APIException) -> ProblemCode:
    for exception_class, code in _DRF_CODES:
        if isinstance(exc, exception_class):
            return code
    return ProblemCode.MALFORMED_REQUEST if exc.status_code == 400 else \
        ProblemCode.SERVICE_UNAVAILABLE


def problem_exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response | None:
    """DRF ``EXCEPTION_HANDLER``: every handled error becomes a problem-details response.

    Anything not an API error (a bug) returns ``None`` and propagates as a 500: hiding it
    behind a 4xx would hide the bug.
    """
    request = context.get("request")
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(int(_setting("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)))
    if not isinstance(exc, exceptions.APIException):
        return None
    headers: dict[str, str] = {}
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    extra: dict[str, Any] = {}
    if isinstance(exc, ApiProblem):
        code, extra = exc.problem_code, exc.extra
        detail = str(exc.detail)
    elif isinstance(exc, exceptions.ValidationError):
        code = ProblemCode.VALIDATION_ERROR
        extra = {"errors": _validation_errors(exc.detail)}
        detail = "The request has invalid fields; see errors."
    else:
        code = _code_of(exc)
        detail = str(exc.detail) if not isinstance(exc.detail, list | dict) else \
            "; ".join(str(item) for item in _flatten(exc.detail))
    wait = getattr(exc, "wait", None) if isinstance(exc, exceptions.Throttled) else None
    if wait is not None:
        headers["Retry-After"] = str(int(wait) + 1)
        extra = {"retry_after_seconds": int(wait) + 1}
    return problem_response(code=code, status=exc.status_code, detail=detail,
                            request=request, extra=extra, headers=headers)


def _setting(name: str, default: int) -> int:
    from django.conf import settings

    value = getattr(settings, name, default)
    return default if value is None else int(value)


class ProblemSerializer(serializers.Serializer[Any]):
    """RFC 9457 problem details (schema only)."""

    type = serializers.CharField(help_text="URN naming the problem type")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.ChoiceField(choices=[code.value for code in ProblemCode])
    instance = serializers.CharField(required=False, help_text="The request path")
    request_id = serializers.CharField(required=False)
    errors = serializers.DictField(  # type: ignore[assignment]  # the RFC member's name
        child=serializers.JSONField(), required=False,
        help_text="Field name -> messages (validation problems only)")
    reason = serializers.CharField(required=False,
                                   help_text="Why a transaction or case action was refused "
                                             "(reason code)")


_DESCRIPTIONS = {
    400: "Invalid parameters or body",
    401: "Missing or invalid credentials",
    403: "The caller's role does not allow this",
    404: "No such resource",
    409: "Conflict: a request with this idempotency key is still in progress, or the "
         "case's status does not allow the change",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Well-formed but refused (transaction rejected, idempotency key reused, case "
         "without an offender to quarantine)",
    429: "Throttled; retry after Retry-After seconds",
    503: "Not ready or state unavailable",
}


def problem_responses(*statuses: int) -> dict[tuple[int, str], OpenApiResponse]:
    """OpenAPI responses for ``statuses``, all with the problem-details body."""
    return {(status, PROBLEM_CONTENT_TYPE): OpenApiResponse(ProblemSerializer,
                                                            description=_DESCRIPTIONS[status])
            for status in statuses}
