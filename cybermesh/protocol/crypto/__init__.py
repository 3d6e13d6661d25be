"""Cryptographic primitives of the protocol core: hashing, signatures, AEAD, replay checks.

Pure functions over bytes; randomness (seeds, nonces) and time come in as arguments.
"""

from cybermesh.protocol.crypto.errors import CryptoError, CryptoErrorReason
from cybermesh.protocol.crypto.hashing import Hash32, sha256
from cybermesh.protocol.crypto.signing import Domain, PublicKey, SigningKey, verify_batch

__all__ = [
    "CryptoError",
    "CryptoErrorReason",
    "Domain",
    "Hash32",
    "PublicKey",
    "SigningKey",
    "sha256",
    "verify_batch",
]
