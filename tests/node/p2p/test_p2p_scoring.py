"""Scores: penalties, rewards, decay toward neutral, quarantine and its expiry."""

from __future__ import annotations

import pytest

from apps.node.p2p.errors import P2PConfigError, PenaltyReason
from apps.node.p2p.scoring import DEFAULT_PENALTIES, PeerScores, ScoringConfig

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**overrides):
    clock = Clock()
    return PeerScores(ScoringConfig(**overrides), clock), clock


def test_new_peer_is_neutral_and_not_quarantined():
    scores, _ = make()
    assert scores.score("p") == 0.0
    assert not scores.is_quarantined("p")


def test_penalty_lowers_and_reward_raises_up_to_the_cap():
    scores, _ = make(reward=10.0, max_score=25.0)
    scores.penalize("p", PenaltyReason.MALFORMED)
    assert scores.score("p") == -DEFAULT_PENALTIES[PenaltyReason.MALFORMED]
    for _ in range(10):
        scores.reward("p")
    assert scores.score("p") == 25.0


def test_score_decays_toward_neutral_with_the_half_life():
    scores, clock = make(half_life_seconds=10.0)
    scores.penalize("p", PenaltyReason.INVALID_SIGNATURE)  # -40
    clock.now += 10
    assert scores.score("p") == pytest.approx(-20.0)
    clock.now += 20
    assert scores.score("p") == pytest.approx(-5.0)
    scores.reward("p")
    clock.now += 10
    assert scores.score("p") == pytest.approx(-2.0)


def test_reaching_the_threshold_quarantines_once_and_reports_the_trigger():
    scores, clock = make(quarantine_seconds=30.0)
    assert scores.penalize("p", PenaltyReason.OVERSIZED) is None   # -50
    quarantine = scores.penalize("p", PenaltyReason.OVERSIZED)     # -100: threshold
    assert quarantine is not None
    assert quarantine.reason is PenaltyReason.OVERSIZED
    assert quarantine.until == clock.now + 30.0
    assert scores.quarantined_until("p") == clock.now + 30.0
    assert scores.penalize("p", PenaltyReason.OVERSIZED) is None   # already quarantined


def test_quarantine_expires_by_time_and_the_peer_restarts_on_probation():
    scores, clock = make(quarantine_seconds=30.0, probation_score=-60.0)
    scores.penalize("p", PenaltyReason.OVERSIZED)
    scores.penalize("p", PenaltyReason.OVERSIZED)
    clock.now += 29.9
    assert scores.is_quarantined("p")
    clock.now += 0.1
    assert not scores.is_quarantined("p")
    assert scores.score("p") == -60.0
    # On probation, one more serious offence brings quarantine back, for twice as long.
    quarantine = scores.penalize("p", PenaltyReason.OVERSIZED)
    assert quarantine is not None
    assert quarantine.until == clock.now + 60.0


def test_repeat_quarantine_is_capped():
    scores, clock = make(quarantine_seconds=100.0, max_quarantine_seconds=150.0,
                         probation_score=-1.0)
    for expected in (100.0, 150.0, 150.0):
        while (quarantine := scores.penalize("p", PenaltyReason.BAD_BLOCK)) is None:
            pass
        assert quarantine.until - clock.now == expected
        clock.now = quarantine.until


def test_rewards_do_not_count_during_quarantine():
    scores, _ = make()
    for _ in range(2):
        scores.penalize("p", PenaltyReason.OVERSIZED)
    before = scores.score("p")
    scores.reward("p")
    assert scores.score("p") == before


def test_scores_are_per_peer():
    scores, _ = make()
    scores.penalize("a", PenaltyReason.MALFORMED)
    assert scores.score("b") == 0.0


def test_config_refuses_inconsistent_thresholds():
    with pytest.raises(P2PConfigError):
        ScoringConfig(quarantine_threshold=-10.0, probation_score=-20.0)
    with pytest.raises(P2PConfigError):
        ScoringConfig(penalties={PenaltyReason.FLOOD: 1.0})
