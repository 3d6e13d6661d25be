"""AT_REST_KEYS: the development key under DATA_DIR, refusal in production, the system check,
and re-reading when key files change."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from apps.keys.checks import check_at_rest_keys
from apps.keys.keyring import DEVELOPMENT_KEY_NAME, configured_keyring
from cybermesh.keyfiles import KeyFileError, generate_aead_key, load_aead_key
from tests.keys.conftest import AtRestKeys

pytestmark = pytest.mark.unit


def _errors(settings: Any) -> list[tuple[str, str]]:
    return [(message.id or "", message.msg) for message in check_at_rest_keys()]


def test_development_creates_a_private_key_under_data_dir_once(settings: Any,
                                                               tmp_path: Path) -> None:
    settings.AT_REST_KEYS = []
    settings.PRODUCTION = False
    settings.DATA_DIR = tmp_path / "data"
    first = configured_keyring()
    path = tmp_path / "data" / DEVELOPMENT_KEY_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.key_ids == {load_aead_key(path).key_id}
    assert configured_keyring().current_key_id == first.current_key_id
    assert _errors(settings) == []


def test_production_without_at_rest_keys_is_refused(settings: Any, tmp_path: Path) -> None:
    settings.AT_REST_KEYS = []
    settings.PRODUCTION = True
    settings.DATA_DIR = tmp_path
    with pytest.raises(KeyFileError, match="AT_REST_KEYS is not set; production requires"):
        configured_keyring()
    assert not (tmp_path / DEVELOPMENT_KEY_NAME).exists()
    assert _errors(settings) == [(
        "keys.E001", "AT_REST_KEYS is not set: production needs the at-rest key file(s), "
                     "current first (see docs/at-rest-encryption.md)")]


def test_production_with_good_key_files_passes_the_check(settings: Any,
                                                         at_rest_keys: AtRestKeys) -> None:
    settings.PRODUCTION = True
    at_rest_keys.use("k2", "k1")
    assert _errors(settings) == []
    assert configured_keyring().current_key_id == "k2"


def test_a_key_file_others_can_read_fails_the_check_naming_it(settings: Any,
                                                              at_rest_keys: AtRestKeys) -> None:
    at_rest_keys.use("k2", "k1")
    at_rest_keys.path("k1").chmod(0o644)
    [(check_id, message)] = _errors(settings)
    assert check_id == "keys.E002"
    assert message.startswith(f"AT_REST_KEYS: key file {at_rest_keys.path('k1')}: is readable")


def test_a_missing_key_file_fails_the_check(settings: Any, at_rest_keys: AtRestKeys) -> None:
    settings.AT_REST_KEYS = [str(at_rest_keys.directory / "nope.json")]
    [(check_id, message)] = _errors(settings)
    assert check_id == "keys.E002" and message.endswith("nope.json: does not exist")


def test_two_different_keys_claiming_one_key_id_fail_the_check(
        settings: Any, at_rest_keys: AtRestKeys) -> None:
    impostor = at_rest_keys.directory / "impostor.json"
    generate_aead_key(impostor, key_id_label="k1")
    settings.AT_REST_KEYS = [str(at_rest_keys.path("k2")), str(at_rest_keys.path("k1")),
                             str(impostor)]
    [(check_id, message)] = _errors(settings)
    assert check_id == "keys.E002" and "key id 'k1' is used by two different keys" in message


def test_a_comma_separated_string_is_read_as_a_list(settings: Any,
                                                    at_rest_keys: AtRestKeys) -> None:
    settings.AT_REST_KEYS = f"{at_rest_keys.path('k2')}, {at_rest_keys.path('k1')}"
    keyring = configured_keyring()
    assert (keyring.current_key_id, keyring.key_ids) == ("k2", frozenset({"k1", "k2"}))


def test_a_replaced_key_file_is_read_again(settings: Any, at_rest_keys: AtRestKeys) -> None:
    assert configured_keyring().current_key_id == "k1"
    path = at_rest_keys.path("k1")
    path.unlink()
    generate_aead_key(path, key_id_label="k1-replacement")
    assert configured_keyring().current_key_id == "k1-replacement"
