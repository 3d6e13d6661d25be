"""Live scoring: bad frames penalise and quarantine, floods are limited, catch-up is not."""

from __future__ import annotations

import asyncio
import struct

import pytest
from p2p_cluster import (
    Cluster,
    FakeClock,
    Node,
    RawPeer,
    client_context,
    eventually,
    mesh_ready,
    run,
    start_all,
    stop_all,
)
from prometheus_client import REGISTRY

from apps.node.p2p import PenaltyReason, RateLimit, RefusalReason, ScoringConfig, Topic
from apps.node.p2p.framing import encode_frame

P = PenaltyReason
QUARANTINE_SECONDS = 60.0


async def _connect_as(cluster: Cluster, validator_id: str, target: str) -> RawPeer:
    context = client_context(cluster.keys[validator_id], cluster.certificates[validator_id],
                             list(cluster.certificates.values()))
    peer = await RawPeer.connect("127.0.0.1", cluster.ports[target], context=context)
    await peer.authenticate_as(validator_id, cluster.config(target))
    return peer


async def _talk(sender: Node, receiver: Node, payload: bytes) -> None:
    """The link sender -> receiver still carries messages."""
    assert await sender.network.send(receiver.validator_id, Topic.VOTE, payload)
    await eventually(lambda: payload in receiver.got(sender.validator_id, Topic.VOTE),
                     what=f"{sender.validator_id} -> {receiver.validator_id} still talking")


def test_oversized_and_garbage_frames_penalise_then_quarantine_while_others_keep_talking():
    async def scenario():
        cluster = Cluster(["node-0", "node-1", "node-2", "node-3"])
        clock = FakeClock()
        nodes = [cluster.node("node-0", clock=clock,
                              scoring=ScoringConfig(quarantine_seconds=QUARANTINE_SECONDS)),
                 cluster.node("node-1"), cluster.node("node-2")]
        await start_all(nodes)  # node-3 is driven by hand below
        try:
            await eventually(mesh_ready(nodes))
            target = nodes[0].network
            # 1. A vote frame claiming 1 MiB: over the 4 KiB vote cap, refused from the header.
            bad = await _connect_as(cluster, "node-3", "node-0")
            bad.writer.write(struct.pack(">IB", 1024 * 1024 + 1, Topic.VOTE))
            assert await bad.closed_by_peer()
            bad.close()
            await eventually(lambda: target.stats.penalties[P.OVERSIZED] == 1)
            assert not target.peers()[-1].quarantined_until
            await _talk(nodes[1], nodes[0], b"still-1")
            # 2. Garbage (unknown topic id) on a fresh link: malformed, -25.
            bad = await _connect_as(cluster, "node-3", "node-0")
            bad.writer.write(b"\x00\x00\x00\x03\xee\xde\xad")
            assert await bad.closed_by_peer()
            bad.close()
            await eventually(lambda: target.stats.penalties[P.MALFORMED] == 1)
            assert nodes[0].quarantined == []
            # 3. Another garbage frame takes the score to -100: quarantine.
            bad = await _connect_as(cluster, "node-3", "node-0")
            bad.writer.write(encode_frame(Topic.CONTROL, b"\x09nonsense"))
            assert await bad.closed_by_peer()
            bad.close()
            await eventually(lambda: nodes[0].quarantined == [("node-3", "malformed")])
            status = {s.peer_id: s for s in target.peers()}["node-3"]
            assert status.quarantined_until == clock.now + QUARANTINE_SECONDS
            assert status.score <= -100
            # While quarantined, node-3 is turned away after TLS with a reason.
            context = client_context(cluster.keys["node-3"], cluster.certificates["node-3"],
                                     list(cluster.certificates.values()))
            again = await RawPeer.connect("127.0.0.1", cluster.ports["node-0"], context=context)
            again.send_hello("node-3", cluster.config("node-0"))
            assert await again.closed_by_peer()
            again.close()
            await eventually(lambda: target.stats.refused[RefusalReason.QUARANTINED] == 1)
            # The others never noticed.
            await _talk(nodes[2], nodes[0], b"still-2")
            await _talk(nodes[0], nodes[1], b"still-3")
            assert sorted(target.connected_peers()) == ["node-1", "node-2"]
            # After the period node-3 may come back.
            clock.now += QUARANTINE_SECONDS
            back = await _connect_as(cluster, "node-3", "node-0")
            await eventually(lambda: "node-3" in target.connected_peers())
            back.close()
        finally:
            await stop_all(nodes)
    run(scenario())


