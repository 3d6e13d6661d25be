"""Consensus messages: frozen dataclasses with one canonical CBOR form each.

A block's id is the SHA-256 of its canonical header: every field of the block except the
payload, which the header holds by its SHA-256, and the justifying QC, which the header holds by
the digest of its canonical encoding. A block id therefore authenticates the whole block,
certificate included, and a chain of blocks fetched from any peer can be checked by hashes alone.

Signed statements are small canonical arrays signed under a per-kind domain
(:mod:`.signatures`): proposals and votes sign ``[epoch, view, block_id, height]``, timeouts and
heartbeats sign ``[epoch, view, highest_qc_view]``. Because a statement names its epoch and view,
two conflicting statements from one key are evidence on their own (:class:`Evidence`).
The wire form (tag byte + CBOR body, size caps, strict decoding) lives in :mod:`.wire`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from cybermesh.protocol.codec import CborValue, encode
from cybermesh.protocol.consensus import canonical
from cybermesh.protocol.consensus.canonical import head
from cybermesh.protocol.crypto.hashing import sha256
from cybermesh.protocol.validator_set import Validator

ZERO_HASH = b"\x00" * 32

# Statements are signed and verified several times per message, so they are built directly:
# the same bytes as ``encode([...])`` (RFC 8949 core deterministic: shortest integer heads),
# without the general encoder. Anything outside the fast path (a value that does not fit in 64
# bits, a block id that is not 32 bytes) goes through the codec.
_UINT64_LIMIT = 1 << 64


def _fast(first: int, second: int, third: int, fourth: int = 0) -> bool:
    """All are plain ints in 0..2^64-1 (written out: this runs for every statement)."""
    return (type(first) is int and type(second) is int and type(third) is int
            and type(fourth) is int and 0 <= first < _UINT64_LIMIT
            and 0 <= second < _UINT64_LIMIT and 0 <= third < _UINT64_LIMIT
            and 0 <= fourth < _UINT64_LIMIT)


def block_statement(epoch: int, view: int, block_id: bytes, height: int) -> bytes:
    """The bytes a proposer (proposal domain) or a voter (vote domain) signs."""
    if type(block_id) is bytes and len(block_id) == 32 and _fast(epoch, view, height):
        return b"".join((b"\x84", head(0, epoch), head(0, view), b"\x58\x20", block_id,
                         head(0, height)))
    return encode([epoch, view, block_id, height])


def _qc_encoding(qc: QuorumCert) -> bytes:
    """``canonical.encode(qc.to_cbor())``, built directly for the usual shape."""
    epoch, view, block_id, height = qc.epoch, qc.view, qc.block_id, qc.height
    if not (_fast(epoch, view, height) and type(block_id) is bytes):
        return canonical.encode(qc.to_cbor())
    parts = [b"\x85", head(0, epoch), head(0, view), head(0x40, len(block_id)), block_id,
             head(0, height), head(0x80, len(qc.signatures))]
    try:
        for signer, signature in qc.signatures:
            raw = signer.encode("utf-8")
            if type(signer) is not str or type(signature) is not bytes:
                return canonical.encode(qc.to_cbor())
            parts += (b"\x82", head(0x60, len(raw)), raw, head(0x40, len(signature)), signature)
    except (AttributeError, UnicodeEncodeError):
        return canonical.encode(qc.to_cbor())
    return b"".join(parts)


def _header_encoding(block: Block, qc_digest: bytes) -> bytes:
    """``canonical.encode(block.header())``, built directly for the usual shape."""
    epoch, view, height, timestamp = block.epoch, block.view, block.height, block.timestamp_ms
    proposer = block.proposer
    hashes = (block.parent_id, block.tx_root, block.state_root, block.validator_set_hash)
    if block.next_validators is not None or not _fast(epoch, view, height, timestamp) \
            or type(proposer) is not str or type(block.payload) is not bytes \
            or not all(type(value) is bytes for value in hashes):
        return canonical.encode(block.header())
    try:
        raw = proposer.encode("utf-8")
    except UnicodeEncodeError:
        return canonical.encode(block.header())
    parent_id, tx_root, state_root, set_hash = hashes
    return b"".join((
        b"\x8c", head(0, epoch), head(0, view), head(0, height),
        head(0x40, len(parent_id)), parent_id, head(0x60, len(raw)), raw, head(0, timestamp),
        b"\x58\x20", sha256(block.payload), head(0x40, len(tx_root)), tx_root,
        head(0x40, len(state_root)), state_root, head(0x40, len(set_hash)), set_hash,
        b"\x58\x20", qc_digest, b"\xf6"))


def timeout_statement(epoch: int, view: int, highest_qc_view: int) -> bytes:
    """The bytes a timeout (timeout domain) or heartbeat (heartbeat domain) signs."""
    if _fast(epoch, view, highest_qc_view):
        return b"".join((b"\x83", head(0, epoch), head(0, view), head(0, highest_qc_view)))
    return encode([epoch, view, highest_qc_view])


@dataclass(frozen=True, slots=True)
class QuorumCert:
    """2f+1 (by power) votes for one block: ``signatures`` is sorted by validator id.

    A QC of view 0 without signatures is the epoch's genesis QC: it certifies the epoch's root
    block and is valid only for exactly that block (see :mod:`.quorum`).
    """

    epoch: int
    view: int
    block_id: bytes
    height: int
    signatures: tuple[tuple[str, bytes], ...]

    def statement(self) -> bytes:
        return block_statement(self.epoch, self.view, self.block_id, self.height)

    def to_cbor(self) -> list[CborValue]:
        return [self.epoch, self.view, self.block_id, self.height,
                [[signer, sig] for signer, sig in self.signatures]]

    def digest(self) -> bytes:
        return sha256(_qc_encoding(self))

    @property
    def signers(self) -> tuple[str, ...]:
        return tuple(signer for signer, _ in self.signatures)


def genesis_qc(epoch: int, root_id: bytes, root_height: int) -> QuorumCert:
    """The unsigned QC that certifies an epoch's root block (view 0)."""
    return QuorumCert(epoch=epoch, view=0, block_id=root_id, height=root_height, signatures=())


