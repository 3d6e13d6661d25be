"""Reputation: integer risk per subject, decaying by half-lives of block time.

A subject's *risk* is an integer in ppm (0..1_000_000); its reputation is ``1_000_000 - risk``.
Offences add risk (capped at 1_000_000); time removes it: after ``Δ`` ms of block time the
risk is multiplied by ``2 ** (-steps / 64)`` with ``steps = Δ // (half_life / 64)``, computed
as a right shift by ``steps // 64`` and a multiplication by a 64-bit fixed-point table entry
``floor(2**64 * 2 ** (-(steps % 64) / 64))``, rounding down. The table is computed at import
with integer arithmetic only (integer 64th roots), so every platform gets the same numbers.
The record's ``updated_ms`` advances by whole steps only, so no fraction of a step is ever lost
however often a subject is touched.

A record is deleted when its risk has decayed to exactly zero (``expires_at_ms``): a subject
without a record has reputation 1_000_000.
"""

from __future__ import annotations

from cybermesh.protocol.executor.context import Execution
from cybermesh.protocol.executor.events import ReputationChanged
from cybermesh.protocol.executor.keys import Subject, reputation_key
from cybermesh.protocol.executor.params import DECAY_STEPS_PER_HALF_LIFE, SCALE_PPM
from cybermesh.protocol.executor.policy import is_allowlisted
from cybermesh.protocol.executor.quarantine import quarantine_on_threshold, quarantined_now
from cybermesh.protocol.executor.records import ReputationRecord
from cybermesh.protocol.executor.state import StateWriter
from cybermesh.protocol.txs.entity import Entity

__all__ = [
    "DECAY_TABLE",
    "add_risk",
    "decay",
    "penalise",
    "reputation_at",
    "zero_at",
]

_FRACTION_BITS = 64


def _integer_root(value: int, degree: int) -> int:
    """floor(value ** (1 / degree)) for a non-negative integer, by bisection on integers."""
    low, high = 0, 1 << (value.bit_length() // degree + 1)
    while low < high:
        middle = (low + high + 1) // 2
        if middle ** degree <= value:
            low = middle
        else:
            high = middle - 1
    return low


def _decay_table() -> tuple[int, ...]:
    steps = DECAY_STEPS_PER_HALF_LIFE
    # floor(2**64 * 2**(-i/64)) = floor((2**(64*64 - i)) ** (1/64)).
    return tuple(_integer_root(1 << (_FRACTION_BITS * steps - i), steps) for i in range(steps))


DECAY_TABLE = _decay_table()


def decay(risk_ppm: int, updated_ms: int, now_ms: int, half_life_ms: int) -> tuple[int, int]:
    """``(risk, updated_ms)`` decayed to ``now_ms`` by whole steps of ``half_life / 64``."""
    step_ms = half_life_ms // DECAY_STEPS_PER_HALF_LIFE
    steps = (now_ms - updated_ms) // step_ms
    if steps <= 0 or risk_ppm == 0:
        return risk_ppm, updated_ms
    halvings, rest = divmod(steps, DECAY_STEPS_PER_HALF_LIFE)
    risk = ((risk_ppm >> halvings) * DECAY_TABLE[rest]) >> _FRACTION_BITS if halvings < 64 else 0
    return risk, updated_ms + steps * step_ms


def zero_at(risk_ppm: int, updated_ms: int, half_life_ms: int) -> int:
    """A time by which ``risk_ppm`` has surely decayed to 0: one half-life per bit."""
    return updated_ms + half_life_ms * risk_ppm.bit_length()


def reputation_at(record: ReputationRecord | None, now_ms: int, half_life_ms: int) -> int:
    """The reputation (ppm) a record stands for at ``now_ms`` (no record: full reputation)."""
    if record is None:
        return SCALE_PPM
    risk, _ = decay(record.risk_ppm, record.updated_ms, now_ms, half_life_ms)
    return SCALE_PPM - risk


def add_risk(
    writer: StateWriter,
    subject: Subject,
    impact_ppm: int,
    *,
    now_ms: int,
    half_life_ms: int,
    cause: bytes,
) -> tuple[int, ReputationChanged | None]:
    """Add ``impact_ppm`` of risk to ``subject`` at ``now_ms``; return the new reputation and
    the event (None when nothing changed, e.g. a zero impact or risk already at the cap)."""
    key = reputation_key(subject)
    record = writer.get_typed(key, ReputationRecord)
    if record is None:
        risk, updated_ms = 0, now_ms
    else:
        risk, updated_ms = decay(record.risk_ppm, record.updated_ms, now_ms, half_life_ms)
    old_reputation = SCALE_PPM - risk
    new_risk = min(SCALE_PPM, risk + impact_ppm)
    if new_risk == risk:
        return old_reputation, None
    if risk == 0:
        updated_ms = now_ms  # a fresh record decays from now, not from a stale anchor
    writer.put(key, ReputationRecord(subject, new_risk, updated_ms,
                                     zero_at(new_risk, updated_ms, half_life_ms)))
    new_reputation = SCALE_PPM - new_risk
    return new_reputation, ReputationChanged(subject, old_reputation, new_reputation, cause)


def penalise(
    run: Execution, subject: Subject, entity: Entity | None, impact_ppm: int, cause: bytes
) -> bool:
    """Add risk to ``subject`` for an offence and apply the automatic quarantine rule.

    ``entity`` is the subject as an entity (None for a validator): an allowlisted entity is
    not quarantined automatically. The allowlist is looked up only when a quarantine would
    start, because it costs a lookup per covering network. Returns whether risk changed.
    """
    reputation, changed = add_risk(run.writer, subject, impact_ppm, now_ms=run.now_ms,
                                   half_life_ms=run.parameters.reputation_half_life_ms,
                                   cause=cause)
    if changed is None:
        return False
    run.emit(changed)
    threshold = (run.parameters.validator_quarantine_threshold_ppm if entity is None
                 else run.parameters.quarantine_threshold_ppm)
    if (reputation <= threshold and not quarantined_now(run, subject)
            and (entity is None or not is_allowlisted(run.writer.get, entity, run.now_ms))):
        run.emit(quarantine_on_threshold(run, subject, reputation, cause))
    return True
