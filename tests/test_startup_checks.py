"""Start-up refuses unsafe or contradictory configuration: one clear line per problem, exit 1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.genesis import genesis_document

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parent.parent


def write_genesis(directory: Path, count: int = 4) -> Path:
    doc = genesis_document(
        chain_id="cybermesh-test", genesis_time_ms=0,
        validators=[(f"node-{i}", SigningKey.from_seed(bytes([i + 1]) * 32).public_key.raw, 1,
                     f"127.0.0.1:{7001 + i}") for i in range(count)])
    path = directory / "genesis.json"
    path.write_text(json.dumps(doc))
    return path


def run_check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base_env = {key: value for key, value in os.environ.items()
                if key in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    base_env.update({"CYBERMESH_DATA_DIR": str(tmp_path), "NODE_ID": "node-0"})
    base_env.update(env)
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=base_env,
                          capture_output=True, text=True, timeout=60, check=False)


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if re.search(r"\(\w+\.E\d+\)", line)]


def test_development_defaults_pass(tmp_path: Path) -> None:
    result = run_check(tmp_path)
    assert result.returncode == 0, result.stderr


def test_production_mode_refuses_every_unsafe_default_one_line_each(tmp_path: Path) -> None:
    readable_key = tmp_path / "node.key"
    readable_key.write_text("{}")
    readable_key.chmod(0o644)
    result = run_check(tmp_path, CYBERMESH_ENV="production", DEBUG="true",
                       NODE_KEY_PATH=str(readable_key),
                       CYBERMESH_FAILPOINTS="ingest.before_offset_commit=pause")
    assert result.returncode != 0
    lines = "\n".join(error_lines(result))
    for expected in ("DEBUG is on in production", "SECRET_KEY is the development default",
                     "ALLOWED_HOSTS is empty", "ALLOWED_IPS is empty",
                     "CLUSTER_TOPOLOGY (the genesis file) is not set",
                     "NODE_KEY_PATH=", "accessible by group or others (mode 0644)",
                     "AUDIT_SIGNING_KEY is not set", "DATABASE_URL points at SQLite",
                     "CYBERMESH_FAILPOINTS is set"):
        assert expected in lines, f"missing {expected!r} in:\n{result.stderr}"


def test_a_safe_production_configuration_starts(tmp_path: Path) -> None:
    genesis = write_genesis(tmp_path)
    node_key = tmp_path / "node.key"
    audit_key = tmp_path / "audit.keyring"
    node_key.write_text("{}")
    audit_key.write_text(json.dumps({"current": "k1", "keys": {"k1": "ab" * 32}}))
    producers = tmp_path / "producers.json"
    producers.write_text('{"producers": []}')
    at_rest_key = tmp_path / "at-rest.key"
    subprocess.run([sys.executable, "manage.py", "keygen", "--kind", "aead", "--out",
                    str(at_rest_key)], cwd=ROOT, check=True, capture_output=True, timeout=60)
    for path in (node_key, audit_key):
        path.chmod(0o600)
    result = run_check(
        tmp_path, CYBERMESH_ENV="production", SECRET_KEY="s" * 64,
        ALLOWED_HOSTS="node-0.example", ALLOWED_IPS="10.0.0.0/8",
        CLUSTER_TOPOLOGY=str(genesis), NODE_KEY_PATH=str(node_key),
        AUDIT_SIGNING_KEY=str(audit_key), AT_REST_KEYS=str(at_rest_key),
        MEMPOOL_PRODUCERS_PATH=str(producers),
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/cybermesh")
    assert error_lines(result) == [], result.stderr
    assert result.returncode == 0, result.stderr


def test_a_malformed_audit_keyring_is_refused_in_production(tmp_path: Path) -> None:
    audit_key = tmp_path / "audit.keyring"
    audit_key.write_text('{"current": "k1", "keys": {}}')
    audit_key.chmod(0o600)
    result = run_check(tmp_path, CYBERMESH_ENV="production", AUDIT_SIGNING_KEY=str(audit_key))
    assert any("(cybermesh.E026)" in line for line in error_lines(result)), result.stderr


def test_quorum_size_that_contradicts_the_validator_set_is_refused(tmp_path: Path) -> None:
    genesis = write_genesis(tmp_path, count=4)
    result = run_check(tmp_path, CLUSTER_TOPOLOGY=str(genesis), QUORUM_SIZE="2")
    assert result.returncode != 0
    (line,) = error_lines(result)
    assert "QUORUM_SIZE=2 contradicts the validator set" in line
    assert "the quorum is 3" in line
    assert run_check(tmp_path, CLUSTER_TOPOLOGY=str(genesis), QUORUM_SIZE="3").returncode == 0


def test_a_bad_genesis_is_refused_with_its_problems(tmp_path: Path) -> None:
    genesis = write_genesis(tmp_path, count=3)
    result = run_check(tmp_path, CLUSTER_TOPOLOGY=str(genesis))
    assert result.returncode != 0
    assert any("tolerate f=0 faults" in line for line in error_lines(result))


def test_a_validator_missing_from_the_genesis_is_a_warning_not_a_refusal(tmp_path: Path
                                                                         ) -> None:
    """A validator added by governance is in no genesis: `check` warns (a typo is possible),
    and run_node's own check against the committed ledger decides."""
    genesis = write_genesis(tmp_path)
    result = run_check(tmp_path, CLUSTER_TOPOLOGY=str(genesis), NODE_ID="stranger")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() + result.stderr.splitlines()
                if "(cybermesh.W005)" in line]
    assert warnings and "'stranger' is a validator but is not in the genesis" in warnings[0]
