"""State plumbing: parameters, the persistent map, and refusing corrupt stored state."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermesh.protocol.codec import encode
from cybermesh.protocol.executor import ExecutorParameters, State
from cybermesh.protocol.executor.keys import CHAIN_KEY, PARAMETERS_KEY
from cybermesh.protocol.executor.records import StateCorrupt, decode_record
from cybermesh.protocol.executor.state import MIN_FOLD, PersistentMap
from cybermesh.protocol.txs import ParameterName
from tests.protocol.executor.executor_chain import genesis

pytestmark = pytest.mark.unit


def test_governable_parameters_are_exactly_the_executor_parameters() -> None:
    fields = [field.name for field in dataclasses.fields(ExecutorParameters)]
    assert fields == [name.value for name in ParameterName]


@pytest.mark.parametrize(("name", "value"), [
    ("reputation_half_life_ms", 1000),  # not a multiple of 64
    ("quarantine_threshold_ppm", 1_000_001),
    ("epoch_length_blocks", 0),
    ("min_validators", 0),
    ("tx_max_age_ms", 0),
])
def test_out_of_range_parameters_are_refused(name: str, value: int) -> None:
    with pytest.raises(ValueError, match=name):
        ExecutorParameters().with_value(ParameterName(name), value)
    with pytest.raises(ValueError, match=name):
        genesis(dataclasses.replace(ExecutorParameters(), **{name: value}))


def test_default_parameters_are_usable_and_round_trip() -> None:
    parameters = ExecutorParameters()
    assert parameters.problems() == []
    assert ExecutorParameters.from_cbor(parameters.to_cbor()) == parameters


keys = st.integers(0, 5000)
changes = st.dictionaries(keys, st.one_of(st.none(), st.integers()), max_size=3000)


@settings(max_examples=40, deadline=None)
@given(st.lists(changes, max_size=6))
def test_persistent_map_behaves_like_a_dict_and_never_changes_old_versions(
        batches: list[dict[int, int | None]]) -> None:
    current: PersistentMap[int, int] = PersistentMap()
    model: dict[int, int] = {}
    history = []
    for batch in batches:
        current = current.updated(batch)
        for key, value in batch.items():
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        history.append((current, dict(model)))
    for version, expected in history:
        assert dict(version.items()) == expected
        assert all(version.get(key) == expected.get(key) for key in range(0, 5001, 97))


def test_persistent_map_folds_a_large_overlay_into_its_base() -> None:
    big = PersistentMap({key: key for key in range(10)}).updated(
        {key: -key for key in range(MIN_FOLD + 10)})
    assert big._overlay == {}  # folded
    assert big.get(5) == -5 and len(big) == MIN_FOLD + 10


def test_corrupt_stored_state_is_refused() -> None:
    entries = genesis().entries()
    with pytest.raises(StateCorrupt):
        decode_record(b"\xff")
    with pytest.raises(StateCorrupt):
        decode_record(encode([99, 1, 2]))
    with pytest.raises(StateCorrupt):
        State.from_entries({key: value for key, value in entries.items() if key != CHAIN_KEY})
    swapped = dict(entries)
    swapped[CHAIN_KEY] = entries[PARAMETERS_KEY]
    with pytest.raises(StateCorrupt):
        State.from_entries(swapped)
    assert State.from_entries(entries).entries() == entries
