"""`run_node` refuses a bad start with one clear line on stderr and exit status 1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exits") / "cluster"
    call_command("init_cluster", validators=4, out=str(out), p2p_base_port=free_port(),
                 http_base_port=free_port())
    return out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def node_env(cluster: Path, **overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("NODE_ID", "NODE_KEY_PATH", "CLUSTER_TOPOLOGY")}
    for line in (cluster / "node-0" / "node.env").read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = value
    env.update(overrides)
    return env


def run_node(env: dict[str, str], component: str = "worker") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", "run_node", "--component", component],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


def test_a_bad_genesis_is_one_line(cluster: Path, tmp_path: Path) -> None:
    broken = tmp_path / "genesis.json"
    broken.write_text('{"chain_id": "x", "validators": []}')
    line = one_line(run_node(node_env(cluster, CLUSTER_TOPOLOGY=str(broken))))
    assert line.startswith("CommandError: refusing to start: ")
    assert "validators must be a non-empty list" in line


def test_a_missing_key_is_one_line(cluster: Path, tmp_path: Path) -> None:
    line = one_line(run_node(node_env(cluster, NODE_KEY_PATH=str(tmp_path / "absent.key"))))
    assert "absent.key" in line


def test_another_validators_key_is_one_line(cluster: Path) -> None:
    other = str((cluster / "node-1" / "node.key").resolve())
    line = one_line(run_node(node_env(cluster, NODE_KEY_PATH=other)))
    assert "not node-0's validator key" in line


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_a_p2p_port_in_use_is_one_line(cluster: Path, busy_port: int) -> None:
    line = one_line(run_node(node_env(cluster, P2P_LISTEN_PORT=str(busy_port))))
    assert f"P2P port 127.0.0.1:{busy_port} is already in use" in line


def test_an_http_port_in_use_is_one_line(cluster: Path, busy_port: int) -> None:
    line = one_line(run_node(node_env(cluster, HTTP_PORT=str(busy_port)), component="web"))
    assert f"HTTP port 127.0.0.1:{busy_port} is already in use" in line
