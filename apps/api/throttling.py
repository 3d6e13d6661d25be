"""Per-client throttling: one bucket per API token (or session user), one per IP for the rest.

Rates come from ``settings.API_THROTTLE_RATES`` (``{"read": "600/min", "write": "30/min",
"anon": "60/min"}``; these are the defaults) and counters live in Django's default cache, so
several web processes share them once the cache is Redis. Writes have their own, smaller
bucket so a client polling dashboards cannot starve its own submissions, and vice versa.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

DEFAULT_RATES = {"read": "600/min", "write": "30/min", "anon": "60/min"}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _rates() -> dict[str, str]:
    return {**DEFAULT_RATES, **getattr(settings, "API_THROTTLE_RATES", {})}


class ClientRateThrottle(SimpleRateThrottle):
    """The bucket is ``token:<prefix>`` / ``user:<id>`` / ``ip:<address>``, split by read and
    write."""

    cache_format = "throttle_%(scope)s_%(ident)s"

    scope = "anon"

    def __init__(self) -> None:
        # The scope (and so the rate) depends on the request; it is set in allow_request.
        self.rate: str | None = None
        self.num_requests: int | None = None
        self.duration: int | None = None

    def get_rate(self) -> str | None:
        return _rates().get(self.scope)

    def allow_request(self, request: Request, view: Any) -> bool:
        user = getattr(request, "user", None)
        authenticated = bool(user is not None and user.is_authenticated)
        if not authenticated:
            self.scope = "anon"
        else:
            self.scope = "read" if request.method in _SAFE_METHODS else "write"
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        token = getattr(request, "auth", None)
        prefix = getattr(token, "prefix", None)
        if prefix:
            ident = f"token:{prefix}"
        elif request.user is not None and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
