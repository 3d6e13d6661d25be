"""How a logical state key ``(namespace, key)`` becomes a 32-byte sparse Merkle tree key."""

from __future__ import annotations

from cybermesh.protocol.codec import encode
from cybermesh.protocol.crypto.hashing import sha256

STATE_KEY_DOMAIN = "cybermesh/state-key/v1"
MAX_NAMESPACE_CHARS = 64


def state_key_hash(namespace: str, key: bytes) -> bytes:
    """SHA-256 of the canonical ``[domain, namespace, key]``: unambiguous (no namespace/key
    split collides with another) and uniformly spread over the tree."""
    return sha256(encode([STATE_KEY_DOMAIN, namespace, key]))