def test_runtime_penalties_quarantine_a_peer_and_it_reconnects_after_expiry():
    async def scenario():
        cluster = Cluster(["node-0", "node-1", "node-2"])
        clock = FakeClock()
        nodes = [cluster.node("node-0", clock=clock,
                              scoring=ScoringConfig(quarantine_seconds=QUARANTINE_SECONDS)),
                 cluster.node("node-1"), cluster.node("node-2")]
        await start_all(nodes)
        try:
            await eventually(mesh_ready(nodes))
            network = nodes[0].network
            for _ in range(2):
                network.penalize("node-1", P.INVALID_SIGNATURE)
            assert nodes[0].quarantined == []
            network.reward("node-1")
            penalties_before = REGISTRY.get_sample_value(
                "cybermesh_p2p_penalties_total",
                {"node": "node-0", "reason": "invalid_signature"}) or 0.0
            network.penalize("node-1", P.INVALID_SIGNATURE)  # -40 * 3 + 1 = -119
            assert nodes[0].quarantined == [("node-1", "invalid_signature")]
            assert REGISTRY.get_sample_value(
                "cybermesh_p2p_penalties_total",
                {"node": "node-0", "reason": "invalid_signature"}) == penalties_before + 1
            assert REGISTRY.get_sample_value(
                "cybermesh_p2p_peer_score", {"node": "node-0", "peer": "node-1"}
            ) == pytest.approx(-119)
            await eventually(lambda: "node-1" not in network.connected_peers())
            # node-1 keeps re-dialling and is refused; node-0 does not dial it.
            await eventually(lambda: network.stats.refused[RefusalReason.QUARANTINED] >= 2,
                             what="node-1's re-dials refused")
            assert "node-1" not in network.connected_peers()
            await _talk(nodes[2], nodes[0], b"unaffected")
            clock.now += QUARANTINE_SECONDS + 1
            await eventually(mesh_ready(nodes), what="mesh after the quarantine expired")
            status = {s.peer_id: s for s in network.peers()}["node-1"]
            assert status.quarantined_until is None
            assert status.score == ScoringConfig().probation_score
            await _talk(nodes[1], nodes[0], b"welcome back")
        finally:
            await stop_all(nodes)
    run(scenario())


def test_scores_decay_toward_neutral_on_the_injected_clock():
    async def scenario():
        cluster = Cluster(["node-0", "node-1"])
        clock = FakeClock()
        node = cluster.node("node-0", clock=clock, scoring=ScoringConfig(half_life_seconds=10))
        node.network.penalize("node-1", P.INVALID_SIGNATURE)
        assert node.network.peers()[0].score == -40
        clock.now += 20
        assert node.network.peers()[0].score == pytest.approx(-10)
    run(scenario())


