"""Per-peer scores: penalties push down, good messages push up, time pulls back to neutral.

A score starts at 0 (neutral). Each :class:`PenaltyReason` costs a configured number of points;
:meth:`PeerScores.reward` adds ``reward`` up to ``max_score`` (so good history buys slack, but
only a bounded amount). Between events the score decays exponentially toward 0 with
``half_life_seconds``: old offences are forgiven and old merit expires, at the same rate.

When a score reaches ``quarantine_threshold`` or below, the peer is quarantined: for
``quarantine_seconds``, doubled for each repeat offence up to ``max_quarantine_seconds``.
Quarantine ends by time alone; the peer then restarts on probation at ``probation_score`` (a
few further offences quarantine it again). Scores are not consensus state, so floats are fine;
the clock is injected so tests control time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from apps.node.p2p.errors import P2PConfigError, PenaltyReason

DEFAULT_PENALTIES: Mapping[PenaltyReason, float] = MappingProxyType({
    PenaltyReason.INVALID_SIGNATURE: 40.0,
    PenaltyReason.MALFORMED: 25.0,
    PenaltyReason.OVERSIZED: 50.0,
    PenaltyReason.FLOOD: 2.0,
    PenaltyReason.TIMEOUT: 10.0,
    PenaltyReason.INVALID_MESSAGE: 10.0,
    PenaltyReason.BAD_BLOCK: 50.0,
    PenaltyReason.FORBIDDEN_TOPIC: 50.0,
})


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    penalties: Mapping[PenaltyReason, float] = field(default_factory=lambda: DEFAULT_PENALTIES)
    reward: float = 1.0
    max_score: float = 50.0
    min_score: float = -1000.0
    quarantine_threshold: float = -100.0
    probation_score: float = -50.0
    half_life_seconds: float = 120.0
    quarantine_seconds: float = 60.0
    max_quarantine_seconds: float = 3600.0

    def __post_init__(self) -> None:
        missing = set(PenaltyReason) - set(self.penalties)
        if missing:
            raise P2PConfigError(f"scoring: no penalty for {sorted(r.value for r in missing)}")
        if any(points < 0 for points in self.penalties.values()) or self.reward < 0:
            raise P2PConfigError("scoring: penalties and reward must be non-negative")
        if not self.min_score <= self.quarantine_threshold < self.probation_score <= 0:
            raise P2PConfigError("scoring: need min_score <= quarantine_threshold < "
                                 "probation_score <= 0")
        if self.max_score < 0 or self.half_life_seconds <= 0 or self.quarantine_seconds <= 0:
            raise P2PConfigError("scoring: max_score >= 0, positive half-life and quarantine")
        if self.max_quarantine_seconds < self.quarantine_seconds:
            raise P2PConfigError("scoring: max_quarantine_seconds below quarantine_seconds")


@dataclass(slots=True)
class _Record:
    score: float = 0.0
    updated_at: float = 0.0
    quarantined_until: float | None = None
    offences: int = 0


@dataclass(frozen=True, slots=True)
class Quarantine:
    """A quarantine that just started: until when (clock time) and what triggered it."""

    peer_id: str
    until: float
    reason: PenaltyReason


class PeerScores:
    """Scores and quarantines of peers by id, on an injected monotonic clock (seconds)."""

    def __init__(self, config: ScoringConfig, clock: Callable[[], float]) -> None:
        self._config = config
        self._clock = clock
        self._records: dict[str, _Record] = {}

    def _record(self, peer_id: str) -> _Record:
        """The peer's record with decay applied up to now and an expired quarantine lifted."""
        now = self._clock()
        record = self._records.get(peer_id)
        if record is None:
            record = self._records[peer_id] = _Record(updated_at=now)
            return record
        if record.quarantined_until is not None and now >= record.quarantined_until:
            record.quarantined_until = None
            record.score = self._config.probation_score
            record.updated_at = now
        elapsed = now - record.updated_at
        if elapsed > 0:
            record.score *= 0.5 ** (elapsed / self._config.half_life_seconds)
            record.updated_at = now
        return record

    def score(self, peer_id: str) -> float:
        return self._record(peer_id).score

    def quarantined_until(self, peer_id: str) -> float | None:
        """Clock time the current quarantine ends, or ``None`` when the peer is not in one."""
        return self._record(peer_id).quarantined_until

    def is_quarantined(self, peer_id: str) -> bool:
        return self.quarantined_until(peer_id) is not None

    def penalize(self, peer_id: str, reason: PenaltyReason) -> Quarantine | None:
        """Lower the score; return the :class:`Quarantine` if this penalty started one."""
        record = self._record(peer_id)
        config = self._config
        record.score = max(config.min_score, record.score - config.penalties[reason])
        if record.quarantined_until is not None or record.score > config.quarantine_threshold:
            return None
        record.offences += 1
        period = min(config.max_quarantine_seconds,
                     config.quarantine_seconds * 2 ** (record.offences - 1))
        record.quarantined_until = self._clock() + period
        return Quarantine(peer_id=peer_id, until=record.quarantined_until, reason=reason)

    def reward(self, peer_id: str) -> None:
        record = self._record(peer_id)
        if record.quarantined_until is None:
            record.score = min(self._config.max_score, record.score + self._config.reward)

    def forget(self, peer_id: str) -> None:
        self._records.pop(peer_id, None)
