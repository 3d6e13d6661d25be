"""Signing and verification as the consensus core sees them: two small protocols.

The core never touches key material or a crypto library directly. Production passes the
Ed25519 implementations below (PyNaCl through ``cybermesh.protocol.crypto.signing``); the
simulator passes a keyed-hash scheme with the same interface so it can explore thousands of
schedules per second (it stays unforgeable inside the simulation because Byzantine code only
ever holds its own secrets). Every signature is domain separated: the domain names the message
kind, the chain id and the protocol version, so a vote can never be replayed as a timeout, nor a
signature from one chain on another.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cybermesh.protocol.crypto.errors import CryptoError
from cybermesh.protocol.crypto.signing import Domain, PublicKey, SigningKey

PROTOCOL_VERSION = 1


class SignedKind(enum.Enum):
    """What a consensus signature is over; each kind has its own signing domain."""

    PROPOSAL = "consensus.proposal"
    VOTE = "consensus.vote"
    TIMEOUT = "consensus.timeout"
    HEARTBEAT = "consensus.heartbeat"


@dataclass(frozen=True, slots=True)
class Domains:
    """The four signing domains of one chain and protocol version."""

    proposal: Domain
    vote: Domain
    timeout: Domain
    heartbeat: Domain

    @classmethod
    def for_chain(cls, chain_id: str, version: int = PROTOCOL_VERSION) -> Domains:
        return cls(
            proposal=Domain(SignedKind.PROPOSAL.value, chain_id, version),
            vote=Domain(SignedKind.VOTE.value, chain_id, version),
            timeout=Domain(SignedKind.TIMEOUT.value, chain_id, version),
            heartbeat=Domain(SignedKind.HEARTBEAT.value, chain_id, version),
        )


# One item of a batch: (raw public key, domain, message, signature).
VerifyItem = tuple[bytes, Domain, bytes, bytes]


class Signer(Protocol):
    """Signs for one validator. Only SafetyRules and the proposer path call it."""

    @property
    def public_key(self) -> bytes: ...

    def sign(self, domain: Domain, message: bytes) -> bytes: ...


class Verifier(Protocol):
    """Verifies signatures by raw public key; returns the indexes of the items that failed."""

    def verify_batch(self, items: Sequence[VerifyItem]) -> list[int]: ...


class Ed25519Signer:
    """A :class:`Signer` over an Ed25519 signing key."""

    __slots__ = ("_key", "_public")

    def __init__(self, key: SigningKey) -> None:
        self._key = key
        self._public = key.public_key.raw

    @property
    def public_key(self) -> bytes:
        return self._public

    def sign(self, domain: Domain, message: bytes) -> bytes:
        return self._key.sign(domain, message)


_UNPARSED = object()


class Ed25519Verifier:
    """A :class:`Verifier` over PyNaCl, caching parsed public keys (validator keys repeat)."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: dict[bytes, PublicKey | None] = {}

    def _key(self, raw: bytes) -> PublicKey | None:
        key = self._keys.get(raw, _UNPARSED)
        if key is _UNPARSED:
            if len(self._keys) > 4096:
                self._keys.clear()
            try:
                key = PublicKey.from_bytes(raw)
            except CryptoError:
                key = None
            self._keys[raw] = key
        return key  # type: ignore[return-value]

    def verify_batch(self, items: Sequence[VerifyItem]) -> list[int]:
        # libsodium has no batch equation: each item is one PublicKey.verify, the primitive
        # the benchmark's ceiling measures (a batch never accepts what a single check refuses).
        failed: list[int] = []
        for index, (raw, domain, message, signature) in enumerate(items):
            key = self._key(raw)
            if key is None or not key.verify(domain, message, signature):
                failed.append(index)
        return failed
