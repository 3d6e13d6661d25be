"""Query-string filters of the list endpoints, as serializers (typed, bounded, documented).

Each filter set validates ``request.query_params`` (a bad value is a 400 with the field named)
and turns the values into queryset filters in :meth:`apply`. Only filters an index can serve are
offered; see ``docs/api.md`` for the indexes each one relies on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers

from apps.api.queries import first_height_at_or_after
from apps.console.choices import CaseStatus, Severity
from apps.evidence.models import EvidenceStatus
from apps.ledger.subjects import MAX_OFFENDER_LENGTH
from cybermesh.protocol.txs.security_event import MAX_SEVERITY

_IDENT = r"^[A-Za-z0-9._:@/-]+$"
_MAX_HEIGHT = (1 << 63) - 1


def _milliseconds(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class FilterSet(serializers.Serializer[Any]):
    """Unknown parameters are ignored (``cursor`` and ``limit`` belong to the paginator)."""

    def apply(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        raise NotImplementedError

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        since, until = attrs.get("since"), attrs.get("until")
        if since is not None and until is not None and since >= until:
            raise serializers.ValidationError({"until": ["Must be after since."]})
        return attrs


class TransactionFilterSet(FilterSet):
    kind = serializers.RegexField(r"^[a-z_]{1,32}$", required=False,
                                  help_text="Transaction kind, e.g. policy")
    producer = serializers.RegexField(_IDENT, max_length=128, required=False,
                                      help_text="Producer id")
    offender = serializers.CharField(
        max_length=MAX_OFFENDER_LENGTH, required=False,
        help_text="Offender the transaction names: an entity as kind:value (ip:198.51.100.7) "
                  "or a validator id")
    severity = serializers.IntegerField(min_value=1, max_value=MAX_SEVERITY, required=False,
                                        help_text="Security events of this severity (1..10)")
    height = serializers.IntegerField(min_value=0, max_value=_MAX_HEIGHT, required=False,
                                      help_text="Only this block's transactions")
    since = serializers.DateTimeField(
        required=False, help_text="In blocks with a block time at or after (ISO 8601)")
    until = serializers.DateTimeField(
        required=False, help_text="In blocks with a block time before (ISO 8601)")

    def apply(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        data = self.validated_data
        if "kind" in data:
            queryset = queryset.filter(kind=data["kind"])
        if "producer" in data:
            queryset = queryset.filter(producer_id=data["producer"])
        if "offender" in data:
            queryset = queryset.filter(offender_id=data["offender"])
        if "severity" in data:
            queryset = queryset.filter(severity=data["severity"])
        if "height" in data:
            queryset = queryset.filter(block_height=data["height"])
        # A time range is the range of heights committed in it (block times increase with
        # height), so it narrows the primary-key range instead of scanning a time column.
        if "since" in data:
            queryset = queryset.filter(block_height__gte=first_height_at_or_after(
                _milliseconds(data["since"])))
        if "until" in data:
            queryset = queryset.filter(block_height__lt=first_height_at_or_after(
                _milliseconds(data["until"])))
        return queryset


class EvidenceFilterSet(FilterSet):
    offender = serializers.CharField(max_length=300, required=False,
                                     help_text="Offender id (validator id or entity)")
    status = serializers.ChoiceField(choices=EvidenceStatus.choices, required=False)
    height = serializers.IntegerField(min_value=0, max_value=_MAX_HEIGHT, required=False,
                                      help_text="Height of the offence")
    kind = serializers.RegexField(r"^[a-z_]{1,32}$", required=False)

    def apply(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        data = self.validated_data
        if "offender" in data:
            queryset = queryset.filter(offender_id=data["offender"])
        if "status" in data:
            queryset = queryset.filter(status=data["status"])
        if "height" in data:
            queryset = queryset.filter(height=data["height"])
        if "kind" in data:
            queryset = queryset.filter(kind=data["kind"])
        return queryset



class CaseFilterSet(FilterSet):
    status = serializers.ChoiceField(choices=CaseStatus.choices, required=False)
    assignee = serializers.RegexField(
        r"^[\w.@+-]{1,150}$", required=False,
        help_text='"me" (the caller), "none" (unassigned) or a username')
    offender = serializers.RegexField(r"^[a-z]{1,16}:\S{1,300}$", required=False,
                                      help_text="kind:value, e.g. ip:198.51.100.7")
    severity = serializers.ChoiceField(choices=Severity.choices, required=False)

    def apply(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        data = self.validated_data
        if "status" in data:
            queryset = queryset.filter(status=data["status"])
        assignee = data.get("assignee")
        if assignee == "me":
            queryset = queryset.filter(assignee=self.context["request"].user.pk)
        elif assignee == "none":
            queryset = queryset.filter(assignee__isnull=True)
        elif assignee is not None:
            queryset = queryset.filter(assignee__username=assignee)
        if "offender" in data:
            kind, _, value = data["offender"].partition(":")
            queryset = queryset.filter(offender_kind=kind, offender_value=value)
        if "severity" in data:
            queryset = queryset.filter(severity=data["severity"])
        return queryset
