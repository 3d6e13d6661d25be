"""The transaction envelope: common fields, canonical signed bytes, id, wire form.

Signed body (canonical CBOR array)::

    body = [version, kind, chain_id, producer_id, nonce, created_at_ms, public_key, payload]

Wire form: the CBOR array ``[body_bytes, signature]``, where ``body_bytes`` is the encoded body
carried as a byte string (as COSE_Sign1 carries its payload), so a receiver verifies and hashes
exactly the bytes it received without re-encoding anything.

Signature: Ed25519 over ``Domain("tx/<kind>", chain_id, version).tag() || body_bytes``. The
domain makes a signature for one kind, chain or version useless for any other, and for every
other CyberMesh message (votes, proposals, ...).

Transaction id: ``SHA-256(domain tag || body_bytes)``, the hash of exactly the signed message,
*excluding* the signature. A producer that signs the same body twice (or anyone holding a second
valid signature of it) therefore never makes a "new" transaction: the id names the content, and
dedupe by id is dedupe by content. ``wire_hash`` (SHA-256 of the wire bytes) is the content hash
of the stored row, signature included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol, TypeAlias

from cybermesh.protocol.codec import (
    CborValue,
    CodecError,
    DecodeLimits,
    decode,
    encode,
    encoded_head,
)
from cybermesh.protocol.crypto.errors import CryptoError
from cybermesh.protocol.crypto.hashing import sha256
from cybermesh.protocol.crypto.signing import Domain, PublicKey, SigningKey
from cybermesh.protocol.txs.audit_anchor import AuditAnchor
from cybermesh.protocol.txs.errors import TxRejected, TxRejectReason
from cybermesh.protocol.txs.evidence import Evidence
from cybermesh.protocol.txs.governance import GovernanceChange
from cybermesh.protocol.txs.kinds import TX_VERSION, TxKind
from cybermesh.protocol.txs.policy import PolicyChange
from cybermesh.protocol.txs.schema import (
    MAX_NONCE,
    TOKEN_PATTERN,
    expect_bytes,
    expect_enum,
    expect_int,
    expect_text,
    expect_time_ms,
)
from cybermesh.protocol.txs.security_event import SecurityEvent

__all__ = [
    "MAX_TX_BYTES",
    "Payload",
    "Transaction",
    "decode_transaction",
    "public_key_of",
    "sign_transaction",
    "tx_domain",
]

_R = TxRejectReason
Payload: TypeAlias = SecurityEvent | Evidence | PolicyChange | GovernanceChange | AuditAnchor

MAX_PRODUCER_BYTES = 64
MAX_CHAIN_ID_BYTES = 64
_CHAIN_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
# Per-kind caps on the wire size, checked before the payload is parsed. Evidence and
# governance carry lists (artifacts, custody, approvals) and get more room.
KIND_MAX_BYTES: dict[TxKind, int] = {
    TxKind.SECURITY_EVENT: 4 * 1024,
    TxKind.EVIDENCE: 48 * 1024,
    TxKind.POLICY: 4 * 1024,
    TxKind.GOVERNANCE: 24 * 1024,
    TxKind.AUDIT_ANCHOR: 1024,
}
MAX_TX_BYTES = max(KIND_MAX_BYTES.values())
_PAYLOAD_TYPES: dict[TxKind, type[Payload]] = {
    TxKind.SECURITY_EVENT: SecurityEvent,
    TxKind.EVIDENCE: Evidence,
    TxKind.POLICY: PolicyChange,
    TxKind.GOVERNANCE: GovernanceChange,
    TxKind.AUDIT_ANCHOR: AuditAnchor,
}
_PAYLOAD_CLASSES = frozenset(_PAYLOAD_TYPES.values())
_OUTER_LIMITS = DecodeLimits(max_bytes=MAX_TX_BYTES, max_depth=1, max_items=2)
_BODY_LIMITS = DecodeLimits(max_bytes=MAX_TX_BYTES, max_depth=8, max_items=4096)
_BODY_FIELDS = 8


class _PayloadChecks(Protocol):
    def check_envelope(self, producer_id: str, created_at_ms: int) -> None: ...


@lru_cache(maxsize=4096)
def public_key_of(raw: bytes) -> PublicKey:
    """Validated key, cached: a few producer keys sign almost every transaction, and the curve
    checks cost more than the rest of the schema. Pure, so the cache cannot change a result
    (a refused key raises and is not cached)."""
    return PublicKey.from_bytes(raw)


@lru_cache(maxsize=256)
def tx_domain(kind: TxKind, chain_id: str, version: int = TX_VERSION) -> Domain:
    """The signature domain of a transaction kind on a chain. Cached (bounded): a node sees
    one chain and five kinds, and a Domain is immutable, so the cache cannot change a result."""
    return Domain(kind.domain_kind, chain_id, version)


@dataclass(frozen=True, slots=True)
class Transaction:
    """A signed transaction. Construct with :func:`sign_transaction` or
    :func:`decode_transaction`; the constructor validates every field and computes
    ``body`` (the signed bytes), ``tx_id`` and ``wire``, but does not verify the signature
    (see :meth:`verify_signature`)."""

    chain_id: str
    producer_id: str
    nonce: int
    created_at_ms: int
    public_key: bytes
    payload: Payload
    signature: bytes
    version: int = TX_VERSION
    body: bytes = field(init=False, repr=False, compare=False)
    tx_id: bytes = field(init=False, repr=False, compare=False)
    wire: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check_fields()
        body = encode([self.version, self.kind.value, self.chain_id, self.producer_id,
                       self.nonce, self.created_at_ms, self.public_key,
                       self.payload.to_cbor()])
        self._seal(body, encode([body, self.signature]))

    def _check_fields(self) -> None:
        if self.version != TX_VERSION or type(self.version) is not int:
            raise TxRejected(_R.UNSUPPORTED_VERSION, f"version {self.version!r} is not "
                             f"{TX_VERSION}", "version")
        expect_text(self.chain_id, "chain_id", MAX_CHAIN_ID_BYTES, _R.BAD_CHAIN_ID, _CHAIN_ID)
        self._check_producer_fields()
        expect_bytes(self.signature, "signature", 64, _R.BAD_SIGNATURE)

    def _check_producer_fields(self) -> None:
        """Every field but version, chain and signature, which the decoder checks first."""
        expect_text(self.producer_id, "producer_id", MAX_PRODUCER_BYTES, _R.BAD_PRODUCER,
                    TOKEN_PATTERN)
        expect_int(self.nonce, "nonce", 0, MAX_NONCE, _R.BAD_NONCE)
        expect_time_ms(self.created_at_ms, "created_at_ms", _R.BAD_TIMESTAMP)
        expect_bytes(self.public_key, "public_key", 32, _R.BAD_PUBLIC_KEY)
        try:
            public_key_of(self.public_key)
        except CryptoError as error:
            raise TxRejected(_R.BAD_PUBLIC_KEY, str(error.reason.value), "public_key") from None
        if type(self.payload) not in _PAYLOAD_CLASSES:
            raise TxRejected(_R.UNKNOWN_KIND, "payload is not a transaction kind", "payload")
        checks: _PayloadChecks = self.payload
        checks.check_envelope(self.producer_id, self.created_at_ms)

    def _seal(self, body: bytes, wire: bytes) -> None:
        """Set the signed body, the id and the wire bytes (``wire`` encodes ``[body, sig]``)."""
        if len(body) + 80 > KIND_MAX_BYTES[self.kind]:
            raise TxRejected(_R.TOO_LARGE, f"{self.kind.value} body of {len(body)} bytes "
                             f"exceeds the {KIND_MAX_BYTES[self.kind]}-byte cap", "payload")
        object.__setattr__(self, "body", body)
        object.__setattr__(self, "tx_id", sha256(self.domain.tag() + body))
        object.__setattr__(self, "wire", wire)

    @property
    def kind(self) -> TxKind:
        return self.payload.KIND

    @property
    def domain(self) -> Domain:
        return tx_domain(self.kind, self.chain_id, self.version)

    @property
    def wire_hash(self) -> bytes:
        """SHA-256 of the wire bytes (signature included): the stored row's content hash."""
        return sha256(self.wire)

    def verify_signature(self) -> None:
        """Raise ``TxRejected(BAD_SIGNATURE)`` unless the signature verifies (libsodium)."""
        if not public_key_of(self.public_key).verify(self.domain, self.body, self.signature):
            raise TxRejected(_R.BAD_SIGNATURE, "signature does not verify", "signature")


