"""docker-compose.yml is checked, not run (no Docker engine on our build machines).

The checks are what `docker compose config` would catch plus what it would not: references
resolve (services, secrets, volumes, networks), every secret file is one that
deploy/make-secrets.sh really writes, every environment key is a documented setting, every
management command exists, long-running services have health checks, and the validators'
peer addresses in the generated genesis resolve to the worker containers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import get_commands

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parent.parent
VALIDATORS = [f"node-{i}" for i in range(4)]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("secrets")
    env = {**os.environ, "SECRETS_DIR": str(target), "PYTHON": str(ROOT / ".venv/bin/python")}
    subprocess.run(["deploy/make-secrets.sh"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=120)
    return target


def test_the_production_shape_is_complete(compose: dict[str, Any]) -> None:
    services = set(compose["services"])
    expected = {"roach-1", "roach-2", "roach-3", "kafka", "redis"}
    expected |= {f"{node}-{part}" for node in VALIDATORS for part in ("web", "worker", "celery")}
    assert expected <= services


def test_every_reference_resolves(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], f"{name} uses undeclared secret {secret}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"
        for network in service.get("networks", []):
            assert network in compose["networks"]


def test_secret_files_are_exactly_what_make_secrets_writes(compose: dict[str, Any],
                                                           secrets_dir: Path) -> None:
    for name, secret in compose["secrets"].items():
        relative = Path(secret["file"]).relative_to("deploy/secrets")
        path = secrets_dir / relative
        assert path.is_file(), f"secret {name}: make-secrets.sh does not write {relative}"
        assert path.stat().st_mode & 0o077 == 0, f"secret {name} is readable by others"


def test_genesis_peer_addresses_reach_the_worker_containers(compose: dict[str, Any],
                                                            secrets_dir: Path) -> None:
    genesis = json.loads((secrets_dir / "cluster" / "genesis.json").read_text())
    for validator in genesis["validators"]:
        host = validator["address"].rsplit(":", 1)[0]
        worker = compose["services"][f"{validator['id']}-worker"]
        assert host in worker["networks"]["mesh"]["aliases"]


def documented_keys() -> set[str]:
    text = (ROOT / "docs" / "configuration.md").read_text()
    return set(re.findall(r"^\| `([A-Z0-9_]+)` \|", text, flags=re.MULTILINE))


def test_every_environment_key_is_a_documented_setting(compose: dict[str, Any]) -> None:
    known = documented_keys()
    for name, service in compose["services"].items():
        if not name.startswith("node-"):
            continue
        for key in service.get("environment", {}):
            base = key.removesuffix("_FILE")
            assert base in known, f"{name}: {key} is not in docs/configuration.md"


def test_every_management_command_exists(compose: dict[str, Any]) -> None:
    commands = get_commands()
    for name, service in compose["services"].items():
        command = service.get("command")
        if isinstance(command, list) and command[:2] == ["python", "manage.py"]:
            assert command[2] in commands, f"{name} runs unknown command {command[2]}"


def test_long_running_services_have_health_checks_and_no_public_ports(
        compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name.endswith("-web") or name in ("kafka", "redis", "roach-1", "roach-2", "roach-3"):
            assert "healthcheck" in service, f"{name} has no health check"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"


def test_no_secret_values_are_written_into_the_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"(PASSWORD|SECRET_KEY|TOKEN)\s*:\s*[^/\s]", text.replace("_FILE", ""))
