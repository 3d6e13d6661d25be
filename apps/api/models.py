"""What the API itself stores: client tokens, idempotency records, and its permissions.

* :class:`ApiToken`: a bearer token for scripts and dashboards. Only a SHA-256 of the secret is
  stored (a token is 32 random bytes, so a plain hash is enough: there is nothing to brute
  force). The short ``prefix`` is public and indexed, so a lookup is one index probe, and the
  hash is compared in constant time.
* :class:`IdempotencyKey`: ``(user, key)`` -> the hash of the request it was first used with and
  the response that request got. A retried POST gets the stored response instead of a second
  submission; the same key with another body is refused (422).
* :class:`ApiCapability` holds no rows: it only owns the permissions the roles are built from
  (``api.read_ledger`` ...). See :mod:`apps.api.roles`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiCapability(models.Model):
    """Permissions of the REST API (no table: ``managed = False``, never queried)."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("read_ledger", "Read status, validators, blocks, transactions, policy, proofs"),
            ("read_investigations", "Read evidence and entity reputation history"),
            ("submit_policy", "Submit signed policy transactions"),
            ("submit_governance", "Submit signed governance transactions"),
            ("read_metrics", "Read Prometheus metrics"),
        ]


class ApiToken(models.Model):
    prefix = models.CharField(max_length=16, unique=True,
                              help_text="Public part of the token, shown in lists and logs")
    secret_hash = models.BinaryField(max_length=32, help_text="SHA-256 of the whole token")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "api_tokens"
        ordering = ["prefix"]

    def __str__(self) -> str:
        return f"{self.prefix} ({self.name})"


class IdempotencyKey(models.Model):
    pk = models.CompositePrimaryKey("user_id", "key")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    key = models.CharField(max_length=200)
    request_hash = models.BinaryField(max_length=32,
                                      help_text="SHA-256 of method, path and body")
    status_code = models.IntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "api_idempotency_keys"
        ordering = ["user_id", "key"]

    def __str__(self) -> str:
        return f"{self.user_id}/{self.key}"
