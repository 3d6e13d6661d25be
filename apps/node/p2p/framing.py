"""Frames on a peer link: ``[u32 length][u8 topic id][payload]``, all big-endian.

``length`` counts the topic byte and the payload, so it is at least 1. The reader reads the
5-byte header, checks the topic id and the length against that topic's cap, and only then reads
(and allocates) the payload: a header claiming 4 GiB costs nothing. A frame that fails a check
leaves the stream at an unknown position, so the link is closed (and the peer penalised).

Topic ids are fixed by this module, not by configuration: the settings' topic *names*
(``P2P_TOPICS``) label metrics and logs and are compared in the hello, but two nodes agree on
the wire because the ids are constants.
"""

from __future__ import annotations

import asyncio
import enum
import struct
from collections.abc import Mapping

from apps.node.p2p.errors import PenaltyReason

HEADER = struct.Struct(">IB")
HEADER_SIZE = HEADER.size
MAX_LENGTH = 0xFFFFFFFF


class Topic(enum.IntEnum):
    """Wire topic ids. CONTROL carries the link's own messages (hello, ping, pong, goodbye)."""

    CONTROL = 0
    PROPOSAL = 1
    VOTE = 2
    VIEWCHANGE = 3
    NEWVIEW = 4
    HEARTBEAT = 5
    EVIDENCE = 6
    BLOCKSYNC = 7

    @property
    def kind(self) -> str:
        """The settings key of the topic (``P2P_TOPICS`` maps kind -> name)."""
        return self.name.lower()

    @classmethod
    def from_kind(cls, kind: str) -> Topic:
        try:
            return cls[kind.upper()]
        except KeyError:
            raise ValueError(f"unknown topic kind {kind!r}") from None


APPLICATION_TOPICS = tuple(topic for topic in Topic if topic is not Topic.CONTROL)


class FrameError(Exception):
    """A frame that cannot be accepted; ``reason`` is the penalty it earns the sender."""

    def __init__(self, reason: PenaltyReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}")


def encode_frame(topic: Topic, payload: bytes) -> bytes:
    """Header plus payload, ready to write."""
    return HEADER.pack(len(payload) + 1, topic) + payload


def parse_header(header: bytes, caps: Mapping[Topic, int]) -> tuple[Topic, int]:
    """Check a 5-byte header against the per-topic caps; return (topic, payload length)."""
    length, topic_id = HEADER.unpack(header)
    try:
        topic = Topic(topic_id)
    except ValueError:
        raise FrameError(PenaltyReason.MALFORMED, f"unknown topic id {topic_id}") from None
    if length == 0:
        raise FrameError(PenaltyReason.MALFORMED, "zero frame length")
    payload_length = length - 1
    cap = caps[topic]
    if payload_length > cap:
        raise FrameError(PenaltyReason.OVERSIZED,
                         f"{topic.kind} frame of {payload_length} bytes, cap {cap}")
    return topic, payload_length


async def read_frame(reader: asyncio.StreamReader, caps: Mapping[Topic, int]
                     ) -> tuple[Topic, bytes] | None:
    """Read one frame; ``None`` on a clean end of stream between frames.

    Raises :class:`FrameError` for a bad header, and ``asyncio.IncompleteReadError`` when the
    stream ends inside a frame.
    """
    try:
        header = await reader.readexactly(HEADER_SIZE)
    except asyncio.IncompleteReadError as error:
        if not error.partial:
            return None
        raise
    topic, payload_length = parse_header(header, caps)
    payload = await reader.readexactly(payload_length) if payload_length else b""
    return topic, payload
