"""Optional mutual TLS: API clients authenticated by a client certificate that a
TLS-terminating proxy (nginx, Envoy, HAProxy) has verified.

The proxy terminates TLS, verifies the client certificate against the operators' CA, and
passes the verified certificate's subject in a header (``API_MTLS_SUBJECT_HEADER``, default
``X-SSL-Client-S-DN``) with the verification result (``API_MTLS_VERIFY_HEADER``, default
``X-SSL-Client-Verify: SUCCESS``). Those headers are believed only from the proxies listed in
``API_MTLS_TRUSTED_PROXIES`` (the TCP peer address, never a forwarded-for header); from anyone
else they are ignored and counted, so a client cannot claim a certificate by sending the
header itself. ``API_MTLS_CLIENTS`` maps each certificate subject, exactly as the proxy
writes it, to the username whose role the client gets. An empty proxy list (the default)
turns the feature off. See docs/api.md for a proxy configuration.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from prometheus_client import Counter
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from apps.api.networks import address_in
from cybermesh.logging import get_logger

logger = get_logger(__name__)

DEFAULT_SUBJECT_HEADER = "X-SSL-Client-S-DN"
DEFAULT_VERIFY_HEADER = "X-SSL-Client-Verify"
VERIFIED = "SUCCESS"
MAX_SUBJECT_CHARS = 1024

REFUSALS = Counter("cybermesh_api_client_cert_refusals",
                   "Client-certificate headers not accepted, by reason.", ["reason"])


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """What a request authenticated with (``request.auth``). ``prefix`` names the credential
    in audit entries and throttling buckets, as a token's prefix does, without repeating the
    subject everywhere."""

    subject: str
    prefix: str


def _meta_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def trusted_proxies() -> list[str]:
    return list(getattr(settings, "API_MTLS_TRUSTED_PROXIES", []) or [])


class ClientCertificateAuthentication(BaseAuthentication):
    """A verified client certificate forwarded by a trusted proxy (module docstring)."""

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, ClientCertificate] | None:
        proxies = trusted_proxies()
        if not proxies:
            return None
        meta = request.META
        subject = meta.get(_meta_key(getattr(settings, "API_MTLS_SUBJECT_HEADER",
                                             DEFAULT_SUBJECT_HEADER)))
        if subject is None:
            return None  # no certificate: the other methods decide
        peer = meta.get("REMOTE_ADDR", "")
        if not address_in(peer, proxies):
            # Only the proxy may speak for a certificate; anyone else sending the header is
            # ignored (and may still authenticate another way).
            REFUSALS.labels(reason="untrusted_source").inc()
            logger.warning("api.client_cert.untrusted_source", peer=peer)
            return None
        verified = meta.get(_meta_key(getattr(settings, "API_MTLS_VERIFY_HEADER",
                                              DEFAULT_VERIFY_HEADER)))
        if verified != VERIFIED:
            REFUSALS.labels(reason="not_verified").inc()
            raise exceptions.AuthenticationFailed("The client certificate was not verified.")
        return self._client(subject)

    def _client(self, subject: str) -> tuple[AbstractBaseUser, ClientCertificate]:
        clients: dict[str, Any] = dict(getattr(settings, "API_MTLS_CLIENTS", {}) or {})
        username = clients.get(subject) if len(subject) <= MAX_SUBJECT_CHARS else None
        if not isinstance(username, str):
            REFUSALS.labels(reason="unknown_subject").inc()
            raise exceptions.AuthenticationFailed(
                "This client certificate is not registered as an API client.")
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            REFUSALS.labels(reason="inactive_user").inc()
            raise exceptions.AuthenticationFailed("User inactive.")
        digest = hashlib.sha256(subject.encode()).hexdigest()[:10]
        return user, ClientCertificate(subject=subject, prefix=f"cert-{digest}")
