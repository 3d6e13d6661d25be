"""State endpoints: verifiable proofs, and an entity's (or validator's) reputation, quarantine
and history.

A proof answer is self-contained: value, Merkle proof, the block header that commits to the
root and the QC that certifies the header. ``python -m cybermesh.verify answer.json
genesis.json`` checks it without trusting this node.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api.base import ApiView
from apps.api.errors import ApiProblem, ProblemCode, problem_responses
from apps.api.fields import HexField
from apps.api.ledger_views import FilteredListView
from apps.api.permissions import requires
from apps.api.roles import Capability
from apps.api.serializers import (
    BlockHeaderSerializer,
    QuorumCertSerializer,
    header_data,
    qc_data,
)
from apps.api.state_queries import (
    SUBJECT_KINDS,
    StateProofAnswer,
    StateUnavailable,
    SubjectRecord,
    key_history,
    record_json,
    state_proof,
    subject_key,
    subject_of,
)
from cybermesh.protocol.executor.keys import Subject

_MAX_VERSION = (1 << 63) - 2
PROOF_ERRORS = problem_responses(400, 401, 403, 404, 429)


def unavailable(error: StateUnavailable) -> ApiProblem:
    return ApiProblem(ProblemCode.STATE_UNAVAILABLE, str(error), status=404)


class ProofLeafSerializer(serializers.Serializer[Any]):
    key = HexField()
    value_hash = HexField()


class MerkleProofSerializer(serializers.Serializer[Any]):
    siblings = serializers.ListField(child=HexField(), help_text="Root first")
    leaf = ProofLeafSerializer(allow_null=True)


class SubjectSerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=SUBJECT_KINDS)
    value = serializers.CharField()


class ProvenBlockSerializer(serializers.Serializer[Any]):
    hash = HexField()
    header = BlockHeaderSerializer()


class RecordSerializer(serializers.Serializer[Any]):
    type = serializers.CharField(help_text="Record type, e.g. reputation, quarantine, rule")
    fields = serializers.DictField(  # type: ignore[assignment]  # the answer's member name
        child=serializers.JSONField())


class StateProofSerializer(serializers.Serializer[Any]):
    """A state value with everything needed to verify it against the validator set."""

    key = HexField(help_text="32-byte sparse Merkle tree key")
    version = serializers.IntegerField(help_text="State version (the height it follows)")
    value = HexField(allow_null=True, help_text="Stored bytes; null: absent")
    included = serializers.BooleanField()
    record = RecordSerializer(allow_null=True, help_text="The value decoded")
    subject = SubjectSerializer(required=False, help_text="Whose record (when asked so)")
    record_kind = serializers.ChoiceField(choices=[r.value for r in SubjectRecord],
                                          required=False)
    proof = MerkleProofSerializer()
    block = ProvenBlockSerializer(help_text="Block version+1: its header carries the root")
    qc = QuorumCertSerializer(help_text="Commit QC of that block")


def _subject_json(subject: Subject) -> dict[str, str]:
    return {"kind": subject.kind, "value": subject.value}


def proof_data(answer: StateProofAnswer) -> dict[str, Any]:
    leaf = answer.proof.leaf
    data: dict[str, Any] = {
        "key": answer.key.hex(), "version": answer.version,
        "value": None if answer.value is None else answer.value.hex(),
        "included": answer.value is not None,
        "record": record_json(answer.value),
        "proof": {"siblings": [sibling.hex() for sibling in answer.proof.siblings],
                  "leaf": None if leaf is None else {"key": leaf.key.hex(),
                                                     "value_hash": leaf.value_hash.hex()}},
        "block": {"hash": answer.block.block_id.hex(), "header": header_data(answer.block)},
        "qc": qc_data(answer.qc),
    }
    if answer.subject is not None and answer.record is not None:
        data["subject"] = _subject_json(answer.subject)
        data["record_kind"] = answer.record.value
    return data


class StateProofQuery(serializers.Serializer[Any]):
    key = HexField(length=32, required=False, help_text="Tree key (64 hex)")
    record = serializers.ChoiceField(choices=[r.value for r in SubjectRecord], required=False,
                                     help_text="Instead of key: this record of a subject")
    subject_kind = serializers.ChoiceField(choices=SUBJECT_KINDS, required=False)
    subject_value = serializers.CharField(max_length=300, required=False)
    version = serializers.IntegerField(min_value=0, max_value=_MAX_VERSION, required=False,
                                       help_text="Default: the latest provable version")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        by_subject = {"record", "subject_kind", "subject_value"} & set(attrs)
        if "key" in attrs and by_subject:
            raise ValidationError({"key": ["Give either key, or record with subject_kind and "
                                           "subject_value, not both."]})
        if "key" not in attrs:
            missing = {"record", "subject_kind", "subject_value"} - by_subject
            if missing:
                raise ValidationError({name: ["Required without key."]
                                       for name in sorted(missing)})
            try:
                attrs["subject"] = subject_of(attrs["subject_kind"], attrs["subject_value"])
            except ValueError as error:
                raise ValidationError({"subject_value": [str(error)]}) from None
            attrs["record"] = SubjectRecord(attrs["record"])
            attrs["key"] = subject_key(attrs["record"], attrs["subject"])
        return attrs


class StateProofView(ApiView):
    """A state value at a version with its inclusion or non-inclusion proof, the header of
    the block committing to the root, and that block's QC."""

    permission_classes = [requires(Capability.READ_LEDGER)]

    @extend_schema(tags=["state"], operation_id="getStateProof",
                   summary="Verifiable state value (proof + header + QC)",
                   parameters=[StateProofQuery],
                   responses={200: StateProofSerializer, **PROOF_ERRORS})
    def get(self, request: Request) -> Response:
        query = StateProofQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        try:
            answer = state_proof(key=params["key"], version=params.get("version"),
                                 subject=params.get("subject"), record=params.get("record"))
        except StateUnavailable as error:
            raise unavailable(error) from None
        return Response(proof_data(answer))


