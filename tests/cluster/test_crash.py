"""Validators as real processes on loopback: agreement, and kill -9 of one node.

Each test starts 4 validators (``run_node --component worker``, one PostgreSQL database
each), feeds signed events into their mempools and bounds every wait. The vote journals
(``NODE_VOTE_JOURNAL``) record each verified vote a node received; no (voter, view) may name
two blocks, which is invariant 2 checked from the receivers' side.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable

import pytest

from tests.cluster.harness import ClusterHarness, wait_until

pytestmark = pytest.mark.cluster


def test_four_validators_commit_and_agree_on_state_roots_at_every_height(
        make_cluster: Callable[..., ClusterHarness]) -> None:
    harness = make_cluster(4)
    harness.start_all()
    harness.start_feeders(rate=15)
    harness.wait_heights(range(4), 12, timeout_s=90, what="commits with traffic")
    # SIGTERM every validator under load: each finishes the step in flight (a commit),
    # closes its peers and exits well within the grace period; then the whole cluster
    # restarts from its databases and goes on (uncommitted certified blocks are recovered).
    killed: list[str] = []
    names = [f"node-{index}" for index in range(4)]
    harness.cluster.processes.stop(names, grace_s=30, on_kill=killed.append)
    assert not killed, f"did not stop on SIGTERM: {killed}"
    for name in names:
        log = harness.cluster.processes.log_path(name).read_text()
        assert '"node stopped"' in log.splitlines()[-1] or '"node stopped"' in log
    stopped_at = harness.heights()
    harness.start_all()
    harness.wait_heights(range(4), max(stopped_at.values()) + 5, timeout_s=90,
                         what="commits after a full restart")
    harness.stop_feeders()
    admitted = harness.admitted()
    wait_until(lambda: set(admitted) <= harness.committed_tx_ids(0), timeout_s=90,
               what="every admitted transaction to commit")
    top = min(harness.heights().values())
    harness.wait_heights(range(4), top, timeout_s=30, what="all nodes at the same height")
    compared = harness.assert_agreement(range(4))
    assert compared >= 16
    for index in range(4):
        ledger = harness.ledger(index)
        assert sorted(ledger)[:top + 1] == list(range(top + 1)), "a height is missing"
        assert set(admitted) <= harness.committed_tx_ids(index)
    assert harness.assert_no_double_votes() > 0


def test_a_node_killed_with_sigkill_restarts_catches_up_agrees_and_never_double_votes(
        make_cluster: Callable[..., ClusterHarness]) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    victim = rng.randrange(4)
    print(f"kill -9 seed {seed}: victim node-{victim}")
    others = [index for index in range(4) if index != victim]
    harness = make_cluster(4)
    harness.start_all()
    harness.start_feeders(rate=15)
    harness.wait_heights(range(4), 8, timeout_s=90, what="first commits")
    time.sleep(rng.uniform(0, 1.0))  # somewhere in the middle of a view
    harness.cluster.kill_node(victim)
    at_kill = harness.heights(others)
    # The others keep committing without it (3 of 4 is a quorum; views the dead node leads,
    # and the views whose votes go to it, time out) ...
    harness.wait_heights(others, {i: h + 8 for i, h in at_kill.items()}, timeout_s=90,
                         what="commits without the killed node")
    # ... and the restarted node catches up and takes part again.
    harness.start_node(victim)
    target = max(harness.heights(others).values())
    harness.wait_heights([victim], target, timeout_s=90, what="the restarted node catching up")
    after = harness.heights([victim])[victim]
    harness.wait_heights(range(4), after + 5, timeout_s=60, what="commits after the restart")
    harness.stop_feeders()
    admitted = harness.admitted()
    for index in range(4):
        wait_until(lambda i=index: set(admitted) <= harness.committed_tx_ids(i), timeout_s=90,
                   what=f"every admitted transaction committed on node-{index}")
    harness.assert_agreement(range(4))
    assert harness.assert_no_double_votes() > 0
    # More than NODE_CATCHUP_LAG (4 in these tests) behind, it fetched committed blocks with
    # their commit proofs through the ledger catch-up.
    log = harness.cluster.processes.log_path(f"node-{victim}").read_text()
    assert "caught up through the ledger" in log


def proposals(harness: ClusterHarness) -> list[tuple[int, int]]:
    """(view, node index) of every proposal the nodes logged."""
    found = []
    for index in range(harness.cluster.validators):
        path = harness.cluster.processes.log_path(f"node-{index}")
        for line in path.read_text(errors="replace").splitlines():
            if '"event": "proposed"' in line:
                found.append((json.loads(line)["view"], index))
    return found


def view_changes(harness: ClusterHarness, index: int) -> list[dict[str, object]]:
    path = harness.cluster.processes.log_path(f"node-{index}")
    return [json.loads(line) for line in path.read_text(errors="replace").splitlines()
            if '"event": "view change"' in line]


def test_the_leader_killed_in_the_middle_of_its_view_forces_a_view_change_and_the_chain_goes_on(
        make_cluster: Callable[..., ClusterHarness]) -> None:
    harness = make_cluster(4)
    harness.start_all()
    harness.start_feeders(rate=15)
    harness.wait_heights(range(4), 6, timeout_s=90, what="first commits")
    # Kill the leader right after it proposed: its view is in flight (votes on their way).
    last_view = max(view for view, _ in proposals(harness))
    deadline = time.monotonic() + 30
    fresh: list[tuple[int, int]] = []
    while not fresh and time.monotonic() < deadline:
        fresh = [item for item in proposals(harness) if item[0] > last_view]
        time.sleep(0.05)
    assert fresh, "no new proposal within 30 s"
    view, victim = max(fresh)
    harness.cluster.kill_node(victim)
    print(f"killed node-{victim}, leader of view {view}")
    others = [index for index in range(4) if index != victim]
    before = {index: len(view_changes(harness, index)) for index in others}
    at_kill = harness.heights(others)
    harness.wait_heights(others, {i: h + 6 for i, h in at_kill.items()}, timeout_s=90,
                         what="commits after the leader died")
    for index in others:
        changes = view_changes(harness, index)[before[index]:]
        assert any(int(change["view"]) > view for change in changes), \
            f"node-{index} saw no view change after the leader died"
        assert any(change["leader"] == f"node-{victim}" for change in changes)
    harness.assert_agreement(others)
    harness.assert_no_double_votes()
