"""Block sync: only answers to this node's own requests are absorbed."""

import pytest

from cybermesh.protocol.consensus.core import ConsensusCore, CoreConfig
from cybermesh.protocol.consensus.events import CommitBlocks, MessageReceived, Send, Start
from cybermesh.protocol.consensus.messages import Proposal, SyncRequest, SyncResponse
from cybermesh.protocol.consensus.sync import MAX_OUTSTANDING_REQUESTS, OutstandingRequests

from .conftest import DOMAINS

pytestmark = pytest.mark.unit


def make_core(net):
    core = ConsensusCore(config=CoreConfig(validator_id="v01", chain_id="test-chain"),
                         signer=net.signers["v01"], verifier=net.verifier, epoch=net.epoch,
                         committed=net.genesis)
    core.handle(Start())
    return core


def chain(net, length, payload=b"p"):
    blocks, qc = [], net.genesis_qc
    for view in range(1, length + 1):
        block = net.block(view, qc, payload)
        blocks.append(block)
        qc = net.qc_for(block)
    return blocks, qc


def proposal(net, block):
    leader = block.proposer
    return Proposal(block, None, net.signers[leader].sign(DOMAINS.proposal, block.statement()))


def missing_parent(net):
    """A proposal for view 3 whose QC certifies b2, which the node does not have: it asks."""
    (b1, b2, b3), _ = chain(net, 3)
    core = make_core(net)
    actions = core.handle(MessageReceived(b3.proposer, proposal(net, b3)))
    requests = [a for a in actions if isinstance(a, Send) and isinstance(a.message, SyncRequest)]
    assert {(a.to, a.message.block_id) for a in requests} == {(b3.proposer, b2.block_id)}
    assert len(core.sync_outstanding) == 1
    return core, (b1, b2, b3)


def test_a_requested_chain_is_absorbed_and_completes_the_waiting_commit(net):
    core, (b1, b2, b3) = missing_parent(net)
    actions = core.handle(MessageReceived(b3.proposer, SyncResponse(0, (b1, b2), None)))
    commits = [a for a in actions if isinstance(a, CommitBlocks)]
    assert [c.block.block_id for c in commits[0].blocks] == [b1.block_id]
    assert len(core.sync_outstanding) == 0


def test_an_unsolicited_response_is_dropped(net):
    core = make_core(net)
    blocks, qc = chain(net, 5, payload=b"flood")
    before, dropped = len(core.tree), core.stats.dropped
    core.handle(MessageReceived("v02", SyncResponse(0, tuple(blocks), qc)))
    assert len(core.tree) == before and core.stats.dropped == dropped + 1
    assert core.highest_qc.view == 0  # not even the QC was looked at


def test_a_response_from_another_peer_than_the_one_asked_is_dropped(net):
    core, (b1, b2, b3) = missing_parent(net)
    other = next(v for v in ("v00", "v02", "v03") if v != b3.proposer)
    core.handle(MessageReceived(other, SyncResponse(0, (b1, b2), None)))
    assert core.tree.get(b2.block_id) is None and len(core.sync_outstanding) == 1


def test_a_response_that_does_not_end_at_the_requested_block_is_dropped(net):
    core, (b1, _b2, b3) = missing_parent(net)
    core.handle(MessageReceived(b3.proposer, SyncResponse(0, (b1,), None)))
    assert core.tree.get(b1.block_id) is None


def test_a_response_that_is_not_one_hash_linked_chain_is_dropped(net):
    core, (_b1, b2, b3) = missing_parent(net)
    (stranger,), _ = chain(net, 1, payload=b"stranger")
    core.handle(MessageReceived(b3.proposer, SyncResponse(0, (stranger, b2), None)))
    assert core.tree.get(stranger.block_id) is None and core.tree.get(b2.block_id) is None


def test_each_request_is_answered_at_most_once(net):
    core, (b1, b2, b3) = missing_parent(net)
    core.handle(MessageReceived(b3.proposer, SyncResponse(0, (b1, b2), None)))
    dropped = core.stats.dropped
    core.handle(MessageReceived(b3.proposer, SyncResponse(0, (b1, b2), None)))
    assert core.stats.dropped == dropped + 1


def test_a_flood_of_unsolicited_responses_cannot_fill_the_block_store(net):
    core = make_core(net)
    for round_number in range(50):
        blocks, qc = chain(net, 8, payload=b"junk-%d" % round_number)
        core.handle(MessageReceived("v03", SyncResponse(0, tuple(blocks), qc)))
    assert len(core.tree) == 1  # the committed root only


def test_outstanding_requests_are_bounded_oldest_first(net):
    outstanding = OutstandingRequests()
    blocks, _ = chain(net, MAX_OUTSTANDING_REQUESTS + 1)
    for block in blocks:
        outstanding.add("v02", block.block_id)
    assert len(outstanding) == MAX_OUTSTANDING_REQUESTS
    assert outstanding.claim("v02", SyncResponse(0, (blocks[0],), None)) is None
    assert outstanding.claim("v02", SyncResponse(0, (blocks[-1],), None)) == blocks[-1].block_id


def test_the_nodes_own_recovery_record_is_absorbed_after_a_restart(net):
    # apps/node/runtime.py hands the chain it recorded before stopping back to the new core as
    # a SyncResponse from its own id: that is not a peer's unsolicited answer.
    core = make_core(net)
    (b1, b2), qc2 = chain(net, 2)
    core.handle(MessageReceived("v01", SyncResponse(0, (b1, b2), qc2)))
    assert core.highest_qc == qc2 and core.tree.get(b2.block_id) is not None
