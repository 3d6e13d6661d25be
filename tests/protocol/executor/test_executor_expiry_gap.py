"""A block after a very long idle gap expires what is due without walking every second."""

from __future__ import annotations

import pytest

from cybermesh.protocol.executor.state import _BUCKET_WALK_LIMIT, PersistentMap, _buckets_between

pytestmark = pytest.mark.unit


def test_long_and_short_walks_find_the_same_buckets() -> None:
    buckets = PersistentMap({5: ((b"a",),), 70_000: ((b"b",),), 2_000_000_000: ((b"c",),)})
    assert _buckets_between(buckets, 0, 10) == [5]
    assert _buckets_between(buckets, 0, 10 + _BUCKET_WALK_LIMIT) == [5]
    assert _buckets_between(buckets, 0, 100_000) == [5, 70_000]
    # A genesis time of 0 followed by a real clock: 1.7e9 seconds, answered at once.
    assert _buckets_between(buckets, 0, 1_800_000_000) == [5, 70_000]
