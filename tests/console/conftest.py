"""Console fixtures: an audit keyring, the console's producer key allowlisted in this node's
mempool, users in each role, and a live chain committed through the real executor."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, User

from apps.api.permissions import clear_permission_cache
from apps.api.roles import sync_roles
from apps.audit.keyring import create_keyring_file
from apps.console.roles import grant_console_permissions
from apps.mempool.admission import reset_default_pipeline
from cybermesh.keyfiles import KeyKind, generate_signing_key
from cybermesh.protocol.crypto.signing import SigningKey
from tests.console.chain import AI_PRODUCER, AI_PRODUCER_ID, CHAIN_ID, LiveChain

CONSOLE_PRODUCER_ID = "soc-console"
PASSWORD = "correct-horse-battery-9"


@pytest.fixture(autouse=True)
def audit_keyring(settings: Any, tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "audit-keyring.json"
    create_keyring_file(path)
    settings.AUDIT_SIGNING_KEY = str(path)
    settings.AUDIT_LOG_PATH = ""
    settings.AUDIT_HEAD_INTERVAL = 0
    return path


@pytest.fixture(autouse=True)
def at_rest_key(settings: Any, tmp_path: Path) -> Iterator[Path]:
    """The at-rest key that seals TOTP secrets (never the development key under var/)."""
    from apps.keys.keyring import clear_cache
    from cybermesh.keyfiles import generate_aead_key

    path = tmp_path / "keys" / "at-rest.json"
    path.parent.mkdir(exist_ok=True)
    generate_aead_key(path, key_id_label="console-test")
    settings.AT_REST_KEYS = [str(path)]
    clear_cache()
    yield path
    clear_cache()


@pytest.fixture
def console_key(settings: Any, tmp_path: Path) -> SigningKey:
    path = tmp_path / "keys" / "console-producer.json"
    path.parent.mkdir(exist_ok=True)
    key = generate_signing_key(path, kind=KeyKind.PRODUCER, key_id_label="soc-console")
    settings.CONSOLE_SIGNING_KEY_PATH = str(path)
    settings.CONSOLE_PRODUCER_ID = CONSOLE_PRODUCER_ID
    return key


@pytest.fixture
def mempool(settings: Any, tmp_path: Path, console_key: SigningKey) -> Iterator[Path]:
    """This node's mempool admits the console (policy) and the AI detector, on the test chain."""
    path = tmp_path / "producers.json"
    path.write_text(json.dumps({"producers": [
        {"producer_id": CONSOLE_PRODUCER_ID,
         "keys": [{"public_key": console_key.public_key.raw.hex()}], "kinds": ["policy"],
         "rate_per_second": 100, "burst": 100, "max_pending": 1000},
        {"producer_id": AI_PRODUCER_ID,
         "keys": [{"public_key": AI_PRODUCER.public_key.raw.hex()}],
         "kinds": ["security_event", "evidence"], "rate_per_second": 100, "burst": 100,
         "max_pending": 1000},
    ]}))
    settings.MEMPOOL_PRODUCERS_PATH = str(path)
    settings.MEMPOOL_CHAIN_ID = CHAIN_ID
    reset_default_pipeline()
    yield path
    reset_default_pipeline()


@pytest.fixture
def roles(db: None) -> None:
    sync_roles(django_apps)
    grant_console_permissions(django_apps)
    clear_permission_cache()


def _user(name: str, role: str | None) -> User:
    user = User.objects.create_user(name, password=PASSWORD, is_staff=True)
    if role is not None:
        user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)  # fresh: no cached permissions


@pytest.fixture
def analyst(roles: None) -> User:
    return _user("alice", "analyst")


@pytest.fixture
def second_analyst(roles: None) -> User:
    return _user("bob", "analyst")


@pytest.fixture
def operator(roles: None) -> User:
    return _user("olivia", "operator")


@pytest.fixture
def viewer(roles: None) -> User:
    return _user("victor", "viewer")


@pytest.fixture
def chain(db: None) -> LiveChain:
    return LiveChain()
