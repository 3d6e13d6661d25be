from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermesh.protocol import codec
from cybermesh.protocol.consensus import canonical
from cybermesh.protocol.consensus.messages import Block, QuorumCert
from cybermesh.protocol.crypto.hashing import sha256
from cybermesh.protocol.validator_set import Validator

pytestmark = pytest.mark.unit

SCALARS = (st.integers(-(2**66), 2**66) | st.binary(max_size=300) | st.none() | st.booleans()
           | st.text(alphabet=st.characters(blacklist_categories=()), max_size=40)
           | st.floats(allow_nan=False))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=30)
                      | st.lists(inner, max_size=5).map(tuple)
                      | st.dictionaries(st.integers(0, 50) | st.text(max_size=5), inner,
                                        max_size=4), max_leaves=80)


def outcome(function, value):
    try:
        return function(value)
    except codec.CodecError as error:
        return ("refused", error.reason)


@settings(max_examples=400)
@given(VALUES)
def test_fast_encoding_is_byte_for_byte_the_codec_or_the_same_refusal(value):
    assert outcome(canonical.encode, value) == outcome(codec.encode, value)


@pytest.mark.parametrize("depth", [15, 16, 17, 18])
def test_nesting_limit_matches_the_codec(depth):
    value: object = 1
    for _ in range(depth):
        value = [value]
    assert outcome(canonical.encode, value) == outcome(codec.encode, value)


@pytest.mark.parametrize("argument", [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32,
                                      2**64 - 1])
def test_heads_are_the_shortest_form(argument):
    assert canonical.encode(argument) == codec.encode(argument)
    assert canonical.encode(b"x" * min(argument, 70000)) == codec.encode(
        b"x" * min(argument, 70000))


HASHES = st.binary(min_size=0, max_size=40)
QCS = st.builds(QuorumCert, epoch=st.integers(0, 2**64 - 1), view=st.integers(0, 2**64 - 1),
                block_id=HASHES, height=st.integers(0, 2**64 - 1),
                signatures=st.lists(st.tuples(st.text(max_size=70), st.binary(max_size=70)),
                                    max_size=5).map(tuple))
VALIDATORS = st.lists(st.builds(Validator, validator_id=st.text(min_size=1, max_size=8),
                                public_key=st.binary(min_size=32, max_size=32),
                                power=st.integers(1, 10), address=st.text(max_size=8)),
                      min_size=1, max_size=3).map(tuple)
BLOCKS = st.builds(Block, epoch=st.integers(0, 2**64 - 1), view=st.integers(0, 2**64 - 1),
                   height=st.integers(0, 2**64 - 1), parent_id=HASHES,
                   proposer=st.text(max_size=70),
                   timestamp_ms=st.integers(0, 2**64 - 1), payload=st.binary(max_size=100),
                   tx_root=HASHES, state_root=HASHES, validator_set_hash=HASHES, qc=QCS,
                   next_validators=st.none() | VALIDATORS)


@settings(max_examples=300)
@given(BLOCKS)
def test_block_ids_and_qc_digests_hash_exactly_the_canonical_encoding(block):
    assert block.qc.digest() == sha256(codec.encode(block.qc.to_cbor()))
    assert block.block_id == sha256(codec.encode(block.header()))
    assert replace(block, payload=block.payload + b"x").block_id != block.block_id
