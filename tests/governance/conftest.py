"""Governance fixtures: a live chain on PostgreSQL, this node = validator v0 (its key file is
NODE_KEY_PATH and it is the allowlisted governance/policy producer), an audit keyring, and the
governance app installed (for ``call_command``) even before the lead's settings list it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from apps.audit.keyring import create_keyring_file
from apps.mempool.admission import reset_default_pipeline
from tests.governance.chain import CHAIN_ID, LiveChain

GOVERNANCE_APP = "apps.governance"


@pytest.fixture(autouse=True)
def governance_installed(settings: Any) -> None:
    if GOVERNANCE_APP not in django_settings.INSTALLED_APPS:
        settings.INSTALLED_APPS = [*django_settings.INSTALLED_APPS, GOVERNANCE_APP]


@pytest.fixture
def audit_keyring(settings: Any, tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "audit-keyring.json"
    create_keyring_file(path)
    settings.AUDIT_SIGNING_KEY = str(path)
    settings.AUDIT_LOG_PATH = ""
    settings.AUDIT_HEAD_INTERVAL = 0
    return path


def write_allowlist(path: Path, chain: LiveChain, producers: dict[str, int]) -> None:
    """``producers``: producer id -> index of the validator key it signs with."""
    path.write_text(json.dumps({"producers": [{
        "producer_id": producer_id,
        "keys": [{"public_key": chain.keys[index].public_key.raw.hex()}],
        "kinds": ["governance", "policy"], "rate_per_second": 100, "burst": 100,
        "max_pending": 100} for producer_id, index in producers.items()]}))


@pytest.fixture
def chain(db: None, settings: Any, tmp_path: Path, audit_keyring: Path) -> Iterator[LiveChain]:
    key_dir = tmp_path / "keys"
    key_dir.mkdir(exist_ok=True)
    live = LiveChain(key_dir)
    allowlist = tmp_path / "producers.json"
    write_allowlist(allowlist, live, {"v0": 0})
    settings.MEMPOOL_PRODUCERS_PATH = str(allowlist)
    settings.MEMPOOL_CHAIN_ID = CHAIN_ID
    settings.NODE_ID = "v0"
    settings.NODE_KEY_PATH = str(live.key_paths[0])
    settings.DATA_DIR = tmp_path / "data"
    reset_default_pipeline()
    yield live
    reset_default_pipeline()
