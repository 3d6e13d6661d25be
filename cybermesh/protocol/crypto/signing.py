"""Ed25519 keys and domain-separated signatures, verified by libsodium (PyNaCl) only.

One verifier everywhere: Ed25519 libraries disagree on edge cases (small-order points,
non-canonical encodings, cofactored vs cofactorless equations), and two validators that disagree
on one signature can disagree on a quorum certificate. Every signature in CyberMesh is checked by
libsodium's ``crypto_sign_open`` through :func:`ed25519_verify`; the CCTV vectors in the tests pin
its exact accept/reject set.

Domain separation: the signed bytes are ``domain.tag() + message``. A tag frames the kind of
message, the chain id and the protocol version with length prefixes, so no tag is a prefix of
another and a signature made for one (kind, chain, version) never verifies under another.

Keys: :meth:`PublicKey.from_bytes` refuses keys that are not 32 bytes, non-canonical encodings,
small-order points, points off the curve and points with a small-order (torsion) component. Honest
keys (``seed -> clamp -> scalar * B``) are always in that subgroup, so nothing honest is lost.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from nacl.bindings import (
    crypto_core_ed25519_is_valid_point,
    crypto_sign,
    crypto_sign_open,
    crypto_sign_seed_keypair,
)
from nacl.exceptions import BadSignatureError

from cybermesh.protocol.crypto.errors import CryptoError, CryptoErrorReason

__all__ = [
    "PUBLIC_KEY_LENGTH",
    "SEED_LENGTH",
    "SIGNATURE_LENGTH",
    "CryptoError",
    "CryptoErrorReason",
    "Domain",
    "PublicKey",
    "SigningKey",
    "ed25519_sign",
    "ed25519_verify",
    "key_id_for",
    "require_signature",
    "verify_batch",
]

PUBLIC_KEY_LENGTH = 32
SEED_LENGTH = 32
SIGNATURE_LENGTH = 64
DOMAIN_MAGIC = b"cybermesh/v1"
_MAX_DOMAIN_FIELD = 255
_FIELD_PRIME = (1 << 255) - 19
_Y_MASK = (1 << 255) - 1
# y-coordinates of the eight small-order points (identity, order 2, two of order 4 sharing
# y = 0, four of order 8 sharing two y values); the sign bit picks x, so it is masked off.
_SMALL_ORDER_Y = frozenset({
    0,
    1,
    _FIELD_PRIME - 1,
    int.from_bytes(bytes.fromhex(
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"), "little"),
    int.from_bytes(bytes.fromhex(
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"), "little"),
})
# Edwards curve constant d = -121665/121666 (mod p).
_CURVE_D = (-121665 * pow(121666, -1, _FIELD_PRIME)) % _FIELD_PRIME
_R = CryptoErrorReason


def _is_on_curve(y_coordinate: int) -> bool:
    """Whether some x satisfies -x^2 + y^2 = 1 + d x^2 y^2, i.e. (y^2-1)/(d y^2+1) is a square.

    Used only to tell "not a curve point" from "a point with a torsion component" in the
    refusal reason; libsodium makes the decision.
    """
    p = _FIELD_PRIME
    y_squared = y_coordinate * y_coordinate % p
    x_squared = (y_squared - 1) * pow(_CURVE_D * y_squared + 1, -1, p) % p
    return x_squared == 0 or pow(x_squared, (p - 1) // 2, p) == 1


def key_id_for(raw_public_key: bytes) -> str:
    """Stable short id of a public key: the first 16 hex digits of SHA-256 of its bytes."""
    return hashlib.sha256(raw_public_key).hexdigest()[:16]


def ed25519_verify(raw_public_key: bytes, signed_bytes: bytes, signature: bytes) -> bool:
    """The one Ed25519 verification primitive (libsodium). Never raises for bad input.

    Protocol code calls :meth:`PublicKey.verify`, which adds the domain tag; this is public so
    the test vectors (RFC 8032, Wycheproof, CCTV) can pin libsodium's exact behaviour.
    """
    if (type(signature) is not bytes or len(signature) != SIGNATURE_LENGTH
            or type(raw_public_key) is not bytes or len(raw_public_key) != PUBLIC_KEY_LENGTH):
        return False
    try:
        crypto_sign_open(signature + signed_bytes, raw_public_key)
    except BadSignatureError:
        return False
    return True


def ed25519_sign(secret_key: bytes, signed_bytes: bytes) -> bytes:
    """Deterministic RFC 8032 signature with libsodium's 64-byte secret key (seed || public)."""
    return crypto_sign(signed_bytes, secret_key)[:SIGNATURE_LENGTH]


def _domain_field(name: str, value: object) -> bytes:
    if type(value) is not str or not value:
        raise CryptoError(_R.BAD_DOMAIN, f"domain {name} must be a non-empty str")
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:
        raise CryptoError(_R.BAD_DOMAIN, f"domain {name} is not valid text") from None
    if len(encoded) > _MAX_DOMAIN_FIELD:
        raise CryptoError(_R.BAD_DOMAIN, f"domain {name} longer than {_MAX_DOMAIN_FIELD} bytes")
    return struct.pack(">H", len(encoded)) + encoded


