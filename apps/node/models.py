"""What the consensus worker persists besides the ledger: its safety data and its status.

Safety data is the double-sign guard: it is committed (fsynced by the database) BEFORE a vote
or timeout leaves the node, so a restart can never sign twice for one view. Status is a
one-row-per-node snapshot the web process reads to answer /api/v1/status/ without talking to
the worker.
"""

from __future__ import annotations

from django.db import models


class SafetyRecord(models.Model):
    node_id = models.CharField(max_length=64, primary_key=True)
    epoch = models.BigIntegerField()
    last_voted_view = models.BigIntegerField()
    data = models.BinaryField(help_text="Canonical CBOR of protocol SafetyData")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "safety record"

    def __str__(self) -> str:
        return f"{self.node_id}: epoch {self.epoch}, last voted view {self.last_voted_view}"


class ConsensusRecovery(models.Model):
    """The highest QC this node knows and the uncommitted blocks up to it (liveness data).

    Certified but uncommitted blocks live only in the worker's memory. If every validator
    restarts at once they would be gone everywhere while the locks in the safety records still
    point at them: no node could vote below its lock or time out with a lower QC, and the chain
    would stop for good. So the worker writes this row whenever its highest QC rises, before
    anything of that step is sent, and feeds it back to the core on start.
    """

    node_id = models.CharField(max_length=64, primary_key=True)
    epoch = models.BigIntegerField()
    qc_view = models.BigIntegerField()
    data = models.BinaryField(help_text="Wire encoding of a SyncResponse (blocks + their QC)")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "consensus recovery record"

    def __str__(self) -> str:
        return f"{self.node_id}: epoch {self.epoch}, highest QC view {self.qc_view}"


class NodeStatus(models.Model):
    node_id = models.CharField(max_length=64, primary_key=True)
    node_type = models.CharField(max_length=16)
    epoch = models.BigIntegerField(default=0)
    height = models.BigIntegerField(default=0)
    view = models.BigIntegerField(default=0)
    state_root = models.CharField(max_length=64, blank=True)
    synced = models.BooleanField(default=False)
    voting = models.BooleanField(default=False)
    peers = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "node status"

    def __str__(self) -> str:
        return f"{self.node_id} at height {self.height}, view {self.view}"


class EpochEndProof(models.Model):
    """The proof that an epoch ended: its reconfiguration block, the certified blocks above it
    and the QC on the last (a wire ``SyncResponse``).

    The 2-chain rule commits the reconfiguration block only together with a certified child,
    and that child is never in the ledger (the next epoch grows from the reconfiguration block).
    A node syncing through the epoch change needs it, so every node keeps the proof of every
    epoch it saw end — in the database, because consensus keeps it only in memory — and serves
    it even after a restart, and after it left the validator set.
    """

    epoch = models.BigIntegerField(primary_key=True)
    reconfiguration_height = models.BigIntegerField()
    data = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "epoch-end proof"

    def __str__(self) -> str:
        return f"end of epoch {self.epoch} at height {self.reconfiguration_height}"
