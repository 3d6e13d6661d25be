"""API tokens: issue, authenticate, revoke. Only a hash of a token is ever stored.

A token reads ``cm_<prefix>_<secret>``: ``prefix`` (10 hex characters, public, indexed) finds
the row, and the SHA-256 of the whole token is compared in constant time with the stored one.
The secret is 32 random bytes, so a fast hash is enough; a database leak yields no usable
token. The token itself is shown once, by :func:`issue_token`, and never logged: the
authentication class only ever names a token by its prefix.

Clients send ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from apps.api.models import ApiToken
from apps.api.permissions import cached_user
from apps.audit.choices import Outcome
from apps.audit.services import record_audit

TOKEN_PATTERN = re.compile(r"^cm_([0-9a-f]{10})_([A-Za-z0-9_-]{43})$")
# Refresh last_used_at at most this often: a write per request would cost more than the read.
LAST_USED_GRANULARITY = timedelta(minutes=5)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str  # shown once to the caller, never stored
    record: ApiToken


def issue_token(*, user: Any, name: str, acting_user: str,
                expires_at: datetime | None = None) -> IssuedToken:
    """Create a token for ``user``; the returned ``token`` string is the only copy."""
    prefix = secrets.token_hex(5)
    token = f"cm_{prefix}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        record = ApiToken.objects.create(
            prefix=prefix, secret_hash=hash_token(token), user=user, name=name,
            created_at=timezone.now(), expires_at=expires_at)
        record_audit(actor=acting_user, action="api.token.issue", target=f"token:{prefix}",
                     outcome=Outcome.SUCCESS,
                     details={"user": user.get_username(), "name": name,
                              "expires_at": expires_at.isoformat() if expires_at else None})
    return IssuedToken(token=token, record=record)


def revoke_token(*, prefix: str, acting_user: str) -> bool:
    """Revoke the token with ``prefix``; False if there is no such live token."""
    with transaction.atomic():
        changed = ApiToken.objects.filter(prefix=prefix, revoked_at__isnull=True).update(
            revoked_at=timezone.now())
        record_audit(actor=acting_user, action="api.token.revoke", target=f"token:{prefix}",
                     outcome=Outcome.SUCCESS if changed else Outcome.FAILURE)
    return bool(changed)


@dataclass(frozen=True, slots=True)
class TokenCredential:
    """What a request authenticated with (``request.auth``): the token, by its public
    prefix (throttling buckets and audit entries name it so)."""

    token_id: int
    prefix: str


@dataclass(frozen=True, slots=True)
class _TokenRow:
    token_id: int
    secret_hash: bytes
    revoked_at: datetime | None
    expires_at: datetime | None
    last_used_at: datetime | None
    user_id: int
    user_is_active: bool


_LOOKUP_COLUMNS = ("pk", "secret_hash", "revoked_at", "expires_at", "last_used_at", "user_id",
                   "user__is_active")
_PLACEHOLDER = "cm-token-prefix"


@functools.cache
def _lookup_sql() -> str:
    """The lookup's SQL, compiled by the ORM once: the statement never changes, only the
    prefix does, and compiling it on every request cost more than running it."""
    query = (ApiToken.objects.filter(prefix=_PLACEHOLDER).order_by()
             .values_list(*_LOOKUP_COLUMNS)[:1].query)
    sql, params = query.sql_with_params()
    if params != (_PLACEHOLDER,):  # the ORM inlined something: this trick does not apply
        raise ImproperlyConfigured(f"unexpected token lookup parameters {params!r}")
    return str(sql)


def _token_row(prefix: str) -> _TokenRow | None:
    """One index probe on ``api_tokens.prefix``, joined to the user's ``is_active``."""
    connection = connections[ApiToken.objects.db]
    with connection.cursor() as cursor:
        cursor.execute(_lookup_sql(), [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    token_id, secret_hash, revoked_at, expires_at, last_used_at, user_id, active = row
    return _TokenRow(token_id, bytes(secret_hash), revoked_at, expires_at, last_used_at,
                     user_id, bool(active))


class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer cm_...``. A malformed, unknown, expired or revoked token is a
    401 (never silently anonymous), so a client with a broken token learns it at once.

    The token row and its user's ``is_active`` are read on every request (one precompiled
    query), so revoking a token or deactivating a user applies at once. The user object
    itself comes from the per-process cache the permission checks share (a rename or a
    superuser flag applies within ``API_PERMISSION_CACHE_SECONDS``)."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, TokenCredential] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization must be 'Bearer <token>'.")
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        match = TOKEN_PATTERN.match(token)
        if match is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        record = _token_row(match.group(1))
        if record is None or not hmac.compare_digest(record.secret_hash, hash_token(token)):
            raise exceptions.AuthenticationFailed("Invalid token.")
        now = timezone.now()
        if record.revoked_at is not None or (record.expires_at is not None
                                             and record.expires_at <= now):
            raise exceptions.AuthenticationFailed("Token expired or revoked.")
        if not record.user_is_active:
            raise exceptions.AuthenticationFailed("User inactive.")
        user = cached_user(record.user_id)
        if user is None or not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive.")
        if record.last_used_at is None or now - record.last_used_at > LAST_USED_GRANULARITY:
            ApiToken.objects.filter(pk=record.token_id).update(last_used_at=now)
        return user, TokenCredential(record.token_id, match.group(1))

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'
