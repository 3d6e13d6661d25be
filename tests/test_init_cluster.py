"""`init_cluster` writes private keys and a genesis that every node accepts."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from cybermesh.keyfiles import load_signing_key
from cybermesh.topology import load_genesis

pytestmark = pytest.mark.unit


def test_writes_a_valid_genesis_and_private_keys_that_match_it(tmp_path: Path) -> None:
    out = tmp_path / "cluster"
    call_command("init_cluster", validators=4, out=str(out))
    genesis = load_genesis(out / "genesis.json")
    assert genesis.validator_set.ids == ("node-0", "node-1", "node-2", "node-3")
    assert genesis.quorum_size == 3
    for validator in genesis.validator_set:
        key_path = out / validator.validator_id / "node.key"
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        assert load_signing_key(key_path).public_key.raw == validator.public_key
    addresses = {v.address for v in genesis.validator_set}
    assert addresses == {"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}


def test_refuses_to_overwrite_an_existing_cluster(tmp_path: Path) -> None:
    call_command("init_cluster", validators=4, out=str(tmp_path))
    before = (tmp_path / "node-0" / "node.key").read_bytes()
    with pytest.raises(CommandError, match="refusing to overwrite"):
        call_command("init_cluster", validators=4, out=str(tmp_path))
    assert (tmp_path / "node-0" / "node.key").read_bytes() == before


def test_refuses_a_cluster_that_cannot_tolerate_a_fault_unless_asked(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot tolerate a fault"):
        call_command("init_cluster", validators=3, out=str(tmp_path / "a"))
    call_command("init_cluster", validators=1, out=str(tmp_path / "b"),
                 allow_no_fault_tolerance=True)
    assert load_genesis(tmp_path / "b" / "genesis.json").quorum_size == 1
