"""Epoch-end proofs are kept in their serving form and survive a restart (the database)."""

from __future__ import annotations

import dataclasses

import pytest

from apps.node.epoch_proofs import (
    load_epoch_proof,
    persist_epoch_proof,
    recent_epoch_proofs,
    serving_form,
)
from cybermesh.protocol.consensus.messages import SyncResponse
from tests.protocol.consensus.conftest import Net


def proof(net: Net) -> SyncResponse:
    """Blocks 1..4; block 2 ends the epoch, 3 and 4 (certified) prove it committed."""
    blocks, qc = [], net.genesis_qc
    for view in (1, 2, 3, 4):
        block = net.block(view, qc)
        if view == 2:
            block = dataclasses.replace(block, next_validators=net.validator_set.validators)
        qc = net.qc_for(block)
        blocks.append(block)
    return SyncResponse(0, tuple(blocks), qc)


@pytest.mark.unit
def test_the_serving_form_starts_at_the_reconfiguration_block() -> None:
    full = proof(Net())
    served = serving_form(full)
    assert served is not None
    assert [block.height for block in served.blocks] == [2, 3, 4]
    assert served.qc == full.qc
    without = SyncResponse(0, tuple(dataclasses.replace(b, next_validators=None)
                                    for b in full.blocks), full.qc)
    assert serving_form(without) is None
    assert serving_form(SyncResponse(0, full.blocks[:2], full.qc)) is None  # nothing above


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_kept_proof_loads_back_and_the_first_one_wins() -> None:
    full = proof(Net())
    assert persist_epoch_proof(full)
    loaded = load_epoch_proof(0)
    assert loaded == serving_form(full)
    other = SyncResponse(0, full.blocks[:3], full.qc)  # a second, different proof
    assert persist_epoch_proof(other)
    assert load_epoch_proof(0) == serving_form(full)
    assert recent_epoch_proofs(1, 4) == {0: serving_form(full)}
    assert recent_epoch_proofs(0, 4) == {}
    assert load_epoch_proof(7) is None
