"""AES-256-GCM with key ids, for secrets at rest (e.g. producer credentials, sealed evidence).

A :class:`Keyring` holds one *current* key, used to seal, and any number of older keys that
still open what they sealed, so keys rotate without re-encrypting everything at once. Each
:class:`SealedBox` names the key id that sealed it.

The nonce is an argument (the protocol core has no randomness). AES-GCM loses confidentiality
and integrity if a (key, nonce) pair is ever reused: callers pass ``os.urandom(12)`` for every
seal, which is safe for up to 2**32 seals per key; rotate keys well before that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cybermesh.protocol.codec import CodecError, decode, encode
from cybermesh.protocol.crypto.errors import CryptoError, CryptoErrorReason

__all__ = ["AEAD_KEY_LENGTH", "NONCE_LENGTH", "TAG_LENGTH", "Keyring", "SealedBox"]

AEAD_KEY_LENGTH = 32
NONCE_LENGTH = 12
TAG_LENGTH = 16
MAX_KEY_ID_LENGTH = 64
_R = CryptoErrorReason


@dataclass(frozen=True, slots=True)
class SealedBox:
    """A sealed plaintext: the key id that sealed it, the 12-byte nonce, ciphertext || tag."""

    key_id: str
    nonce: bytes
    ciphertext: bytes

    def to_bytes(self) -> bytes:
        """Canonical CBOR ``{"c": ciphertext, "k": key_id, "n": nonce}`` for storage."""
        return encode({"k": self.key_id, "n": self.nonce, "c": self.ciphertext})

    @classmethod
    def from_bytes(cls, data: bytes) -> SealedBox:
        """Parse :meth:`to_bytes` output; :class:`CryptoError` (BAD_SEALED_BOX) otherwise."""
        try:
            value = decode(data)
        except CodecError as error:
            raise CryptoError(_R.BAD_SEALED_BOX, f"sealed box is not canonical CBOR "
                              f"({error.reason.value})") from None
        if (not isinstance(value, dict) or set(value) != {"k", "n", "c"}
                or type(value["k"]) is not str or type(value["n"]) is not bytes
                or type(value["c"]) is not bytes):
            raise CryptoError(_R.BAD_SEALED_BOX, "sealed box must be a map of k: text, "
                              "n: bytes, c: bytes")
        return cls(key_id=value["k"], nonce=value["n"], ciphertext=value["c"])


def _check_key_id(key_id: object) -> str:
    if type(key_id) is not str or not 0 < len(key_id) <= MAX_KEY_ID_LENGTH:
        raise CryptoError(_R.BAD_KEY, f"AEAD key id must be a str of 1..{MAX_KEY_ID_LENGTH} "
                          "characters")
    return key_id


class Keyring:
    """AES-256-GCM keys by id; seals with the current one, opens with any of them."""

    __slots__ = ("_ciphers", "_current_key_id")

    def __init__(self, current_key_id: str, keys: Mapping[str, bytes]) -> None:
        ciphers: dict[str, AESGCM] = {}
        for key_id, key in keys.items():
            _check_key_id(key_id)
            if type(key) is not bytes or len(key) != AEAD_KEY_LENGTH:
                raise CryptoError(_R.BAD_KEY_LENGTH, f"AEAD key {key_id!r} must be "
                                  f"{AEAD_KEY_LENGTH} bytes (AES-256)")
            ciphers[key_id] = AESGCM(key)
        if current_key_id not in ciphers:
            raise CryptoError(_R.UNKNOWN_KEY_ID, f"current AEAD key id {current_key_id!r} is "
                              "not in the keyring")
        self._current_key_id = current_key_id
        self._ciphers = ciphers

    @property
    def current_key_id(self) -> str:
        return self._current_key_id

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._ciphers)

    def seal(self, plaintext: bytes, aad: bytes, nonce: bytes) -> SealedBox:
        """Encrypt and authenticate ``plaintext`` (and authenticate ``aad``) with the current
        key. ``nonce``: 12 bytes, never reused with the same key."""
        if type(nonce) is not bytes or len(nonce) != NONCE_LENGTH:
            raise CryptoError(_R.BAD_NONCE_LENGTH, f"nonce must be {NONCE_LENGTH} bytes")
        key_id = self._current_key_id
        return SealedBox(key_id=key_id, nonce=nonce,
                         ciphertext=self._ciphers[key_id].encrypt(nonce, plaintext, aad))

    def open(self, box: SealedBox, aad: bytes) -> bytes:
        """Decrypt ``box`` with the key it names; CryptoError if unknown, tampered or the
        ``aad`` differs from the one it was sealed with."""
        cipher = self._ciphers.get(box.key_id)
        if cipher is None:
            raise CryptoError(_R.UNKNOWN_KEY_ID, f"no AEAD key with id {box.key_id!r}")
        if type(box.nonce) is not bytes or len(box.nonce) != NONCE_LENGTH:
            raise CryptoError(_R.BAD_NONCE_LENGTH, f"nonce must be {NONCE_LENGTH} bytes")
        if len(box.ciphertext) < TAG_LENGTH:
            raise CryptoError(_R.DECRYPTION_FAILED, "ciphertext shorter than the tag")
        try:
            return cipher.decrypt(box.nonce, box.ciphertext, aad)
        except InvalidTag:
            raise CryptoError(_R.DECRYPTION_FAILED, f"authentication failed under key "
                              f"{box.key_id!r}") from None

    def reseal(self, box: SealedBox, aad: bytes, nonce: bytes) -> SealedBox:
        """Open ``box`` with whichever key sealed it and seal it again under the current key
        (used to retire an old key)."""
        return self.seal(self.open(box, aad), aad, nonce)

    def __repr__(self) -> str:
        return (f"Keyring(current_key_id={self._current_key_id!r}, "
                f"key_ids={sorted(self._ciphers)!r})")

    __str__ = __repr__
