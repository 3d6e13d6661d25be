"""Replay cache: verdicts, window boundaries, bounded memory that never reopens a replay."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermesh.protocol.crypto.replay import (
    MAX_NONCE_BYTES,
    ReplayCache,
    ReplayVerdict,
    check_skew,
)

pytestmark = pytest.mark.unit

V = ReplayVerdict


def test_second_use_of_a_nonce_by_the_same_producer_is_replayed() -> None:
    cache = ReplayCache(window_seconds=60, max_entries=100)
    assert cache.check_and_remember("ai-1", b"n1", created_at=1000, now=1000) is V.FRESH
    assert cache.check_and_remember("ai-1", b"n1", created_at=1000, now=1001) is V.REPLAYED
    assert cache.check_and_remember("ai-1", b"n1", created_at=1005, now=1005) is V.REPLAYED
    assert cache.check_and_remember("ai-2", b"n1", created_at=1000, now=1001) is V.FRESH
    assert cache.check_and_remember("ai-1", b"n2", created_at=1000, now=1001) is V.FRESH
    assert len(cache) == 3


def test_window_boundaries_are_inclusive() -> None:
    cache = ReplayCache(window_seconds=60, max_entries=100, max_future_skew_seconds=5)
    assert cache.check_and_remember("p", b"a", created_at=940, now=1000) is V.FRESH
    assert cache.check_and_remember("p", b"b", created_at=939, now=1000) is V.TOO_OLD
    assert cache.check_and_remember("p", b"c", created_at=1005, now=1000) is V.FRESH
    assert cache.check_and_remember("p", b"d", created_at=1006, now=1000) is V.FROM_FUTURE
    assert len(cache) == 2


def test_entries_past_the_window_are_forgotten_and_their_replays_are_too_old() -> None:
    cache = ReplayCache(window_seconds=10, max_entries=100)
    cache.check_and_remember("p", b"a", created_at=100, now=100)
    cache.check_and_remember("p", b"b", created_at=105, now=105)
    assert cache.check_and_remember("p", b"c", created_at=111, now=111) is V.FRESH
    assert len(cache) == 2  # "a" (created 100 < 111 - 10) is gone
    assert cache.check_and_remember("p", b"a", created_at=100, now=111) is V.TOO_OLD


def test_a_clock_that_steps_back_does_not_reopen_forgotten_nonces() -> None:
    cache = ReplayCache(window_seconds=10, max_entries=100)
    cache.check_and_remember("p", b"a", created_at=100, now=100)
    cache.check_and_remember("p", b"z", created_at=200, now=200)  # forgets "a"
    assert cache.check_and_remember("p", b"a", created_at=100, now=105) is V.TOO_OLD


def test_full_cache_evicts_the_oldest_and_refuses_its_replay_as_too_old() -> None:
    cache = ReplayCache(window_seconds=1000, max_entries=3)
    for offset, nonce in enumerate((b"a", b"b", b"c")):
        assert cache.check_and_remember("p", nonce, created_at=100 + offset, now=110) is V.FRESH
    assert cache.check_and_remember("p", b"d", created_at=105, now=110) is V.FRESH
    assert len(cache) == 3
    assert cache.floor == 100
    assert cache.check_and_remember("p", b"a", created_at=100, now=110) is V.TOO_OLD
    assert cache.check_and_remember("p", b"b", created_at=101, now=110) is V.REPLAYED
    # Older than everything kept while full: refused without evicting anything younger.
    assert cache.check_and_remember("p", b"e", created_at=101, now=110) is V.TOO_OLD
    assert cache.check_and_remember("p", b"b", created_at=101, now=110) is V.REPLAYED


operations = st.lists(
    st.tuples(st.sampled_from(["p1", "p2"]), st.sampled_from([b"a", b"b", b"c", b"d", b"e"]),
              st.integers(0, 40), st.integers(-5, 40)),
    max_size=60,
)


@given(operations, st.integers(1, 6), st.integers(1, 20))
@settings(max_examples=500)
def test_no_envelope_is_ever_fresh_twice_and_memory_stays_bounded(
    ops: list[tuple[str, bytes, int, int]], max_entries: int, window: int
) -> None:
    """A replayed envelope repeats producer, nonce and the signed created_at: it must never be
    FRESH again, whatever was evicted in between."""
    cache = ReplayCache(window_seconds=window, max_entries=max_entries,
                        max_future_skew_seconds=3)
    fresh_envelopes: set[tuple[str, bytes, int]] = set()
    fresh_nonces: set[tuple[str, bytes]] = set()
    now = 0
    for producer, nonce, created_at, step in ops:
        now += step  # the clock may also step back
        was_full = len(cache) == max_entries
        verdict = cache.check_and_remember(producer, nonce, created_at, now)
        if verdict is V.FRESH:
            assert (producer, nonce, created_at) not in fresh_envelopes
            assert now - window <= created_at <= now + 3
            fresh_envelopes.add((producer, nonce, created_at))
            fresh_nonces.add((producer, nonce))
        elif verdict is V.REPLAYED:
            assert (producer, nonce) in fresh_nonces
        elif verdict is V.FROM_FUTURE:
            assert created_at > now + 3
        else:
            assert verdict is V.TOO_OLD
            assert created_at < now - window or created_at <= (cache.floor or 0) or was_full
        assert len(cache) <= max_entries


def test_check_skew_classifies_both_directions() -> None:
    assert check_skew(1000, now=1000, max_skew=5) is V.FRESH
    assert check_skew(995, now=1000, max_skew=5) is V.FRESH
    assert check_skew(1005, now=1000, max_skew=5) is V.FRESH
    assert check_skew(994, now=1000, max_skew=5) is V.TOO_OLD
    assert check_skew(1006, now=1000, max_skew=5) is V.FROM_FUTURE


def test_cache_refuses_oversized_nonces_and_nonsense_settings() -> None:
    cache = ReplayCache(window_seconds=10, max_entries=10)
    with pytest.raises(ValueError, match="nonce"):
        cache.check_and_remember("p", bytes(MAX_NONCE_BYTES + 1), created_at=0, now=0)
    with pytest.raises(ValueError, match="nonce"):
        cache.check_and_remember("p", "abc", created_at=0, now=0)  # type: ignore[arg-type]
    for kwargs in ({"window_seconds": 0, "max_entries": 1},
                   {"window_seconds": 1, "max_entries": 0}):
        with pytest.raises(ValueError, match="ReplayCache"):
            ReplayCache(**kwargs)