def sign_transaction(
    signing_key: SigningKey,
    payload: Payload,
    *,
    chain_id: str,
    producer_id: str,
    nonce: int,
    created_at_ms: int,
) -> Transaction:
    """Build and sign a transaction (producers, tests, governance commands)."""
    unsigned = Transaction(chain_id=chain_id, producer_id=producer_id, nonce=nonce,
                           created_at_ms=created_at_ms,
                           public_key=signing_key.public_key.raw, payload=payload,
                           signature=bytes(64))
    signature = signing_key.sign(unsigned.domain, unsigned.body)
    return Transaction(chain_id=chain_id, producer_id=producer_id, nonce=nonce,
                       created_at_ms=created_at_ms, public_key=signing_key.public_key.raw,
                       payload=payload, signature=signature)


def _decode(data: bytes, limits: DecodeLimits) -> CborValue:
    try:
        return decode(data, limits)
    except CodecError as error:
        raise TxRejected(_R.MALFORMED_ENCODING, str(error)) from None


# The wire form is ``[body, signature]`` with a 64-byte signature, so its canonical bytes are
# 0x82, the byte-string head of the body, the body, 0x58 0x40 and the signature.
_SIGNATURE_HEAD = encoded_head(2, 64)
_SIGNATURE_AT = -(len(_SIGNATURE_HEAD) + 64)


