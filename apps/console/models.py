"""Triage cases and the console's read models of the ledger.

Two kinds of rows live here, and only the first is the analysts' own data:

* **Cases** (:class:`Case` and what hangs off it: items, notes, status changes, tags, the
  signed actions it caused). They are this node's SOC workspace, written only through
  :mod:`apps.console.services` (audited). A case never changes shared state itself: what an
  analyst decides about the world (quarantine, release, a policy rule) becomes a signed
  transaction (:class:`CaseAction`) that goes through the mempool and consensus.
* **Projections** of the committed ledger (:class:`IndexedEvent`, :class:`EvidenceLink`,
  :class:`SyncCursor`): columns the ledger does not store (an event's offender, severity,
  category; which events a piece of evidence supports), extracted from committed
  transactions by ``services.do_sync_ledger`` so the queue, offender pages and dashboard are
  served by indexes. They can be dropped and rebuilt from the ledger at any time.

Keys are UUIDs or natural keys (tx ids as hex), never sequences (CockroachDB), and every model
orders explicitly.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from apps.console.choices import (
    SEVERITY_RANK,
    ActionKind,
    ActionStatus,
    CaseSource,
    CaseStatus,
    ClosureReason,
    ItemKind,
    Severity,
    TagKind,
    Tlp,
)

HEX_ID_LENGTH = 64


class Tag(models.Model):
    """A case label: a MITRE ATT&CK id (``T1110.001``) or a lowercase free-text tag."""

    name = models.CharField(max_length=48, unique=True)
    kind = models.CharField(max_length=8, choices=TagKind.choices)

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return self.name


class Case(models.Model):
    """One triage item: a piece of committed evidence or a high-severity security event."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    reference = models.CharField(max_length=16, unique=True,
                                 help_text="Short id analysts quote, e.g. CM-1a2b3c4d")
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True)
    source = models.CharField(max_length=16, choices=CaseSource.choices)
    status = models.CharField(max_length=16, choices=CaseStatus.choices,
                              default=CaseStatus.NEW)
    closure_reason = models.CharField(max_length=16, choices=ClosureReason.choices,
                                      blank=True)
    severity = models.CharField(max_length=16, choices=Severity.choices,
                                default=Severity.MEDIUM)
    severity_rank = models.PositiveSmallIntegerField(default=SEVERITY_RANK[Severity.MEDIUM])
    tlp = models.CharField("TLP", max_length=20, choices=Tlp.choices, default=Tlp.AMBER)
    offender_kind = models.CharField(max_length=16, blank=True)
    offender_value = models.CharField(max_length=300, blank=True)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                 on_delete=models.SET_NULL, related_name="console_cases")
    tags = models.ManyToManyField(Tag, blank=True, related_name="cases")
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="merged_cases")
    height = models.BigIntegerField(help_text="Block that committed the item opening the case")
    first_seen_at = models.DateTimeField(help_text="Block time of that block")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    status_changed_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]
        permissions = [
            ("triage_case", "Can triage cases (status, assignee, notes, tags, merge)"),
            ("confirm_case", "Can confirm cases (a quarantine goes through consensus)"),
            ("reopen_case", "Can reopen a confirmed or dismissed case"),
            ("release_offender", "Can release a quarantined offender (through consensus)"),
            ("change_policy", "Can submit policy rule changes (through consensus)"),
            ("export_case", "Can export cases (CSV, JSON, STIX)"),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="console_case_status_idx"),
            models.Index(fields=["assignee", "status"], name="console_case_assignee_idx"),
            models.Index(fields=["offender_kind", "offender_value"],
                         name="console_case_offender_idx"),
            models.Index(fields=["created_at"], name="console_case_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.title}"

    @property
    def offender(self) -> str:
        return f"{self.offender_kind}:{self.offender_value}" if self.offender_kind else ""

    @property
    def is_open(self) -> bool:
        return self.status in (CaseStatus.NEW, CaseStatus.TRIAGING)


class CaseItem(models.Model):
    """A committed ledger item (event or evidence, by id) attached to exactly one case."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="items")
    kind = models.CharField(max_length=16, choices=ItemKind.choices)
    item_id = models.CharField(max_length=HEX_ID_LENGTH, help_text="tx id / evidence id (hex)")
    height = models.BigIntegerField()
    attached_at = models.DateTimeField()

    class Meta:
        ordering = ["height", "item_id"]
        constraints = [models.UniqueConstraint(fields=["kind", "item_id"],
                                               name="console_item_once")]
        indexes = [models.Index(fields=["item_id"], name="console_item_id_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.item_id[:16]}"


class CaseNote(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                               related_name="+")
    author_name = models.CharField(max_length=150)
    body = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"note by {self.author_name} at {self.created_at:%Y-%m-%d %H:%M}"


class CaseStatusChange(models.Model):
    """Who moved a case from one status to another, when, and why."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="status_changes")
    position = models.PositiveIntegerField(help_text="1, 2, ... per case (two changes can "
                                           "share a timestamp)")
    from_status = models.CharField(max_length=16, choices=CaseStatus.choices)
    to_status = models.CharField(max_length=16, choices=CaseStatus.choices)
    closure_reason = models.CharField(max_length=16, choices=ClosureReason.choices,
                                      blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_name = models.CharField(max_length=150)
    comment = models.CharField(max_length=500, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["case", "position"]
        constraints = [models.UniqueConstraint(fields=["case", "position"],
                                               name="console_status_position")]

    def __str__(self) -> str:
        return f"{self.from_status} -> {self.to_status} by {self.actor_name}"


class CaseAction(models.Model):
    """A signed policy transaction an analyst asked for, and where it is on its way.

    The signed bytes are stored with the case change that asked for them (one transaction),
    and handed to the mempool after that commit: the row is the outbox, so a crash between
    the two leaves a ``signed`` row that ``console resubmit`` admits later, never a quarantine
    nobody recorded.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="actions")
    kind = models.CharField(max_length=16, choices=ActionKind.choices)
    entity_kind = models.CharField(max_length=16)
    entity_value = models.CharField(max_length=300)
    scope = models.CharField(max_length=32, blank=True)
    policy_action = models.CharField(max_length=8, blank=True)
    reason = models.CharField(max_length=256)
    expires_at_ms = models.BigIntegerField(null=True, blank=True)
    tx_id = models.CharField(max_length=HEX_ID_LENGTH, unique=True)
    wire = models.BinaryField()
    producer_id = models.CharField(max_length=64)
    created_at_ms = models.BigIntegerField(help_text="The transaction's signed creation time")
    status = models.CharField(max_length=16, choices=ActionStatus.choices,
                              default=ActionStatus.SIGNED)
    status_detail = models.CharField(max_length=300, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True,
                                     on_delete=models.SET_NULL, related_name="+")
    requested_by_name = models.CharField(max_length=150)
    requested_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    committed_height = models.BigIntegerField(null=True, blank=True)
    committed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "id"]
        verbose_name = "signed policy action"
        indexes = [
            models.Index(fields=["status", "requested_at"], name="console_action_status_idx"),
            models.Index(fields=["entity_kind", "entity_value"],
                         name="console_action_entity_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.entity_kind}:{self.entity_value} ({self.status})"

    @property
    def entity(self) -> str:
        return f"{self.entity_kind}:{self.entity_value}"


# --- projections of the committed ledger ------------------------------------------------------


class IndexedEvent(models.Model):
    """A committed security event's searchable columns (the ledger keeps only the bytes)."""

    tx_id = models.CharField(max_length=HEX_ID_LENGTH, primary_key=True)
    height = models.BigIntegerField()
    idx = models.IntegerField()
    block_time = models.DateTimeField()
    offender_kind = models.CharField(max_length=16)
    offender_value = models.CharField(max_length=300)
    category = models.CharField(max_length=32)
    severity = models.PositiveSmallIntegerField()
    confidence_bps = models.PositiveIntegerField()
    observed_at = models.DateTimeField()
    producer_id = models.CharField(max_length=64)
    source = models.CharField(max_length=64)
    detector = models.CharField(max_length=64)
    payload_ref = models.CharField(max_length=512)

    class Meta:
        ordering = ["height", "idx"]
        indexes = [
            models.Index(fields=["offender_kind", "offender_value", "height"],
                         name="console_event_offender_idx"),
            models.Index(fields=["block_time"], name="console_event_time_idx"),
            models.Index(fields=["height", "idx"], name="console_event_height_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.category} sev {self.severity} by {self.offender_kind}:{self.offender_value}"

    @property
    def offender(self) -> str:
        return f"{self.offender_kind}:{self.offender_value}"


class EvidenceLink(models.Model):
    """Committed artifact evidence ``evidence_id`` names event ``event_id`` as supported."""

    pk = models.CompositePrimaryKey("evidence_id", "event_id")
    evidence_id = models.CharField(max_length=HEX_ID_LENGTH)
    event_id = models.CharField(max_length=HEX_ID_LENGTH)
    height = models.BigIntegerField()

    class Meta:
        ordering = ["evidence_id", "event_id"]
        indexes = [models.Index(fields=["event_id"], name="console_link_event_idx")]

    def __str__(self) -> str:
        return f"{self.evidence_id[:12]} supports {self.event_id[:12]}"


class SyncCursor(models.Model):
    """The highest block height the projections and cases include."""

    name = models.CharField(max_length=32, primary_key=True)
    height = models.BigIntegerField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name}: {self.height}"



class TotpDevice(models.Model):
    """A staff user's authenticator (RFC 6238 TOTP secret) for the admin's second factor.

    The secret is sealed at rest (``apps.keys``: AES-256-GCM under ``AT_REST_KEYS``, bound to
    purpose ``console-totp`` and this user), so a database dump does not hand out second
    factors. ``last_counter`` is the time step of the last accepted code: a code is accepted
    once (compare-and-set on it), so a code seen over a shoulder cannot be replayed.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                primary_key=True, related_name="console_totp")
    sealed_secret = models.ForeignKey("keys.SealedPayload", on_delete=models.PROTECT,
                                      related_name="+")
    confirmed = models.BooleanField(default=False)
    last_counter = models.BigIntegerField(default=-1)
    created_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["user"]
        verbose_name = "TOTP device"

    def __str__(self) -> str:
        return f"TOTP for user {self.user_id} ({'confirmed' if self.confirmed else 'pending'})"
