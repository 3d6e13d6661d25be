"""Who a node may run as: checked against the committed validator set, or genesis before it."""

from __future__ import annotations

import hashlib

import pytest
from django.db import transaction

from apps.node.bootstrap import load_or_create_tip
from apps.node.membership import (
    MembershipError,
    Role,
    known_set,
    parse_observers,
    role_of,
)
from apps.validators.services import apply_validator_set
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.genesis import Genesis, genesis_document, parse_genesis
from cybermesh.protocol.validator_set import Validator, ValidatorSet


def key(name: str) -> SigningKey:
    return SigningKey.from_seed(hashlib.sha256(f"membership/{name}".encode()).digest())


def genesis() -> Genesis:
    import json

    document = genesis_document(chain_id="membership", genesis_time_ms=0, validators=[
        (f"node-{i}", key(f"node-{i}").public_key.raw, 1, f"127.0.0.1:{7000 + i}")
        for i in range(4)])
    return parse_genesis(json.dumps(document))


@pytest.mark.unit
def test_observer_entries_parse_and_bad_ones_are_named() -> None:
    observers = parse_observers([f"obs-0:{'ab' * 32}", " ", f"obs-1:{'CD' * 32}"])
    assert observers == {"obs-0": b"\xab" * 32, "obs-1": b"\xcd" * 32}
    with pytest.raises(MembershipError, match="'obs-0:abc' is not"):
        parse_observers(["obs-0:abc"])
    with pytest.raises(MembershipError, match="twice"):
        parse_observers([f"obs-0:{'ab' * 32}", f"obs-0:{'cd' * 32}"])


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_before_any_block_the_genesis_set_decides() -> None:
    chain = genesis()
    assert known_set(chain).source == "genesis"
    assert role_of(node_type="validator", node_id="node-1", key=key("node-1"), genesis=chain,
                   observers={}) is Role.VALIDATOR
    with pytest.raises(MembershipError, match="not node-1's validator key in genesis"):
        role_of(node_type="validator", node_id="node-1", key=key("node-2"), genesis=chain,
                observers={})
    # A key genesis never saw for node-1: the new key of a rotation this empty database has
    # not reached. It follows, and signs nothing until an epoch holds node-1 with it.
    assert role_of(node_type="validator", node_id="node-1", key=key("node-1-new"),
                   genesis=chain, observers={}) is Role.JOINING
    # Not in any set it knows, with a key of its own: it joins (follows until added).
    assert role_of(node_type="validator", node_id="node-4", key=key("node-4"), genesis=chain,
                   observers={}) is Role.JOINING
    with pytest.raises(MembershipError, match="another validator's key"):
        role_of(node_type="validator", node_id="node-4", key=key("node-0"), genesis=chain,
                observers={})
    assert role_of(node_type="observer", node_id="obs-0", key=key("obs-0"), genesis=chain,
                   observers={}) is Role.OBSERVER
    with pytest.raises(MembershipError, match="is a validator id"):
        role_of(node_type="observer", node_id="node-0", key=key("obs-0"), genesis=chain,
                observers={})
    with pytest.raises(MembershipError, match="a validator's key"):
        role_of(node_type="observer", node_id="obs-0", key=key("node-3"), genesis=chain,
                observers={})
    with pytest.raises(MembershipError, match="listed in P2P_OBSERVERS"):
        role_of(node_type="validator", node_id="node-0", key=key("node-0"), genesis=chain,
                observers={"node-0": key("node-0").public_key.raw})


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_after_governance_the_committed_set_decides() -> None:
    """node-0 re-keyed and node-4 added by governance: the ledger's set, not genesis, rules."""
    chain = genesis()
    load_or_create_tip(chain, node_id="node-0")
    members = [Validator("node-0", key("node-0-new").public_key.raw, 1, "127.0.0.1:7000")]
    members += [Validator(f"node-{i}", key(f"node-{i}").public_key.raw, 1,
                          f"127.0.0.1:{7000 + i}") for i in range(1, 5)]
    with transaction.atomic():
        apply_validator_set(validator_set=ValidatorSet(1, tuple(members)), height=1)
    assert known_set(chain).source == "the committed ledger"
    assert role_of(node_type="validator", node_id="node-4", key=key("node-4"), genesis=chain,
                   observers={}) is Role.VALIDATOR
    assert role_of(node_type="validator", node_id="node-0", key=key("node-0-new"),
                   genesis=chain, observers={}) is Role.VALIDATOR
    with pytest.raises(MembershipError, match=r"in the committed ledger \(governance rotated"):
        role_of(node_type="validator", node_id="node-0", key=key("node-0"), genesis=chain,
                observers={})