def _split_wire(data: bytes) -> tuple[bytes, bytes] | None:
    """``(body, signature)`` when ``data`` is exactly the canonical encoding of
    ``[body, 64-byte signature]``, else None (then :func:`_decode_wire` decides and words the
    refusal). Comparing the fixed layout byte for byte is the canonical check: only one byte
    string encodes the pair, and the strict decoder would return the same two values."""
    size = len(data)
    if size < 68 or data[0] != 0x82 or data[_SIGNATURE_AT:-64] != _SIGNATURE_HEAD:
        return None
    # The body head's first byte says its size: 0x40..0x57 one byte, 0x58 two, 0x59 three.
    head_size = 1 if data[1] < 0x58 else data[1] - 0x56
    body_end = size + _SIGNATURE_AT
    body_length = body_end - 1 - head_size
    if body_length < 0 or data[1:1 + head_size] != encoded_head(2, body_length):
        return None
    return data[1 + head_size:body_end], data[-64:]


def _decode_wire(data: bytes) -> tuple[bytes, bytes]:
    """``(body, signature)`` of the wire bytes by the generic decoder, with precise refusals."""
    outer = _decode(data, _OUTER_LIMITS)
    if type(outer) is not list or len(outer) != 2:
        raise TxRejected(_R.BAD_STRUCTURE, "expected [body, signature]", "transaction")
    if type(outer[0]) is not bytes:
        raise TxRejected(_R.WRONG_TYPE, "body must be a byte string", "body")
    return outer[0], expect_bytes(outer[1], "signature", 64, _R.BAD_SIGNATURE)


def decode_transaction(
    data: bytes, *, expected_chain_id: str | None = None, verify: bool = True
) -> Transaction:
    """Parse wire bytes into a :class:`Transaction`, strictly; raise :class:`TxRejected`.

    Checks run cheapest first: total size, outer shape, version and kind (and the kind's size
    cap) before the payload is parsed, the chain, every schema rule, then (if ``verify``) the
    signature. The mempool passes ``expected_chain_id`` so another chain's transaction is
    refused as ``WRONG_CHAIN`` rather than as a bad signature.
    """
    if type(data) is not bytes:
        raise TxRejected(_R.WRONG_TYPE, "transaction must be bytes")
    if len(data) > MAX_TX_BYTES:
        raise TxRejected(_R.TOO_LARGE, f"{len(data)} bytes exceed {MAX_TX_BYTES}")
    body_bytes, signature = _split_wire(data) or _decode_wire(data)
    body = _decode(body_bytes, _BODY_LIMITS)
    if type(body) is not list or len(body) != _BODY_FIELDS:
        raise TxRejected(_R.BAD_STRUCTURE, f"body must be an array of {_BODY_FIELDS} fields",
                         "body")
    version, kind_value, chain_id, _, _, _, _, payload = body  # the rest: _received_transaction
    if type(version) is not int or version != TX_VERSION:
        raise TxRejected(_R.UNSUPPORTED_VERSION, f"version {version!r} is not {TX_VERSION}",
                         "version")
    kind = expect_enum(kind_value, TxKind, "kind", _R.UNKNOWN_KIND)
    if len(data) > KIND_MAX_BYTES[kind]:
        raise TxRejected(_R.TOO_LARGE, f"{len(data)} bytes exceed the {kind.value} cap of "
                         f"{KIND_MAX_BYTES[kind]}")
    expect_text(chain_id, "chain_id", MAX_CHAIN_ID_BYTES, _R.BAD_CHAIN_ID, _CHAIN_ID)
    if expected_chain_id is not None and chain_id != expected_chain_id:
        raise TxRejected(_R.WRONG_CHAIN, f"for chain {chain_id!r}", "chain_id")
    transaction = _received_transaction(body, _PAYLOAD_TYPES[kind].from_cbor(payload),
                                        signature, (data, body_bytes, kind))
    if verify:
        transaction.verify_signature()
    return transaction


