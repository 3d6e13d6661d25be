"""Token buckets per (peer, topic) and reply credits for block sync."""

from __future__ import annotations

import pytest

from apps.node.p2p.backoff import Backoff
from apps.node.p2p.errors import P2PConfigError
from apps.node.p2p.framing import Topic
from apps.node.p2p.ratelimit import Admission, RateLimit, RateLimiter, TokenBucket

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_the_burst_then_refills_at_the_rate():
    clock = Clock()
    bucket = TokenBucket(RateLimit(frames_per_second=2, burst=3), clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5
    assert bucket.take()
    assert not bucket.take()
    clock.now += 100
    assert sum(bucket.take() for _ in range(10)) == 3


def limiter(clock: Clock, *, max_credits: int = 64) -> RateLimiter:
    limits = {topic: RateLimit(frames_per_second=1, burst=2) for topic in Topic}
    return RateLimiter(limits, clock, max_credits=max_credits)


def test_limits_are_per_peer_and_per_topic():
    clock = Clock()
    rate = limiter(clock)
    assert [rate.admit("a", Topic.VOTE) for _ in range(3)] == [
        Admission.ALLOWED, Admission.ALLOWED, Admission.LIMITED]
    assert rate.admit("b", Topic.VOTE) is Admission.ALLOWED
    assert rate.admit("a", Topic.PROPOSAL) is Admission.ALLOWED


def test_replies_to_our_requests_bypass_the_bucket_one_per_request():
    clock = Clock()
    rate = limiter(clock)
    for _ in range(2):
        rate.admit("a", Topic.BLOCKSYNC)
    assert rate.admit("a", Topic.BLOCKSYNC) is Admission.LIMITED
    for _ in range(50):
        rate.expect_reply("a", Topic.BLOCKSYNC)
    assert [rate.admit("a", Topic.BLOCKSYNC) for _ in range(51)] == (
        [Admission.REPLY] * 50 + [Admission.LIMITED])


def test_reply_credits_are_capped_and_forgotten_with_the_peer():
    clock = Clock()
    rate = limiter(clock, max_credits=3)
    for _ in range(10):
        rate.expect_reply("a", Topic.BLOCKSYNC)
    assert rate.credits("a", Topic.BLOCKSYNC) == 3
    rate.forget("a")
    assert rate.credits("a", Topic.BLOCKSYNC) == 0


def test_rate_limit_refuses_nonsense():
    with pytest.raises(P2PConfigError):
        RateLimit(frames_per_second=0, burst=1)


def test_backoff_grows_with_equal_jitter_and_is_capped():
    import random
    backoff = Backoff(initial=0.1, maximum=1.0)
    rng = random.Random(7)
    for attempt, ceiling in [(0, 0.1), (1, 0.2), (3, 0.8), (4, 1.0), (500, 1.0)]:
        assert backoff.ceiling(attempt) == pytest.approx(ceiling)
        for _ in range(20):
            assert ceiling / 2 <= backoff.delay(attempt, rng) <= ceiling
    delays = {round(backoff.delay(2, rng), 6) for _ in range(20)}
    assert len(delays) > 1  # jittered, not lock-step


def test_dedup_keeps_the_link_dialled_by_the_lower_id_on_both_ends():
    from apps.node.p2p.peers import keep_new_link
    # "a" < "b". Existing link dialled by b, new one dialled by a: both ends switch to a's.
    assert keep_new_link("a", "b", existing_dialer="b", new_dialer="a")
    assert keep_new_link("b", "a", existing_dialer="b", new_dialer="a")
    # Existing link dialled by a, new one by b: both ends keep a's.
    assert not keep_new_link("a", "b", existing_dialer="a", new_dialer="b")
    assert not keep_new_link("b", "a", existing_dialer="a", new_dialer="b")
    # Same dialler again: it reconnected, the new link wins.
    assert keep_new_link("a", "b", existing_dialer="a", new_dialer="a")
    assert keep_new_link("b", "a", existing_dialer="b", new_dialer="b")


def test_send_queue_is_bounded_in_frames_and_bytes():
    from apps.node.p2p.link import Link
    link = Link(peer_id="b", dialer="a", outbound=True, reader=None, writer=None,  # type: ignore[arg-type]
                queue_size=3, queue_bytes=100, now=0.0)
    assert link.enqueue(b"x" * 500)        # an empty queue takes one oversized frame
    assert not link.enqueue(b"x")          # ... but nothing more while it waits
    link = Link(peer_id="b", dialer="a", outbound=True, reader=None, writer=None,  # type: ignore[arg-type]
                queue_size=3, queue_bytes=100, now=0.0)
    assert link.enqueue(b"x" * 60)
    assert not link.enqueue(b"x" * 41)
    assert link.enqueue(b"x" * 20)
    assert link.enqueue(b"x" * 20)
    assert not link.enqueue(b"")           # frame count bound
