"""Writes to the audit chain.

``record_audit(...)`` is what the rest of the system calls. Standalone, it runs its own
serializable transaction (retried on conflict). Called inside an outer transaction, it appends
in that transaction, so the audit entry commits or rolls back with the work it describes; the
owner of the outer transaction is then responsible for retrying it (``cybermesh.db``).
``append_entry_in_transaction(...)`` is the explicit form for callers that know they are in one.

Appending reads the head and inserts head + 1. Two concurrent appenders that read the same
head both try to insert the same ``seq`` (the primary key); the database aborts one with a
serialization failure and the retry appends after the winner, so the chain never forks.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.chain import GENESIS_HASH, EntryContent, entry_mac_message, head_mac_message
from apps.audit.choices import Outcome
from apps.audit.keyring import Keyring, Rotation, configured_keyring, configured_keyring_path
from apps.audit.keyring import rotate_keyring_file as _rotate_keyring_file
from apps.audit.models import AuditEntry, AuditHead
from cybermesh.db import RetryPolicy, run_serializable
from cybermesh.logging import get_logger
from cybermesh.protocol.codec import CodecError

logger = get_logger(__name__)

# A signed head is written in the appending transaction every this many entries.
DEFAULT_HEAD_INTERVAL = 100
MAX_DETAILS_BYTES = 64 * 1024
MAX_DETAILS_DEPTH = 12
_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1
_FIELD_LIMITS = {"actor": 200, "action": 100, "target": 300, "request_id": 100}

# Every appender writes the same chain head, so concurrent appends serialize on it: under a
# burst (many request threads auditing at once) a transaction may lose several rounds in a
# row. Be more patient than the default before giving up.
APPEND_RETRY_POLICY = RetryPolicy(max_attempts=30, base_delay_s=0.005, max_delay_s=0.25)


class AuditInputError(ValueError):
    """The entry was refused before anything was written; the message says which field."""


def _check_text(name: str, value: object, *, required: bool) -> str:
    if not isinstance(value, str):
        raise AuditInputError(f"audit {name} must be a string")
    if required and not value:
        raise AuditInputError(f"audit {name} must not be empty")
    if len(value) > _FIELD_LIMITS[name]:
        raise AuditInputError(f"audit {name} is longer than {_FIELD_LIMITS[name]} characters")
    if "\x00" in value:
        raise AuditInputError(f"audit {name} contains a NUL character")
    return value


def _check_json_value(value: object, depth: int) -> None:
    # What survives the database's JSON column unchanged and encodes canonically: no floats
    # (jsonb may hand back 1e20 as an int, and hashes must be reproducible), integers in the
    # 64-bit range, strings without NUL (refused by PostgreSQL), string keys only.
    if depth > MAX_DETAILS_DEPTH:
        raise AuditInputError(f"audit details nest deeper than {MAX_DETAILS_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _UINT64_MAX:
            raise AuditInputError("audit details hold an integer outside the 64-bit range")
        return
    if isinstance(value, float):
        raise AuditInputError("audit details must not contain floats; use integers (e.g. "
                              "milliseconds, basis points) or strings")
    if isinstance(value, str):
        if "\x00" in value:
            raise AuditInputError("audit details hold a string with a NUL character")
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_json_value(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or "\x00" in key:
                raise AuditInputError("audit details keys must be strings without NUL")
            _check_json_value(item, depth + 1)
        return
    raise AuditInputError(f"audit details cannot hold a {type(value).__name__}")


def normalize_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """Validate ``details`` and return it as the database will give it back (lists, not tuples)."""
    if details is None:
        return {}
    if not isinstance(details, dict):
        raise AuditInputError("audit details must be a JSON object (a dict)")
    _check_json_value(details, 1)
    text = json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > MAX_DETAILS_BYTES:
        raise AuditInputError(f"audit details exceed {MAX_DETAILS_BYTES} bytes as JSON")
    normalized: dict[str, Any] = json.loads(text)
    return normalized


def _head_interval() -> int:
    return int(getattr(settings, "AUDIT_HEAD_INTERVAL", DEFAULT_HEAD_INTERVAL))


def append_entry_in_transaction(
    *,
    actor: str,
    action: str,
    target: str = "",
    outcome: Outcome | str,
    request_id: str = "",
    details: dict[str, Any] | None = None,
    keyring: Keyring | None = None,
    now: datetime | None = None,
) -> AuditEntry:
    """Append one entry inside the caller's (serializable) transaction and return it."""
    if not transaction.get_connection().in_atomic_block:
        raise transaction.TransactionManagementError(
            "append_entry_in_transaction needs an open transaction; use record_audit()")
    if outcome not in Outcome.values:
        raise AuditInputError(f"audit outcome must be one of {', '.join(Outcome.values)}")
    content_fields: dict[str, Any] = {
        "actor": _check_text("actor", actor, required=True),
        "action": _check_text("action", action, required=True),
        "target": _check_text("target", target, required=False),
        "outcome": str(Outcome(outcome)),
        "request_id": _check_text("request_id", request_id, required=False),
        "details": normalize_details(details),
    }
    keyring = keyring or configured_keyring()
    timestamp = now or timezone.now()

    head = AuditEntry.objects.order_by("-seq").values_list("seq", "entry_hash").first()
    seq, prev_hash = (head[0] + 1, bytes.fromhex(head[1])) if head else (1, GENESIS_HASH)
    content = EntryContent(seq=seq, timestamp=timestamp, prev_hash=prev_hash, **content_fields)
    try:
        digest = content.entry_hash()
    except CodecError as error:
        raise AuditInputError(f"audit entry cannot be encoded canonically: {error}") from None
    key_id = keyring.current_key_id
    entry = AuditEntry.objects.create(
        seq=seq, timestamp=timestamp, prev_hash=prev_hash.hex(), entry_hash=digest.hex(),
        key_id=key_id, mac=keyring.mac(key_id, entry_mac_message(key_id=key_id,
                                                                 entry_hash=digest)).hex(),
        **content_fields)
    interval = _head_interval()
    if interval > 0 and seq % interval == 0:
        _sign_entry_as_head(seq=seq, entry_hash=digest, keyring=keyring, now=timestamp)
    if settings.AUDIT_LOG_PATH:
        line = json.dumps(entry.as_record(), sort_keys=True, separators=(",", ":"))
        transaction.on_commit(partial(_mirror_line, Path(settings.AUDIT_LOG_PATH), line))
    return entry


