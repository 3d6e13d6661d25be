"""The audit HMAC keyring: a small JSON file of key ids and 32-byte keys, one of them current.

    {"current": "2025-01-01-a1b2c3", "keys": {"2025-01-01-a1b2c3": "<64 hex digits>"}}

New entries are MACed with the current key; every row stores the key id it was MACed with, so
after a rotation old entries still verify with their old key (rotation adds, never removes).
The file must be mode 0600: a key others can read is a key others can forge entries with.
Key material never appears in a repr, a log line or an error message (errors name the file and
the key id, never the key).

Settings: ``AUDIT_SIGNING_KEY`` is the path of the keyring. When it is empty outside
production, a development keyring is created under ``DATA_DIR`` on first use.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import json
import os
import re
import secrets
import stat
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from types import MappingProxyType

from django.conf import settings

KEY_BYTES = 32
MAX_KEYRING_FILE_BYTES = 256 * 1024
MAX_KEYS = 1000
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DEVELOPMENT_KEYRING_NAME = "audit-keyring.json"


class KeyringError(Exception):
    """The keyring cannot be used; the message is one line and never contains key material."""


class UnknownKeyIdError(KeyringError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"audit keyring has no key with id {key_id!r}")
        self.key_id = key_id


@dataclass(frozen=True, slots=True, repr=False)
class Keyring:
    current_key_id: str
    _keys: Mapping[str, bytes]
    path: Path | None = None

    def __repr__(self) -> str:
        return f"Keyring(current_key_id={self.current_key_id!r}, key_ids={self.key_ids!r})"

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    def has_key(self, key_id: str) -> bool:
        return key_id in self._keys

    def mac(self, key_id: str, message: bytes) -> bytes:
        try:
            key = self._keys[key_id]
        except KeyError:
            raise UnknownKeyIdError(key_id) from None
        return hmac.new(key, message, sha256).digest()

    def verify(self, key_id: str, message: bytes, mac_hex: str) -> bool:
        """True when ``mac_hex`` is the MAC of ``message`` under ``key_id`` (constant time)."""
        return hmac.compare_digest(self.mac(key_id, message).hex(), mac_hex)


def keyring_problem(path: Path) -> str | None:
    """The one-line reason ``path`` cannot hold a keyring (missing, not a file, too open)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return f"AUDIT_SIGNING_KEY={path} does not exist"
    except OSError as error:
        return f"AUDIT_SIGNING_KEY={path} cannot be read: {error.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return f"AUDIT_SIGNING_KEY={path} is not a regular file"
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        return (f"AUDIT_SIGNING_KEY={path} is accessible by group or others "
                f"(mode {mode:04o}); chmod 600 it")
    return None


def parse_keyring(raw: bytes, *, path: Path | None = None) -> Keyring:
    where = f"audit keyring {path}" if path else "audit keyring"
    if len(raw) > MAX_KEYRING_FILE_BYTES:
        raise KeyringError(f"{where} is larger than {MAX_KEYRING_FILE_BYTES} bytes")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        # Not chained: JSONDecodeError keeps the whole document (the keys) in `.doc`.
        position = (f" (line {error.lineno}, column {error.colno})"
                    if isinstance(error, json.JSONDecodeError) else "")
        raise KeyringError(f"{where} is not valid JSON{position}") from None
    if not isinstance(document, dict) or set(document) != {"current", "keys"}:
        raise KeyringError(f'{where} must be an object with exactly "current" and "keys"')
    current, keys_document = document["current"], document["keys"]
    if not isinstance(keys_document, dict) or not keys_document:
        raise KeyringError(f'{where}: "keys" must be a non-empty object of key id -> hex key')
    if len(keys_document) > MAX_KEYS:
        raise KeyringError(f"{where} holds more than {MAX_KEYS} keys")
    keys: dict[str, bytes] = {}
    for key_id, key_hex in keys_document.items():
        if not KEY_ID_PATTERN.fullmatch(key_id):
            raise KeyringError(f"{where}: key id {key_id[:64]!r} must match "
                               f"{KEY_ID_PATTERN.pattern}")
        if (not isinstance(key_hex, str) or len(key_hex) != 2 * KEY_BYTES
                or not re.fullmatch(r"[0-9a-fA-F]+", key_hex)):
            raise KeyringError(f"{where}: key {key_id!r} must be {2 * KEY_BYTES} hex digits "
                               f"({KEY_BYTES} bytes)")
        keys[key_id] = bytes.fromhex(key_hex)
    if not isinstance(current, str) or current not in keys:
        raise KeyringError(f'{where}: "current" must name one of its keys')
    return Keyring(current_key_id=current, _keys=MappingProxyType(keys), path=path)


