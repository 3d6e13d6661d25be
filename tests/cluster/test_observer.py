"""Observers with real processes: they follow by block sync, agree, and never vote.

* 4 validators and 1 observer (``obs-0``), with epochs of 20 blocks: the observer's ledger
  (block hash and state root at every height) equals the validators', it keeps following as
  the heights climb and through several epoch changes (each QC verified against its epoch's
  set), its status row says ``observer``, synced and not voting, and no vote of its reaches
  any validator (the validators' vote journals record every verified vote they received).
* 3 honest validators, the test process playing node-3 with node-3's real key, and the
  observer: node-3 answers the observer's block-sync requests with a forged chain (linked to
  the observer's tip, certified by a QC whose signatures are not the validators'). The observer
  refuses it, scores node-3 down to quarantine, and goes on following the honest validators.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable

import pytest

from apps.node import ledger_sync
from apps.node.p2p import PeerNetwork, Topic
from cybermesh.keyfiles import load_signing_key
from cybermesh.protocol.consensus.messages import Block, QuorumCert, SyncResponse
from cybermesh.protocol.merkle.transparency import tree_hash
from tests.cluster.harness import ClusterHarness, wait_until
from tests.cluster.test_bad_peers import BAD, HONEST, impostor, logged, until

pytestmark = pytest.mark.cluster
VALIDATORS = [0, 1, 2, 3]
OBSERVER = 4  # obs-0: the index after the validators
EPOCH = 20


def short_epochs(document: dict[str, object]) -> None:
    document["executor"] = {"epoch_length_blocks": EPOCH}


def status_row(harness: ClusterHarness, index: int, node_id: str) -> dict[str, object]:
    rows = harness.cluster.query(index, "SELECT node_type, height, synced, voting, peers, epoch "
                                        "FROM node_nodestatus WHERE node_id = %s", (node_id,))
    if not rows:
        return {}
    node_type, height, synced, voting, peers, epoch = rows[0]
    return {"node_type": node_type, "height": int(height), "synced": synced,
            "voting": voting, "peers": {peer["id"]: peer for peer in peers or []},
            "epoch": int(epoch)}


def test_an_observer_follows_agrees_on_every_state_root_and_never_votes(
        make_cluster: Callable[..., ClusterHarness]) -> None:
    harness = make_cluster(4, observers=1, genesis_edit=short_epochs)
    for index in VALIDATORS:
        harness.start_node(index)
        harness.start_feeder(index, rate=5)
    harness.start_node(OBSERVER)
    harness.wait_heights([*VALIDATORS, OBSERVER], 6, timeout_s=150,
                         what="validators committing and the observer following")
    first = harness.heights([OBSERVER])[OBSERVER]
    # It keeps following: well past where it was, and up to where the validators were then.
    validators_then = max(harness.heights(VALIDATORS).values())
    harness.wait_heights([OBSERVER], max(first + 3 * EPOCH, validators_then), timeout_s=120,
                         what="the observer to keep following through epoch changes")
    wait_until(lambda: status_row(harness, OBSERVER, "obs-0").get("synced") is True,
               timeout_s=30, what="the observer to report itself synced")
    compared = harness.assert_agreement([*VALIDATORS, OBSERVER])
    assert compared >= first + 3 * EPOCH
    # The status row is rewritten every second: the observer may have entered epoch 3 a moment
    # before it reached the height waited for.
    wait_until(lambda: int(status_row(harness, OBSERVER, "obs-0")["epoch"]) >= 3,  # type: ignore[call-overload]
               timeout_s=30, what="the observer's status to show epoch 3")
    row = status_row(harness, OBSERVER, "obs-0")
    assert row["node_type"] == "observer" and row["voting"] is False
    assert set(row["peers"]) == {f"node-{i}" for i in VALIDATORS}  # type: ignore[arg-type]
    for index in VALIDATORS:
        peer = status_row(harness, index, f"node-{index}")["peers"]["obs-0"]  # type: ignore[index]
        assert peer["observer"] is True
        assert peer["score"] >= 0, peer  # never penalised for a consensus frame
    voters = {voter for voter, _epoch, _view in harness.votes()}
    assert voters == {f"node-{i}" for i in VALIDATORS}, voters
    log = harness.cluster.processes.log_path("obs-0").read_text(errors="replace")
    assert '"event": "followed"' in log and "refused block-sync" not in log


def forged_chain(harness: ClusterHarness, first: int) -> bytes:
    """Two blocks linked to the observer's tip at ``first - 1``, the second certified by a QC
    that claims node-0, node-1 and node-3 signed it (only the last could have)."""
    rows = harness.cluster.query(OBSERVER, "SELECT hash, view FROM blocks WHERE height = %s",
                                 (first - 1,))
    tip_id, tip_view = bytes(rows[0][0]), int(rows[0][1])
    genesis = json.loads(harness.cluster.genesis_path.read_text())
    signers = tuple(sorted((voter, os.urandom(64)) for voter in ("node-0", "node-1", BAD)))

    def block(parent: bytes, view: int, height: int, qc: QuorumCert) -> Block:
        return Block(epoch=0, view=view, height=height, parent_id=parent, proposer=BAD,
                     timestamp_ms=int(genesis["genesis_time_ms"]) + 1, payload=b"\x80",
                     tx_root=tree_hash([]), state_root=os.urandom(32),
                     validator_set_hash=os.urandom(32), qc=qc)

    lower = block(tip_id, tip_view + 1, first,
                  QuorumCert(0, tip_view, tip_id, first - 1, signers))
    upper = block(lower.block_id, lower.view + 1, first + 1,
                  QuorumCert(0, lower.view, lower.block_id, first, signers))
    final = QuorumCert(0, upper.view, upper.block_id, first + 1, signers)
    return ledger_sync.encode_response(SyncResponse(0, (lower, upper), final))


def test_an_observer_refuses_a_forged_block_and_scores_its_server_down(
        make_cluster: Callable[..., ClusterHarness]) -> None:
    harness = make_cluster(4, observers=1)
    for index in HONEST:
        harness.start_node(index)
        harness.start_feeder(index, rate=5)
    harness.wait_heights(HONEST, 4, timeout_s=120, what="3 honest validators committing")
    key = load_signing_key(harness.cluster.node_dir(3) / "node.key")
    observer_key = load_signing_key(harness.cluster.node_dir(OBSERVER) / "node.key")
    forged: list[int] = []

    async def serve_forgeries(peer: str, topic: Topic, payload: bytes) -> None:
        request = ledger_sync.parse_request(payload) if topic is Topic.BLOCKSYNC else None
        if peer != "obs-0" or request is None or request[0] < 1:
            return
        reply = await asyncio.to_thread(forged_chain, harness, request[0])
        if network is not None and await network.send(peer, Topic.BLOCKSYNC, reply):
            forged.append(request[0])

    network: PeerNetwork | None = None

    async def scenario() -> None:
        nonlocal network
        network = impostor(harness, key, observers={"obs-0": observer_key.public_key.raw},
                           on_message=serve_forgeries)
        await network.start()
        try:
            await asyncio.to_thread(harness.start_node, OBSERVER)
            await until(lambda: logged_observer(harness, "refused block-sync response"), 90,
                        "the observer to refuse a forged response")
            await until(lambda: logged_observer(harness, '"event": "p2p.quarantine"'), 60,
                        "the observer to quarantine node-3")
            start = await asyncio.to_thread(harness.heights, HONEST)
            target = max(start.values())
            await until(lambda: harness.heights([OBSERVER])[OBSERVER] >= target, 120,
                        "the observer to follow the honest validators")
        finally:
            await network.stop()

    asyncio.run(asyncio.wait_for(scenario(), 300))
    assert forged, "node-3 was never asked"
    log = harness.cluster.processes.log_path("obs-0").read_text(errors="replace")
    assert '"peer": "node-3"' in log and "bad_qc" in log
    harness.assert_agreement([*HONEST, OBSERVER])
    assert all(logged(harness, i, '"event": "committed"') for i in HONEST)


def logged_observer(harness: ClusterHarness, text: str) -> bool:
    return text in harness.cluster.processes.log_path("obs-0").read_text(errors="replace")
