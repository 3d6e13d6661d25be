"""Key files: create them safely, load them strictly, never leak what is inside.

File format (JSON, one object, UTF-8, at most 64 KiB)::

    {"format": "cybermesh-key/v1", "kind": "node" | "producer",
     "key_id": "<16 hex>", "label": "<text or null>",
     "public_key": "<64 hex>", "seed": "<64 hex: the Ed25519 32-byte seed>"}

    {"format": "cybermesh-key/v1", "kind": "aead",
     "key_id": "<label, or aead- + 16 hex>", "label": "<text or null>",
     "key": "<64 hex: the AES-256 key>"}

Files are created with mode 0600 and never overwritten: the content goes to a private temporary
file in the same directory (``O_CREAT | O_EXCL``, 0600), is fsynced, then hard-linked to its final
name, which fails if the name exists. A crash leaves either no key file or a complete one.

Loading refuses, with one line that names the file and never the secret: a missing file, a file
readable or writable by group or others, a file that is not a regular file, malformed JSON, a
wrong kind, and a secret of the wrong length. ``public_key``/``key_id`` in a signing key file
are checked against the seed, so an edited file cannot claim another identity.

Rotation: a node has a current key and, during a rotation, a next key in a sibling file
(``node_key.json`` and ``node_key.next.json``); see :func:`load_node_keys`.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cybermesh.protocol.crypto.aead import AEAD_KEY_LENGTH, MAX_KEY_ID_LENGTH, Keyring
from cybermesh.protocol.crypto.errors import CryptoError
from cybermesh.protocol.crypto.signing import SEED_LENGTH, SigningKey

__all__ = [
    "FORMAT",
    "AeadKey",
    "KeyFileError",
    "KeyFileProblem",
    "KeyKind",
    "NodeKeys",
    "generate_aead_key",
    "generate_signing_key",
    "load_aead_key",
    "load_aead_keyring",
    "load_node_keys",
    "load_signing_key",
    "load_signing_key_from_env",
    "next_key_path",
]

FORMAT = "cybermesh-key/v1"
MAX_KEY_FILE_BYTES = 64 * 1024
MAX_LABEL_LENGTH = 64


class KeyKind(enum.StrEnum):
    NODE = "node"
    PRODUCER = "producer"
    AEAD = "aead"


SIGNING_KINDS = frozenset({KeyKind.NODE, KeyKind.PRODUCER})


class KeyFileProblem(enum.Enum):
    MISSING = "missing"
    EXISTS = "exists"
    INSECURE_PERMISSIONS = "insecure_permissions"
    NOT_A_FILE = "not_a_file"
    UNREADABLE = "unreadable"
    MALFORMED = "malformed"
    WRONG_KIND = "wrong_kind"
    WRONG_LENGTH = "wrong_length"
    MISMATCH = "mismatch"


class KeyFileError(Exception):
    """One clear line naming the file and the problem; never the key material."""

    def __init__(self, problem: KeyFileProblem, path: str | os.PathLike[str] | None,
                 message: str) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        where = "" if path is None else f"key file {path}: "
        super().__init__(f"{where}{message}")


@dataclass(frozen=True, slots=True)
class AeadKey:
    key_id: str
    key: bytes

    def __repr__(self) -> str:
        return f"AeadKey(key_id={self.key_id!r})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class NodeKeys:
    """The key a node signs with now and, during a rotation, the one it will sign with next."""

    current: SigningKey
    next: SigningKey | None


# --- writing --------------------------------------------------------------------------------


def _check_label(label: str | None) -> None:
    if label is not None and (not label or len(label) > MAX_LABEL_LENGTH
                              or not label.isprintable()):
        raise KeyFileError(KeyFileProblem.MALFORMED, None,
                           f"label must be 1..{MAX_LABEL_LENGTH} printable characters")


def _write_new_file(path: Path, content: bytes) -> None:
    """Create ``path`` with ``content`` and mode 0600; never replace an existing file."""
    if path.exists() or path.is_symlink():
        raise KeyFileError(KeyFileProblem.EXISTS, path, "already exists; refusing to overwrite")
    directory = path.parent
    if not directory.is_dir():
        raise KeyFileError(KeyFileProblem.MISSING, path, f"directory {directory} does not exist")
    temporary = directory / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(temporary, flags, 0o600)
    try:
        try:
            os.fchmod(descriptor, 0o600)
            os.write(descriptor, content)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise KeyFileError(KeyFileProblem.EXISTS, path,
                               "already exists; refusing to overwrite") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    directory_descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_descriptor)
    finally:
        os.close(directory_descriptor)


def _dump(document: Mapping[str, object]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def generate_signing_key(path: str | os.PathLike[str], *, key_id_label: str | None = None,
                         kind: KeyKind | str = KeyKind.NODE) -> SigningKey:
    """Create a new Ed25519 key file at ``path`` (0600, never overwriting) and return the key."""
    if kind not in SIGNING_KINDS:
        raise KeyFileError(KeyFileProblem.WRONG_KIND, path,
                           f"{kind!s} is not a signing key kind (node or producer)")
    kind = KeyKind(kind)
    _check_label(key_id_label)
    key = SigningKey.from_seed(os.urandom(SEED_LENGTH))
    _write_new_file(Path(path), _dump({
        "format": FORMAT, "kind": kind.value, "key_id": key.key_id, "label": key_id_label,
        "public_key": key.public_key.raw.hex(), "seed": key.seed.hex(),
    }))
    return key


def aead_key_id_for(key: bytes) -> str:
    """Default id of an AEAD key: a domain-separated hash prefix (reveals nothing usable)."""
    return "aead-" + hashlib.sha256(b"cybermesh/v1/aead-key-id" + key).hexdigest()[:16]


def generate_aead_key(path: str | os.PathLike[str], *,
                      key_id_label: str | None = None) -> AeadKey:
    """Create a new AES-256 key file at ``path``; its key id is the label, if given."""
    _check_label(key_id_label)
    key = os.urandom(AEAD_KEY_LENGTH)
    key_id = key_id_label or aead_key_id_for(key)
    _write_new_file(Path(path), _dump({
        "format": FORMAT, "kind": KeyKind.AEAD.value, "key_id": key_id, "label": key_id_label,
        "key": key.hex(),
    }))
    return AeadKey(key_id=key_id, key=key)


# --- reading --------------------------------------------------------------------------------


def _read_private_file(path: Path) -> bytes:
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise KeyFileError(KeyFileProblem.MISSING, path, "does not exist") from None
    except OSError as error:
        raise KeyFileError(KeyFileProblem.UNREADABLE, path,
                           f"cannot be opened ({error.strerror})") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise KeyFileError(KeyFileProblem.NOT_A_FILE, path, "is not a regular file")
        mode = stat.S_IMODE(status.st_mode)
        if mode & 0o077:
            raise KeyFileError(KeyFileProblem.INSECURE_PERMISSIONS, path,
                               f"is readable or writable by group/others (mode {mode:04o}); "
                               f"run: chmod 600 {path}")
        if status.st_size > MAX_KEY_FILE_BYTES:
            raise KeyFileError(KeyFileProblem.MALFORMED, path,
                               f"is larger than {MAX_KEY_FILE_BYTES} bytes")
        return os.read(descriptor, MAX_KEY_FILE_BYTES + 1)
    finally:
        os.close(descriptor)


def _parse(path: Path, content: bytes) -> dict[str, object]:
    try:
        document = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        # json's message can quote the offending text; say only what is wrong.
        raise KeyFileError(KeyFileProblem.MALFORMED, path, "is not valid JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise KeyFileError(KeyFileProblem.MALFORMED, path,
                           f"is not a {FORMAT} key file (missing or wrong 'format')")
    return document


def _secret(path: Path | None, document: Mapping[str, object], field: str,
            length: int) -> bytes:
    value = document.get(field)
    if not isinstance(value, str):
        raise KeyFileError(KeyFileProblem.MALFORMED, path, f"'{field}' is missing or not text")
    if len(value) != 2 * length:
        raise KeyFileError(KeyFileProblem.WRONG_LENGTH, path,
                           f"'{field}' must be {2 * length} hex digits ({length} bytes), "
                           f"got {len(value)} characters")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise KeyFileError(KeyFileProblem.MALFORMED, path,
                           f"'{field}' is not hexadecimal") from None


def _kind(path: Path, document: Mapping[str, object], allowed: frozenset[KeyKind]) -> KeyKind:
    raw_kind = document.get("kind")
    try:
        kind = KeyKind(raw_kind if isinstance(raw_kind, str) else "")
    except ValueError:
        raise KeyFileError(KeyFileProblem.MALFORMED, path, "'kind' must be one of "
                           + ", ".join(k.value for k in KeyKind)) from None
    if kind not in allowed:
        expected = " or ".join(sorted(k.value for k in allowed))
        raise KeyFileError(KeyFileProblem.WRONG_KIND, path,
                           f"holds a {kind.value} key, expected {expected}")
    return kind


def _signing_key_from_seed(path: Path | None, seed: bytes) -> SigningKey:
    try:
        return SigningKey.from_seed(seed)
    except CryptoError as error:  # unreachable for 32 bytes; kept so nothing leaks raw
        raise KeyFileError(KeyFileProblem.MALFORMED, path, error.reason.value) from None


def load_signing_key(path: str | os.PathLike[str],
                     *, kinds: frozenset[KeyKind] = SIGNING_KINDS) -> SigningKey:
    """Load an Ed25519 key file; :class:`KeyFileError` with one line on any problem."""
    file_path = Path(path)
    document = _parse(file_path, _read_private_file(file_path))
    _kind(file_path, document, kinds)
    key = _signing_key_from_seed(file_path, _secret(file_path, document, "seed", SEED_LENGTH))
    public_hex = document.get("public_key")
    if public_hex is not None and public_hex != key.public_key.raw.hex():
        raise KeyFileError(KeyFileProblem.MISMATCH, file_path,
                           "'public_key' does not match the seed")
    key_id = document.get("key_id")
    if key_id is not None and key_id != key.key_id:
        raise KeyFileError(KeyFileProblem.MISMATCH, file_path, "'key_id' does not match the seed")
    return key


def load_signing_key_from_env(variable: str,
                              environ: Mapping[str, str] | None = None) -> SigningKey:
    """Load a seed given as 64 hex digits in an environment variable (container secrets)."""
    value = (os.environ if environ is None else environ).get(variable)
    if not value:
        raise KeyFileError(KeyFileProblem.MISSING, None,
                           f"environment variable {variable} is not set")
    try:
        seed = _secret(None, {"seed": value.strip()}, "seed", SEED_LENGTH)
    except KeyFileError as error:
        raise KeyFileError(error.problem, None,
                           f"environment variable {variable}: {error}") from None
    return _signing_key_from_seed(None, seed)


def next_key_path(current_path: str | os.PathLike[str]) -> Path:
    """``node_key.json`` -> ``node_key.next.json`` (the key a rotation moves to)."""
    path = Path(current_path)
    return path.with_name(f"{path.stem}.next{path.suffix}")


def load_node_keys(current_path: str | os.PathLike[str],
                   next_path: str | os.PathLike[str] | None = None) -> NodeKeys:
    """Load the current node key and, if its file exists, the next one.

    ``next_path`` defaults to :func:`next_key_path` of ``current_path``. A next key equal to
    the current one is refused (a rotation must change the key).
    """
    current = load_signing_key(current_path, kinds=frozenset({KeyKind.NODE}))
    candidate = Path(next_path) if next_path is not None else next_key_path(current_path)
    if next_path is None and not (candidate.exists() or candidate.is_symlink()):
        return NodeKeys(current=current, next=None)
    upcoming = load_signing_key(candidate, kinds=frozenset({KeyKind.NODE}))
    if upcoming.key_id == current.key_id:
        raise KeyFileError(KeyFileProblem.MISMATCH, candidate,
                           "next key is the same as the current key")
    return NodeKeys(current=current, next=upcoming)


def load_aead_key(path: str | os.PathLike[str]) -> AeadKey:
    file_path = Path(path)
    document = _parse(file_path, _read_private_file(file_path))
    _kind(file_path, document, frozenset({KeyKind.AEAD}))
    key = _secret(file_path, document, "key", AEAD_KEY_LENGTH)
    key_id = document.get("key_id")
    if not isinstance(key_id, str) or not 0 < len(key_id) <= MAX_KEY_ID_LENGTH:
        raise KeyFileError(KeyFileProblem.MALFORMED, file_path,
                           f"'key_id' must be text of 1..{MAX_KEY_ID_LENGTH} characters")
    return AeadKey(key_id=key_id, key=key)


def load_aead_keyring(current_path: str | os.PathLike[str],
                      *older_paths: str | os.PathLike[str]) -> Keyring:
    """A keyring that seals with the key in ``current_path`` and still opens the older ones."""
    current = load_aead_key(current_path)
    keys = {current.key_id: current.key}
    for older_path in older_paths:
        older = load_aead_key(older_path)
        if keys.get(older.key_id, older.key) != older.key:
            raise KeyFileError(KeyFileProblem.MISMATCH, older_path,
                               f"key id {older.key_id!r} is used by two different keys")
        keys[older.key_id] = older.key
    return Keyring(current.key_id, keys)
