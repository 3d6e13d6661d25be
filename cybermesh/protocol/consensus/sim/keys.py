"""Simulation keys: a keyed-hash signature scheme with the Signer/Verifier interface.

``signature = SHA-512(secret || domain tag || message)``, verified by recomputing it from the
secret registered for the public key. Inside the simulation this is as unforgeable as Ed25519
(Byzantine code only holds its own secrets) and about 50x cheaper, which is what lets the
simulator explore thousands of schedules. The benchmark and a test run the same core with real
Ed25519 keys. Every signature is also reported to an optional observer, which is how the
invariant checker sees every vote an honest node ever signs (including ones that never leave
the node, such as the leader's vote for itself).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from cybermesh.protocol.consensus.signatures import VerifyItem
from cybermesh.protocol.crypto.signing import Domain

SignObserver = Callable[[str, Domain, bytes], None]


def sim_public_key(secret: bytes) -> bytes:
    return hashlib.sha256(b"cybermesh-sim-public-key" + secret).digest()


class SimSigner:
    __slots__ = ("_observer", "_public", "_secret", "validator_id")

    def __init__(self, validator_id: str, secret: bytes,
                 observer: SignObserver | None = None) -> None:
        self.validator_id = validator_id
        self._secret = secret
        self._public = sim_public_key(secret)
        self._observer = observer

    @property
    def public_key(self) -> bytes:
        return self._public

    def sign(self, domain: Domain, message: bytes) -> bytes:
        if self._observer is not None:
            self._observer(self.validator_id, domain, message)
        return hashlib.sha512(self._secret + domain.tag() + message).digest()


class SimVerifier:
    """Verifies simulation signatures; ``secrets`` maps public key -> secret."""

    __slots__ = ("_secrets", "checked")

    def __init__(self, secrets: dict[bytes, bytes]) -> None:
        self._secrets = secrets
        self.checked = 0

    def verify_batch(self, items: Sequence[VerifyItem]) -> list[int]:
        failed = []
        self.checked += len(items)
        for index, (public_key, domain, message, signature) in enumerate(items):
            secret = self._secrets.get(public_key)
            if secret is None or hashlib.sha512(secret + domain.tag() + message).digest() \
                    != signature:
                failed.append(index)
        return failed
