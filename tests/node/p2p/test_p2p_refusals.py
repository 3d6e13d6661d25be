"""Who is refused, and that the refusal is counted under the right reason."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from p2p_cluster import (
    Cluster,
    RawPeer,
    client_context,
    eventually,
    mesh_ready,
    run,
    signing_key,
    start_all,
    stop_all,
)
from prometheus_client import REGISTRY

from apps.node.p2p import RefusalReason, certificate_for
from apps.node.p2p.tls import build_contexts
from cybermesh.protocol.validator_set import Validator, ValidatorSet

R = RefusalReason
REFUSED = "cybermesh_p2p_refused_connections_total"


async def _refused_tls_client(cluster: Cluster, context: ssl.SSLContext, target: str,
                              claim: str) -> bool:
    """Connect with ``context``, say hello as ``claim``; True when the server shut us out."""
    peer = await RawPeer.connect("127.0.0.1", cluster.ports[target], context=context)
    try:
        peer.send_hello(claim, cluster.config(target))
        return await peer.closed_by_peer()
    finally:
        peer.close()


def test_a_peer_whose_key_is_not_in_the_validator_set_is_refused():
    async def scenario():
        cluster = Cluster(["node-0", "node-1"])
        nodes = [cluster.node(v) for v in cluster.ids]
        await start_all(nodes)
        try:
            await eventually(mesh_ready(nodes))
            outsider = signing_key("outsider")
            certificate = certificate_for(outsider, "outsider", "127.0.0.1:9")
            context = client_context(outsider, certificate, list(cluster.certificates.values()))
            labels = {"node": "node-0", "reason": "unknown_key"}
            before = REGISTRY.get_sample_value(REFUSED, labels) or 0.0
            assert await _refused_tls_client(cluster, context, "node-0", "outsider")
            await eventually(lambda: nodes[0].network.stats.refused[R.UNKNOWN_KEY] == 1)
            assert nodes[0].network.connected_peers() == ["node-1"]
            assert REGISTRY.get_sample_value(REFUSED, labels) == before + 1
        finally:
            await stop_all(nodes)
    run(scenario())


def test_a_certificate_claiming_another_validators_id_is_refused():
    async def scenario():
        cluster = Cluster(["node-0", "node-1"])
        nodes = [cluster.node(v) for v in cluster.ids]
        await start_all(nodes)
        try:
            await eventually(mesh_ready(nodes))
            impostor = signing_key("impostor")
            # Same CN and address as node-1's certificate, but the impostor's own key.
            certificate = certificate_for(impostor, "node-1", cluster.address("node-1"))
            context = client_context(impostor, certificate, list(cluster.certificates.values()))
            assert await _refused_tls_client(cluster, context, "node-0", "node-1")
            await eventually(lambda: nodes[0].network.stats.refused[R.UNKNOWN_KEY] == 1)
            # The real node-1 is untouched: still connected, not penalised.
            assert nodes[0].network.connected_peers() == ["node-1"]
            assert not nodes[0].network.stats.penalties
        finally:
            await stop_all(nodes)
    run(scenario())


def test_a_validator_claiming_another_id_in_its_hello_is_refused():
    async def scenario():
        cluster = Cluster(["node-0", "node-1", "node-2"])
        node = cluster.node("node-0")
        await node.network.start()
        try:
            key = cluster.keys["node-2"]
            context = client_context(key, cluster.certificates["node-2"],
                                     list(cluster.certificates.values()))
            assert await _refused_tls_client(cluster, context, "node-0", "node-1")
            await eventually(lambda: node.network.stats.refused[R.IDENTITY_MISMATCH] == 1)
            assert "node-2" not in node.network.connected_peers()
        finally:
            await node.network.stop()
    run(scenario())


def test_dialling_an_address_answered_by_another_validator_is_refused():
    async def scenario():
        cluster = Cluster(["node-0", "node-1", "node-2"])
        # node-0 believes node-1 lives at node-2's address.
        wrong = ValidatorSet(epoch=0, validators=tuple(
            Validator(v.validator_id, v.public_key, v.power,
                      cluster.address("node-2") if v.validator_id == "node-1" else v.address)
            for v in cluster.validator_set))
        node0 = cluster.node("node-0", validator_set=wrong)
        node2 = cluster.node("node-2")
        await start_all([node0, node2])
        try:
            await eventually(lambda: node0.network.stats.refused[R.IDENTITY_MISMATCH] >= 1,
                             what="identity mismatch when dialling node-1")
            assert "node-1" not in node0.network.connected_peers()
            await eventually(lambda: node0.network.connected_peers() == ["node-2"])
        finally:
            await stop_all([node0, node2])
    run(scenario())


def test_sources_and_destinations_outside_the_allowlist_are_refused():
    async def scenario():
        cluster = Cluster(["node-0", "node-1", "node-2"],
                          hosts={"node-1": "127.0.0.2"})
        strict = cluster.node("node-0", allowed_ips=("127.0.0.1/32",))
        outside = cluster.node("node-1", dial_source_host="127.0.0.2")
        inside = cluster.node("node-2")
        nodes = [strict, outside, inside]
        await start_all(nodes)
        try:
            await eventually(lambda: inside.network.connected_peers() == ["node-0", "node-1"])
            # node-1 dials node-0 from 127.0.0.2 (inbound refusal) and node-0 will not dial
            # node-1's 127.0.0.2 address (outbound refusal).
            await eventually(
                lambda: strict.network.stats.refused[R.NOT_ALLOWLISTED] >= 2,
                what="both directions refused")
            assert strict.network.connected_peers() == ["node-2"]
            assert "node-0" not in outside.network.connected_peers()
        finally:
            await stop_all(nodes)
    run(scenario())


def test_a_tls12_only_client_is_refused():
    async def scenario():
        cluster = Cluster(["node-0", "node-1"])
        node = cluster.node("node-0")
        await node.network.start()
        try:
            context = build_contexts(cluster.keys["node-1"], cluster.certificates["node-1"],
                                     [key.public_key.raw for key in cluster.keys.values()]
                                     ).client
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await RawPeer.connect("127.0.0.1", cluster.ports["node-0"], context=context)
            await eventually(lambda: node.network.stats.refused[R.HANDSHAKE_FAILED] == 1)
            assert node.network.connected_peers() == []
        finally:
            await node.network.stop()
    run(scenario())


def test_garbage_instead_of_tls_and_silence_are_refused():
    async def scenario():
        cluster = Cluster(["node-0", "node-1"])
        node = cluster.node("node-0", handshake_timeout=0.5)
        await node.network.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", cluster.ports["node-0"])
            writer.write(b"GET / HTTP/1.0\r\n\r\n" * 10)
            await writer.drain()
            assert await reader.read() == b""
            writer.close()
            await eventually(lambda: node.network.stats.refused[R.HANDSHAKE_FAILED] == 1)
            _silent_reader, silent = await asyncio.open_connection(
                "127.0.0.1", cluster.ports["node-0"])
            await eventually(lambda: node.network.stats.refused[R.HANDSHAKE_TIMEOUT] == 1)
            silent.close()
        finally:
            await node.network.stop()
    run(scenario())


def test_a_peer_of_another_chain_is_refused():
    async def scenario():
        cluster = Cluster(["node-0", "node-1"])
        node = cluster.node("node-0")
        await node.network.start()
        try:
            context = client_context(cluster.keys["node-1"], cluster.certificates["node-1"],
                                     list(cluster.certificates.values()))
            peer = await RawPeer.connect("127.0.0.1", cluster.ports["node-0"], context=context)
            peer.send_hello("node-1", cluster.config("node-0"), chain_id="other-chain")
            assert await peer.closed_by_peer()
            peer.close()
            await eventually(lambda: node.network.stats.refused[R.PROTOCOL_MISMATCH] == 1)
        finally:
            await node.network.stop()
    run(scenario())
