import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cybermesh.protocol.codec import CodecError, encode
from cybermesh.protocol.consensus.errors import MessageError, MessageErrorReason
from cybermesh.protocol.consensus.messages import (
    Evidence,
    EvidenceKind,
    Heartbeat,
    Proposal,
    SignedStatement,
    SyncRequest,
    SyncResponse,
    Timeout,
    TimeoutCert,
    Vote,
    block_statement,
    timeout_statement,
)
from cybermesh.protocol.consensus.wire import WireLimits, decode_message, encode_message

pytestmark = pytest.mark.unit


def all_messages(net):
    b1 = net.block(1, net.genesis_qc)
    qc1 = net.qc_for(b1)
    b2 = net.block(2, qc1)
    tc = TimeoutCert(0, 3, (("v00", 1, b"s" * 64), ("v01", 0, b"t" * 64)))
    return [
        Proposal(b2, tc, b"x" * 64),
        Vote(0, 2, b2.block_id, 2, "v01", b"y" * 64),
        Timeout(0, 3, qc1, "v02", b"z" * 64, tc),
        tc,
        Heartbeat(0, 4, 1, "v03", b"h" * 64),
        Evidence(EvidenceKind.DOUBLE_VOTE, 0, 2, "v01", SignedStatement(b"\x01" * 32, 2, b"a" * 64),
                 SignedStatement(b"\x02" * 32, 2, b"b" * 64)),
        SyncRequest(0, 1, b2.block_id),
        SyncResponse(0, (b1, b2), qc1),
    ]


def test_every_message_kind_round_trips_through_the_wire(net):
    for message in all_messages(net):
        assert decode_message(encode_message(message)) == message


def test_block_id_commits_to_payload_and_certificate(net):
    block = net.block(1, net.genesis_qc)
    assert net.block(1, net.genesis_qc, payload=b"other").block_id != block.block_id
    decoded = decode_message(encode_message(Proposal(block, None, b"x" * 64)))
    assert decoded.block.block_id == block.block_id


@pytest.mark.parametrize("data, reason", [
    (b"", MessageErrorReason.EMPTY),
    (b"\x63abc", MessageErrorReason.UNKNOWN_KIND),
    (b"\x02\xff", MessageErrorReason.MALFORMED_CBOR),
    (b"\x02\x83\x01\x02\x03", MessageErrorReason.BAD_SHAPE),
    (b"\x02" + b"\x00" * 600, MessageErrorReason.TOO_LARGE),
])
def test_garbage_is_refused_with_a_reason(data, reason):
    with pytest.raises(MessageError) as error:
        decode_message(data)
    assert error.value.reason is reason


def test_unsorted_or_duplicate_signers_are_refused(net):
    tc = TimeoutCert(0, 3, (("v01", 1, b"s" * 64), ("v00", 0, b"t" * 64)))
    with pytest.raises(MessageError) as error:
        decode_message(encode_message(tc))
    assert error.value.reason is MessageErrorReason.UNSORTED_SIGNERS
    tc = TimeoutCert(0, 3, (("v01", 1, b"s" * 64), ("v01", 0, b"t" * 64)))
    with pytest.raises(MessageError) as error:
        decode_message(encode_message(tc))
    assert error.value.reason is MessageErrorReason.DUPLICATE_SIGNER


def test_payload_cap_is_enforced(net):
    proposal = Proposal(net.block(1, net.genesis_qc, payload=b"p" * 100), None, b"x" * 64)
    with pytest.raises(MessageError):
        decode_message(encode_message(proposal), WireLimits(max_payload_bytes=50))


def test_random_mutations_never_raise_anything_but_message_error(net):
    from cybermesh.protocol.consensus.sim.rng import SimRng

    rng = SimRng(7)
    encoded = [encode_message(m) for m in all_messages(net)]
    for _ in range(3000):
        data = bytearray(rng.choice(encoded))
        for _ in range(rng.between(1, 4)):
            data[rng.below(len(data))] = rng.below(256)
        with contextlib.suppress(MessageError):
            decode_message(bytes(data[: rng.between(0, len(data))]))


@given(st.integers(-(2**65), 2**65), st.integers(0, 2**64 + 5), st.binary(max_size=40),
       st.integers(0, 2**70))
def test_statements_are_exactly_the_canonical_cbor_of_their_fields(epoch, view, block_id,
                                                                     height):
    def canonical(*values):
        try:
            return encode(list(values))
        except CodecError:
            return CodecError

    def built(function, *values):
        try:
            return function(*values)
        except CodecError:
            return CodecError

    assert built(block_statement, epoch, view, block_id, height) == canonical(
        epoch, view, block_id, height)
    assert built(timeout_statement, epoch, view, height) == canonical(epoch, view, height)
    assert built(block_statement, 1, view, b"\x07" * 32, height % 2**64) == canonical(
        1, view, b"\x07" * 32, height % 2**64)
