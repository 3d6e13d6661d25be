"""Reputation math: exact integer decay table, half-lives, monotonicity, zero time."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cybermesh.protocol.executor.events import ReputationChanged
from cybermesh.protocol.executor.keys import Subject, reputation_key
from cybermesh.protocol.executor.params import SCALE_PPM
from cybermesh.protocol.executor.records import ReputationRecord
from cybermesh.protocol.executor.reputation import DECAY_TABLE, decay, reputation_at, zero_at
from tests.protocol.executor.executor_chain import Chain, event_tx, of_type

pytestmark = pytest.mark.unit

HALF_LIFE = 64_000
STEP = HALF_LIFE // 64
risks = st.integers(0, SCALE_PPM)


def test_decay_table_entries_are_exact_integer_64th_roots() -> None:
    assert DECAY_TABLE[0] == 1 << 64
    for index, entry in enumerate(DECAY_TABLE):
        target = 1 << (64 * 64 - index)
        assert entry ** 64 <= target < (entry + 1) ** 64
    assert all(a > b for a, b in itertools.pairwise(DECAY_TABLE))


@given(st.integers(1, SCALE_PPM // 2).map(lambda r: 2 * r))
def test_one_half_life_halves_an_even_risk_exactly(risk: int) -> None:
    assert decay(risk, 0, HALF_LIFE, HALF_LIFE) == (risk // 2, HALF_LIFE)


@given(risks, st.integers(0, 20 * HALF_LIFE), st.integers(0, 20 * HALF_LIFE))
def test_decay_never_increases_with_time(risk: int, first: int, extra: int) -> None:
    early, _ = decay(risk, 0, first, HALF_LIFE)
    late, _ = decay(risk, 0, first + extra, HALF_LIFE)
    assert 0 <= late <= early <= risk


@given(risks, st.integers(0, 10 * HALF_LIFE))
def test_partial_steps_are_never_lost(risk: int, elapsed: int) -> None:
    _, updated = decay(risk, 0, elapsed, HALF_LIFE)
    if risk:
        assert updated == elapsed - elapsed % STEP  # only whole steps are consumed


@given(risks.filter(bool), st.integers(0, 10**12))
def test_risk_is_zero_by_zero_at(risk: int, start: int) -> None:
    assert decay(risk, start, zero_at(risk, start, HALF_LIFE), HALF_LIFE)[0] == 0


def test_no_record_means_full_reputation() -> None:
    assert reputation_at(None, 123, HALF_LIFE) == SCALE_PPM


def test_an_offender_recovers_over_block_time_and_its_record_disappears() -> None:
    chain = Chain()
    step = chain.block([event_tx(created_at_ms=chain.now_ms + 500)])
    changed = of_type(step.events, ReputationChanged)
    assert [(e.old_ppm, e.new_ppm) for e in changed] == [(SCALE_PPM, 900_000)]
    key = reputation_key(Subject("ip", "203.0.113.7"))
    record = chain.state.get(key)
    assert isinstance(record, ReputationRecord)
    half_life = chain.state.parameters.reputation_half_life_ms
    assert reputation_at(record, chain.now_ms + half_life, half_life) == 950_000
    chain.block(at_ms=record.expires_at_ms + 1000)
    assert chain.state.get(key) is None  # fully decayed: deleted, i.e. full reputation
