"""Real TLS links on loopback: the mesh forms, carries every topic, survives restarts."""

from __future__ import annotations

import asyncio

import pytest
from p2p_cluster import (
    Cluster,
    Node,
    eventually,
    free_port,
    mesh_ready,
    run,
    start_all,
    stop_all,
)

from apps.node.p2p import P2PConfigError, RefusalReason, Topic
from apps.node.p2p.framing import APPLICATION_TOPICS
from cybermesh.protocol.validator_set import Validator, ValidatorSet


def test_four_nodes_form_a_full_mesh_and_exchange_every_topic():
    async def scenario():
        cluster = Cluster([f"node-{i}" for i in range(4)])
        nodes = [cluster.node(validator_id) for validator_id in cluster.ids]
        await start_all(nodes)
        try:
            await eventually(mesh_ready(nodes), what="full mesh")
            for node in nodes:
                for topic in APPLICATION_TOPICS:
                    sent = await node.network.broadcast(topic, f"{node.validator_id}/{topic.kind}"
                                                        .encode())
                    assert sent == 3
            expected = len(APPLICATION_TOPICS) * 3
            await eventually(lambda: all(len(n.received) == expected for n in nodes),
                             what="every node to receive every topic from every peer")
            for node in nodes:
                for peer in nodes:
                    if peer is node:
                        continue
                    for topic in APPLICATION_TOPICS:
                        assert node.got(peer.validator_id, topic) == [
                            f"{peer.validator_id}/{topic.kind}".encode()]
            # One connection per pair, the same at both ends.
            assert _same_connection_both_ends(nodes)
        finally:
            await stop_all(nodes)
    run(scenario())


def test_send_to_one_peer_reaches_only_that_peer_in_order():
    async def scenario():
        cluster = Cluster(["a", "b", "c"])
        nodes = [cluster.node(validator_id) for validator_id in cluster.ids]
        await start_all(nodes)
        try:
            await eventually(mesh_ready(nodes))
            for index in range(50):
                assert await nodes[0].network.send("b", Topic.VOTE, b"%d" % index)
            await eventually(lambda: len(nodes[1].received) == 50)
            assert nodes[1].got("a", Topic.VOTE) == [b"%d" % i for i in range(50)]
            assert nodes[2].received == []
        finally:
            await stop_all(nodes)
    run(scenario())


def test_a_restarted_peer_is_reconnected():
    async def scenario():
        cluster = Cluster(["node-0", "node-1", "node-2"])
        nodes = [cluster.node(validator_id) for validator_id in cluster.ids]
        await start_all(nodes)
        try:
            await eventually(mesh_ready(nodes))
            await nodes[0].network.stop()
            await eventually(lambda: "node-0" not in nodes[1].network.connected_peers()
                             and "node-0" not in nodes[2].network.connected_peers(),
                             what="peers to notice the stop")
            nodes[0] = cluster.node("node-0")
            await nodes[0].network.start()
            await eventually(mesh_ready(nodes), what="mesh after restart")
            assert await nodes[0].network.send("node-2", Topic.PROPOSAL, b"back")
            await eventually(lambda: nodes[2].got("node-0", Topic.PROPOSAL) == [b"back"])
        finally:
            await stop_all(nodes)
    run(scenario())


def test_stop_is_graceful_and_flushes_queued_frames():
    async def scenario():
        cluster = Cluster(["a", "b"])
        nodes = [cluster.node(validator_id) for validator_id in cluster.ids]
        await start_all(nodes)
        try:
            await eventually(mesh_ready(nodes))
            for index in range(200):
                await nodes[0].network.send("b", Topic.VOTE, b"%d" % index)
            await nodes[0].network.stop()
            await eventually(lambda: len(nodes[1].received) == 200)
            await asyncio.sleep(0)
            assert not nodes[1].network.stats.penalties
        finally:
            await stop_all(nodes[1:])
    run(scenario())