@dataclass(frozen=True, slots=True)
class Domain:
    """What a signature is for: message kind (e.g. "vote"), chain id and protocol version.

    ``tag()`` is ``b"cybermesh/v1" || u16 len || kind || u16 len || chain_id || u32 version``
    (lengths in bytes of the UTF-8 text, big-endian). It is computed once, at construction.
    """

    kind: str
    chain_id: str
    version: int
    _tag: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        version = self.version
        if type(version) is not int or not 0 <= version <= 0xFFFFFFFF:
            raise CryptoError(_R.BAD_DOMAIN, "domain version must be an int in 0..2**32-1")
        tag = (DOMAIN_MAGIC + _domain_field("kind", self.kind)
               + _domain_field("chain_id", self.chain_id) + struct.pack(">I", version))
        object.__setattr__(self, "_tag", tag)

    def tag(self) -> bytes:
        return self._tag


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A validated Ed25519 public key. Build it with :meth:`from_bytes` (or from a SigningKey)."""

    raw: bytes
    key_id: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        raw = self.raw
        if type(raw) is not bytes or len(raw) != PUBLIC_KEY_LENGTH:
            length = len(raw) if isinstance(raw, bytes | bytearray) else None
            raise CryptoError(_R.BAD_KEY_LENGTH,
                              f"public key must be {PUBLIC_KEY_LENGTH} bytes, got {length}")
        y_coordinate = int.from_bytes(raw, "little") & _Y_MASK
        key_id = key_id_for(raw)
        if y_coordinate >= _FIELD_PRIME:
            raise CryptoError(_R.NON_CANONICAL_KEY, f"public key {key_id}: y is not reduced")
        if y_coordinate in _SMALL_ORDER_Y:
            raise CryptoError(_R.SMALL_ORDER_KEY, f"public key {key_id} has small order")
        if not crypto_core_ed25519_is_valid_point(raw):
            if not _is_on_curve(y_coordinate):
                raise CryptoError(_R.BAD_KEY, f"public key {key_id} is not a curve point")
            raise CryptoError(_R.MIXED_ORDER_KEY, f"public key {key_id} has a small-order "
                              "component (not in the prime-order subgroup)")
        object.__setattr__(self, "key_id", key_id)

    @classmethod
    def from_bytes(cls, raw: bytes) -> PublicKey:
        """Validate and wrap 32 raw bytes; :class:`CryptoError` says why a key is refused."""
        return cls(raw)

    def verify(self, domain: Domain, message: bytes, signature: bytes) -> bool:
        """True when ``signature`` signs ``domain.tag() + message`` under this key."""
        if type(signature) is not bytes or len(signature) != SIGNATURE_LENGTH:
            return False
        try:
            crypto_sign_open(signature + domain._tag + message, self.raw)
        except BadSignatureError:
            return False
        return True

    def __repr__(self) -> str:
        return f"PublicKey(key_id={self.key_id!r}, raw={self.raw.hex()!r})"


class SigningKey:
    """An Ed25519 private key. The seed comes from the caller (the protocol has no randomness)
    and is never shown by ``repr``/``str``; use :attr:`seed` only to write a key file."""

    __slots__ = ("_public_key", "_secret_key")

    _secret_key: bytes
    _public_key: PublicKey

    def __init__(self, secret_key: bytes, public_key: PublicKey) -> None:
        self._secret_key = secret_key
        self._public_key = public_key

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        if type(seed) is not bytes or len(seed) != SEED_LENGTH:
            raise CryptoError(_R.BAD_SEED_LENGTH, f"signing key seed must be {SEED_LENGTH} bytes")
        public_raw, secret_key = crypto_sign_seed_keypair(seed)
        return cls(secret_key, PublicKey(public_raw))

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    @property
    def key_id(self) -> str:
        return self._public_key.key_id

    @property
    def seed(self) -> bytes:
        """The 32-byte secret seed (for key files only; never log it)."""
        return self._secret_key[:SEED_LENGTH]

    def sign(self, domain: Domain, message: bytes) -> bytes:
        """64-byte deterministic signature over ``domain.tag() + message``."""
        return crypto_sign(domain._tag + message, self._secret_key)[:SIGNATURE_LENGTH]

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        # Pickling would copy the secret into caches, queues and logs: refuse it.
        raise TypeError("SigningKey cannot be pickled")


def require_signature(value: object) -> bytes:
    """Return ``value`` if it has the shape of a signature (64 bytes); for message parsers."""
    if type(value) is not bytes or len(value) != SIGNATURE_LENGTH:
        raise CryptoError(_R.BAD_SIGNATURE_LENGTH, f"signature must be {SIGNATURE_LENGTH} bytes")
    return value


def verify_batch(items: Sequence[tuple[PublicKey, Domain, bytes, bytes]]) -> list[int]:
    """Verify ``(public_key, domain, message, signature)`` items; return the failed indexes.

    libsodium has no batch equation, so each item is verified on its own with the same
    primitive as :meth:`PublicKey.verify`: a batch never accepts what a single check refuses.
    """
    failed: list[int] = []
    for index, (public_key, domain, message, signature) in enumerate(items):
        if type(signature) is not bytes or len(signature) != SIGNATURE_LENGTH:
            failed.append(index)
            continue
        try:
            crypto_sign_open(signature + domain._tag + message, public_key.raw)
        except BadSignatureError:
            failed.append(index)
    return failed
