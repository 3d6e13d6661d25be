"""Observers on real TLS links: they reach the validators for block sync and nothing else."""

from __future__ import annotations

import pytest
from p2p_cluster import Cluster, eventually, run, start_all, stop_all

from apps.node.p2p import PenaltyReason, RefusalReason, Topic

VALIDATORS = ["node-0", "node-1", "node-2"]


def _cluster() -> Cluster:
    return Cluster([*VALIDATORS, "obs-0", "stranger"])


def test_an_allowlisted_observer_links_to_every_validator_and_gets_block_sync_only():
    async def scenario():
        cluster = _cluster()
        members = cluster.subset(VALIDATORS)
        observers = {"obs-0": cluster.keys["obs-0"].public_key.raw}
        validators = [cluster.node(v, validator_set=members, observers=observers)
                      for v in VALIDATORS]
        observer = cluster.node("obs-0", validator_set=members)
        nodes = [*validators, observer]
        await start_all(nodes)
        try:
            await eventually(lambda: observer.network.connected_peers() == VALIDATORS,
                             what="the observer linked to every validator")
            await eventually(lambda: all(len(v.network.connected_peers()) == 3
                                         for v in validators), what="validator mesh")
            for validator in validators:
                # Consensus broadcasts reach the two other validators, never the observer.
                assert await validator.network.broadcast(Topic.VOTE, b"vote") == 2
                with pytest.raises(ValueError, match="block sync only"):
                    await validator.network.send("obs-0", Topic.PROPOSAL, b"proposal")
            assert await observer.network.send("node-0", Topic.BLOCKSYNC, b"request",
                                               expect_reply=True)
            await eventually(lambda: validators[0].got("obs-0", Topic.BLOCKSYNC) == [b"request"])
            assert await validators[0].network.send("obs-0", Topic.BLOCKSYNC, b"reply")
            await eventually(lambda: observer.got("node-0", Topic.BLOCKSYNC) == [b"reply"])
            assert observer.got("node-1", Topic.VOTE) == []
            status = {p.peer_id: p for p in validators[0].network.peers()}
            assert status["obs-0"].observer and status["obs-0"].connected
            assert not status["node-1"].observer
        finally:
            await stop_all(nodes)
    run(scenario())


def test_an_observers_consensus_frames_are_dropped_and_penalised_until_quarantine():
    async def scenario():
        cluster = _cluster()
        members = cluster.subset(VALIDATORS)
        observers = {"obs-0": cluster.keys["obs-0"].public_key.raw}
        validator = cluster.node("node-0", validator_set=members, observers=observers)
        observer = cluster.node("obs-0", validator_set=members)
        await start_all([validator, observer])
        try:
            await eventually(lambda: "node-0" in observer.network.connected_peers())
            for topic in (Topic.VOTE, Topic.VIEWCHANGE, Topic.PROPOSAL):
                await observer.network.send("node-0", topic, b"not yours to send")
            await eventually(lambda: validator.quarantined == [
                ("obs-0", PenaltyReason.FORBIDDEN_TOPIC.value)], what="quarantine")
            assert validator.received == []  # nothing reached the runtime
            assert sum(validator.network.stats.forbidden.values()) >= 2
        finally:
            await stop_all([validator, observer])
    run(scenario())


def test_a_node_that_is_neither_validator_nor_allowlisted_observer_is_refused():
    async def scenario():
        cluster = _cluster()
        members = cluster.subset(VALIDATORS)
        observers = {"obs-0": cluster.keys["obs-0"].public_key.raw}
        validator = cluster.node("node-0", validator_set=members, observers=observers)
        stranger = cluster.node("stranger", validator_set=members)
        await start_all([validator, stranger])
        try:
            await eventually(lambda: validator.network.stats.refused[
                RefusalReason.UNKNOWN_KEY] >= 1, what="the stranger refused")
            assert stranger.network.connected_peers() == []
        finally:
            await stop_all([validator, stranger])
    run(scenario())