def test_flooding_peer_is_rate_limited_but_block_sync_replies_we_asked_for_are_not():
    async def answer_sync(node: Node, peer_id: str, topic: Topic, payload: bytes) -> None:
        if topic is Topic.BLOCKSYNC and payload.startswith(b"request"):
            await node.network.send(peer_id, Topic.BLOCKSYNC, b"blocks for " + payload)

    async def scenario():
        cluster = Cluster(["node-0", "node-1"])
        clock = FakeClock()  # frozen: buckets never refill during the test
        tight = {topic: RateLimit(frames_per_second=1, burst=5)
                 for topic in (Topic.VOTE, Topic.BLOCKSYNC)}
        penalties = dict(ScoringConfig().penalties)
        penalties[P.FLOOD] = 1.0
        catching_up = cluster.node("node-0", clock=clock, rate_limits=tight,
                                   scoring=ScoringConfig(penalties=penalties))
        server = cluster.node("node-1", responder=answer_sync)
        nodes = [catching_up, server]
        await start_all(nodes)
        try:
            await eventually(mesh_ready(nodes))
            # A vote flood: 5 pass (the burst), 45 are dropped and counted.
            for index in range(50):
                await server.network.send("node-0", Topic.VOTE, b"v%d" % index)
            network = catching_up.network
            await eventually(lambda: network.stats.rate_limited[Topic.VOTE] == 45)
            assert len(catching_up.got("node-1", Topic.VOTE)) == 5
            assert network.stats.penalties[P.FLOOD] == 45
            # Catch-up: 60 requests, 60 replies, all delivered despite the burst of 5.
            for index in range(60):
                assert await network.send("node-1", Topic.BLOCKSYNC, b"request %d" % index,
                                          expect_reply=True)
            await eventually(lambda: len(catching_up.got("node-1", Topic.BLOCKSYNC)) == 60,
                             what="all block-sync replies")
            assert network.stats.replies_exempted[Topic.BLOCKSYNC] == 60
            assert network.stats.rate_limited[Topic.BLOCKSYNC] == 0
            # Unsolicited block-sync frames are still limited.
            for index in range(10):
                await server.network.send("node-0", Topic.BLOCKSYNC, b"unsolicited %d" % index)
            await eventually(lambda: network.stats.rate_limited[Topic.BLOCKSYNC] == 5)
            assert network.connected_peers() == ["node-1"]
        finally:
            await stop_all(nodes)
    run(scenario())


def test_a_silent_peer_times_out_and_is_penalised():
    async def scenario():
        cluster = Cluster(["node-0", "node-1"])
        node = cluster.node("node-0", ping_interval=0.1, idle_timeout=0.5)
        await node.network.start()
        try:
            silent = await _connect_as(cluster, "node-1", "node-0")  # never answers pings
            await eventually(lambda: "node-1" in node.network.connected_peers())
            await eventually(lambda: node.network.stats.penalties[P.TIMEOUT] == 1,
                             what="idle timeout")
            assert await silent.closed_by_peer()
            silent.close()
        finally:
            await node.network.stop()
    run(scenario())


def test_a_failing_message_handler_is_counted_and_the_link_survives():
    async def explode(node: Node, peer_id: str, topic: Topic, payload: bytes) -> None:
        if payload == b"boom":
            raise RuntimeError("runtime bug")

    async def scenario():
        cluster = Cluster(["a", "b"])
        nodes = [cluster.node("a", responder=explode), cluster.node("b")]
        await start_all(nodes)
        try:
            await eventually(mesh_ready(nodes))
            await nodes[1].network.send("a", Topic.PROPOSAL, b"boom")
            await nodes[1].network.send("a", Topic.PROPOSAL, b"fine")
            await eventually(lambda: nodes[0].got("b", Topic.PROPOSAL) == [b"boom", b"fine"])
            assert nodes[0].network.stats.callback_errors == 1
            assert nodes[0].network.connected_peers() == ["b"]
        finally:
            await stop_all(nodes)
    run(scenario())


def test_sending_over_the_cap_or_on_the_control_topic_is_a_caller_error():
    async def scenario():
        cluster = Cluster(["a", "b"])
        node = cluster.node("a")
        with pytest.raises(ValueError, match="exceeds the cap"):
            await node.network.send("b", Topic.VOTE, b"x" * 5000)
        with pytest.raises(ValueError, match="CONTROL"):
            await node.network.send("b", Topic.CONTROL, b"")
        assert await node.network.send("b", Topic.VOTE, b"x") is False  # not connected
        await asyncio.sleep(0)
    run(scenario())
