"""``Idempotency-Key`` on POSTs: a retried request gets the first answer, not a second effect.

Keys are per user. The first request with a key claims it (a row with no response yet), runs,
and stores its final response; a retry with the same key and the same request (method, path,
body, hashed) gets that response back, marked ``Idempotent-Replayed: true``. The same key with
a different request is a 422 (the client has a bug, and guessing which request it meant would
be worse). A retry that arrives while the first is still running is a 409.

Only final answers are stored (success, or a deterministic refusal); transient failures
(throttling, unavailable mempool, server errors) release the key so a retry runs again. A claim
whose request died is taken over after ``IN_PROGRESS_LEASE``; keys are kept for ``KEY_TTL``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api.errors import ApiProblem, ProblemCode
from apps.api.models import IdempotencyKey

HEADER = "Idempotency-Key"
KEY_TTL = timedelta(hours=24)
IN_PROGRESS_LEASE = timedelta(seconds=60)
_IN_PROGRESS = 0
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
STORED_STATUSES = frozenset({200, 201, 202, 400, 403, 404, 413, 422})
# The documented header of every POST that honours it.
PARAMETER = OpenApiParameter(HEADER, str, OpenApiParameter.HEADER, required=False,
                             description="Retry-safe key (1-200 printable ASCII); a retry "
                                         "gets the first answer")


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: Any


def request_hash(method: str, path: str, body: bytes) -> bytes:
    hasher = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        hasher.update(len(part).to_bytes(8, "big") + part)
    return hasher.digest()


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise ApiProblem(ProblemCode.VALIDATION_ERROR, "The request has invalid fields; see "
                         "errors.", status=400, extra={"errors": {HEADER: [
                             "Must be 1 to 200 printable ASCII characters."]}})
    return key


def claim(*, user_id: int, key: str, digest: bytes) -> StoredResponse | None:
    """Claim ``key`` for this request; return the stored response if it was answered."""
    now = timezone.now()
    for _ in range(2):
        try:
            with transaction.atomic():
                IdempotencyKey.objects.create(user_id=user_id, key=key, request_hash=digest,
                                              status_code=_IN_PROGRESS, response_body={},
                                              created_at=now)
            return None
        except IntegrityError:
            pass
        existing = IdempotencyKey.objects.filter(user_id=user_id, key=key).first()
        if existing is None:
            continue  # released between our insert and our read: try once more
        expired = (existing.created_at < now - KEY_TTL or
                   (existing.status_code == _IN_PROGRESS
                    and existing.created_at < now - IN_PROGRESS_LEASE))
        if expired:
            IdempotencyKey.objects.filter(user_id=user_id, key=key,
                                          created_at=existing.created_at).delete()
            continue
        if bytes(existing.request_hash) != digest:
            raise ApiProblem(ProblemCode.IDEMPOTENCY_KEY_REUSED,
                             "This Idempotency-Key was used with a different request.",
                             status=422)
        if existing.status_code == _IN_PROGRESS:
            raise ApiProblem(ProblemCode.IDEMPOTENCY_IN_PROGRESS,
                             "A request with this Idempotency-Key is still being processed.",
                             status=409)
        return StoredResponse(existing.status_code, existing.response_body)
    raise ApiProblem(ProblemCode.IDEMPOTENCY_IN_PROGRESS,
                     "A request with this Idempotency-Key is still being processed.",
                     status=409)


def complete(*, user_id: int, key: str, status_code: int, body: Any) -> None:
    """Store the final answer, or release the key when the answer was transient."""
    rows = IdempotencyKey.objects.filter(user_id=user_id, key=key,
                                         status_code=_IN_PROGRESS)
    if status_code in STORED_STATUSES and _storable(body):
        rows.update(status_code=status_code, response_body=body)
    else:
        rows.delete()


def _storable(body: Any) -> bool:
    """PostgreSQL's jsonb cannot hold U+0000, which a refusal can echo (the request path is
    in every problem body). Such an answer is not stored: refusals are deterministic, so the
    retry runs again and gets the same answer."""
    return "\\u0000" not in json.dumps(body)


def purge_expired(*, now: Any = None) -> int:
    """Delete keys older than ``KEY_TTL`` (index on ``created_at``)."""
    cutoff = (now or timezone.now()) - KEY_TTL
    return IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()[0]


def respond_once(request: Request, handle_exception: Callable[[Exception], Response],
                 run: Callable[[], Response]) -> Response:
    """Answer a POST with ``run()``, once per ``Idempotency-Key`` (module docstring).

    Without the header, ``run()`` answers. With it, a stored answer is replayed, or ``run()``
    answers and its final response is stored; ``handle_exception`` (the view's) turns an API
    error into the response to store. Anything else (a bug, a lost database) releases the key
    so the retry runs again, and propagates as a 500.
    """
    key = request.headers.get(HEADER)
    if key is None:
        return run()
    user_id = cast(int, request.user.pk)  # the views using this admit logged-in users only
    digest = request_hash(request.method or "POST", request.path, request.body)
    stored = claim(user_id=user_id, key=check_key(key), digest=digest)
    if stored is not None:
        return Response(stored.body, status=stored.status_code,
                        headers={"Idempotent-Replayed": "true"},
                        content_type=("application/json" if stored.status_code < 400
                                      else "application/problem+json"))
    response: Response | None = None
    try:
        response = run()
    except APIException as error:
        response = handle_exception(error)
    finally:
        complete(user_id=user_id, key=key,
                 status_code=500 if response is None else response.status_code,
                 body=None if response is None else response.data)
    return response
