"""The sliding-window throttle: the quota, its recovery as the previous window's weight fades,
and refusals that do not use up the quota. Time is a fake clock (no sleeping)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from rest_framework.test import APIRequestFactory

from apps.api.throttling import ClientRateThrottle, parse_rate

pytestmark = [pytest.mark.integration]  # counters in the configured cache (Redis)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _requests(throttle_clock: Clock, count: int, ip: str = "192.0.2.10") -> list[bool]:
    request: Any = APIRequestFactory().get("/api/v1/blocks/", REMOTE_ADDR=ip)
    request.user, request.auth = AnonymousUser(), None
    answers = []
    for _ in range(count):
        throttle = ClientRateThrottle()
        throttle.timer = throttle_clock  # type: ignore[assignment]
        answers.append(throttle.allow_request(request, None))
    return answers


def test_a_client_gets_its_quota_then_waits_as_the_last_window_fades(settings: Any) -> None:
    settings.API_THROTTLE_RATES = {"anon": "10/min"}
    clock = Clock(60_000 * 60.0)  # the start of a window
    assert _requests(clock, 12) == [True] * 10 + [False] * 2
    # Refusals were not counted: half-way into the next window, the previous window (10)
    # weighs 5, so 5 more pass.
    clock.now += 90
    assert _requests(clock, 7) == [True] * 5 + [False] * 2
    # Another client has its own bucket.
    assert _requests(clock, 1, ip="192.0.2.11") == [True]
    # Two windows later nothing of this burst is left.
    clock.now += 120
    assert _requests(clock, 10) == [True] * 10


def test_a_refusal_says_how_long_to_wait(settings: Any) -> None:
    settings.API_THROTTLE_RATES = {"anon": "2/min"}
    clock = Clock(60_000 * 60.0 + 15)
    assert _requests(clock, 2) == [True, True]
    request: Any = APIRequestFactory().get("/", REMOTE_ADDR="192.0.2.10")
    request.user, request.auth = AnonymousUser(), None
    throttle = ClientRateThrottle()
    throttle.timer = clock  # type: ignore[assignment]
    assert not throttle.allow_request(request, None)
    assert throttle.wait() == pytest.approx(45)  # until this window ends


@pytest.mark.unit
def test_rates_read_as_drf_reads_them() -> None:
    assert parse_rate("600/min") == (600, 60)
    assert parse_rate("30/s") == (30, 1)
    assert parse_rate("5/hour") == (5, 3600)
