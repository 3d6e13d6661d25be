"""The audit chain: append-only entries linked by hash, and signed checkpoints of its head.

Rows are written only by :mod:`apps.audit.services` and never changed: the model refuses
``save()`` on an existing row and ``delete()``. That is a guard against mistakes, not the
security boundary; anyone with SQL access can still change rows, and
:func:`apps.audit.verify.verify_chain` is what detects it.

``seq`` is the primary key and is assigned by the appender (head + 1 inside a serializable
transaction), not by a database sequence: CockroachDB ids are not sequential and sequences
are not gap-free anywhere, while the chain needs 1, 2, 3, ... with no gaps. Two appenders
that read the same head collide on the primary key, and the database aborts one of them.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from apps.audit.choices import Outcome


class AppendOnlyError(Exception):
    """An audit row was about to be changed or deleted through the ORM."""


class AuditEntry(models.Model):
    seq = models.PositiveBigIntegerField(primary_key=True)
    timestamp = models.DateTimeField()
    actor = models.CharField(max_length=200)
    action = models.CharField(max_length=100)
    target = models.CharField(max_length=300, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    request_id = models.CharField(max_length=100, blank=True)
    details = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64, help_text="SHA-256 (hex) of the previous entry")
    entry_hash = models.CharField(max_length=64, help_text="SHA-256 (hex) of this entry")
    key_id = models.CharField(max_length=64, help_text="Keyring id of the HMAC key")
    mac = models.CharField(max_length=64, help_text="HMAC-SHA256 (hex) of the entry hash")

    class Meta:
        ordering = ["seq"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["timestamp"], name="audit_entry_timestamp"),
            models.Index(fields=["action", "timestamp"], name="audit_entry_action"),
            models.Index(fields=["request_id"], name="audit_entry_request_id"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.actor} {self.action} {self.target} -> {self.outcome}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError(f"audit entry #{self.seq} is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError(f"audit entry #{self.seq} is append-only")

    def as_record(self) -> dict[str, Any]:
        """The row as a JSON-ready dict (the AUDIT_LOG_PATH mirror line, the API body)."""
        return {
            "seq": self.seq,
            "timestamp": self.timestamp.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "request_id": self.request_id,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "entry_hash": self.entry_hash,
            "key_id": self.key_id,
            "mac": self.mac,
        }


class AuditHead(models.Model):
    """A signed checkpoint: "the chain had ``seq`` entries and the last one hashed to this".

    Written periodically by the appender and on demand (``manage.py audit head``). Deleting the
    tail of the chain is then detectable: the latest head names an entry that is gone. Keep a
    copy of heads outside the database (``audit head --json``) to make deleting heads too
    detectable.
    """

    seq = models.PositiveBigIntegerField()
    entry_hash = models.CharField(max_length=64)
    key_id = models.CharField(max_length=64)
    mac = models.CharField(max_length=64)
    signed_at = models.DateTimeField()

    class Meta:
        ordering = ["-seq"]
        verbose_name = "audit head"
        constraints = [
            models.UniqueConstraint(fields=["seq", "key_id"], name="audit_head_seq_key_unique"),
        ]

    def __str__(self) -> str:
        return f"head #{self.seq} {self.entry_hash[:16]}… ({self.key_id})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError(f"audit head #{self.seq} is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError(f"audit head #{self.seq} is append-only")

    def as_record(self) -> dict[str, Any]:
        return {"seq": self.seq, "entry_hash": self.entry_hash, "key_id": self.key_id,
                "mac": self.mac, "signed_at": self.signed_at.isoformat()}
