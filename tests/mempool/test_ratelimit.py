"""Token bucket arithmetic (integer milli-tokens)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.mempool.ratelimit import MILLI_TOKENS, Bucket, refill, take

pytestmark = pytest.mark.unit


def test_a_new_producer_starts_with_a_full_bucket() -> None:
    assert refill(None, now_ms=5, rate_per_second=2, burst=3) == Bucket(3000, 5)


def test_tokens_refill_at_the_rate_up_to_the_burst() -> None:
    empty = Bucket(0, 1000)
    assert refill(empty, now_ms=1250, rate_per_second=4, burst=10).tokens_milli == 1000
    assert refill(empty, now_ms=999_000, rate_per_second=4, burst=10).tokens_milli == 10_000


def test_a_clock_stepping_back_refills_nothing_until_it_catches_up() -> None:
    bucket = Bucket(0, 5000)
    back = refill(bucket, now_ms=1000, rate_per_second=1000, burst=10)
    assert back == Bucket(0, 5000)
    assert refill(back, now_ms=5001, rate_per_second=1000, burst=10).tokens_milli == 1000


def test_taking_needs_a_whole_token() -> None:
    assert take(Bucket(999, 0)) is None
    assert take(Bucket(1000, 7)) == Bucket(0, 7)


@given(rate=st.integers(1, 10_000), burst=st.integers(1, 1000),
       steps=st.lists(st.integers(0, 5000), max_size=50))
def test_admissions_never_exceed_burst_plus_rate_times_elapsed(rate: int, burst: int,
                                                               steps: list[int]) -> None:
    now, bucket, taken = 0, None, 0
    for step in steps:
        now += step
        bucket = refill(bucket, now_ms=now, rate_per_second=rate, burst=burst)
        spent = take(bucket)
        if spent is not None:
            bucket, taken = spent, taken + 1
    assert taken * MILLI_TOKENS <= burst * MILLI_TOKENS + now * rate