def validators_to_cbor(validators: tuple[Validator, ...] | None) -> CborValue:
    if validators is None:
        return None
    return [[v.validator_id, v.public_key, v.power, v.address] for v in validators]


@dataclass(frozen=True, slots=True)
class Block:
    """A proposed block. ``state_root`` is the parent's state root (execution lags one block).

    ``next_validators`` is a validator-set change decided by a governance transaction of this
    block; it takes effect when the block commits (the block becomes the next epoch's root).
    """

    epoch: int
    view: int
    height: int
    parent_id: bytes
    proposer: str
    timestamp_ms: int
    payload: bytes
    tx_root: bytes
    state_root: bytes
    validator_set_hash: bytes
    qc: QuorumCert
    next_validators: tuple[Validator, ...] | None = None
    block_id: bytes = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # The id hashes the header (payload and QC by their digests); built without the
        # general encoder: decoding and proposing a block are the hottest paths of the core.
        object.__setattr__(self, "block_id",
                           sha256(_header_encoding(self, self.qc.digest())))

    def header(self) -> list[CborValue]:
        return [self.epoch, self.view, self.height, self.parent_id, self.proposer,
                self.timestamp_ms, sha256(self.payload), self.tx_root, self.state_root,
                self.validator_set_hash, self.qc.digest(),
                validators_to_cbor(self.next_validators)]

    def to_cbor(self) -> list[CborValue]:
        return [self.epoch, self.view, self.height, self.parent_id, self.proposer,
                self.timestamp_ms, self.payload, self.tx_root, self.state_root,
                self.validator_set_hash, self.qc.to_cbor(),
                validators_to_cbor(self.next_validators)]

    def statement(self) -> bytes:
        return block_statement(self.epoch, self.view, self.block_id, self.height)


@dataclass(frozen=True, slots=True)
class TimeoutCert:
    """2f+1 (by power) timeouts for one view; each entry is (signer, its highest QC view, sig).

    The TC proves the highest QC views of a quorum, so a leader entering ``view + 1`` through it
    may extend any QC at least as high as :attr:`highest_qc_view` (the Jolteon TC rule).
    """

    epoch: int
    view: int
    signatures: tuple[tuple[str, int, bytes], ...]

    @property
    def highest_qc_view(self) -> int:
        return max((qc_view for _, qc_view, _ in self.signatures), default=0)

    @property
    def signers(self) -> tuple[str, ...]:
        return tuple(signer for signer, _, _ in self.signatures)

    def to_cbor(self) -> list[CborValue]:
        return [self.epoch, self.view,
                [[signer, qc_view, sig] for signer, qc_view, sig in self.signatures]]


