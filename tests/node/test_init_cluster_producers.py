"""`init_cluster` writes a producer allowlist the mempool accepts, and node.env points to it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from django.core.management import call_command

from apps.mempool.producers import load_allowlist
from cybermesh.keyfiles import load_signing_key
from cybermesh.protocol.txs import TxKind
from cybermesh.topology import load_genesis

pytestmark = pytest.mark.unit


def read_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line)


def test_validators_may_submit_only_evidence_with_their_own_keys(tmp_path: Path) -> None:
    call_command("init_cluster", validators=4, out=str(tmp_path))
    allowlist = load_allowlist(tmp_path / "producers.json")
    for validator in load_genesis(tmp_path / "genesis.json").validator_set:
        found = allowlist.lookup(validator.validator_id, validator.public_key)
        assert found is not None
        producer, _ = found
        assert producer.kinds == frozenset({TxKind.EVIDENCE})


def test_demo_and_operator_producers_have_private_keys_matching_the_allowlist(
        tmp_path: Path) -> None:
    call_command("init_cluster", validators=4, out=str(tmp_path))
    allowlist = load_allowlist(tmp_path / "producers.json")
    expected = {"ai-demo": {TxKind.SECURITY_EVENT, TxKind.EVIDENCE, TxKind.POLICY},
                "operator": {TxKind.GOVERNANCE, TxKind.POLICY}}
    for producer_id, kinds in expected.items():
        key_path = tmp_path / "producers" / f"{producer_id}.key"
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        found = allowlist.lookup(producer_id, load_signing_key(key_path).public_key.raw)
        assert found is not None and found[0].kinds == frozenset(kinds)


def test_every_node_env_names_the_allowlist(tmp_path: Path) -> None:
    call_command("init_cluster", validators=4, out=str(tmp_path))
    for index in range(4):
        env = read_env(tmp_path / f"node-{index}" / "node.env")
        assert Path(env["MEMPOOL_PRODUCERS_PATH"]) == (tmp_path / "producers.json").resolve()


def test_without_demo_producers_only_validators_are_listed(tmp_path: Path) -> None:
    call_command("init_cluster", validators=4, out=str(tmp_path), no_demo_producers=True)
    allowlist = load_allowlist(tmp_path / "producers.json")
    assert sorted(allowlist.producers) == ["node-0", "node-1", "node-2", "node-3"]
    assert not (tmp_path / "producers").exists()
