"""Validator metadata as the ledger last committed it (the plan's ``validators`` table)."""

from __future__ import annotations

from django.db import models

# Reputation is fixed-point, in parts per million (1_000_000 = full), as the executor computes
# it: an integer, never a float, so every node stores and compares exactly the same number.
# The row holds the value of the validator's last reputation change (``updated_height``); the
# executor's state decays it with block time, so the state is the authority between changes.
REPUTATION_SCALE = 1_000_000


class Validator(models.Model):
    validator_id = models.CharField(max_length=64, primary_key=True)
    public_key = models.BinaryField(max_length=32, unique=True)
    power = models.BigIntegerField()
    address = models.CharField(max_length=255, blank=True)
    reputation = models.BigIntegerField(default=REPUTATION_SCALE)
    active = models.BooleanField(default=True)
    joined_epoch = models.BigIntegerField(default=0)
    joined_height = models.BigIntegerField(default=0)
    updated_height = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "validators"
        ordering = ["validator_id"]
        indexes = [models.Index(fields=["active"], name="validators_active_idx")]

    def __str__(self) -> str:
        return self.validator_id
