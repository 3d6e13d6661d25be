"""Key files: 0600 creation, no overwrite, strict loading, one-line errors without secrets."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from cybermesh.keyfiles import (
    FORMAT,
    KeyFileError,
    KeyFileProblem,
    KeyKind,
    generate_aead_key,
    generate_signing_key,
    load_aead_key,
    load_aead_keyring,
    load_node_keys,
    load_signing_key,
    load_signing_key_from_env,
    next_key_path,
)
from cybermesh.protocol.crypto.signing import Domain

pytestmark = pytest.mark.unit

P = KeyFileProblem
DOMAIN = Domain("vote", "test-chain", 1)


def _secret_texts(path: Path) -> list[str]:
    document = json.loads(path.read_text())
    return [document.get("seed") or document["key"]]


def _assert_refused(path: Path, problem: KeyFileProblem, *secrets: str) -> KeyFileError:
    with pytest.raises(KeyFileError) as caught:
        load_signing_key(path)
    error = caught.value
    assert error.problem is problem
    message = str(error)
    assert "\n" not in message
    assert str(path) in message
    for secret in secrets:
        assert secret not in message and secret not in repr(error)
    return error


def _write(path: Path, document: object, mode: int = 0o600) -> Path:
    path.write_text(json.dumps(document))
    path.chmod(mode)
    return path


def test_generated_signing_key_file_is_0600_and_loads_to_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "node_key.json"
    key = generate_signing_key(path, key_id_label="node-0")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_signing_key(path)
    assert loaded.key_id == key.key_id
    assert loaded.public_key == key.public_key
    assert key.public_key.verify(DOMAIN, b"m", loaded.sign(DOMAIN, b"m"))
    document = json.loads(path.read_text())
    assert document["format"] == FORMAT
    assert document["kind"] == "node"
    assert document["label"] == "node-0"
    assert document["public_key"] == key.public_key.raw.hex()
    assert [p.name for p in tmp_path.iterdir()] == ["node_key.json"]  # no temporary left


def test_generation_is_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        path = tmp_path / "k.json"
        generate_signing_key(path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_generation_refuses_to_overwrite_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "node_key.json"
    path.write_text("precious")
    with pytest.raises(KeyFileError) as caught:
        generate_signing_key(path)
    assert caught.value.problem is P.EXISTS
    assert path.read_text() == "precious"
    with pytest.raises(KeyFileError) as caught:
        generate_aead_key(path)
    assert caught.value.problem is P.EXISTS
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(KeyFileError) as caught:
        generate_signing_key(dangling)
    assert caught.value.problem is P.EXISTS
    assert not (tmp_path / "nowhere").exists()


def test_two_generations_give_different_keys(tmp_path: Path) -> None:
    first = generate_signing_key(tmp_path / "a.json")
    second = generate_signing_key(tmp_path / "b.json")
    assert first.key_id != second.key_id


def test_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    error = _assert_refused(tmp_path / "absent.json", P.MISSING)
    assert "does not exist" in str(error)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644, 0o660, 0o666])
def test_group_or_other_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "node_key.json"
    generate_signing_key(path)
    path.chmod(mode)
    error = _assert_refused(path, P.INSECURE_PERMISSIONS, *_secret_texts(path))
    assert f"{mode:04o}" in str(error)
    assert "chmod 600" in str(error)


def test_owner_read_only_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "node_key.json"
    generate_signing_key(path)
    path.chmod(0o400)
    assert load_signing_key(path)


def test_a_directory_is_not_a_key_file(tmp_path: Path) -> None:
    directory = tmp_path / "dir"
    directory.mkdir(mode=0o700)
    _assert_refused(directory, P.NOT_A_FILE)


@pytest.mark.parametrize(("content", "problem"), [
    ("not json {", P.MALFORMED),
    ("[]", P.MALFORMED),
    ('{"format": "other"}', P.MALFORMED),
    ('{"format": "cybermesh-key/v1", "kind": "node"}', P.MALFORMED),
    ('{"format": "cybermesh-key/v1", "kind": "martian", "seed": "00"}', P.MALFORMED),
    ('{"format": "cybermesh-key/v1", "kind": "node", "seed": 5}', P.MALFORMED),
    ('{"format": "cybermesh-key/v1", "kind": "node", "seed": "' + "zz" * 32 + '"}', P.MALFORMED),
    ('{"format": "cybermesh-key/v1", "kind": "node", "seed": "' + "ab" * 31 + '"}',
     P.WRONG_LENGTH),
    ('{"format": "cybermesh-key/v1", "kind": "node", "seed": "' + "ab" * 33 + '"}',
     P.WRONG_LENGTH),
    ('{"format": "cybermesh-key/v1", "kind": "aead", "key": "' + "ab" * 32 + '"}',
     P.WRONG_KIND),
])
def test_malformed_wrong_kind_and_wrong_length_files_are_refused_without_echoing_content(
    tmp_path: Path, content: str, problem: KeyFileProblem
) -> None:
    path = tmp_path / "k.json"
    path.write_text(content)
    path.chmod(0o600)
    _assert_refused(path, problem, "ab" * 31, "zz" * 32, "not json {")


def test_edited_public_key_or_key_id_is_a_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    generate_signing_key(path)
    document = json.loads(path.read_text())
    other = generate_signing_key(tmp_path / "other.json")
    _write(path, document | {"public_key": other.public_key.raw.hex()})
    _assert_refused(path, P.MISMATCH, document["seed"])
    _write(path, document | {"key_id": other.key_id})
    _assert_refused(path, P.MISMATCH, document["seed"])


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "k.json", {"format": FORMAT, "pad": "x" * 70_000})
    _assert_refused(path, P.MALFORMED)


def test_no_secret_in_repr_or_str_of_loaded_keys(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    generate_signing_key(path)
    seed_hex = json.loads(path.read_text())["seed"]
    key = load_signing_key(path)
    for text in (repr(key), str(key), repr(load_node_keys(path))):
        assert seed_hex not in text
        assert repr(bytes.fromhex(seed_hex)) not in text
    aead_path = tmp_path / "aead.json"
    aead = generate_aead_key(aead_path)
    for text in (repr(aead), str(aead), repr(load_aead_key(aead_path)),
                 repr(load_aead_keyring(aead_path))):
        assert aead.key.hex() not in text and repr(aead.key) not in text


def test_node_keys_load_the_next_key_from_the_sibling_file_when_present(tmp_path: Path) -> None:
    current_path = tmp_path / "node_key.json"
    current = generate_signing_key(current_path)
    keys = load_node_keys(current_path)
    assert keys.current.key_id == current.key_id
    assert keys.next is None
    assert next_key_path(current_path) == tmp_path / "node_key.next.json"
    upcoming = generate_signing_key(tmp_path / "node_key.next.json")
    keys = load_node_keys(current_path)
    assert keys.next is not None
    assert keys.next.key_id == upcoming.key_id


def test_node_keys_refuse_producer_keys_and_a_next_key_equal_to_the_current(
    tmp_path: Path
) -> None:
    producer_path = tmp_path / "producer.json"
    generate_signing_key(producer_path, kind=KeyKind.PRODUCER)
    with pytest.raises(KeyFileError) as caught:
        load_node_keys(producer_path)
    assert caught.value.problem is P.WRONG_KIND
    assert load_signing_key(producer_path)  # a producer key is a signing key all the same
    current_path = tmp_path / "node_key.json"
    generate_signing_key(current_path)
    (tmp_path / "node_key.next.json").write_bytes(current_path.read_bytes())
    (tmp_path / "node_key.next.json").chmod(0o600)
    with pytest.raises(KeyFileError) as caught:
        load_node_keys(current_path)
    assert caught.value.problem is P.MISMATCH
    with pytest.raises(KeyFileError) as caught:
        load_node_keys(current_path, next_path=tmp_path / "absent.json")
    assert caught.value.problem is P.MISSING


def test_aead_key_files_build_a_keyring_that_opens_boxes_of_older_keys(tmp_path: Path) -> None:
    old = generate_aead_key(tmp_path / "aead-2024.json", key_id_label="2024")
    box = load_aead_keyring(tmp_path / "aead-2024.json").seal(b"secret", b"", bytes(12))
    new = generate_aead_key(tmp_path / "aead-2025.json")
    assert new.key_id.startswith("aead-")
    assert old.key_id == "2024"
    keyring = load_aead_keyring(tmp_path / "aead-2025.json", tmp_path / "aead-2024.json")
    assert keyring.current_key_id == new.key_id
    assert keyring.open(box, b"") == b"secret"
    assert stat.S_IMODE((tmp_path / "aead-2025.json").stat().st_mode) == 0o600
    with pytest.raises(KeyFileError) as caught:
        load_aead_key(tmp_path / "absent.json")
    assert caught.value.problem is P.MISSING


def test_signing_key_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    key = generate_signing_key(path)
    seed_hex = json.loads(path.read_text())["seed"]
    assert load_signing_key_from_env("NODE_SEED", {"NODE_SEED": seed_hex}).key_id == key.key_id
    with pytest.raises(KeyFileError) as caught:
        load_signing_key_from_env("NODE_SEED", {})
    assert caught.value.problem is P.MISSING
    with pytest.raises(KeyFileError) as caught:
        load_signing_key_from_env("NODE_SEED", {"NODE_SEED": seed_hex[:-2]})
    assert caught.value.problem is P.WRONG_LENGTH
    assert seed_hex[:-2] not in str(caught.value)


@pytest.mark.parametrize("label", ["", "x" * 65, "tab\there"])
def test_bad_labels_are_refused(tmp_path: Path, label: str) -> None:
    with pytest.raises(KeyFileError):
        generate_signing_key(tmp_path / "k.json", key_id_label=label)
    assert not (tmp_path / "k.json").exists()


def test_aead_is_not_a_signing_key_kind(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as caught:
        generate_signing_key(tmp_path / "k.json", kind="aead")
    assert caught.value.problem is P.WRONG_KIND