def _path_subject(kind: str, value: str) -> Subject:
    try:
        return subject_of(kind, value)
    except ValueError as error:
        raise ValidationError({"value": [str(error)]}) from None


SUBJECT_PARAMETERS = [
    OpenApiParameter("kind", str, OpenApiParameter.PATH, enum=list(SUBJECT_KINDS),
                     description="Entity kind, or validator"),
    OpenApiParameter("value", str, OpenApiParameter.PATH,
                     description="Entity value (IP, CIDR, host, account) or validator id"),
]


class EntitySerializer(serializers.Serializer[Any]):
    subject = SubjectSerializer()
    version = serializers.IntegerField()
    reputation = RecordSerializer(allow_null=True,
                                  help_text="Risk record; null: full reputation")
    quarantine = RecordSerializer(allow_null=True, help_text="null: not quarantined")
    reputation_proof = StateProofSerializer()
    quarantine_proof = StateProofSerializer()


class EntityView(ApiView):
    """A subject's reputation and quarantine records at the latest provable version, each
    with its proof."""

    permission_classes = [requires(Capability.READ_INVESTIGATIONS)]

    @extend_schema(tags=["state"], operation_id="getEntity",
                   summary="Reputation and quarantine of an entity or validator",
                   parameters=SUBJECT_PARAMETERS,
                   responses={200: EntitySerializer, **PROOF_ERRORS})
    def get(self, request: Request, kind: str, value: str) -> Response:
        subject = _path_subject(kind, value)
        try:
            answers = {record: state_proof(key=subject_key(record, subject), subject=subject,
                                           record=record)
                       for record in SubjectRecord}
        except StateUnavailable as error:
            raise unavailable(error) from None
        reputation = answers[SubjectRecord.REPUTATION]
        quarantine = answers[SubjectRecord.QUARANTINE]
        return Response({
            "subject": _subject_json(subject), "version": reputation.version,
            "reputation": record_json(reputation.value),
            "quarantine": record_json(quarantine.value),
            "reputation_proof": proof_data(reputation),
            "quarantine_proof": proof_data(quarantine),
        })


class HistoryItemSerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField(help_text="Height whose execution wrote this value")
    value = HexField(allow_null=True, help_text="null: deleted at this version")
    record = RecordSerializer(allow_null=True)


class HistoryQuery(serializers.Serializer[Any]):
    record = serializers.ChoiceField(choices=[r.value for r in SubjectRecord],
                                     default=SubjectRecord.REPUTATION.value)


@extend_schema_view(get=extend_schema(
    tags=["state"], operation_id="listEntityHistory",
    summary="Every change of an entity's reputation (or quarantine) record, newest first",
    parameters=[*SUBJECT_PARAMETERS, HistoryQuery],
    responses={200: HistoryItemSerializer(many=True),
               **problem_responses(400, 401, 403, 404, 429)}))
class EntityHistoryView(FilteredListView):
    """The versions at which a subject's record changed, with the value written."""

    permission_classes = [requires(Capability.READ_INVESTIGATIONS)]
    serializer_class = HistoryItemSerializer
    # key_hash is fixed by the filter; ordering by it too makes the primary key
    # (key_hash, version) the only index that can give the order.
    cursor_fields = (("key_hash", bytes), ("version", int))

    def get_queryset(self) -> QuerySet[Any]:
        query = HistoryQuery(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        subject = _path_subject(self.kwargs["kind"], self.kwargs["value"])
        return key_history(subject_key(SubjectRecord(query.validated_data["record"]), subject))

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        items = [{"version": row.version,
                  "value": None if row.value is None else bytes(row.value).hex(),
                  "record": record_json(None if row.value is None else bytes(row.value))}
                 for row in page or []]
        return self.get_paginated_response(items)
