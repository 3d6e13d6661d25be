"""A 2|2 partition through per-node loopback proxies (tests/cluster/proxy.py).

With 4 validators neither half holds a quorum (3), so commits stop; everything admitted
during the partition waits in the mempools and commits after the heal. Stated bound: commits
resume within HEAL_BOUND_S of the heal. It is the peers' redial backoff (at most 10 s) plus a
few views at the test's maximum view timeout (3 s); measured here typically 5-15 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.cluster.harness import ClusterHarness, wait_until
from tests.cluster.proxy import LinkProxy, Route

pytestmark = pytest.mark.cluster
HEAL_BOUND_S = 30.0
PARTITION_S = 10.0


@pytest.fixture
def proxied(make_cluster: Callable[..., ClusterHarness]) -> Iterator[tuple[ClusterHarness,
                                                                           LinkProxy]]:
    harness = make_cluster(4, proxied=True)
    cluster = harness.cluster
    routes = {index: Route(cluster.p2p_base_port + index, f"127.0.0.{2 + index}",
                           cluster.p2p_base_port + 8 + index) for index in range(4)}
    proxy = LinkProxy(routes).start()
    try:
        yield harness, proxy
    finally:
        proxy.close()


def test_a_2_2_partition_stops_commits_loses_nothing_and_heals_within_the_bound(
        proxied: tuple[ClusterHarness, LinkProxy]) -> None:
    harness, proxy = proxied
    harness.start_all()
    harness.start_feeders(rate=10)
    harness.wait_heights(range(4), 8, timeout_s=90, what="commits before the partition")

    proxy.cut([{0, 1}, {2, 3}])
    time.sleep(3.0)  # blocks certified before the cut may still commit on one side
    frozen = harness.heights()
    time.sleep(PARTITION_S)
    during = harness.heights()
    assert during == frozen, f"commits went on without a quorum: {frozen} -> {during}"
    assert proxy.refused > 0  # the peers tried to redial across the cut

    proxy.heal()
    healed_at = time.monotonic()
    target = {index: max(frozen.values()) + 3 for index in range(4)}
    harness.wait_heights(range(4), target, timeout_s=HEAL_BOUND_S + 30,
                         what="commits after the heal")
    resumed_s = time.monotonic() - healed_at
    print(f"commits resumed on all 4 nodes {resumed_s:.1f}s after the heal")
    assert resumed_s <= HEAL_BOUND_S

    harness.stop_feeders()
    admitted = harness.admitted()
    for index in range(4):
        wait_until(lambda i=index: set(admitted) <= harness.committed_tx_ids(i), timeout_s=90,
                   what=f"everything admitted committed on node-{index}")
    harness.assert_agreement(range(4))
    harness.assert_no_double_votes()
