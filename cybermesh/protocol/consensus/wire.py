"""The wire form of consensus messages: one tag byte, then the canonical CBOR body.

The tag comes first so the size cap of the kind is checked before a single CBOR byte is parsed.
Decoding is strict: the body must be canonical CBOR of exactly the expected shape, hashes and
signatures have exact lengths, signer lists are sorted and unique, counts are capped. Anything
else raises :class:`MessageError` with a reason, and nothing else escapes this module.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cybermesh.protocol.codec import CodecError, DecodeLimits, decode
from cybermesh.protocol.consensus import canonical
from cybermesh.protocol.consensus.errors import MessageError, MessageErrorReason
from cybermesh.protocol.consensus.messages import (
    Block,
    Evidence,
    EvidenceKind,
    Heartbeat,
    Message,
    Proposal,
    QuorumCert,
    SignedStatement,
    SyncRequest,
    SyncResponse,
    Timeout,
    TimeoutCert,
    Vote,
)
from cybermesh.protocol.validator_set import Validator

_R = MessageErrorReason
MAX_VALIDATORS = 256
MAX_ID_CHARS = 64
MAX_ADDRESS_CHARS = 255
MAX_INT = (1 << 63) - 1


class MessageKind(enum.IntEnum):
    PROPOSAL = 1
    VOTE = 2
    TIMEOUT = 3
    TIMEOUT_CERT = 4
    HEARTBEAT = 5
    EVIDENCE = 6
    SYNC_REQUEST = 7
    SYNC_RESPONSE = 8


@dataclass(frozen=True, slots=True)
class WireLimits:
    """Byte caps per message kind; a block's payload is capped by ``max_payload_bytes``."""

    max_payload_bytes: int = 2 * 1024 * 1024
    max_sync_blocks: int = 64

    def cap(self, kind: MessageKind) -> int:
        return _caps(self)[kind]


@functools.lru_cache(maxsize=16)
def _caps(limits: WireLimits) -> dict[MessageKind, int]:
    """The byte cap of every kind under ``limits`` (computed once per limits value)."""
    certificate = 128 + MAX_VALIDATORS * (MAX_ID_CHARS + 80)
    block = limits.max_payload_bytes + 2 * certificate + MAX_VALIDATORS * 400
    return {
        MessageKind.PROPOSAL: block + certificate,
        MessageKind.VOTE: 512,
        MessageKind.TIMEOUT: 2 * certificate + 512,
        MessageKind.TIMEOUT_CERT: certificate + 512,
        MessageKind.HEARTBEAT: 512,
        MessageKind.EVIDENCE: 1024,
        MessageKind.SYNC_REQUEST: 256,
        MessageKind.SYNC_RESPONSE: limits.max_sync_blocks * block + certificate,
    }


DEFAULT_WIRE_LIMITS = WireLimits()
_KIND_BY_TAG = {int(kind): kind for kind in MessageKind}

_KIND_OF: dict[type, MessageKind] = {
    Proposal: MessageKind.PROPOSAL, Vote: MessageKind.VOTE, Timeout: MessageKind.TIMEOUT,
    TimeoutCert: MessageKind.TIMEOUT_CERT, Heartbeat: MessageKind.HEARTBEAT,
    Evidence: MessageKind.EVIDENCE, SyncRequest: MessageKind.SYNC_REQUEST,
    SyncResponse: MessageKind.SYNC_RESPONSE,
}


def encode_message(message: Message) -> bytes:
    """Tag byte + canonical CBOR body."""
    return bytes((_KIND_OF[type(message)],)) + canonical.encode(message.to_cbor())


