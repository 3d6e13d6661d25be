"""Sensitive payloads sealed at rest with AES-256-GCM (see :mod:`apps.keys.services`).

A row holds only what is needed to open it with the right key: the key id, the 12-byte nonce,
ciphertext || tag, and the purpose and context that are bound into the associated data
together with the row id. The plaintext is never stored, and neither ``str()`` nor ``repr()``
shows the ciphertext.

Rows are written by :func:`apps.keys.services.seal_payload` and changed only by
:func:`apps.keys.services.reencrypt_all` (new key id, nonce and ciphertext; same plaintext).
"""

from __future__ import annotations

import uuid

from django.db import models

PURPOSE_MAX_LENGTH = 64
CONTEXT_MAX_LENGTH = 255


class SealedPayload(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    purpose = models.CharField(max_length=PURPOSE_MAX_LENGTH,
                               help_text="What the payload is, e.g. 'producer-credential'")
    key_id = models.CharField(max_length=64, help_text="Id of the at-rest key that sealed it")
    nonce = models.BinaryField(max_length=12, help_text="AES-GCM nonce, random per seal")
    ciphertext = models.BinaryField(help_text="Ciphertext followed by the 16-byte tag")
    context = models.CharField(max_length=CONTEXT_MAX_LENGTH, blank=True,
                               help_text="Caller's binding (e.g. the owning object), part of "
                                         "the associated data")
    created_at = models.DateTimeField()
    resealed_at = models.DateTimeField(null=True, blank=True,
                                       help_text="When it was last moved to another key")

    class Meta:
        verbose_name = "sealed payload"
        verbose_name_plural = "sealed payloads"
        indexes = [models.Index(fields=["key_id", "id"], name="keys_sealed_key_id")]

    def __str__(self) -> str:
        return f"{self.purpose} {self.id} (key {self.key_id})"

    def __repr__(self) -> str:
        return f"<SealedPayload {self.id} purpose={self.purpose!r} key_id={self.key_id!r}>"