def test_epoch_change_connects_the_joiner_and_keeps_the_leaver_on_block_sync_for_one_epoch():
    """The validator an epoch change removed may not have the proof of that change yet (it is
    formed in the new epoch, without it), so it stays a block-sync-only follower for one epoch:
    its consensus frames are dropped without a penalty (it does not know it left), the new
    epoch's broadcasts do not reach it, its block-sync frames are delivered. The next epoch
    change forgets it: its links close and its re-dials are refused by key."""
    async def scenario():
        cluster = Cluster([f"node-{i}" for i in range(5)])
        first = cluster.subset(["node-0", "node-1", "node-2", "node-3"])
        second = cluster.subset(["node-0", "node-1", "node-2", "node-4"], epoch=1)
        third = cluster.subset(["node-0", "node-1", "node-2", "node-4"], epoch=2)
        staying = [cluster.node(v, validator_set=first) for v in ("node-0", "node-1", "node-2")]
        leaving = cluster.node("node-3", validator_set=first)
        joining = cluster.node("node-4", validator_set=second)
        await start_all([*staying, leaving])
        try:
            await eventually(mesh_ready([*staying, leaving]))
            await joining.network.start()
            for node in staying:
                node.network.update_validators(second)
            await eventually(lambda: all("node-4" in node.network.connected_peers()
                                         for node in staying)
                             and len(joining.network.connected_peers()) == 3,
                             what="links to the joiner")
            for node in staying:
                assert node.network.is_observer("node-3")
                assert node.network.stats.refused[RefusalReason.REMOVED] == 0
            assert "node-0" in leaving.network.connected_peers()
            assert await leaving.network.send("node-0", Topic.VOTE, b"an epoch-0 vote")
            assert await leaving.network.send("node-0", Topic.BLOCKSYNC, b"ledger request")
            await eventually(lambda: staying[0].got("node-3", Topic.BLOCKSYNC)
                             == [b"ledger request"], what="the leaver's block-sync request")
            assert staying[0].got("node-3", Topic.VOTE) == []
            assert sum(staying[0].network.stats.penalties.values()) == 0
            assert await staying[0].network.broadcast(Topic.PROPOSAL, b"epoch 1") == 3
            assert await staying[0].network.send("node-3", Topic.BLOCKSYNC, b"blocks")
            await eventually(lambda: leaving.got("node-0", Topic.BLOCKSYNC) == [b"blocks"])
            await eventually(lambda: staying[1].got("node-0", Topic.PROPOSAL) == [b"epoch 1"])
            assert leaving.got("node-0", Topic.PROPOSAL) == []
            assert await joining.network.send("node-0", Topic.VOTE, b"hello epoch 1")
            await eventually(lambda: staying[0].got("node-4", Topic.VOTE) == [b"hello epoch 1"])

            for node in [*staying, joining]:
                node.network.update_validators(third)
            await eventually(lambda: leaving.network.connected_peers() == [], timeout=5,
                             what="the leaver's links closed an epoch later")
            await eventually(
                lambda: staying[0].network.stats.refused[RefusalReason.UNKNOWN_KEY] >= 1,
                what="node-3's re-dial refused by key")
            assert "node-3" not in [s.peer_id for s in staying[0].network.peers()]
        finally:
            await stop_all([*staying, leaving, joining])
    run(scenario())


def test_a_bootstrap_address_reaches_a_validator_whose_listed_address_is_wrong():
    async def scenario():
        cluster = Cluster(["node-0", "node-1"])
        dead = f"127.0.0.1:{free_port()}"
        # Each side has the other's address wrong; only node-0's bootstrap entry is right.
        wrong = ValidatorSet(epoch=0, validators=tuple(
            Validator(v.validator_id, v.public_key, v.power, dead)
            for v in cluster.validator_set))
        nodes = [cluster.node("node-0", validator_set=wrong,
                              bootstrap_addresses=(cluster.address("node-1"),)),
                 cluster.node("node-1", validator_set=wrong)]
        await start_all(nodes)
        try:
            await eventually(mesh_ready(nodes), what="link through the bootstrap address")
            assert nodes[0].network.peers()[0].outbound is True
            assert await nodes[1].network.send("node-0", Topic.EVIDENCE, b"found you")
            await eventually(lambda: nodes[0].got("node-1", Topic.EVIDENCE) == [b"found you"])
        finally:
            await stop_all(nodes)
    run(scenario())


def _same_connection_both_ends(nodes: list[Node]) -> bool:
    """Every pair uses one TCP connection, seen from both ends."""
    for node in nodes:
        for other in nodes:
            if other is node:
                continue
            mine = node.network._peers[other.validator_id].link
            theirs = other.network._peers[node.validator_id].link
            if mine is None or theirs is None or mine.writer.get_extra_info(
                    "sockname") != theirs.writer.get_extra_info("peername"):
                return False
    return True


def test_simultaneous_dials_settle_on_one_connection_per_pair():
    async def scenario():
        cluster = Cluster([f"node-{i}" for i in range(4)])
        # No head start: both ends of every pair dial at once, so duplicates meet dedup.
        nodes = [cluster.node(v, higher_id_dial_delay=0.0) for v in cluster.ids]
        await start_all(nodes)
        try:
            await eventually(lambda: _same_connection_both_ends(nodes),
                             what="one connection per pair, the same at both ends")
            await asyncio.sleep(0.3)
            assert _same_connection_both_ends(nodes)
            for node in nodes:
                assert await node.network.broadcast(Topic.NEWVIEW, node.validator_id.encode()) == 3
            await eventually(lambda: all(len(node.received) == 3 for node in nodes))
        finally:
            await stop_all(nodes)
    run(scenario())


def test_a_port_in_use_is_reported_in_one_line():
    async def scenario():
        cluster = Cluster(["a", "b"])
        first, second = cluster.node("a"), cluster.node("a")
        await first.network.start()
        try:
            with pytest.raises(P2PConfigError, match=r"cannot listen for peers on 127\.0\.0\.1"):
                await second.network.start()
        finally:
            await first.network.stop()
            await second.network.stop()
    run(scenario())
