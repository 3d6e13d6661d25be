"""Seal sensitive payloads at rest, open them, and move them to a new key.

* :func:`seal_payload` encrypts with the *current* at-rest key (AES-256-GCM) and a fresh
  96-bit nonce from ``os.urandom`` for every seal, including every re-seal, so a (key, nonce)
  pair is never reused.
* The associated data binds the row id, its purpose and its context. Ciphertext copied into
  another row, relabelled with another purpose or context, or edited in any byte fails to open.
* :func:`reencrypt_all` re-seals every row that is not under the current key, in batches, each
  one serializable transaction (retried on 40001) with its audit entry. Each row is updated
  with a compare-and-set on (id, key_id, nonce): a row another run (or anything else) changed
  since it was read is counted as skipped, never sealed twice. An interrupted run loses
  nothing; running it again finishes the job.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from django.db.models import Count, QuerySet
from django.utils import timezone

from apps.audit.choices import Outcome
from apps.audit.services import record_audit
from apps.keys.errors import SealedPayloadError, SealedPayloadProblem
from apps.keys.keyring import configured_keyring
from apps.keys.models import CONTEXT_MAX_LENGTH, SealedPayload
from cybermesh.db import run_serializable
from cybermesh.keyfiles import KeyFileError
from cybermesh.logging import get_logger
from cybermesh.protocol.codec import encode
from cybermesh.protocol.crypto.aead import NONCE_LENGTH, Keyring, SealedBox
from cybermesh.protocol.crypto.errors import CryptoError, CryptoErrorReason

__all__ = [
    "MAX_PLAINTEXT_BYTES",
    "ReencryptResult",
    "associated_data",
    "open_payload",
    "reencrypt_all",
    "seal_payload",
    "stale_counts",
]

logger = get_logger(__name__)

MAX_PLAINTEXT_BYTES = 1024 * 1024
MAX_BATCH_SIZE = 10_000
PURPOSE_PATTERN = re.compile(r"[a-z0-9][a-z0-9._:-]{0,63}")
AAD_DOMAIN = b"cybermesh/v1/at-rest-payload\x00"
_P = SealedPayloadProblem

Progress = Callable[[int, int], None]  # (rows just handled, rows to handle in total)


def associated_data(*, payload_id: uuid.UUID, purpose: str, context: str) -> bytes:
    """The AEAD associated data of a row: domain tag + canonical CBOR of id, purpose, context."""
    return AAD_DOMAIN + encode({"id": payload_id.bytes, "purpose": purpose, "context": context})


def _keyring(keyring: Keyring | None) -> Keyring:
    if keyring is not None:
        return keyring
    try:
        return configured_keyring()
    except KeyFileError as error:
        raise SealedPayloadError(_P.KEYS_UNAVAILABLE, str(error)) from None


def _check_purpose(purpose: object) -> str:
    if not isinstance(purpose, str) or not PURPOSE_PATTERN.fullmatch(purpose):
        raise SealedPayloadError(_P.INVALID_INPUT, f"purpose must match "
                                 f"{PURPOSE_PATTERN.pattern}")
    return purpose


def _check_context(context: object) -> str:
    if (not isinstance(context, str) or len(context) > CONTEXT_MAX_LENGTH
            or "\x00" in context):
        raise SealedPayloadError(_P.INVALID_INPUT, f"context must be text of at most "
                                 f"{CONTEXT_MAX_LENGTH} characters without NUL")
    return context


def seal_payload(*, purpose: str, plaintext: bytes, context: str = "",
                 keyring: Keyring | None = None, now: datetime | None = None) -> SealedPayload:
    """Encrypt ``plaintext`` under the current key and store it as a new row.

    ``purpose`` is a short label (``[a-z0-9][a-z0-9._:-]{0,63}``) saying what the payload is;
    ``context`` (at most 255 characters) binds it to its owner, e.g. ``"producer:ai-1"``.
    Both must be presented again to :func:`open_payload` when the caller checks them.
    """
    _check_purpose(purpose)
    _check_context(context)
    if not isinstance(plaintext, bytes) or len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise SealedPayloadError(_P.INVALID_INPUT, f"plaintext must be bytes of at most "
                                 f"{MAX_PLAINTEXT_BYTES} bytes")
    keyring = _keyring(keyring)
    payload_id = uuid.uuid4()
    aad = associated_data(payload_id=payload_id, purpose=purpose, context=context)
    box = keyring.seal(plaintext, aad, os.urandom(NONCE_LENGTH))
    return SealedPayload.objects.create(
        id=payload_id, purpose=purpose, context=context, key_id=box.key_id, nonce=box.nonce,
        ciphertext=box.ciphertext, created_at=now or timezone.now())


def _open_row(keyring: Keyring, row: SealedPayload) -> bytes:
    box = SealedBox(key_id=row.key_id, nonce=bytes(row.nonce), ciphertext=bytes(row.ciphertext))
    aad = associated_data(payload_id=row.id, purpose=row.purpose, context=row.context)
    try:
        return keyring.open(box, aad)
    except CryptoError as error:
        where = f"sealed payload {row.id} (purpose {row.purpose!r})"
        if error.reason is CryptoErrorReason.UNKNOWN_KEY_ID:
            raise SealedPayloadError(
                _P.UNKNOWN_KEY_ID, f"{where} is sealed under key id {row.key_id!r}, which is not "
                f"in the at-rest keyring ({', '.join(sorted(keyring.key_ids))})",
                payload_id=row.id, key_id=row.key_id) from None
        if error.reason is CryptoErrorReason.DECRYPTION_FAILED:
            raise SealedPayloadError(
                _P.AUTHENTICATION_FAILED, f"{where} under key id {row.key_id!r} failed "
                "authentication: its ciphertext, nonce, key id, purpose, context or row id "
                "was altered", payload_id=row.id, key_id=row.key_id) from None
        raise SealedPayloadError(_P.MALFORMED, f"{where}: {error.reason.value}",
                                 payload_id=row.id, key_id=row.key_id) from None


def open_payload(sealed: SealedPayload, *, purpose: str | None = None,
                 context: str | None = None, keyring: Keyring | None = None) -> bytes:
    """Decrypt a row with whichever configured key sealed it.

    Pass the ``purpose`` (and ``context``) the caller expects: a row of another purpose,
    reached through a wrong or forged reference, is then refused before it is decrypted.
    """
    if purpose is not None and sealed.purpose != purpose:
        raise SealedPayloadError(_P.PURPOSE_MISMATCH, f"sealed payload {sealed.id} has purpose "
                                 f"{sealed.purpose!r}, expected {purpose!r}",
                                 payload_id=sealed.id, key_id=sealed.key_id)
    if context is not None and sealed.context != context:
        raise SealedPayloadError(_P.CONTEXT_MISMATCH, f"sealed payload {sealed.id} is bound to "
                                 "another context than the one expected",
                                 payload_id=sealed.id, key_id=sealed.key_id)
    return _open_row(_keyring(keyring), sealed)


# --- re-encryption --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReencryptResult:
    current_key_id: str
    dry_run: bool
    stale_before: dict[str, int] = field(default_factory=dict)  # key id -> rows, at the start
    examined: int = 0  # rows read and opened
    resealed: int = 0  # rows now under the current key because of this run
    skipped: int = 0  # rows changed by someone else between read and write
    batches: int = 0
    remaining: dict[str, int] = field(default_factory=dict)  # key id -> rows, at the end

    def as_dict(self) -> dict[str, Any]:
        return {"current_key_id": self.current_key_id, "dry_run": self.dry_run,
                "stale_before": dict(sorted(self.stale_before.items())),
                "examined": self.examined, "resealed": self.resealed, "skipped": self.skipped,
                "batches": self.batches, "remaining": dict(sorted(self.remaining.items()))}


def _stale(keyring: Keyring) -> QuerySet[SealedPayload]:
    return SealedPayload.objects.exclude(key_id=keyring.current_key_id)


def stale_counts(keyring: Keyring) -> dict[str, int]:
    """Rows not under the current key, by key id."""
    rows = _stale(keyring).order_by().values("key_id").annotate(rows=Count("id"))
    return {row["key_id"]: row["rows"] for row in rows}


def _refuse_unknown_key_ids(keyring: Keyring, counts: dict[str, int]) -> None:
    unknown = sorted(set(counts) - keyring.key_ids)
    if not unknown:
        return
    key_id = unknown[0]
    row_id = (SealedPayload.objects.filter(key_id=key_id).order_by("id")
              .values_list("id", flat=True).first())
    others = (f" and {counts[key_id] - 1} more rows are" if counts[key_id] > 1 else " is")
    raise SealedPayloadError(
        _P.UNKNOWN_KEY_ID, f"sealed payload {row_id}{others} under key id {key_id!r}, which "
        f"is not in the at-rest keyring ({', '.join(sorted(keyring.key_ids))}); add its key "
        "file back to AT_REST_KEYS and run again", payload_id=row_id, key_id=key_id)


@dataclass(frozen=True, slots=True)
class _Batch:
    last_id: uuid.UUID | None
    rows: int
    resealed: int
    skipped: int


def _next_rows(keyring: Keyring, after: uuid.UUID | None, batch_size: int
               ) -> list[SealedPayload]:
    rows = _stale(keyring)
    if after is not None:
        rows = rows.filter(id__gt=after)
    return list(rows.order_by("id")[:batch_size])


def _reseal_batch(*, keyring: Keyring, after: uuid.UUID | None, batch_size: int, actor: str,
                  request_id: str) -> _Batch:
    # Runs inside one serializable transaction; run again from scratch on a 40001 abort.
    rows = _next_rows(keyring, after, batch_size)
    now = timezone.now()
    resealed = skipped = 0
    from_key_ids: set[str] = set()
    for row in rows:
        plaintext = _open_row(keyring, row)
        aad = associated_data(payload_id=row.id, purpose=row.purpose, context=row.context)
        box = keyring.seal(plaintext, aad, os.urandom(NONCE_LENGTH))
        changed = SealedPayload.objects.filter(
            id=row.id, key_id=row.key_id, nonce=bytes(row.nonce),
        ).update(key_id=box.key_id, nonce=box.nonce, ciphertext=box.ciphertext, resealed_at=now)
        if changed == 1:
            resealed += 1
            from_key_ids.add(row.key_id)
        else:
            skipped += 1
    if resealed:
        record_audit(actor=actor, action="keys.reencrypt_batch", target=keyring.current_key_id,
                     outcome=Outcome.SUCCESS, request_id=request_id,
                     details={"resealed": resealed, "skipped": skipped,
                              "from_key_ids": sorted(from_key_ids),
                              "first_id": str(rows[0].id), "last_id": str(rows[-1].id)})
    return _Batch(last_id=rows[-1].id if rows else None, rows=len(rows), resealed=resealed,
                  skipped=skipped)


def _verify_batch(*, keyring: Keyring, after: uuid.UUID | None, batch_size: int) -> _Batch:
    rows = _next_rows(keyring, after, batch_size)
    for row in rows:
        _open_row(keyring, row)
    return _Batch(last_id=rows[-1].id if rows else None, rows=len(rows), resealed=0, skipped=0)


def reencrypt_all(*, batch_size: int = 100, progress: Progress | None = None,
                  dry_run: bool = False, actor: str = "system:reencrypt",
                  request_id: str = "", keyring: Keyring | None = None) -> ReencryptResult:
    """Re-seal every row not under the current key; with ``dry_run``, only open them.

    Refuses before changing anything when a row is under a key id the keyring lacks, and
    stops at the first row that fails to open (its batch is rolled back, earlier batches
    stay; the failure is audited). ``progress(handled, total)`` is called after each batch.
    """
    if not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise SealedPayloadError(_P.INVALID_INPUT,
                                 f"batch size must be between 1 and {MAX_BATCH_SIZE}")
    keyring = _keyring(keyring)
    try:
        return _reencrypt(keyring=keyring, batch_size=batch_size, progress=progress,
                          dry_run=dry_run, actor=actor, request_id=request_id)
    except SealedPayloadError as error:
        logger.warning("keys.reencrypt_failed", problem=error.problem.value,
                       payload_id=str(error.payload_id), key_id=error.key_id, dry_run=dry_run)
        if not dry_run:
            record_audit(actor=actor, action="keys.reencrypt",
                         target=str(error.payload_id or ""), outcome=Outcome.FAILURE,
                         request_id=request_id,
                         details={"problem": error.problem.value, "key_id": error.key_id})
        raise


def _reencrypt(*, keyring: Keyring, batch_size: int, progress: Progress | None, dry_run: bool,
               actor: str, request_id: str) -> ReencryptResult:
    stale_before = stale_counts(keyring)
    _refuse_unknown_key_ids(keyring, stale_before)
    total = sum(stale_before.values())
    examined = resealed = skipped = batches = 0
    after: uuid.UUID | None = None
    while True:
        if dry_run:
            batch = _verify_batch(keyring=keyring, after=after, batch_size=batch_size)
        else:
            batch = run_serializable(
                partial(_reseal_batch, keyring=keyring, after=after, batch_size=batch_size,
                        actor=actor, request_id=request_id),
                operation="keys.reencrypt_batch")
        if batch.last_id is None:
            break
        after = batch.last_id
        batches += 1
        examined += batch.rows
        resealed += batch.resealed
        skipped += batch.skipped
        logger.info("keys.reencrypt_batch", rows=batch.rows, resealed=batch.resealed,
                    skipped=batch.skipped, key_id=keyring.current_key_id, dry_run=dry_run)
        if progress is not None:
            progress(batch.rows, total)
    remaining = stale_counts(keyring)
    if not dry_run and (resealed or skipped):
        record_audit(actor=actor, action="keys.reencrypt", target=keyring.current_key_id,
                     outcome=Outcome.SUCCESS, request_id=request_id,
                     details={"resealed": resealed, "skipped": skipped, "batches": batches,
                              "stale_before": stale_before, "remaining": remaining})
    return ReencryptResult(current_key_id=keyring.current_key_id, dry_run=dry_run,
                           stale_before=stale_before, examined=examined, resealed=resealed,
                           skipped=skipped, batches=batches, remaining=remaining)
