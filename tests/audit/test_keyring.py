"""The audit keyring file: permissions, validation, secrecy, rotation, development default."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from apps.audit.keyring import (
    KeyringError,
    UnknownKeyIdError,
    configured_keyring,
    create_keyring_file,
    load_keyring,
    parse_keyring,
    rotate_keyring_file,
)

pytestmark = pytest.mark.unit

SECRET_HEX = "ab" * 32


def _write(path: Path, document: object, mode: int = 0o600) -> Path:
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    path.chmod(mode)
    return path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_valid_keyring_loads_and_macs_with_the_named_key(tmp_path: Path) -> None:
    path = _write(tmp_path / "k.json", {"current": "k1", "keys": {"k1": SECRET_HEX}})
    keyring = load_keyring(path)
    assert keyring.current_key_id == "k1"
    mac = keyring.mac("k1", b"message")
    assert len(mac) == 32
    assert keyring.verify("k1", b"message", mac.hex())
    assert not keyring.verify("k1", b"other message", mac.hex())
    with pytest.raises(UnknownKeyIdError, match="'k2'"):
        keyring.mac("k2", b"message")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o601])
def test_a_keyring_readable_by_group_or_others_is_refused_with_one_line(
        tmp_path: Path, mode: int) -> None:
    path = _write(tmp_path / "k.json", {"current": "k1", "keys": {"k1": SECRET_HEX}}, mode)
    with pytest.raises(KeyringError) as caught:
        load_keyring(path)
    message = str(caught.value)
    assert "\n" not in message
    assert f"mode {mode:04o}" in message and "chmod 600" in message
    assert SECRET_HEX not in message


def test_a_missing_keyring_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="does not exist"):
        load_keyring(tmp_path / "absent.json")


@pytest.mark.parametrize(("document", "complaint"), [
    ('{"current": "k1", "keys": {"k1": "' + SECRET_HEX + '"', "not valid JSON"),
    ({"current": "k1"}, "exactly"),
    ({"current": "k1", "keys": {}}, "non-empty"),
    ({"current": "k2", "keys": {"k1": SECRET_HEX}}, "must name one of its keys"),
    ({"current": "k1", "keys": {"k1": SECRET_HEX[:-2]}}, "64 hex digits"),
    ({"current": "k1", "keys": {"k1": SECRET_HEX[:-1] + "z"}}, "64 hex digits"),
    ({"current": "bad id", "keys": {"bad id": SECRET_HEX}}, "key id"),
    ({"current": "k1", "keys": {"k1": SECRET_HEX}, "extra": 1}, "exactly"),
])
def test_malformed_keyrings_are_refused_without_revealing_key_material(
        tmp_path: Path, document: object, complaint: str) -> None:
    path = _write(tmp_path / "k.json", document)
    with pytest.raises(KeyringError) as caught:
        load_keyring(path)
    assert complaint in str(caught.value)
    assert SECRET_HEX[:16] not in str(caught.value)
    # Not even in the chained exceptions (json.JSONDecodeError keeps the whole document).
    error = caught.value
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def test_the_repr_names_key_ids_but_never_keys(tmp_path: Path) -> None:
    keyring = parse_keyring(json.dumps({"current": "k1", "keys": {"k1": SECRET_HEX}}).encode())
    for text in (repr(keyring), str(keyring), f"{keyring}"):
        assert "k1" in text
        assert SECRET_HEX not in text and "\\xab" not in text


def test_a_created_keyring_is_private_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "new" / "keyring.json"
    created = create_keyring_file(path)
    assert _mode(path) == 0o600
    assert load_keyring(path).current_key_id == created.current_key_id
    with pytest.raises(FileExistsError):
        create_keyring_file(path)
    assert load_keyring(path).current_key_id == created.current_key_id


def test_rotation_adds_a_current_key_keeps_old_ones_and_stays_private(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    original = create_keyring_file(path)
    old_mac = original.mac(original.current_key_id, b"entry")
    rotation = rotate_keyring_file(path)
    rotated = load_keyring(path)
    assert rotation.previous_key_id == original.current_key_id
    assert rotated.current_key_id == rotation.current_key_id != original.current_key_id
    assert set(rotated.key_ids) == {original.current_key_id, rotation.current_key_id}
    assert rotated.mac(original.current_key_id, b"entry") == old_mac
    assert _mode(path) == 0o600
    assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp")] == []


def test_the_configured_keyring_is_reread_after_a_rotation(
        audit_keyring_path: Path) -> None:
    before = configured_keyring()
    assert configured_keyring() is before  # cached while the file is unchanged
    rotation = rotate_keyring_file(audit_keyring_path)
    assert configured_keyring().current_key_id == rotation.current_key_id


def test_the_configured_keyring_notices_a_later_chmod(audit_keyring_path: Path) -> None:
    configured_keyring()
    audit_keyring_path.chmod(0o644)
    with pytest.raises(KeyringError, match="group or others"):
        configured_keyring()


def test_development_creates_a_private_keyring_under_the_data_dir(
        settings: Any, tmp_path: Path) -> None:
    settings.AUDIT_SIGNING_KEY = ""
    settings.PRODUCTION = False
    settings.DATA_DIR = tmp_path / "data"
    keyring = configured_keyring()
    path = tmp_path / "data" / "audit-keyring.json"
    assert _mode(path) == 0o600
    assert configured_keyring().current_key_id == keyring.current_key_id


def test_production_without_a_keyring_setting_is_refused(settings: Any, tmp_path: Path) -> None:
    settings.AUDIT_SIGNING_KEY = ""
    settings.PRODUCTION = True
    settings.DATA_DIR = tmp_path / "data"
    with pytest.raises(KeyringError, match="AUDIT_SIGNING_KEY is not set"):
        configured_keyring()
    assert not (tmp_path / "data").exists()