def _received_transaction(
    body: list[CborValue], payload: Payload, signature: bytes,
    received: tuple[bytes, bytes, TxKind],
) -> Transaction:
    """The transaction of strictly decoded wire bytes, checked like the constructor checks.

    The id and the signature must cover the received bytes, so the schema objects must encode
    back to exactly ``body_bytes`` (a schema whose ``to_cbor`` lost or changed something would
    otherwise change the id silently). The envelope fields are the decoded objects themselves
    and the decoder accepts only canonical bytes, so that holds if and only if the payload's
    ``to_cbor()`` has the same canonical encoding as the decoded payload value; and the wire
    bytes, canonical too, are the encoding of ``[body_bytes, signature]``. The payload check is
    a structural comparison (:func:`_same_encoding`) instead of a re-encoding; wherever it
    cannot decide, the transaction is built and compared the original way.
    """
    data, body_bytes, kind = received
    version, _, chain_id, producer_id, nonce, created_at_ms, public_key, payload_value = body
    transaction: Transaction = object.__new__(Transaction)
    # Field by field, unchecked until _check_producer_fields below (frozen: object.__setattr__).
    set_field = object.__setattr__
    set_field(transaction, "version", version)
    set_field(transaction, "chain_id", chain_id)
    set_field(transaction, "producer_id", producer_id)
    set_field(transaction, "nonce", nonce)
    set_field(transaction, "created_at_ms", created_at_ms)
    set_field(transaction, "public_key", public_key)
    set_field(transaction, "payload", payload)
    set_field(transaction, "signature", signature)
    # decode_transaction has checked the version, the chain id and the signature's form.
    transaction._check_producer_fields()
    if payload.KIND is kind and _same_encoding(payload.to_cbor(), payload_value) is True:
        transaction._seal(body_bytes, data)
        return transaction
    transaction = Transaction(
        chain_id=chain_id,  # type: ignore[arg-type]  # every field checked in _check_fields
        producer_id=producer_id,  # type: ignore[arg-type]
        nonce=nonce,  # type: ignore[arg-type]
        created_at_ms=created_at_ms,  # type: ignore[arg-type]
        public_key=public_key,  # type: ignore[arg-type]
        payload=payload, signature=signature,
        version=version)  # type: ignore[arg-type]
    if transaction.body != body_bytes:
        raise TxRejected(_R.MALFORMED_ENCODING, "body does not re-encode identically")
    return transaction


def _same_encoding(  # noqa: PLR0911, PLR0912 -- one exit per CBOR type
    value: object, decoded: CborValue
) -> bool | None:
    """Whether ``encode(value) == encode(decoded)``, for ``decoded`` from the strict decoder.

    Exact types only, mirroring the encoder: ``bool`` is not ``int`` (``True`` encodes as
    ``0xf5``, ``1`` as ``0x01``) although Python says ``True == 1``; a tuple encodes like a
    list; a map's encoding depends on its keys and values, not on their order. ``True`` only
    when the encodings are surely equal; ``None`` ("cannot tell") for anything else the encoder
    accepts (enums and other subclasses, bytearray, other mappings and sequences, bool map
    keys), and ``False`` where they differ. The caller re-encodes on anything but ``True``.
    """
    value_type = type(value)
    if value_type is str or value_type is int or value_type is bytes or value_type is bool:
        return type(decoded) is value_type and value == decoded
    if value is None:
        return decoded is None
    if type(value) is dict:
        if type(decoded) is not dict or len(value) != len(decoded):
            return False
        for key, element in value.items():
            key_type = type(key)
            if key_type is not str and key_type is not int and key_type is not bytes:
                return None
            if key not in decoded:
                return False
            other = decoded[key]
            element_type = type(element)
            if element_type is str or element_type is int or element_type is bytes:
                if type(other) is not element_type or other != element:  # (inlined scalar)
                    return False
                continue
            same = _same_encoding(element, other)
            if same is not True:
                return same
        return True
    if type(value) is list or type(value) is tuple:
        if type(decoded) is not list or len(value) != len(decoded):
            return False
        for element, decoded_element in zip(value, decoded, strict=True):
            element_type = type(element)
            if element_type is str or element_type is int or element_type is bytes:
                if type(decoded_element) is not element_type or decoded_element != element:
                    return False
                continue
            same = _same_encoding(element, decoded_element)
            if same is not True:
                return same
        return True
    return None