def record_audit(
    *,
    actor: str,
    action: str,
    target: str = "",
    outcome: Outcome | str,
    request_id: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Record one audit entry: in the caller's transaction if there is one, else in its own."""
    append = partial(append_entry_in_transaction, actor=actor, action=action, target=target,
                     outcome=outcome, request_id=request_id, details=details)
    if transaction.get_connection().in_atomic_block:
        return append()
    return run_serializable(append, operation="record_audit", policy=APPEND_RETRY_POLICY)


def _mirror_line(path: Path, line: str) -> None:
    # Best effort, after commit: the database chain is the record; the mirror is a copy for
    # log shippers. One write() with O_APPEND so concurrent writers do not interleave lines.
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, (line + "\n").encode())
        finally:
            os.close(descriptor)
    except OSError as error:
        logger.warning("audit.mirror_failed", path=str(path), error=error.strerror)


def _sign_entry_as_head(*, seq: int, entry_hash: bytes, keyring: Keyring,
                        now: datetime) -> AuditHead:
    key_id = keyring.current_key_id
    existing = AuditHead.objects.filter(seq=seq, key_id=key_id).first()
    if existing:
        return existing
    mac = keyring.mac(key_id, head_mac_message(key_id=key_id, seq=seq, entry_hash=entry_hash,
                                               signed_at=now))
    return AuditHead.objects.create(seq=seq, entry_hash=entry_hash.hex(), key_id=key_id,
                                    mac=mac.hex(), signed_at=now)


def sign_head_in_transaction(*, keyring: Keyring | None = None,
                             now: datetime | None = None) -> AuditHead | None:
    """Sign the current last entry as a head (checkpoint); None when the chain is empty."""
    if not transaction.get_connection().in_atomic_block:
        raise transaction.TransactionManagementError(
            "sign_head_in_transaction needs an open transaction; use sign_head()")
    last = AuditEntry.objects.order_by("-seq").values_list("seq", "entry_hash").first()
    if last is None:
        return None
    return _sign_entry_as_head(seq=last[0], entry_hash=bytes.fromhex(last[1]),
                               keyring=keyring or configured_keyring(),
                               now=now or timezone.now())


def sign_head(*, keyring: Keyring | None = None) -> AuditHead | None:
    """Sign the current head in its own serializable transaction."""
    return run_serializable(partial(sign_head_in_transaction, keyring=keyring),
                            operation="audit.sign_head")


@dataclass(frozen=True, slots=True)
class KeyRotationResult:
    rotation: Rotation
    head: AuditHead | None


def rotate_signing_key(*, actor: str, request_id: str = "") -> KeyRotationResult:
    """Add a new current key to the keyring file, audit the rotation, sign a head with it."""
    rotation = _rotate_keyring_file(configured_keyring_path())
    record_audit(actor=actor, action="audit.key_rotated", target=rotation.current_key_id,
                 outcome=Outcome.SUCCESS, request_id=request_id,
                 details={"previous_key_id": rotation.previous_key_id})
    return KeyRotationResult(rotation=rotation, head=sign_head())