@dataclass(frozen=True, slots=True)
class Proposal:
    """A leader's block for ``block.view``, with the TC that let it skip a view, if any."""

    block: Block
    tc: TimeoutCert | None
    signature: bytes

    @property
    def epoch(self) -> int:
        return self.block.epoch

    @property
    def view(self) -> int:
        return self.block.view

    def to_cbor(self) -> list[CborValue]:
        return [self.block.to_cbor(), None if self.tc is None else self.tc.to_cbor(),
                self.signature]


@dataclass(frozen=True, slots=True)
class Vote:
    """One validator's signed vote for a block; sent to the leader of the next view."""

    epoch: int
    view: int
    block_id: bytes
    height: int
    voter: str
    signature: bytes

    def statement(self) -> bytes:
        return block_statement(self.epoch, self.view, self.block_id, self.height)

    def to_cbor(self) -> list[CborValue]:
        return [self.epoch, self.view, self.block_id, self.height, self.voter, self.signature]


@dataclass(frozen=True, slots=True)
class Timeout:
    """A signed 'view ``view`` failed for me', carrying my highest QC (broadcast to all).

    ``high_tc`` (the sender's highest TC, not covered by the signature: it verifies on its own)
    is sync information, as in Aptos's timeout messages: it lets a node that missed the TC of
    the previous view catch up instead of waiting forever in a view nobody else is in.
    """

    epoch: int
    view: int
    high_qc: QuorumCert
    sender: str
    signature: bytes
    high_tc: TimeoutCert | None = None

    def statement(self) -> bytes:
        return timeout_statement(self.epoch, self.view, self.high_qc.view)

    def to_cbor(self) -> list[CborValue]:
        return [self.epoch, self.view, self.high_qc.to_cbor(), self.sender, self.signature,
                None if self.high_tc is None else self.high_tc.to_cbor()]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A leader's signed 'I am alive in ``view`` but have nothing to propose'."""

    epoch: int
    view: int
    highest_qc_view: int
    sender: str
    signature: bytes

    def statement(self) -> bytes:
        return timeout_statement(self.epoch, self.view, self.highest_qc_view)

    def to_cbor(self) -> list[CborValue]:
        return [self.epoch, self.view, self.highest_qc_view, self.sender, self.signature]


class EvidenceKind(enum.IntEnum):
    DOUBLE_VOTE = 1
    DOUBLE_PROPOSAL = 2


@dataclass(frozen=True, slots=True)
class SignedStatement:
    """One signed ``[epoch, view, block_id, height]`` inside an :class:`Evidence`."""

    block_id: bytes
    height: int
    signature: bytes

    def to_cbor(self) -> list[CborValue]:
        return [self.block_id, self.height, self.signature]


@dataclass(frozen=True, slots=True)
class Evidence:
    """Two conflicting signed statements by one validator for one (epoch, view).

    Verifiable with the validator's public key alone (:func:`.evidence.verify_evidence`);
    ``first`` and ``second`` are ordered by block id so one equivocation has one encoding.
    """

    kind: EvidenceKind
    epoch: int
    view: int
    validator_id: str
    first: SignedStatement
    second: SignedStatement

    def to_cbor(self) -> list[CborValue]:
        return [int(self.kind), self.epoch, self.view, self.validator_id,
                self.first.to_cbor(), self.second.to_cbor()]


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """'Send me the certified chain ending at ``block_id``, above my ``committed_height``'."""

    epoch: int
    committed_height: int
    block_id: bytes

    def to_cbor(self) -> list[CborValue]:
        return [self.epoch, self.committed_height, self.block_id]


@dataclass(frozen=True, slots=True)
class SyncResponse:
    """Blocks in ascending height order; ``qc`` (if any) certifies the last of them.

    Self-authenticating: the requester checks the hash links and the top QC, nothing else is
    trusted, so any peer (even a Byzantine one) may answer.
    """

    epoch: int
    blocks: tuple[Block, ...]
    qc: QuorumCert | None

    def to_cbor(self) -> list[CborValue]:
        return [self.epoch, [b.to_cbor() for b in self.blocks],
                None if self.qc is None else self.qc.to_cbor()]


Message = (Proposal | Vote | Timeout | TimeoutCert | Heartbeat | Evidence | SyncRequest
           | SyncResponse)
