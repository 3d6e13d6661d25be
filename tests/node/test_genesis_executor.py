"""A genesis may set the executor's parameters (e.g. short epochs); the node starts with them."""

from __future__ import annotations

import json

import pytest

from apps.node.bootstrap import load_or_create_tip
from cybermesh.protocol.genesis import GenesisError, genesis_document, parse_genesis
from tests.node.test_membership import genesis as base_genesis


def document(**executor: object) -> str:
    chain = base_genesis()
    data = genesis_document(chain_id=chain.chain_id, genesis_time_ms=0, validators=[
        (v.validator_id, v.public_key, v.power, v.address) for v in chain.validator_set])
    if executor:
        data["executor"] = executor
    return json.dumps(data)


@pytest.mark.unit
def test_executor_parameters_are_optional_and_checked() -> None:
    assert parse_genesis(document()).executor is None
    assert parse_genesis(document(epoch_length_blocks=20)).executor.epoch_length_blocks == 20
    with pytest.raises(GenesisError, match="unknown parameters: epoch_length"):
        parse_genesis(document(epoch_length=20))
    with pytest.raises(GenesisError, match="epoch_length_blocks must be within"):
        parse_genesis(document(epoch_length_blocks=0))


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_genesis_state_carries_them() -> None:
    tip = load_or_create_tip(parse_genesis(document(epoch_length_blocks=20)), node_id="node-0")
    assert tip.executor.state.parameters.epoch_length_blocks == 20
