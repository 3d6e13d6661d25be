"""Ledger catch-up accepts only what the 2-chain rule proves committed (apps/node/ledger_sync)."""

from __future__ import annotations

import dataclasses

import pytest

from apps.node.ledger_sync import (
    MAX_BATCH,
    LedgerSyncError,
    LedgerSyncRefusal,
    choose_committed,
    encode_request,
    encode_response,
    parse_request,
    parse_response,
    provably_committed,
)
from cybermesh.protocol.consensus.messages import Block, QuorumCert, SyncResponse
from cybermesh.protocol.consensus.wire import DEFAULT_WIRE_LIMITS
from tests.protocol.consensus.conftest import Net

pytestmark = pytest.mark.unit


@pytest.fixture
def net() -> Net:
    return Net()


def chain(net: Net, views: list[int]) -> tuple[list[Block], list[QuorumCert]]:
    """Blocks on genesis with the given views, each certified; returns blocks and their QCs."""
    blocks, qcs = [], []
    qc = net.genesis_qc
    for view in views:
        block = net.block(view, qc)
        qc = net.qc_for(block)
        blocks.append(block)
        qcs.append(qc)
    return blocks, qcs


def committed(net: Net, response: SyncResponse, tip: Block | None = None) -> list[int]:
    chosen = provably_committed(tip or net.genesis, response, epoch=0,
                                verify_qc=lambda qc: net.certs.verify_qc(qc, net.epoch))
    return [block.height for block, _ in chosen]


def test_consecutive_views_commit_everything_below_the_certified_child(net: Net) -> None:
    blocks, qcs = chain(net, [1, 2, 3])
    assert committed(net, SyncResponse(0, tuple(blocks), qcs[-1])) == [1, 2]


def test_each_block_comes_with_the_qc_that_certifies_it(net: Net) -> None:
    blocks, qcs = chain(net, [1, 2, 3])
    chosen = provably_committed(net.genesis, SyncResponse(0, tuple(blocks), qcs[-1]), epoch=0,
                                verify_qc=lambda qc: net.certs.verify_qc(qc, net.epoch))
    assert [qc.block_id for _, qc in chosen] == [blocks[0].block_id, blocks[1].block_id]


def test_a_certified_block_without_a_consecutive_certified_child_is_not_taken(net: Net) -> None:
    # The attack: a Byzantine peer serves a certified but abandoned block as "committed".
    blocks, qcs = chain(net, [1, 3])
    assert committed(net, SyncResponse(0, tuple(blocks), qcs[-1])) == []
    assert committed(net, SyncResponse(0, tuple(blocks[:1]), qcs[0])) == []


def test_a_gap_in_views_further_up_still_commits_the_prefix_a_later_pair_proves(
        net: Net) -> None:
    blocks, qcs = chain(net, [1, 3, 5, 6])
    assert committed(net, SyncResponse(0, tuple(blocks), qcs[-1])) == [1, 2, 3]


def test_blocks_at_or_below_the_tip_are_skipped(net: Net) -> None:
    blocks, qcs = chain(net, [1, 2, 3, 4])
    assert committed(net, SyncResponse(0, tuple(blocks), qcs[-1]), tip=blocks[1]) == [3]


@pytest.mark.parametrize("damage", ["parent", "qc_link", "final_qc_block", "not_our_tip"])
def test_broken_links_are_refused(net: Net, damage: str) -> None:
    blocks, qcs = chain(net, [1, 2, 3])
    final = qcs[-1]
    tip = net.genesis
    if damage == "parent":
        blocks[1] = dataclasses.replace(blocks[1], parent_id=b"\x07" * 32)
    elif damage == "qc_link":
        blocks[2] = dataclasses.replace(blocks[2], qc=qcs[0])
    elif damage == "final_qc_block":
        final = qcs[1]
    else:
        tip = dataclasses.replace(net.genesis, timestamp_ms=99)
    with pytest.raises(LedgerSyncError) as caught:
        committed(net, SyncResponse(0, tuple(blocks), final), tip=tip)
    assert caught.value.reason is LedgerSyncRefusal.NOT_LINKED


def test_a_forged_final_qc_is_refused(net: Net) -> None:
    blocks, qcs = chain(net, [1, 2, 3])
    forged = dataclasses.replace(qcs[-1], signatures=tuple(
        (signer, bytes(64)) for signer, _ in qcs[-1].signatures))
    with pytest.raises(LedgerSyncError) as caught:
        committed(net, SyncResponse(0, tuple(blocks), forged))
    assert caught.value.reason is LedgerSyncRefusal.BAD_QC


def test_another_epoch_is_refused(net: Net) -> None:
    blocks, qcs = chain(net, [1, 2, 3])
    with pytest.raises(LedgerSyncError) as caught:
        provably_committed(net.genesis, SyncResponse(0, tuple(blocks), qcs[-1]), epoch=1,
                           verify_qc=lambda qc: None)
    assert caught.value.reason is LedgerSyncRefusal.WRONG_EPOCH


def test_responses_round_trip_and_garbage_is_malformed(net: Net) -> None:
    blocks, qcs = chain(net, [1, 2])
    response = SyncResponse(0, tuple(blocks), qcs[-1])
    assert parse_response(encode_response(response), DEFAULT_WIRE_LIMITS) == response
    with pytest.raises(LedgerSyncError) as caught:
        parse_response(b"\xf1garbage", DEFAULT_WIRE_LIMITS)
    assert caught.value.reason is LedgerSyncRefusal.MALFORMED
    with pytest.raises(LedgerSyncError):
        parse_response(encode_response(SyncResponse(0, tuple(blocks), None)),
                       DEFAULT_WIRE_LIMITS)


def test_requests_are_bounded() -> None:
    assert parse_request(encode_request(5, 10)) == (5, 10)
    assert parse_request(encode_request(5, 10_000)) == (5, MAX_BATCH)
    assert parse_request(b"\xf0\xff\xff") is None
    assert parse_request(b"\xf0" + b"\x83\x01\x02\x03") is None


def test_a_batch_fits_the_budget_and_ends_on_a_consecutive_pair(net: Net) -> None:
    big = 10_000
    qc = net.genesis_qc
    ledger: dict[int, tuple[Block, QuorumCert]] = {}
    for height, view in enumerate([1, 2, 4, 6, 7, 8, 9, 10], start=1):
        block = net.block(view, qc, payload=b"x" * big)
        qc = net.qc_for(block)
        ledger[height] = (block, qc)
    blocks, final = choose_committed(ledger.get, 1, 8, budget=4 * big)
    assert sum(len(block.payload) for block in blocks) <= 4 * big
    assert [b.view for b in blocks] == [1, 2]  # a pair early: stop at the soft limit
    blocks, final = choose_committed(ledger.get, 3, 8, budget=10 * big)
    assert [b.view for b in blocks][-2:] in ([6, 7], [7, 8], [8, 9], [9, 10])
    assert final is not None and final.block_id == blocks[-1].block_id


def test_a_batch_stops_at_the_block_that_ends_the_epoch(net: Net) -> None:
    blocks, qcs = chain(net, [1, 2, 3])
    ending = dataclasses.replace(blocks[1], next_validators=net.validator_set.validators)
    ledger = {1: (blocks[0], qcs[0]), 2: (ending, qcs[1]), 3: (blocks[2], qcs[2])}
    chosen, _ = choose_committed(ledger.get, 1, 3, budget=1 << 20)
    assert [block.height for block in chosen] == [1, 2]
