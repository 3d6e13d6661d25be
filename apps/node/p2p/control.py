"""The link's own messages on the CONTROL topic: hello, ping, pong, goodbye.

Payload = one kind byte + body. The hello body is canonical CBOR (``cybermesh.protocol.codec``)
of ``{"version", "chain_id", "validator_id", "topics"}`` where ``topics`` is the SHA-256 of the
sorted topic table, so nodes of another chain, protocol version or topic configuration are told
apart with a clear reason instead of exchanging frames the other side misreads.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from apps.node.p2p.errors import PenaltyReason
from apps.node.p2p.framing import FrameError, Topic
from cybermesh.protocol.codec import CodecError, DecodeLimits, decode, encode

PROTOCOL_VERSION = 1
CONTROL_CAP = 1024
NONCE_SIZE = 8
MAX_GOODBYE_REASON = 64
_HELLO_LIMITS = DecodeLimits(max_bytes=CONTROL_CAP, max_depth=2, max_items=8)


class ControlKind(enum.IntEnum):
    HELLO = 1
    PING = 2
    PONG = 3
    GOODBYE = 4


@dataclass(frozen=True, slots=True)
class Hello:
    version: int
    chain_id: str
    validator_id: str
    topics: bytes


@dataclass(frozen=True, slots=True)
class Ping:
    nonce: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    nonce: bytes


@dataclass(frozen=True, slots=True)
class Goodbye:
    reason: str


ControlMessage = Hello | Ping | Pong | Goodbye


def topics_digest(topic_names: Mapping[Topic, str]) -> bytes:
    """SHA-256 over ``id=name`` lines of the topic table, sorted by id."""
    lines = "".join(f"{int(topic)}={topic_names[topic]}\n" for topic in sorted(topic_names))
    return hashlib.sha256(lines.encode()).digest()


def encode_control(message: ControlMessage) -> bytes:
    if isinstance(message, Hello):
        return bytes([ControlKind.HELLO]) + encode({
            "version": message.version, "chain_id": message.chain_id,
            "validator_id": message.validator_id, "topics": message.topics})
    if isinstance(message, Ping):
        return bytes([ControlKind.PING]) + message.nonce
    if isinstance(message, Pong):
        return bytes([ControlKind.PONG]) + message.nonce
    return bytes([ControlKind.GOODBYE]) + message.reason.encode()[:MAX_GOODBYE_REASON]


def _decode_hello(body: bytes) -> Hello:
    try:
        value = decode(body, _HELLO_LIMITS)
    except CodecError as error:
        raise FrameError(PenaltyReason.MALFORMED, f"hello is not canonical CBOR: {error}") from None
    if not isinstance(value, dict) or set(value) != {"version", "chain_id", "validator_id",
                                                     "topics"}:
        raise FrameError(PenaltyReason.MALFORMED, "hello has the wrong fields")
    version, chain_id = value["version"], value["chain_id"]
    validator_id, topics = value["validator_id"], value["topics"]
    if (type(version) is not int or type(chain_id) is not str
            or type(validator_id) is not str or type(topics) is not bytes):
        raise FrameError(PenaltyReason.MALFORMED, "hello has fields of the wrong type")
    return Hello(version=version, chain_id=chain_id, validator_id=validator_id, topics=topics)


def decode_control(payload: bytes) -> ControlMessage:
    """Parse a CONTROL payload; :class:`FrameError` (MALFORMED) for anything else."""
    if not payload:
        raise FrameError(PenaltyReason.MALFORMED, "empty control message")
    kind, body = payload[0], payload[1:]
    if kind == ControlKind.HELLO:
        return _decode_hello(body)
    if kind in (ControlKind.PING, ControlKind.PONG):
        if len(body) != NONCE_SIZE:
            raise FrameError(PenaltyReason.MALFORMED, "ping/pong nonce must be 8 bytes")
        return Ping(body) if kind == ControlKind.PING else Pong(body)
    if kind == ControlKind.GOODBYE:
        if len(body) > MAX_GOODBYE_REASON:
            raise FrameError(PenaltyReason.MALFORMED, "goodbye reason too long")
        return Goodbye(body.decode("utf-8", errors="replace"))
    raise FrameError(PenaltyReason.MALFORMED, f"unknown control kind {kind}")
