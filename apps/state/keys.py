"""Tree keys for callers that have a logical ``(namespace, key)`` rather than a tree key.

The executor derives its own keys (``cybermesh.protocol.executor.keys``); this helper is for
state written outside it (tests, tools), with its own domain so the two never collide.
"""

from __future__ import annotations

from cybermesh.protocol.codec import encode
from cybermesh.protocol.crypto.hashing import sha256

STATE_KEY_DOMAIN = "cybermesh/state-key/v1"
MAX_NAMESPACE_CHARS = 64


def state_key_hash(namespace: str, key: bytes) -> bytes:
    """SHA-256 of the canonical ``[domain, namespace, key]``: unambiguous (no namespace/key
    split collides with another) and uniformly spread over the tree."""
    return sha256(encode([STATE_KEY_DOMAIN, namespace, key]))
