"""Genesis validation: every mistake an operator can make is reported, each on its own line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.genesis import GenesisError, genesis_document, parse_genesis

pytestmark = pytest.mark.unit


def public_key(index: int) -> bytes:
    return SigningKey.from_seed(bytes([index + 1]) * 32).public_key.raw


def document(count: int = 4, **overrides: Any) -> dict[str, Any]:
    doc = genesis_document(
        chain_id="cybermesh-test", genesis_time_ms=1_700_000_000_000,
        validators=[(f"node-{i}", public_key(i), 1, f"127.0.0.1:{7001 + i}")
                    for i in range(count)])
    doc.update(overrides)
    return doc


def problems_of(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(GenesisError) as caught:
        parse_genesis(json.dumps(doc))
    return caught.value.problems


def test_a_well_formed_genesis_loads_with_its_quorum() -> None:
    genesis = parse_genesis(json.dumps(document(7)))
    assert genesis.chain_id == "cybermesh-test"
    assert len(genesis.validator_set) == 7
    assert genesis.validator_set.quorum.max_faulty_power == 2
    assert genesis.quorum_size == 5


def test_the_digest_is_independent_of_key_order_in_the_file() -> None:
    doc = document()
    reordered = json.dumps(dict(reversed(list(doc.items()))))
    assert parse_genesis(reordered).digest == parse_genesis(json.dumps(doc)).digest


def test_duplicate_ids_are_refused() -> None:
    doc = document()
    doc["validators"][1]["id"] = "node-0"
    assert "duplicate validator id 'node-0'" in problems_of(doc)


def test_duplicate_keys_are_refused() -> None:
    doc = document()
    doc["validators"][1]["public_key"] = doc["validators"][0]["public_key"]
    assert any("share one public key" in p for p in problems_of(doc))


def test_zero_power_is_refused() -> None:
    doc = document()
    doc["validators"][2]["power"] = 0
    assert problems_of(doc) == ["validator 'node-2': power must be a positive integer, got 0"]


@pytest.mark.parametrize("count", [1, 2, 3])
def test_fewer_than_four_validators_cannot_tolerate_a_fault(count: int) -> None:
    (problem,) = problems_of(document(count))
    assert "tolerate f=0 faults" in problem


def test_a_single_development_node_is_allowed_when_asked_explicitly() -> None:
    genesis = parse_genesis(json.dumps(document(1, min_fault_tolerance=0)))
    assert genesis.quorum_size == 1


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", ":7000", "host name:80", "[::1:7000",
    "999.1.1.1:80", "127.0.0.1:port",
])
def test_malformed_addresses_are_refused(address: str) -> None:
    doc = document()
    doc["validators"][0]["address"] = address
    (problem,) = problems_of(doc)
    assert problem.startswith("validator 'node-0': malformed address")


@pytest.mark.parametrize("address", ["10.0.0.1:7000", "[::1]:7000", "validator-1.example:443"])
def test_well_formed_addresses_are_accepted(address: str) -> None:
    doc = document()
    doc["validators"][0]["address"] = address
    parse_genesis(json.dumps(doc))


def test_small_order_public_keys_are_refused() -> None:
    doc = document()
    doc["validators"][0]["public_key"] = "01" + "00" * 31  # the identity point
    (problem,) = problems_of(doc)
    assert "not a valid Ed25519 key" in problem


def test_every_problem_is_listed_at_once() -> None:
    doc = document()
    doc["chain_id"] = "Bad Chain"
    doc["validators"][0]["power"] = -1
    doc["validators"][1]["address"] = "nowhere"
    doc["consensus"]["min_timeout_ms"] = 5000
    problems = problems_of(doc)
    assert len(problems) == 4, problems


def test_unknown_consensus_parameters_are_refused() -> None:
    doc = document()
    doc["consensus"]["base_timeout"] = 5
    assert problems_of(doc) == ["consensus has unknown parameters: base_timeout"]


@pytest.mark.parametrize("text", [b"", b"[]", b"{", b"\xff\xfe", b"null"])
def test_garbage_is_a_genesis_error_not_a_crash(text: bytes) -> None:
    with pytest.raises(GenesisError):
        parse_genesis(text)
