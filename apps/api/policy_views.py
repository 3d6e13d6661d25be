"""The effective policy: the allow/deny rules and quarantines in force, and the decision for
one entity by the executor's own conflict-resolution rules (docs/transactions.md).

Every answer names the state version it reads; a rule or quarantine can be proven with
``GET /api/v1/state/proof/?key=<key>&version=<version>``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api.base import ApiView
from apps.api.fields import HexField
from apps.api.ledger_views import FilteredListView
from apps.api.permissions import requires
from apps.api.roles import Capability
from apps.api.state_queries import (
    POLICY_TAGS,
    StateUnavailable,
    latest_provable_version,
    policy_decision,
    policy_page,
    record_json,
    version_time_ms,
)
from apps.api.state_views import PROOF_ERRORS, RecordSerializer, unavailable
from cybermesh.protocol.executor.records import encode_record
from cybermesh.protocol.txs.entity import Entity
from cybermesh.protocol.txs.errors import TxRejected

_MAX_VERSION = (1 << 63) - 2


class PolicyQuery(serializers.Serializer[Any]):
    type = serializers.ChoiceField(choices=sorted(POLICY_TAGS), required=False,
                                   help_text="Only rules or only quarantines")
    version = serializers.IntegerField(min_value=0, max_value=_MAX_VERSION, required=False,
                                       help_text="Default: the latest provable version")


class PolicyItemSerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField(help_text="The state version of this snapshot")
    key = HexField(help_text="Tree key (prove with /api/v1/state/proof/?key=)")
    written_at = serializers.IntegerField(help_text="Version that wrote the record")
    active = serializers.BooleanField(help_text="Not expired at the snapshot's block time")
    record = RecordSerializer()


@extend_schema_view(get=extend_schema(
    tags=["policy"], operation_id="listPolicy",
    summary="Allow/deny rules and quarantines in force (snapshot at a state version)",
    parameters=[PolicyQuery],
    responses={200: PolicyItemSerializer(many=True), **PROOF_ERRORS}))
class PolicyListView(FilteredListView):
    """The rule and quarantine records of the state at a version, with whether each is still
    in force at that version's block time."""

    permission_classes = [requires(Capability.READ_LEDGER)]
    serializer_class = PolicyItemSerializer
    cursor_fields = (("key_hash", bytes),)

    def _query(self) -> tuple[int, int, tuple[str, ...]]:
        query = PolicyQuery(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        try:
            version = query.validated_data.get("version")
            version = latest_provable_version() if version is None else version
            as_of = version_time_ms(version)
        except StateUnavailable as error:
            raise unavailable(error) from None
        kinds = ((query.validated_data["type"],) if "type" in query.validated_data
                 else tuple(sorted(POLICY_TAGS)))
        return version, as_of, kinds

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        version, as_of, kinds = self._query()
        rows = self.paginator.paginate_rows(  # type: ignore[union-attr]
            lambda position, count: policy_page(
                version=version, kinds=kinds, below=None if position is None else position[0],
                count=count),
            request, self)
        items = []
        for row in rows:
            record = record_json(None if row.value is None else bytes(row.value))
            expires = (record or {}).get("fields", {}).get("expires_at_ms", 0)
            items.append({"version": version, "key": bytes(row.key_hash).hex(),
                          "written_at": row.version, "active": expires > as_of,
                          "record": record})
        return self.get_paginated_response(items)


class DecisionQuery(serializers.Serializer[Any]):
    entity_kind = serializers.ChoiceField(choices=["ip", "cidr", "host", "account", "other"])
    entity_value = serializers.CharField(max_length=300)
    scope = serializers.RegexField(r"^(\*|[a-z][a-z0-9_.-]{0,31})$", default="*")
    version = serializers.IntegerField(min_value=0, max_value=_MAX_VERSION, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            attrs["entity"] = Entity.of(attrs["entity_kind"], attrs["entity_value"])
        except TxRejected as error:
            raise ValidationError({"entity_value": [error.detail]}) from None
        return attrs


class DecisionSerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField()
    as_of_ms = serializers.IntegerField(help_text="Block time the decision is taken at")
    entity = serializers.DictField(child=serializers.CharField())
    scope = serializers.CharField()
    decision = serializers.ChoiceField(choices=["allow", "deny"], allow_null=True,
                                       help_text="null: no rule applies (default policy)")
    rule = RecordSerializer(allow_null=True, help_text="The rule that decided")
    quarantine = RecordSerializer(allow_null=True, help_text="The entity's quarantine")


class PolicyDecisionView(ApiView):
    """The effective allow/deny decision for an entity in a scope: the most specific active
    rule (longest prefix, parent domains), exact scope before ``*``, deny before allow."""

    permission_classes = [requires(Capability.READ_LEDGER)]

    @extend_schema(tags=["policy"], operation_id="getPolicyDecision",
                   summary="Effective allow/deny decision for an entity",
                   parameters=[DecisionQuery],
                   responses={200: DecisionSerializer, **PROOF_ERRORS})
    def get(self, request: Request) -> Response:
        query = DecisionQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        try:
            answer = policy_decision(entity=params["entity"], scope=params["scope"],
                                     version=params.get("version"))
        except StateUnavailable as error:
            raise unavailable(error) from None
        decision = answer.decision
        return Response({
            "version": answer.version, "as_of_ms": answer.as_of_ms,
            "entity": {"kind": answer.entity.kind.value, "value": answer.entity.value},
            "scope": answer.scope,
            "decision": None if decision is None else decision.action.value,
            "rule": None if decision is None else record_json(encode_record(decision.rule)),
            "quarantine": record_json(answer.quarantine),
        })
