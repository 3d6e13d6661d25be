"""Executing a checked proposal with the transactions validate_payload decoded gives exactly
what decoding the payload again gives (the replica's path decodes each payload once)."""

from __future__ import annotations

import pytest

from apps.state.execution import execute_block, record_label
from cybermesh.protocol.block_builder import validate_payload
from cybermesh.protocol.codec import encode
from cybermesh.protocol.consensus.messages import ZERO_HASH, Block, QuorumCert
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.executor import ExecutorParameters, genesis_state
from cybermesh.protocol.validator_set import Validator
from tests.protocol.test_block_builder import CHAIN, LIMITS, NOW, _canonical, many

pytestmark = pytest.mark.unit


def test_execution_with_the_validated_transactions_equals_execution_from_the_payload():
    state = genesis_state(
        chain_id=CHAIN, genesis_time_ms=NOW - 60_000, parameters=ExecutorParameters(),
        validators=[Validator("validator-0", SigningKey.from_seed(b"\x01" * 32).public_key.raw,
                              10, "10.0.0.1:7000")])
    payload = encode([tx.wire for tx in _canonical(many(30))])
    block = Block(epoch=0, view=1, height=state.height + 1, parent_id=ZERO_HASH,
                  proposer="validator-0", timestamp_ms=NOW, payload=payload,
                  tx_root=ZERO_HASH, state_root=ZERO_HASH, validator_set_hash=ZERO_HASH,
                  qc=QuorumCert(0, 0, ZERO_HASH, 0, ()))
    validated = validate_payload(payload, limits=LIMITS, block_time_ms=NOW, chain_id=CHAIN)
    decoded_here = execute_block(state, block)
    handed_over = execute_block(state, block, transactions=validated.transactions)
    assert handed_over.execution == decoded_here.execution
    assert handed_over.events == decoded_here.events
    assert handed_over.state.entries() == decoded_here.state.entries()
    assert len(handed_over.execution.transactions or ()) == 30
    # The labels read from the new state's typed records are the ones decoding gives.
    assert [update.namespace for update in handed_over.execution.state_updates] == [
        record_label(update.key, update.value, state)
        for update in handed_over.execution.state_updates]
    assert {update.namespace for update in handed_over.execution.state_updates} >= {"event"}
