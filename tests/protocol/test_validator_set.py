"""Quorum arithmetic by voting power: the numbers every safety argument rests on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cybermesh.protocol.validator_set import (
    Validator,
    ValidatorSet,
    ValidatorSetError,
    quorum_math,
)

pytestmark = pytest.mark.unit


def make_set(powers: list[int]) -> ValidatorSet:
    return ValidatorSet(epoch=0, validators=tuple(
        Validator(validator_id=f"v{i}", public_key=bytes([i + 1]) * 32, power=power)
        for i, power in enumerate(powers)))


@pytest.mark.parametrize(("total", "faulty", "quorum"), [
    (1, 0, 1), (3, 0, 3), (4, 1, 3), (5, 1, 4), (6, 1, 5), (7, 2, 5), (10, 3, 7), (31, 10, 21),
])
def test_quorum_math_matches_the_textbook_table(total: int, faulty: int, quorum: int) -> None:
    math = quorum_math(total)
    assert (math.max_faulty_power, math.quorum_power) == (faulty, quorum)


@given(st.integers(min_value=1, max_value=10_000))
def test_two_quorums_always_share_more_than_f_power(total: int) -> None:
    math = quorum_math(total)
    overlap = 2 * math.quorum_power - total
    assert overlap > math.max_faulty_power
    assert 3 * math.max_faulty_power < total


def test_quorum_is_counted_by_power_not_by_heads() -> None:
    validators = make_set([5, 1, 1, 1])  # total 8, f = 2, quorum 6
    assert validators.has_quorum(["v0", "v1"])
    assert not validators.has_quorum(["v1", "v2", "v3"])


def test_unknown_and_repeated_ids_add_no_power() -> None:
    validators = make_set([1, 1, 1, 1])
    assert validators.power_of(["v0", "v0", "v0", "intruder"]) == 1
    assert not validators.has_quorum(["v0", "v0", "v0"])


@pytest.mark.parametrize(("powers", "message"), [
    ([1, 0, 1, 1], "voting power must be positive"),
    ([], "at least one validator"),
])
def test_invalid_sets_are_refused(powers: list[int], message: str) -> None:
    with pytest.raises(ValidatorSetError, match=message):
        make_set(powers)


def test_duplicate_ids_and_shared_keys_are_refused() -> None:
    key = b"\x01" * 32
    with pytest.raises(ValidatorSetError, match="duplicate validator id"):
        ValidatorSet(epoch=0, validators=(Validator("a", key, 1), Validator("a", b"\x02" * 32, 1)))
    with pytest.raises(ValidatorSetError, match="share one public key"):
        ValidatorSet(epoch=0, validators=(Validator("a", key, 1), Validator("b", key, 1)))


def test_digest_commits_to_epoch_keys_and_powers_but_not_input_order() -> None:
    base = make_set([1, 2, 3, 4])
    reordered = ValidatorSet(epoch=0, validators=tuple(reversed(base.validators)))
    assert base.digest() == reordered.digest()
    assert base.digest() != make_set([1, 2, 3, 5]).digest()
    assert base.digest() != ValidatorSet(epoch=1, validators=base.validators).digest()
