"""Bad peers against 3 honest validator processes (a quorum of 4): the test process plays
node-3 with a real ``PeerNetwork``.

* With a key that is not node-3's (a stranger holding a certificate for the name), every
  honest node refuses the TLS handshake (``unknown_key``) and the chain goes on.
* With node-3's real key it equivocates (two signed votes per view): the leader that
  receives both reports it, submits an evidence transaction signed with its own key, and the
  evidence commits. Then it sends garbage and votes forged in node-1's name: every honest
  node quarantines it (audited), and the chain goes on.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest

from apps.node.p2p import NetworkConfig, NodeIdentity, PeerNetwork, Topic
from apps.node.p2p.transport import MessageHandler
from cybermesh.keyfiles import load_signing_key
from cybermesh.protocol.consensus.messages import Vote, block_statement
from cybermesh.protocol.consensus.signatures import Domains, Ed25519Signer
from cybermesh.protocol.consensus.wire import encode_message
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.validator_set import Validator, ValidatorSet
from cybermesh.topology import load_genesis
from tests.cluster.harness import ClusterHarness

pytestmark = pytest.mark.cluster
HONEST = [0, 1, 2]
BAD = "node-3"


def impostor(harness: ClusterHarness, key: SigningKey, *,
             observers: dict[str, bytes] | None = None,
             on_message: MessageHandler | None = None) -> PeerNetwork:
    """A PeerNetwork calling itself node-3 on node-3's genesis address, holding ``key``."""
    cluster = harness.cluster
    genesis = load_genesis(cluster.genesis_path)
    validators = genesis.validator_set
    address = validators.get(BAD).address  # type: ignore[union-attr]
    if key.public_key.raw != validators.get(BAD).public_key:  # type: ignore[union-attr]
        # A stranger: it trusts itself under node-3's name; the honest nodes do not.
        validators = ValidatorSet(validators.epoch, tuple(
            Validator(v.validator_id, key.public_key.raw if v.validator_id == BAD
                      else v.public_key, v.power, v.address) for v in validators))

    async def ignore(_peer: str, _topic: Topic, _payload: bytes) -> None:
        return None

    config = NetworkConfig(chain_id=genesis.chain_id, listen_host="127.0.0.1",
                           listen_port=int(address.rsplit(":", 1)[1]),
                           allowed_ips=("127.0.0.0/8",), higher_id_dial_delay=0.0)
    return PeerNetwork(config, NodeIdentity(BAD, key), validators, on_message or ignore,
                       observers=observers)


async def until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await asyncio.to_thread(predicate):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.3)


def logged(harness: ClusterHarness, index: int, text: str) -> bool:
    path = harness.cluster.processes.log_path(f"node-{index}")
    return text in path.read_text(errors="replace")


@pytest.fixture
def honest(make_cluster: Callable[..., ClusterHarness]) -> ClusterHarness:
    harness = make_cluster(4)
    for index in HONEST:
        harness.start_node(index)
        harness.start_feeder(index, rate=10)
    harness.wait_heights(HONEST, 4, timeout_s=120, what="3 honest validators committing")
    return harness


def test_a_peer_with_an_unknown_key_is_refused_and_the_chain_goes_on(
        honest: ClusterHarness) -> None:
    stranger = SigningKey.from_seed(os.urandom(32))

    async def scenario() -> None:
        network = impostor(honest, stranger)
        await network.start()
        try:
            start = await asyncio.to_thread(honest.heights, HONEST)
            await until(lambda: all(logged(honest, i, '"reason": "unknown_key"')
                                    for i in HONEST), 30, "unknown_key refusals")
            assert network.connected_peers() == []
            await until(lambda: all(h >= start[i] + 3 for i, h in honest.heights(HONEST)
                                    .items()), 90, "commits while the stranger knocks")
            assert network.connected_peers() == []
        finally:
            await network.stop()

    asyncio.run(asyncio.wait_for(scenario(), 180))


def test_an_equivocating_then_garbage_sending_peer_is_reported_quarantined_and_ignored(
        honest: ClusterHarness) -> None:
    cluster = honest.cluster
    key = load_signing_key(cluster.node_dir(3) / "node.key")
    genesis = load_genesis(cluster.genesis_path)
    domains = Domains.for_chain(genesis.chain_id)

    def signed_vote(view: int, height: int, block_id: bytes, voter: str = BAD,
                    signer: SigningKey | None = None) -> bytes:
        signature = Ed25519Signer(signer or key).sign(
            domains.vote, block_statement(0, view, block_id, height))
        return encode_message(Vote(0, view, block_id, height, voter, signature))

    def evidence_committed() -> bool:
        rows = cluster.query(0, "SELECT producer_id FROM transactions WHERE kind = 'evidence' "
                                "AND producer_id LIKE 'node-%%'")
        return bool(rows)

    async def scenario() -> None:
        network = impostor(honest, key)
        await network.start()
        try:
            await until(lambda: len(network.connected_peers()) == 3, 30, "links to node-0..2")
            view = int(cluster.query(0, "SELECT view FROM node_nodestatus")[0][0])
            height = max(honest.heights(HONEST).values())
            # Two votes per view for different blocks: whoever leads view + 1 catches it.
            for ahead in range(0, 6):
                for block_id in (os.urandom(32), os.urandom(32)):
                    payload = signed_vote(view + ahead, height + 1, block_id)
                    for peer in network.connected_peers():
                        await network.send(peer, Topic.VOTE, payload)
            await until(lambda: any(logged(honest, i, '"event": "equivocation evidence'
                                                       ' submitted"') for i in HONEST),
                        30, "a leader to report the equivocation")
            await until(evidence_committed, 90, "the evidence transaction to commit")
            # Garbage and votes forged in node-1's name (wrong key).
            forged = signed_vote(view + 7, height + 1, os.urandom(32), voter="node-1")
            for _ in range(6):
                for peer in network.connected_peers():
                    await network.send(peer, Topic.VOTE, b"\xff\x00 not a vote")
                    await network.send(peer, Topic.VOTE, forged)
                await asyncio.sleep(0.05)
            await until(lambda: all(logged(honest, i, '"event": "p2p.quarantine"')
                                    for i in HONEST), 30, "every honest node to quarantine")
            await until(lambda: not network.connected_peers(), 30, "links closed")
            audited = cluster.query(0, "SELECT count(*) FROM audit_auditentry "
                                       "WHERE action = 'p2p.quarantine'")
            assert audited[0][0] >= 1
            start = await asyncio.to_thread(honest.heights, HONEST)
            await until(lambda: all(h >= start[i] + 3 for i, h in honest.heights(HONEST)
                                    .items()), 90, "commits after the quarantine")
        finally:
            await network.stop()

    asyncio.run(asyncio.wait_for(scenario(), 240))
    honest.assert_agreement(HONEST)
    double = {key for key, ids in honest.votes().items() if len(ids) > 1}
    assert double and all(voter == BAD for voter, _, _ in double)  # only the faulty one
