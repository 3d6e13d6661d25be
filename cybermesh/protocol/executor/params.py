"""Executor parameters: thresholds, impacts, half-life, retention, epochs (integers only).

Fixed at genesis and changed only by governance, at an epoch boundary, so every validator
applies a block with the same numbers. Reputation and thresholds are in parts per million
(ppm, 1_000_000 = 1.0), times and durations in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from cybermesh.protocol.codec import CborValue
from cybermesh.protocol.txs.governance import ParameterName

__all__ = ["DECAY_STEPS_PER_HALF_LIFE", "MAX_DURATION_MS", "SCALE_PPM", "ExecutorParameters"]

SCALE_PPM = 1_000_000
DECAY_STEPS_PER_HALF_LIFE = 64
MAX_DURATION_MS = 366 * 24 * 3600 * 1000
_DAY_MS = 24 * 3600 * 1000

_PPM_FIELDS = frozenset({
    "event_impact_ppm_per_severity", "evidence_impact_ppm", "equivocation_impact_ppm",
    "quarantine_threshold_ppm", "validator_quarantine_threshold_ppm",
})


@dataclass(frozen=True, slots=True)
class ExecutorParameters:
    """Every number the executor's rules use (see docs/transactions.md, "Executor rules")."""

    # Risk added by a security event: severity * confidence (bps / 10_000) * this.
    event_impact_ppm_per_severity: int = 10_000
    # Risk added to an event's offender when evidence confirms the event (once per event).
    evidence_impact_ppm: int = 150_000
    # Risk added to a validator by verified equivocation evidence.
    equivocation_impact_ppm: int = 500_000
    # Risk halves every half-life of block time (a multiple of 64 ms: 64 decay steps).
    reputation_half_life_ms: int = _DAY_MS
    # An entity whose reputation falls to this or below is quarantined automatically...
    quarantine_threshold_ppm: int = 500_000
    # ... for this long (offences during a quarantine do not extend it).
    quarantine_duration_ms: int = 3600 * 1000
    validator_quarantine_threshold_ppm: int = 500_000
    validator_quarantine_duration_ms: int = 7 * _DAY_MS
    # Transactions created longer ago than this (in block time) are ignored as stale; the
    # executor remembers applied ids for this long, which makes replays no-ops.
    tx_max_age_ms: int = 3600 * 1000
    # Transactions created further than this in the future of the block are ignored.
    tx_max_future_ms: int = 5 * 60 * 1000
    # How long a security event can still be confirmed by evidence.
    event_retention_ms: int = 7 * _DAY_MS
    # How long evidence records (and equivocation dedupe) are kept.
    evidence_retention_ms: int = 30 * _DAY_MS
    epoch_length_blocks: int = 1000
    # Quarantined validators leave the next epoch's set only while this many remain.
    min_validators: int = 4

    def problems(self) -> list[str]:
        """One line per out-of-range value; empty when the parameters are usable."""
        found: list[str] = []
        for field in fields(self):
            value = getattr(self, field.name)
            if type(value) is not int:
                found.append(f"{field.name} must be an integer")
            elif field.name in _PPM_FIELDS and not 0 <= value <= SCALE_PPM:
                found.append(f"{field.name} must be within 0..{SCALE_PPM}")
            elif field.name.endswith("_ms") and not 1 <= value <= MAX_DURATION_MS:
                found.append(f"{field.name} must be within 1..{MAX_DURATION_MS}")
        if found:
            return found
        if self.reputation_half_life_ms % DECAY_STEPS_PER_HALF_LIFE:
            found.append(f"reputation_half_life_ms must be a multiple of "
                         f"{DECAY_STEPS_PER_HALF_LIFE}")
        if not 1 <= self.epoch_length_blocks <= 1_000_000:
            found.append("epoch_length_blocks must be within 1..1000000")
        if not 1 <= self.min_validators <= 256:
            found.append("min_validators must be within 1..256")
        return found

    def with_value(self, name: ParameterName, value: int) -> ExecutorParameters:
        """A copy with one parameter changed; raise ValueError if the result is unusable."""
        changed = replace(self, **{name.value: value})
        problems = changed.problems()
        if problems:
            raise ValueError("; ".join(problems))
        return changed

    def to_cbor(self) -> CborValue:
        return [getattr(self, field.name) for field in fields(self)]

    @classmethod
    def from_cbor(cls, value: object) -> ExecutorParameters:
        names = [field.name for field in fields(cls)]
        if type(value) is not list or len(value) != len(names):
            raise ValueError("parameters must be an array of every field")
        parameters = cls(**dict(zip(names, value, strict=True)))
        problems = parameters.problems()
        if problems:
            raise ValueError("; ".join(problems))
        return parameters
