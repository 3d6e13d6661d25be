"""Verify the audit chain: every entry's hash, link, MAC and sequence, and the signed head.

:func:`verify_chain` walks the entries in ``seq`` order in pages (keyset pagination: constant
memory on PostgreSQL and on CockroachDB, whose driver has no server-side cursors), stops at the
first broken link and returns a :class:`VerifyResult` that names it. The management command
(``manage.py audit verify``) only renders that result.

What each tampering looks like to the walk:

* an edited entry: its recomputed hash differs from the stored one (``hash_mismatch``); if the
  editor also stored the new hash, the MAC no longer matches (``bad_mac``);
* a deleted entry: the sequence skips a number (``missing_entry``);
* reordered entries (seq values swapped): the hash covers ``seq``, so the first moved entry
  fails ``hash_mismatch``; re-hashed, it fails ``bad_mac`` or ``broken_link``;
* an inserted entry: without the key its MAC is wrong (``bad_mac``); with a renumbered tail,
  the entries after it fail their hash or link;
* a truncated tail: the latest signed head names a ``seq`` past the end (``truncated``), or
  the entry at the head's ``seq`` is not the one that was signed (``head_mismatch``).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Max

from apps.audit.chain import GENESIS_HASH, EntryContent, entry_mac_message, head_mac_message
from apps.audit.keyring import Keyring, configured_keyring
from apps.audit.models import AuditEntry, AuditHead
from cybermesh.protocol.codec import CodecError

DEFAULT_PAGE_SIZE = 2000


class Failure(enum.Enum):
    MISSING_ENTRY = "missing_entry"
    UNEXPECTED_ENTRY = "unexpected_entry"
    HASH_MISMATCH = "hash_mismatch"
    BROKEN_LINK = "broken_link"
    UNKNOWN_KEY = "unknown_key"
    BAD_MAC = "bad_mac"
    BAD_HEAD_MAC = "bad_head_mac"
    TRUNCATED = "truncated"
    HEAD_MISMATCH = "head_mismatch"


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int
    reason: Failure
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "reason": self.reason.value, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class VerifyResult:
    entries_checked: int
    last_seq: int
    last_hash: str
    head_seq: int | None
    heads_checked: int
    entries_by_key: dict[str, int] = field(default_factory=dict)
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries_checked": self.entries_checked,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "head_seq": self.head_seq,
            "heads_checked": self.heads_checked,
            "entries_by_key": dict(sorted(self.entries_by_key.items())),
            "problem": self.problem.as_dict() if self.problem else None,
        }


def chain_end() -> int:
    """The highest ``seq`` in the chain (0 when empty); the length of an intact chain."""
    return int(AuditEntry.objects.aggregate(top=Max("seq"))["top"] or 0)


def _iter_entries(*, last_seq: int, page_size: int) -> Iterable[AuditEntry]:
    after = 0
    while after < last_seq:
        page = (AuditEntry.objects.filter(seq__gt=after, seq__lte=last_seq)
                .order_by("seq")[:page_size])
        count = 0
        for entry in page.iterator(chunk_size=page_size):
            count += 1
            after = entry.seq
            yield entry
        if count < page_size:
            return


def check_entry(entry: AuditEntry, *, expected_prev_hash: str,
                keyring: Keyring) -> Problem | None:
    """The first thing wrong with ``entry`` given the verified hash before it, or None."""
    seq = entry.seq
    try:
        prev_hash = bytes.fromhex(entry.prev_hash)
        content = EntryContent(
            seq=seq, timestamp=entry.timestamp, actor=entry.actor, action=entry.action,
            target=entry.target, outcome=entry.outcome, request_id=entry.request_id,
            details=entry.details, prev_hash=prev_hash)
        digest = content.entry_hash()
    except (ValueError, TypeError, CodecError) as error:  # CodecError is a ValueError
        return Problem(seq, Failure.HASH_MISMATCH, f"entry cannot be re-hashed: {error}")
    if digest.hex() != entry.entry_hash:
        return Problem(seq, Failure.HASH_MISMATCH,
                       "content does not match the stored entry hash (entry edited or moved)")
    if entry.prev_hash != expected_prev_hash:
        return Problem(seq, Failure.BROKEN_LINK,
                       f"previous-hash link does not match entry #{seq - 1}"
                       if seq > 1 else "first entry does not start from the genesis hash")
    if not keyring.has_key(entry.key_id):
        return Problem(seq, Failure.UNKNOWN_KEY,
                       f"MAC key id {entry.key_id!r} is not in the keyring")
    message = entry_mac_message(key_id=entry.key_id, entry_hash=digest)
    if not keyring.verify(entry.key_id, message, entry.mac):
        return Problem(seq, Failure.BAD_MAC, f"HMAC does not verify under key {entry.key_id!r}")
    return None


def check_head(head: AuditHead, *, keyring: Keyring) -> Problem | None:
    """Whether the head row itself is authentic (its MAC), independent of the chain."""
    if not keyring.has_key(head.key_id):
        return Problem(head.seq, Failure.UNKNOWN_KEY,
                       f"signed head MAC key id {head.key_id!r} is not in the keyring")
    try:
        message = head_mac_message(key_id=head.key_id, seq=head.seq,
                                   entry_hash=bytes.fromhex(head.entry_hash),
                                   signed_at=head.signed_at)
    except ValueError:
        return Problem(head.seq, Failure.BAD_HEAD_MAC, "signed head entry hash is not hex")
    if not keyring.verify(head.key_id, message, head.mac):
        return Problem(head.seq, Failure.BAD_HEAD_MAC,
                       f"signed head HMAC does not verify under key {head.key_id!r}")
    return None


class _Walk:
    """The running state of one verification walk."""

    def __init__(self, *, keyring: Keyring, head_seq: int | None, page_size: int,
                 progress: Callable[[int], object] | None) -> None:
        self.keyring = keyring
        self.head_seq = head_seq
        self.page_size = page_size
        self.progress = progress
        self.expected_seq = 1
        self.expected_prev_hash = GENESIS_HASH.hex()
        self.by_key: Counter[str] = Counter()
        self.checked = 0
        self.unreported = 0
        self.hash_at_head: str | None = None

    def entries(self, *, last_seq: int) -> Problem | None:
        for entry in _iter_entries(last_seq=last_seq, page_size=self.page_size):
            problem = self._entry(entry)
            if problem:
                return problem
        return None

    def _entry(self, entry: AuditEntry) -> Problem | None:
        if entry.seq < self.expected_seq:
            return Problem(entry.seq, Failure.UNEXPECTED_ENTRY,
                           "entry numbered before the start of the chain (seq 1)")
        if entry.seq > self.expected_seq:
            return Problem(self.expected_seq, Failure.MISSING_ENTRY,
                           f"entry #{self.expected_seq} is missing (next entry is #{entry.seq})")
        problem = check_entry(entry, expected_prev_hash=self.expected_prev_hash,
                              keyring=self.keyring)
        if problem:
            return problem
        if entry.seq == self.head_seq:
            self.hash_at_head = entry.entry_hash
        self.by_key[entry.key_id] += 1
        self.checked += 1
        self.expected_seq, self.expected_prev_hash = entry.seq + 1, entry.entry_hash
        self.unreported += 1
        if self.progress and self.unreported >= self.page_size:
            self.progress(self.unreported)
            self.unreported = 0
        return None

    def heads(self, heads: list[AuditHead], *, last_seq: int) -> Problem | None:
        for head in heads:
            problem = check_head(head, keyring=self.keyring)
            if problem:
                return problem
            if head.seq > last_seq:
                return Problem(last_seq + 1, Failure.TRUNCATED,
                               f"chain ends at #{last_seq} but a signed head covers "
                               f"#{head.seq}: entries #{last_seq + 1}..#{head.seq} are missing")
            if head.entry_hash != self.hash_at_head:
                return Problem(head.seq, Failure.HEAD_MISMATCH,
                               f"entry #{head.seq} is not the entry the signed head names")
        return None


def verify_chain(*, keyring: Keyring | None = None, page_size: int = DEFAULT_PAGE_SIZE,
                 progress: Callable[[int], object] | None = None) -> VerifyResult:
    """Walk the whole chain and the latest signed head; report the first broken link.

    ``progress(n)`` is called with the number of entries checked since its previous call.
    """
    keyring = keyring or configured_keyring()
    # Heads first, then the end of the chain: a head signed while we walk names an entry at or
    # before the end we read, so concurrent appends never look like a truncation.
    head_seq = AuditHead.objects.aggregate(top=Max("seq"))["top"]
    heads = list(AuditHead.objects.filter(seq=head_seq)) if head_seq is not None else []
    last_seq = chain_end()

    walk = _Walk(keyring=keyring, head_seq=head_seq, page_size=page_size, progress=progress)
    problem = walk.entries(last_seq=last_seq)
    if problem is None:
        # Only a walk that reached the end can say what the end is.
        problem = walk.heads(heads, last_seq=walk.expected_seq - 1)
    if progress and walk.unreported:
        progress(walk.unreported)
    return VerifyResult(entries_checked=walk.checked, last_seq=walk.expected_seq - 1,
                        last_hash=walk.expected_prev_hash, head_seq=head_seq,
                        heads_checked=len(heads), entries_by_key=dict(walk.by_key),
                        problem=problem)
