"""Validator sets and the quorum arithmetic of BFT by voting power.

With total voting power n, the system tolerates f = floor((n - 1) / 3) Byzantine power and a
quorum is any set holding at least n - f (= 2f + 1 when n = 3f + 1) power. Two quorums then
intersect in at least f + 1 power, i.e. in at least one honest validator; every safety argument
in consensus rests on that intersection, so this module is the one place the numbers live.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


class ValidatorSetError(ValueError):
    """A validator set that cannot be used safely (duplicates, zero power, too small)."""


@dataclass(frozen=True, slots=True)
class QuorumMath:
    """Fault tolerance figures of a total voting power."""

    total_power: int
    max_faulty_power: int
    quorum_power: int

    @property
    def tolerates_faults(self) -> bool:
        return self.max_faulty_power >= 1


def quorum_math(total_power: int) -> QuorumMath:
    """Return n, f and the quorum threshold for ``total_power``.

    f = floor((n - 1) / 3) and quorum = n - f. For n = 3f + 1 this is the textbook 2f + 1; for
    other n it is the smallest threshold such that two quorums overlap in more than f power
    (2 * (n - f) - n = n - 2f > f), which is the property safety needs.
    """
    if total_power < 1:
        raise ValidatorSetError(f"total voting power must be positive, got {total_power}")
    max_faulty = (total_power - 1) // 3
    return QuorumMath(total_power=total_power, max_faulty_power=max_faulty,
                      quorum_power=total_power - max_faulty)


@dataclass(frozen=True, slots=True)
class Validator:
    """One member of a validator set: an id, an Ed25519 public key and its voting power."""

    validator_id: str
    public_key: bytes
    power: int
    address: str = ""


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    """An epoch's validators, in a canonical order (by id), with quorum math by power."""

    epoch: int
    validators: tuple[Validator, ...]
    _by_id: dict[str, Validator] = field(init=False, repr=False, compare=False)
    _by_key: dict[bytes, Validator] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.validators, key=lambda v: v.validator_id))
        by_id: dict[str, Validator] = {}
        by_key: dict[bytes, Validator] = {}
        for validator in ordered:
            if not validator.validator_id:
                raise ValidatorSetError("validator id must not be empty")
            if validator.validator_id in by_id:
                raise ValidatorSetError(f"duplicate validator id {validator.validator_id!r}")
            if len(validator.public_key) != 32:
                raise ValidatorSetError(
                    f"validator {validator.validator_id!r}: public key must be 32 bytes")
            if validator.public_key in by_key:
                raise ValidatorSetError(
                    f"validators {by_key[validator.public_key].validator_id!r} and "
                    f"{validator.validator_id!r} share one public key")
            if validator.power <= 0:
                raise ValidatorSetError(
                    f"validator {validator.validator_id!r}: voting power must be positive")
            by_id[validator.validator_id] = validator
            by_key[validator.public_key] = validator
        if not ordered:
            raise ValidatorSetError("a validator set needs at least one validator")
        object.__setattr__(self, "validators", ordered)
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_by_key", by_key)

    def __iter__(self) -> Iterator[Validator]:
        return iter(self.validators)

    def __len__(self) -> int:
        return len(self.validators)

    def __contains__(self, validator_id: object) -> bool:
        return validator_id in self._by_id

    def get(self, validator_id: str) -> Validator | None:
        return self._by_id.get(validator_id)

    def by_public_key(self, public_key: bytes) -> Validator | None:
        return self._by_key.get(public_key)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(v.validator_id for v in self.validators)

    @property
    def total_power(self) -> int:
        return sum(v.power for v in self.validators)

    @property
    def quorum(self) -> QuorumMath:
        return quorum_math(self.total_power)

    def power_of(self, validator_ids: Iterable[str]) -> int:
        """Voting power of the distinct known ids among ``validator_ids`` (unknown ids count 0)."""
        return sum(self._by_id[v].power for v in set(validator_ids) if v in self._by_id)

    def has_quorum(self, validator_ids: Iterable[str]) -> bool:
        return self.power_of(validator_ids) >= self.quorum.quorum_power

    def has_one_honest(self, validator_ids: Iterable[str]) -> bool:
        """True when the ids hold more than f power, so at least one of them is honest."""
        return self.power_of(validator_ids) > self.quorum.max_faulty_power

    def digest(self) -> bytes:
        """A hash committing to epoch, ids, keys and powers (the block's validator-set hash).

        Length-prefixed fields make the encoding unambiguous without depending on the codec.
        """
        hasher = hashlib.sha256(b"cybermesh/validator-set/v1")
        hasher.update(self.epoch.to_bytes(8, "big"))
        for validator in self.validators:
            encoded_id = validator.validator_id.encode()
            hasher.update(len(encoded_id).to_bytes(2, "big") + encoded_id)
            hasher.update(validator.public_key)
            hasher.update(validator.power.to_bytes(8, "big"))
        return hasher.digest()
