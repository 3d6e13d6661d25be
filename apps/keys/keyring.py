"""The at-rest keyring: which AES-256-GCM key files this node seals and opens payloads with.

Setting ``AT_REST_KEYS`` is a list of key file paths (``manage.py keygen --kind aead``): the
first is the *current* key, which seals everything new; the others are older keys that still
open what they sealed until ``manage.py reencrypt`` has moved every row to the current key.

When ``AT_REST_KEYS`` is empty outside production, a development key is created under
``DATA_DIR`` on first use (mode 0600). In production an empty setting is refused here and by
the system check in :mod:`apps.keys.checks`. Errors are one line naming the file, never the key.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from django.conf import settings

from cybermesh.keyfiles import KeyFileError, KeyFileProblem, generate_aead_key, load_aead_keyring
from cybermesh.protocol.crypto.aead import Keyring

__all__ = ["DEVELOPMENT_KEY_NAME", "clear_cache", "configured_key_paths", "configured_keyring"]

DEVELOPMENT_KEY_NAME = "at-rest-key.json"

_Signature = tuple[tuple[str, int, int, int, int], ...]
_cache: dict[tuple[str, ...], tuple[_Signature, Keyring]] = {}
_cache_lock = threading.Lock()


def _setting_paths() -> list[str]:
    value = getattr(settings, "AT_REST_KEYS", None) or []
    if isinstance(value, str):  # one path given as a plain string
        value = [part.strip() for part in value.split(",")]
    return [str(path) for path in value if str(path).strip()]


def configured_key_paths() -> tuple[Path, ...]:
    """The current key file, then the older ones; the development key if none is configured."""
    paths = _setting_paths()
    if paths:
        return tuple(Path(path) for path in paths)
    if getattr(settings, "PRODUCTION", False):
        raise KeyFileError(KeyFileProblem.MISSING, None,
                           "AT_REST_KEYS is not set; production requires an at-rest key file "
                           "(see docs/at-rest-encryption.md)")
    return (Path(settings.DATA_DIR) / DEVELOPMENT_KEY_NAME,)


def _ensure_development_key(path: Path) -> None:
    if path.exists() or path.is_symlink():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        generate_aead_key(path)
    except KeyFileError as error:
        if error.problem is not KeyFileProblem.EXISTS:  # another process won the race: fine
            raise


def _signature(paths: tuple[Path, ...]) -> _Signature:
    entries = []
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            entries.append((str(path), 0, 0, 0, 0))
        else:
            entries.append((str(path), info.st_ino, info.st_mtime_ns, info.st_size,
                            info.st_mode))
    return tuple(entries)


def configured_keyring() -> Keyring:
    """The keyring from ``AT_REST_KEYS``, re-read whenever one of its files changes.

    Raises :class:`KeyFileError` (one line, names the file) when a key file is missing, too
    open, malformed, or two files claim one key id with different keys.
    """
    paths = configured_key_paths()
    if not _setting_paths():
        _ensure_development_key(paths[0])
    signature = _signature(paths)
    cache_key = tuple(str(path) for path in paths)
    with _cache_lock:
        cached = _cache.get(cache_key)
        if cached is not None and cached[0] == signature:
            return cached[1]
    keyring = load_aead_keyring(paths[0], *paths[1:])
    with _cache_lock:
        _cache[cache_key] = (signature, keyring)
    return keyring


def clear_cache() -> None:
    """Forget loaded keyrings (tests; an operator's edit is noticed without this)."""
    with _cache_lock:
        _cache.clear()
