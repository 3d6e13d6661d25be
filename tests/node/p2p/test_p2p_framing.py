"""Frames: header checks before allocation, per-topic caps, control messages."""

from __future__ import annotations

import asyncio
import struct

import pytest

from apps.node.p2p.control import (
    Goodbye,
    Hello,
    Ping,
    Pong,
    decode_control,
    encode_control,
    topics_digest,
)
from apps.node.p2p.errors import PenaltyReason
from apps.node.p2p.framing import FrameError, Topic, encode_frame, parse_header, read_frame

pytestmark = pytest.mark.unit

CAPS = dict.fromkeys(Topic, 100)


def _read(data: bytes):
    async def go():
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        frames = []
        while (frame := await read_frame(reader, CAPS)) is not None:
            frames.append(frame)
        return frames
    return asyncio.run(asyncio.wait_for(go(), 5))


def test_frames_round_trip_in_order():
    data = encode_frame(Topic.VOTE, b"v1") + encode_frame(Topic.PROPOSAL, b"") + encode_frame(
        Topic.BLOCKSYNC, b"x" * 100)
    assert _read(data) == [(Topic.VOTE, b"v1"), (Topic.PROPOSAL, b""),
                           (Topic.BLOCKSYNC, b"x" * 100)]


def test_header_over_the_topic_cap_is_oversized_before_any_payload_is_read():
    with pytest.raises(FrameError) as caught:
        parse_header(struct.pack(">IB", 0xFFFFFFFF, Topic.VOTE), CAPS)
    assert caught.value.reason is PenaltyReason.OVERSIZED
    # The stream holds only the header: the reader must refuse without waiting for 4 GiB.
    with pytest.raises(FrameError):
        _read(struct.pack(">IB", 0xFFFFFFFF, Topic.VOTE))


def test_cap_is_per_topic():
    caps = dict(CAPS)
    caps[Topic.VOTE] = 10
    assert parse_header(struct.pack(">IB", 11, Topic.VOTE), caps) == (Topic.VOTE, 10)
    with pytest.raises(FrameError):
        parse_header(struct.pack(">IB", 12, Topic.VOTE), caps)
    assert parse_header(struct.pack(">IB", 12, Topic.PROPOSAL), caps) == (Topic.PROPOSAL, 11)


@pytest.mark.parametrize("header", [struct.pack(">IB", 5, 0xEE), struct.pack(">IB", 0, 1)])
def test_unknown_topic_or_zero_length_is_malformed(header):
    with pytest.raises(FrameError) as caught:
        parse_header(header, CAPS)
    assert caught.value.reason is PenaltyReason.MALFORMED


def test_stream_ending_inside_a_frame_is_an_incomplete_read():
    with pytest.raises(asyncio.IncompleteReadError):
        _read(encode_frame(Topic.VOTE, b"abcdef")[:-2])
    with pytest.raises(asyncio.IncompleteReadError):
        _read(b"\x00\x00")


def test_control_messages_round_trip():
    hello = Hello(version=1, chain_id="c", validator_id="node-1",
                  topics=topics_digest({Topic.VOTE: "consensus/vote"}))
    for message in (hello, Ping(b"12345678"), Pong(b"87654321"), Goodbye("quarantined")):
        assert decode_control(encode_control(message)) == message


@pytest.mark.parametrize("payload", [
    b"", b"\x09", b"\x02short", b"\x01\xff", b"\x01" + bytes.fromhex("a0"),
    b"\x04" + b"x" * 65,
])
def test_bad_control_messages_are_malformed(payload):
    with pytest.raises(FrameError) as caught:
        decode_control(payload)
    assert caught.value.reason is PenaltyReason.MALFORMED


def test_topic_digest_changes_with_a_topic_name():
    assert topics_digest({Topic.VOTE: "consensus/vote"}) != topics_digest(
        {Topic.VOTE: "consensus/votes"})


def test_topic_kinds_match_settings_keys():
    assert Topic.from_kind("blocksync") is Topic.BLOCKSYNC
    assert Topic.VIEWCHANGE.kind == "viewchange"
    with pytest.raises(ValueError):
        Topic.from_kind("gossip")
