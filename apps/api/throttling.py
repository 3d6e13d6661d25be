"""Per-client throttling: one bucket per API token (or session user), one per IP for the rest.

Rates come from ``settings.API_THROTTLE_RATES`` (``{"read": "600/min", "write": "30/min",
"anon": "60/min"}``; these are the defaults) and counters live in Django's default cache, so
several web processes share them once the cache is Redis. Writes have their own, smaller
bucket so a client polling dashboards cannot starve its own submissions, and vice versa.

The count is a sliding-window estimate over two fixed windows (the current one's count plus
the previous one's, weighted by how much of it still overlaps the last ``duration`` seconds),
kept as two integer counters: a request costs an atomic increment and one read, whatever the
rate. (DRF's ``SimpleRateThrottle`` keeps every request time of the window in one pickled list
that it reads, rewrites and writes back per request: at 600/min that is up to 600 floats per
request, and its cost grew with the rate.) A refused request is not counted, so a client that
backs off gets its quota back on schedule.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

DEFAULT_RATES = {"read": "600/min", "write": "30/min", "anon": "60/min"}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _rates() -> dict[str, str]:
    return {**DEFAULT_RATES, **getattr(settings, "API_THROTTLE_RATES", {})}


def parse_rate(rate: str) -> tuple[int, int]:
    """``"600/min"`` -> (600 requests, 60 seconds), as DRF reads rates."""
    count, period = rate.split("/")
    return int(count), _PERIODS[period[0]]


def _increment(key: str, timeout: int) -> int:
    try:
        return int(cache.incr(key))
    except ValueError:  # no counter yet in this window
        if cache.add(key, 1, timeout):
            return 1
        return int(cache.incr(key))  # another process created it first


class ClientRateThrottle(BaseThrottle):
    """The bucket is ``token:<prefix>`` / ``user:<id>`` / ``ip:<address>``, split by read and
    write."""

    timer = staticmethod(time.time)

    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def ident_of(self, request: Request) -> str:
        token = getattr(request, "auth", None)
        prefix = getattr(token, "prefix", None)
        if prefix:
            return f"token:{prefix}"
        if request.user is not None and request.user.is_authenticated:
            return f"user:{request.user.pk}"
        return f"ip:{self.get_ident(request)}"

    def allow_request(self, request: Request, view: Any) -> bool:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            scope = "anon"
        else:
            scope = "read" if request.method in _SAFE_METHODS else "write"
        rate = _rates().get(scope)
        if rate is None:
            return True
        limit, duration = parse_rate(rate)
        now = self.timer()
        window = int(now // duration)
        base = f"throttle:{scope}:{self.ident_of(request)}:"
        current = _increment(base + str(window), timeout=2 * duration + 1)
        previous = int(cache.get(base + str(window - 1)) or 0)
        elapsed = now - window * duration
        overlap = (duration - elapsed) / duration  # share of the previous window still in
        if previous * overlap + current <= limit:
            return True
        cache.decr(base + str(window))  # a refused request does not use up the quota
        current -= 1
        if current >= limit or previous == 0:
            self.wait_seconds = duration - elapsed  # the next window starts afresh
        else:  # when the previous window's weight has decayed enough
            self.wait_seconds = max(0.0, duration * (1 - (limit - current) / previous)
                                    - elapsed)
        return False

    def wait(self) -> float | None:
        return self.wait_seconds