def decode_message(data: bytes, limits: WireLimits = DEFAULT_WIRE_LIMITS) -> Message:
    """Decode untrusted bytes into a message, or raise :class:`MessageError`."""
    if not data:
        raise MessageError(_R.EMPTY, "no bytes")
    kind = _KIND_BY_TAG.get(data[0])
    if kind is None:
        raise MessageError(_R.UNKNOWN_KIND, f"tag {data[0]}")
    cap = limits.cap(kind)
    if len(data) > cap:
        raise MessageError(_R.TOO_LARGE, f"{kind.name} of {len(data)} bytes exceeds {cap}")
    try:
        body = decode(data[1:], DecodeLimits(max_bytes=cap, max_depth=8,
                                             max_items=1 + cap // 2))
    except CodecError as error:
        raise MessageError(_R.MALFORMED_CBOR, str(error)) from None
    parser = _PARSERS[kind]
    try:
        return parser(body, limits)
    except (TypeError, ValueError, IndexError) as error:
        if isinstance(error, MessageError):
            raise
        raise MessageError(_R.BAD_SHAPE, f"{kind.name}: {error}") from None


def _list(value: Any, length: int, what: str) -> list[Any]:
    if type(value) is not list or len(value) != length:
        raise MessageError(_R.BAD_SHAPE, f"{what} must be an array of {length}")
    return value


def _int(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_INT:
        raise MessageError(_R.BAD_FIELD, f"{what} must be an integer in 0..2^63-1")
    return value


def _hash(value: Any, what: str) -> bytes:
    if type(value) is not bytes or len(value) != 32:
        raise MessageError(_R.BAD_FIELD, f"{what} must be 32 bytes")
    return value


def _signature(value: Any, what: str) -> bytes:
    if type(value) is not bytes or len(value) != 64:
        raise MessageError(_R.BAD_FIELD, f"{what} must be 64 bytes")
    return value


def _ident(value: Any, what: str, *, allow_empty: bool = False) -> str:
    if type(value) is not str or len(value) > MAX_ID_CHARS or (not value and not allow_empty):
        raise MessageError(_R.BAD_FIELD, f"{what} must be a text id of 1..{MAX_ID_CHARS}")
    return value


def _signer_list(value: Any, width: int, what: str) -> list[list[Any]]:
    if type(value) is not list:
        raise MessageError(_R.BAD_SHAPE, f"{what} must be an array")
    if len(value) > MAX_VALIDATORS:
        raise MessageError(_R.TOO_MANY_SIGNERS, f"{what}: {len(value)} > {MAX_VALIDATORS}")
    previous = ""
    for index, entry in enumerate(value):
        _list(entry, width, f"{what}[{index}]")
        signer = _ident(entry[0], f"{what}[{index}] signer")
        if index and signer == previous:
            raise MessageError(_R.DUPLICATE_SIGNER, f"{what}: {signer!r} twice")
        if index and signer < previous:
            raise MessageError(_R.UNSORTED_SIGNERS, f"{what} must be sorted by signer")
        previous = signer
    return value


def parse_qc(value: Any) -> QuorumCert:
    epoch, view, block_id, height, sigs = _list(value, 5, "qc")
    entries = _signer_list(sigs, 2, "qc signatures")
    return QuorumCert(
        epoch=_int(epoch, "qc epoch"), view=_int(view, "qc view"),
        block_id=_hash(block_id, "qc block id"), height=_int(height, "qc height"),
        signatures=tuple((s, _signature(sig, "qc signature")) for s, sig in entries))


def parse_tc(value: Any) -> TimeoutCert:
    epoch, view, sigs = _list(value, 3, "tc")
    entries = _signer_list(sigs, 3, "tc signatures")
    return TimeoutCert(
        epoch=_int(epoch, "tc epoch"), view=_int(view, "tc view"),
        signatures=tuple((s, _int(qv, "tc qc view"), _signature(sig, "tc signature"))
                         for s, qv, sig in entries))


def _validators(value: Any) -> tuple[Validator, ...] | None:
    if value is None:
        return None
    if type(value) is not list or not 0 < len(value) <= MAX_VALIDATORS:
        raise MessageError(_R.BAD_FIELD, "next validators must be a non-empty array")
    out = []
    for entry in value:
        vid, key, power, address = _list(entry, 4, "validator")
        if type(address) is not str or len(address) > MAX_ADDRESS_CHARS:
            raise MessageError(_R.BAD_FIELD, "validator address")
        out.append(Validator(validator_id=_ident(vid, "validator id"),
                             public_key=_hash(key, "validator key"),
                             power=_int(power, "validator power"), address=address))
    return tuple(out)


def parse_block(value: Any, limits: WireLimits) -> Block:
    (epoch, view, height, parent_id, proposer, timestamp, payload, tx_root, state_root,
     set_hash, qc, next_validators) = _list(value, 12, "block")
    if type(payload) is not bytes or len(payload) > limits.max_payload_bytes:
        raise MessageError(_R.BAD_FIELD, "payload must be bytes within the payload cap")
    return Block(
        epoch=_int(epoch, "epoch"), view=_int(view, "view"), height=_int(height, "height"),
        parent_id=_hash(parent_id, "parent id"),
        proposer=_ident(proposer, "proposer", allow_empty=True),
        timestamp_ms=_int(timestamp, "timestamp"), payload=payload,
        tx_root=_hash(tx_root, "tx root"), state_root=_hash(state_root, "state root"),
        validator_set_hash=_hash(set_hash, "validator set hash"), qc=parse_qc(qc),
        next_validators=_validators(next_validators))


def _proposal(body: Any, limits: WireLimits) -> Proposal:
    block, tc, signature = _list(body, 3, "proposal")
    return Proposal(block=parse_block(block, limits), tc=None if tc is None else parse_tc(tc),
                    signature=_signature(signature, "proposal signature"))


def _vote(body: Any, limits: WireLimits) -> Vote:
    epoch, view, block_id, height, voter, signature = _list(body, 6, "vote")
    return Vote(epoch=_int(epoch, "epoch"), view=_int(view, "view"),
                block_id=_hash(block_id, "block id"), height=_int(height, "height"),
                voter=_ident(voter, "voter"), signature=_signature(signature, "signature"))


def parse_vote_body(body: Any) -> Vote:
    """A vote from its CBOR array (used to reload persisted safety data)."""
    try:
        return _vote(body, DEFAULT_WIRE_LIMITS)
    except (TypeError, IndexError) as error:
        raise MessageError(_R.BAD_SHAPE, f"vote: {error}") from None


def _timeout(body: Any, limits: WireLimits) -> Timeout:
    epoch, view, high_qc, sender, signature, high_tc = _list(body, 6, "timeout")
    return Timeout(epoch=_int(epoch, "epoch"), view=_int(view, "view"), high_qc=parse_qc(high_qc),
                   sender=_ident(sender, "sender"), signature=_signature(signature, "signature"),
                   high_tc=None if high_tc is None else parse_tc(high_tc))


def _timeout_cert(body: Any, limits: WireLimits) -> TimeoutCert:
    return parse_tc(body)


def _heartbeat(body: Any, limits: WireLimits) -> Heartbeat:
    epoch, view, qc_view, sender, signature = _list(body, 5, "heartbeat")
    return Heartbeat(epoch=_int(epoch, "epoch"), view=_int(view, "view"),
                     highest_qc_view=_int(qc_view, "qc view"), sender=_ident(sender, "sender"),
                     signature=_signature(signature, "signature"))


def _statement(value: Any) -> SignedStatement:
    block_id, height, signature = _list(value, 3, "statement")
    return SignedStatement(block_id=_hash(block_id, "block id"), height=_int(height, "height"),
                           signature=_signature(signature, "signature"))


def _evidence(body: Any, limits: WireLimits) -> Evidence:
    kind, epoch, view, validator_id, first, second = _list(body, 6, "evidence")
    try:
        evidence_kind = EvidenceKind(_int(kind, "evidence kind"))
    except ValueError:
        raise MessageError(_R.BAD_FIELD, "unknown evidence kind") from None
    return Evidence(kind=evidence_kind, epoch=_int(epoch, "epoch"), view=_int(view, "view"),
                    validator_id=_ident(validator_id, "validator id"),
                    first=_statement(first), second=_statement(second))


def _sync_request(body: Any, limits: WireLimits) -> SyncRequest:
    epoch, committed_height, block_id = _list(body, 3, "sync request")
    return SyncRequest(epoch=_int(epoch, "epoch"),
                       committed_height=_int(committed_height, "committed height"),
                       block_id=_hash(block_id, "block id"))


def _sync_response(body: Any, limits: WireLimits) -> SyncResponse:
    epoch, blocks, qc = _list(body, 3, "sync response")
    if type(blocks) is not list or len(blocks) > limits.max_sync_blocks:
        raise MessageError(_R.BAD_FIELD, f"sync blocks: at most {limits.max_sync_blocks}")
    return SyncResponse(epoch=_int(epoch, "epoch"),
                        blocks=tuple(parse_block(b, limits) for b in blocks),
                        qc=None if qc is None else parse_qc(qc))


_PARSERS: dict[MessageKind, Callable[[Any, WireLimits], Message]] = {
    MessageKind.PROPOSAL: _proposal, MessageKind.VOTE: _vote, MessageKind.TIMEOUT: _timeout,
    MessageKind.TIMEOUT_CERT: _timeout_cert, MessageKind.HEARTBEAT: _heartbeat,
    MessageKind.EVIDENCE: _evidence, MessageKind.SYNC_REQUEST: _sync_request,
    MessageKind.SYNC_RESPONSE: _sync_response,
}
