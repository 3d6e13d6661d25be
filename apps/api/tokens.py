"""API tokens: issue, authenticate, revoke. Only a hash of a token is ever stored.

A token reads ``cm_<prefix>_<secret>``: ``prefix`` (10 hex characters, public, indexed) finds
the row, and the SHA-256 of the whole token is compared in constant time with the stored one.
The secret is 32 random bytes, so a fast hash is enough; a database leak yields no usable
token. The token itself is shown once, by :func:`issue_token`, and never logged: the
authentication class only ever names a token by its prefix.

Clients send ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from apps.api.models import ApiToken
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


class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer cm_...``. A malformed, unknown, expired or revoked token is a
    401 (never silently anonymous), so a client with a broken token learns it at once."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, ApiToken] | None:
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
        record = (ApiToken.objects.select_related("user")
                  .filter(prefix=match.group(1)).first())
        if record is None or not hmac.compare_digest(bytes(record.secret_hash),
                                                     hash_token(token)):
            raise exceptions.AuthenticationFailed("Invalid token.")
        now = timezone.now()
        if record.revoked_at is not None or (record.expires_at is not None
                                             and record.expires_at <= now):
            raise exceptions.AuthenticationFailed("Token expired or revoked.")
        if not record.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive.")
        if record.last_used_at is None or now - record.last_used_at > LAST_USED_GRANULARITY:
            ApiToken.objects.filter(pk=record.pk).update(last_used_at=now)
        return record.user, record

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'
