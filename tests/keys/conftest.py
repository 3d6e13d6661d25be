"""Each test gets its own audit keyring and at-rest key files ("k1" current, "k2" made ready
for a rotation), with the keyring cache cleared around it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from apps.audit.keyring import create_keyring_file
from apps.keys.keyring import clear_cache
from cybermesh.keyfiles import AeadKey, generate_aead_key


@dataclass
class AtRestKeys:
    """The test's key files; ``use(current, *older)`` points AT_REST_KEYS at them."""

    settings: Any
    directory: Path
    k1: AeadKey
    k2: AeadKey

    def path(self, key_id: str) -> Path:
        return self.directory / f"{key_id}.json"

    def use(self, current: str, *older: str) -> None:
        self.settings.AT_REST_KEYS = [str(self.path(key_id)) for key_id in (current, *older)]
        clear_cache()

    def secrets(self) -> list[str]:
        """Every spelling of the key material a leak could take."""
        return [spelling for key in (self.k1, self.k2)
                for spelling in (key.key.hex(), key.key.hex().upper(), repr(key.key),
                                 key.key.hex()[:16])]


@pytest.fixture(autouse=True)
def audit_keyring_path(settings: Any, tmp_path: Path) -> Path:
    path = tmp_path / "audit" / "audit-keyring.json"
    create_keyring_file(path)
    settings.AUDIT_SIGNING_KEY = str(path)
    settings.AUDIT_LOG_PATH = ""
    settings.AUDIT_HEAD_INTERVAL = 0
    return path


@pytest.fixture
def at_rest_keys(settings: Any, tmp_path: Path) -> Iterator[AtRestKeys]:
    directory = tmp_path / "at-rest"
    directory.mkdir()
    keys = AtRestKeys(settings=settings, directory=directory,
                      k1=generate_aead_key(directory / "k1.json", key_id_label="k1"),
                      k2=generate_aead_key(directory / "k2.json", key_id_label="k2"))
    keys.use("k1")
    yield keys
    clear_cache()