def load_keyring(path: Path) -> Keyring:
    """Read and validate the keyring at ``path``; refuse a file group or others can access."""
    problem = keyring_problem(path)
    if problem:
        raise KeyringError(problem)
    with path.open("rb") as handle:
        raw = handle.read(MAX_KEYRING_FILE_BYTES + 1)
    return parse_keyring(raw, path=path)


def new_key_id(now: datetime | None = None) -> str:
    moment = now or datetime.now(UTC)
    return f"{moment:%Y%m%d}-{secrets.token_hex(4)}"


def _serialize(current: str, keys: Mapping[str, bytes]) -> bytes:
    document = {"current": current, "keys": {key_id: key.hex() for key_id, key in keys.items()}}
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def _write_private_file(path: Path, content: bytes, *, replace: bool) -> None:
    """Write ``content`` to ``path`` as a 0600 file, atomically (temp file, fsync, rename)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # fails if another process created it first
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def create_keyring_file(path: Path) -> Keyring:
    """Create a new keyring with one fresh key at ``path``; never overwrites an existing file."""
    key_id = new_key_id()
    keys = {key_id: secrets.token_bytes(KEY_BYTES)}
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private_file(path, _serialize(key_id, keys), replace=False)
    return Keyring(current_key_id=key_id, _keys=MappingProxyType(keys), path=path)


@contextlib.contextmanager
def _rotation_lock(path: Path) -> Iterator[None]:
    # Two concurrent rotations must not each drop the other's new key.
    descriptor = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


@dataclass(frozen=True, slots=True)
class Rotation:
    previous_key_id: str
    current_key_id: str
    key_ids: tuple[str, ...]


def rotate_keyring_file(path: Path) -> Rotation:
    """Add a fresh key to the keyring at ``path`` and make it current; old keys stay."""
    with _rotation_lock(path):
        old = load_keyring(path)
        key_id = new_key_id()
        while old.has_key(key_id):
            key_id = new_key_id()
        keys = {existing: old._keys[existing] for existing in old.key_ids}
        keys[key_id] = secrets.token_bytes(KEY_BYTES)
        if len(keys) > MAX_KEYS:
            raise KeyringError(f"audit keyring {path} would hold more than {MAX_KEYS} keys")
        _write_private_file(path, _serialize(key_id, keys), replace=True)
    _cache.clear()
    return Rotation(previous_key_id=old.current_key_id, current_key_id=key_id,
                    key_ids=tuple(sorted(keys)))


def configured_keyring_path() -> Path:
    """The keyring path from settings, or the development keyring under DATA_DIR."""
    if settings.AUDIT_SIGNING_KEY:
        return Path(settings.AUDIT_SIGNING_KEY)
    if settings.PRODUCTION:
        raise KeyringError("AUDIT_SIGNING_KEY is not set; production requires an audit keyring "
                           "file (see docs/audit.md)")
    return Path(settings.DATA_DIR) / DEVELOPMENT_KEYRING_NAME


_cache: dict[Path, tuple[tuple[int, int, int, int], Keyring]] = {}
_cache_lock = threading.Lock()


def configured_keyring() -> Keyring:
    """The configured keyring, re-read when the file changes (rotation by another process)."""
    path = configured_keyring_path()
    if not settings.AUDIT_SIGNING_KEY and not path.exists():
        with contextlib.suppress(FileExistsError):
            create_keyring_file(path)
    try:
        info = path.stat()
    except OSError:
        info = None
    signature = ((info.st_ino, info.st_mtime_ns, info.st_size, info.st_mode)
                 if info else (0, 0, 0, 0))
    with _cache_lock:
        cached = _cache.get(path)
        if cached and cached[0] == signature and info is not None:
            return cached[1]
    keyring = load_keyring(path)
    with _cache_lock:
        _cache[path] = (signature, keyring)
    return keyring
