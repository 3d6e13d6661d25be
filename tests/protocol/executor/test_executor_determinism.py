"""Determinism: same blocks, same results; unrelated transactions commute; rebuilt states
continue identically; and deliberately broken reducers are caught by these very checks.

Hypothesis prints the failing scenario as plain data (see ``executor_scenarios``); the
subprocess test prints the hash seeds it compared.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cybermesh.protocol.executor import BlockContext, State, apply_block, state_root
from cybermesh.protocol.executor import security_event as security_event_reducer
from cybermesh.protocol.executor.params import SCALE_PPM
from cybermesh.protocol.executor.records import QuarantineRecord, ReputationRecord
from cybermesh.protocol.txs import Entity, PolicyAction, Transaction
from tests.protocol.executor.executor_chain import event_tx, genesis
from tests.protocol.executor.executor_scenarios import (
    ENTITIES,
    SCOPES,
    Scenario,
    replay,
    run,
)
from tests.protocol.txs.tx_builders import policy, signed

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
entity_index = st.integers(0, len(ENTITIES) - 1)
ops = st.one_of(
    st.tuples(st.just("event"), entity_index, st.integers(1, 10), st.integers(0, 10_000)),
    st.tuples(st.just("evidence"), st.lists(st.integers(0, 50), min_size=1, max_size=3)),
    st.tuples(st.just("rule"), entity_index, st.integers(0, len(SCOPES) - 1), st.booleans(),
              st.integers(1000, 90_000)),
    st.tuples(st.just("unrule"), entity_index, st.integers(0, len(SCOPES) - 1), st.booleans()),
    st.tuples(st.just("quarantine"), entity_index, st.integers(1000, 90_000)),
    st.tuples(st.just("release"), entity_index),
    st.tuples(st.just("equivocation"), st.integers(0, 3), st.integers(0, 3)),
    st.tuples(st.just("power"), st.integers(0, 3), st.integers(1, 50)),
    st.tuples(st.just("anchor"), st.integers(0, 3), st.integers(0, 5)),
    st.tuples(st.just("replay"), st.integers(0, 100)),
)
scenarios = st.lists(
    st.tuples(st.sampled_from([0, 1000, 5000, 60_000, 3_700_000]), st.lists(ops, max_size=8)),
    min_size=1, max_size=7)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def check_invariants(state: State) -> list[str]:
    """Properties every reachable state has; returns the violations."""
    problems = []
    now = state.chain.timestamp_ms
    rebuilt = State.from_entries(state.entries())
    if rebuilt.entries() != state.entries():
        problems.append("state does not survive a round trip through its entries")
    for key, value in state.entries().items():
        record = rebuilt.get(key)
        if isinstance(record, ReputationRecord) and not (
                0 < record.risk_ppm <= SCALE_PPM and record.updated_ms <= now):
            problems.append(f"reputation out of range: {record}")
        if isinstance(record, QuarantineRecord) and not record.since_ms < record.expires_at_ms:
            problems.append(f"quarantine ends before it starts: {record}")
        if len(key) != 32 or not value:
            problems.append("malformed entry")
    return problems


@SETTINGS
@given(scenarios)
def test_same_blocks_twice_give_identical_results(scenario: Scenario) -> None:
    first = run(scenario)
    second = run(scenario)
    assert first.digest() == second.digest()
    # Incremental roots equal roots built from scratch, for every height, computed after the
    # whole run: an apply that mutated an earlier state would show here.
    assert [state_root(state) for state in first.states] == first.roots
    for state in first.states:
        assert check_invariants(state) == []


@SETTINGS
@given(scenarios, st.data())
def test_a_state_rebuilt_from_its_entries_continues_identically(
        scenario: Scenario, data: st.DataObject) -> None:
    trace = run(scenario)
    cut = data.draw(st.integers(0, len(trace.states) - 1), label="cut")
    rebuilt = State.from_entries(trace.states[cut].entries())
    continued = replay(trace.blocks[cut + 1:], rebuilt)
    assert [state_root(state) for state, _, _ in continued] == trace.roots[cut + 1:]
    assert [events for _, events, _ in continued] == trace.events[cut + 1:]


def _unrelated_block(offenders: list[int], rules: list[int], now: int) -> list[Transaction]:
    txs = [event_tx(f"198.51.100.{n}", nonce=n, severity=1 + n % 10, created_at_ms=now)
           for n in offenders]
    txs += [signed(policy(entity=Entity.of("ip", f"192.0.2.{n}"), action=PolicyAction.DENY,
                          scope="*", expires_at_ms=now + 60_000), nonce=1000 + n,
                   created_at_ms=now) for n in rules]
    return txs


def commutes(txs: list[Transaction], permuted: list[Transaction], repeats: int = 6) -> bool:
    """Whether ``txs`` and ``permuted`` lead to the same states and the same set of events
    over a few identical blocks (so that offences accumulate to quarantines)."""
    state = genesis()
    results = []
    for order in (txs, permuted):
        current, events = state, []
        for height in range(1, repeats + 1):
            block = [signed(tx.payload, nonce=tx.nonce + 10_000 * height,
                            created_at_ms=tx.created_at_ms) for tx in order]
            current, block_events, _ = apply_block(
                current, BlockContext(height, state.chain.timestamp_ms + 1000 * height), block)
            events.extend(block_events)
        results.append((state_root(current), sorted(repr(event) for event in events)))
    return results[0] == results[1]


unique_numbers = st.lists(st.integers(1, 250), unique=True, max_size=12)


@SETTINGS
@given(unique_numbers, unique_numbers, st.randoms(use_true_random=False))
def test_transactions_about_different_subjects_commute(
        offenders: list[int], rules: list[int], rng: object) -> None:
    now = genesis().chain.timestamp_ms
    txs = _unrelated_block(offenders, rules, now)
    permuted = list(txs)
    rng.shuffle(permuted)  # type: ignore[attr-defined]
    assert commutes(txs, permuted)


def test_transactions_about_one_subject_apply_in_block_order() -> None:
    now = genesis().chain.timestamp_ms
    entity = Entity.of("ip", "192.0.2.9")
    set_rule = signed(policy(entity=entity, scope="*", action=PolicyAction.DENY,
                             expires_at_ms=now + 60_000), nonce=1, created_at_ms=now)
    remove = signed(policy(operation="remove_rule", entity=entity, scope="*",
                           action=PolicyAction.DENY, expires_at_ms=None), nonce=2,
                    created_at_ms=now)
    assert not commutes([set_rule, remove], [remove, set_rule], repeats=1)


# --- The checks above catch broken reducers -------------------------------------------------

SCENARIO: Scenario = [(1000, [("event", i % len(ENTITIES), 9, 9000) for i in range(12)]),
                      (1000, [("event", 0, 5, 5000), ("evidence", [0, 1, 2])])]


def _broken(monkeypatch: pytest.MonkeyPatch, impact: Callable[..., int]) -> None:
    monkeypatch.setattr(security_event_reducer, "event_impact_ppm", impact)


def test_a_reducer_with_hidden_state_is_caught_by_the_replay_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = [0]

    def leaky_impact(event: object, per_severity: int) -> int:
        calls[0] += 1  # state outside (state, block): differs between two runs
        return calls[0] * 1000

    _broken(monkeypatch, leaky_impact)
    assert run(SCENARIO).digest() != run(SCENARIO).digest()


def test_an_order_dependent_reducer_is_caught_by_the_commutation_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []

    def order_dependent_impact(event: object, per_severity: int) -> int:
        seen.append(event)  # "the n-th offence in this run costs n": depends on tx order
        return 10_000 * len(seen)

    _broken(monkeypatch, order_dependent_impact)
    now = genesis().chain.timestamp_ms
    txs = _unrelated_block([1, 2, 3, 4], [], now)
    assert not commutes(txs, list(reversed(txs)))


_HASH_SEED_SCRIPT = textwrap.dedent("""
    import sys
    from cybermesh.protocol.executor import apply as apply_module
    from cybermesh.protocol.executor.records import QuarantineRecord, RuleRecord
    from cybermesh.protocol.executor.policy import expire_rule
    from cybermesh.protocol.executor.quarantine import expire_quarantine
    from tests.protocol.executor.executor_scenarios import run

    def expire_in_set_order(run_, state):  # the bug: no sort, set order leaks into events
        for key in set(state.due_keys(run_.now_ms)):
            record = state.get(key)
            if isinstance(record, RuleRecord):
                run_.emit(expire_rule(run_, key, record))
            elif isinstance(record, QuarantineRecord):
                run_.emit(expire_quarantine(run_, key, record))
            elif record is not None and record.expires_at_ms is not None:
                if record.expires_at_ms <= run_.now_ms:
                    run_.writer.delete(key)

    if sys.argv[1] == "broken":
        apply_module._expire = expire_in_set_order
    rules = [("rule", index, 0, True, 2000) for index in range(6)]
    rules += [("quarantine", index, 2000) for index in range(6)]
    print(run([(1000, rules), (60_000, [])]).digest())
""")


def _digest_with_hash_seed(variant: str, seed: int) -> str:
    environment = {**os.environ, "PYTHONHASHSEED": str(seed), "PYTHONPATH": str(REPO)}
    completed = subprocess.run([sys.executable, "-c", _HASH_SEED_SCRIPT, variant], cwd=REPO,
                               env=environment, capture_output=True, text=True, timeout=120,
                               check=True)
    return completed.stdout.strip()


def test_results_do_not_depend_on_the_hash_seed_and_a_set_order_bug_would_show() -> None:
    seeds = (1, 2, 3)
    print(f"hash seeds compared: {seeds}")
    correct = {_digest_with_hash_seed("correct", seed) for seed in seeds}
    assert len(correct) == 1
    broken = {_digest_with_hash_seed("broken", seed) for seed in seeds}
    assert len(broken) > 1  # the unsorted expiry order differs between processes
