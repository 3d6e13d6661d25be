"""Start-up checks refuse an observer configuration that contradicts the genesis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cybermesh.checks import check_production_safety, check_topology
from tests.node.test_membership import genesis, key

pytestmark = pytest.mark.unit


@pytest.fixture
def topology(settings: Any, tmp_path: Path) -> Any:
    from cybermesh.protocol.genesis import genesis_document

    chain = genesis()
    document = genesis_document(chain_id=chain.chain_id, genesis_time_ms=0, validators=[
        (v.validator_id, v.public_key, v.power, v.address) for v in chain.validator_set])
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(document))
    settings.CLUSTER_TOPOLOGY = str(path)
    settings.QUORUM_SIZE = 0
    settings.P2P_OBSERVERS = []
    return settings


def ids(messages: list[Any]) -> list[str]:
    return [message.id for message in messages]


def test_an_observer_under_a_validators_id_is_refused(topology: Any) -> None:
    topology.NODE_TYPE = "observer"
    topology.NODE_ID = "node-1"
    assert "cybermesh.E006" in ids(check_topology())
    topology.NODE_ID = "obs-0"
    assert ids(check_topology()) == []


def test_the_observer_allowlist_is_checked(topology: Any) -> None:
    topology.NODE_TYPE, topology.NODE_ID = "validator", "node-0"
    topology.P2P_OBSERVERS = [f"obs-0:{key('obs-0').public_key.raw.hex()}"]
    assert ids(check_topology()) == []
    topology.P2P_OBSERVERS = ["obs-0:nothex"]
    assert ids(check_topology()) == ["cybermesh.E007"]
    topology.P2P_OBSERVERS = [f"node-2:{key('obs-0').public_key.raw.hex()}"]
    assert ids(check_topology()) == ["cybermesh.E007"]
    topology.P2P_OBSERVERS = [f"obs-0:{key('node-3').public_key.raw.hex()}"]
    assert ids(check_topology()) == ["cybermesh.E007"]


def test_in_production_an_observer_needs_its_key_file(settings: Any) -> None:
    settings.PRODUCTION = True
    settings.NODE_TYPE = "observer"
    settings.NODE_KEY_PATH = ""
    messages = check_production_safety()
    assert any(m.id == "cybermesh.E025" and "NODE_KEY_PATH" in m.msg for m in messages)
