"""Read endpoints over the ledger: blocks, transactions, evidence, validators.

Views only declare; the reads are in :mod:`apps.api.queries`, the filters in
:mod:`apps.api.filtersets`, the page shape in :mod:`apps.api.pagination`.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api import queries
from apps.api.base import ApiListView, ApiView
from apps.api.errors import problem_responses
from apps.api.filtersets import EvidenceFilterSet, FilterSet, TransactionFilterSet
from apps.api.pagination import KeysetPagination
from apps.api.permissions import requires
from apps.api.roles import Capability
from apps.api.serializers import (
    BlockDetailSerializer,
    BlockSerializer,
    EvidenceDetailSerializer,
    EvidenceSerializer,
    TransactionDetailSerializer,
    TransactionSerializer,
    ValidatorSerializer,
    block_item,
    evidence_item,
    transaction_item,
    validator_item,
)

READ_ERRORS = problem_responses(400, 401, 403, 429)
DETAIL_ERRORS = problem_responses(400, 401, 403, 404, 429)


class FilteredListView(ApiListView):
    pagination_class = KeysetPagination
    filterset_class: type[FilterSet] | None = None
    # Builds one item from a row dict (fast path); None: the serializer does.
    item: Any = None

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if self.item is None:
            return super().list(request, *args, **kwargs)
        rows = self.paginate_queryset(self.filter_queryset(self.get_queryset())) or []
        build = self.item
        return self.get_paginated_response([build(row) for row in rows])

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.filterset_class is None:
            return queryset
        params = self.request.query_params
        # No filter asked for (the usual dashboard page): skip building the serializer.
        if not any(name in params for name in self.filterset_class._declared_fields):
            return queryset
        filterset = self.filterset_class(data=self.request.query_params,
                                         context={"request": self.request})
        filterset.is_valid(raise_exception=True)
        return filterset.apply(queryset)


def _identifier(parse: Any, identifier: str, *args: str) -> Any:
    try:
        return parse(identifier, *args)
    except queries.BadIdentifier as error:
        raise ValidationError({"id": [str(error)]}) from None


@extend_schema_view(get=extend_schema(
    tags=["ledger"], operation_id="listBlocks", summary="Committed blocks, newest first",
    responses={200: BlockSerializer(many=True), **READ_ERRORS}))
class BlockListView(FilteredListView):
    """Blocks by height, newest first, each with its commit QC. Keyset pages."""

    permission_classes = [requires(Capability.READ_LEDGER)]
    serializer_class = BlockSerializer
    item = staticmethod(block_item)
    cursor_fields = (("height", int),)

    def get_queryset(self) -> QuerySet[Any]:
        return queries.block_rows()


class BlockDetailView(ApiView):
    """A block with its full header (enough to recompute its hash), justify QC and commit
    QC."""

    permission_classes = [requires(Capability.READ_LEDGER)]

    @extend_schema(
        tags=["ledger"], operation_id="getBlock",
        summary="One block by height or hash, with its header and QCs",
        parameters=[OpenApiParameter("block_id", str, OpenApiParameter.PATH,
                                     description="Height (digits) or hash (64 hex)",
                                     pattern=r"^([0-9]{1,18}|[0-9a-fA-F]{64})$")],
        responses={200: BlockDetailSerializer, **DETAIL_ERRORS})
    def get(self, request: Request, block_id: str) -> Response:
        _identifier(queries.parse_block_identifier, block_id)
        row = queries.find_block(block_id)
        if row is None:
            raise NotFound("No committed block with this height or hash.")
        block = queries.committed_block(row)
        return Response(BlockDetailSerializer(row, context={"block": block}).data)


@extend_schema_view(get=extend_schema(
    tags=["ledger"], operation_id="listTransactions",
    summary="Committed transactions, newest first", parameters=[TransactionFilterSet],
    responses={200: TransactionSerializer(many=True), **READ_ERRORS}))
class TransactionListView(FilteredListView):
    """Transactions of committed blocks, newest first, filtered by kind, producer, block or
    creation time."""

    permission_classes = [requires(Capability.READ_LEDGER)]
    serializer_class = TransactionSerializer
    item = staticmethod(transaction_item)
    filterset_class = TransactionFilterSet
    cursor_fields = (("block_height", int), ("idx", int))

    def get_queryset(self) -> QuerySet[Any]:
        return queries.transaction_rows()


class TransactionDetailView(ApiView):
    """A committed transaction with its wire bytes, signature and public key."""

    permission_classes = [requires(Capability.READ_LEDGER)]

    @extend_schema(
        tags=["ledger"], operation_id="getTransaction", summary="One committed transaction by id",
        parameters=[OpenApiParameter("tx_id", str, OpenApiParameter.PATH,
                                     description="Transaction id (64 hex)",
                                     pattern=r"^[0-9a-fA-F]{64}$")],
        responses={200: TransactionDetailSerializer, **DETAIL_ERRORS})
    def get(self, request: Request, tx_id: str) -> Response:
        row = queries.find_transaction(_identifier(queries.parse_hash, tx_id, "transaction"))
        if row is None:
            raise NotFound("No committed transaction with this id.")
        return Response(TransactionDetailSerializer(row).data)


@extend_schema_view(get=extend_schema(
    tags=["evidence"], operation_id="listEvidence", summary="Committed evidence, newest first",
    parameters=[EvidenceFilterSet],
    responses={200: EvidenceSerializer(many=True), **READ_ERRORS}))
class EvidenceListView(FilteredListView):
    """Committed evidence, newest first, filtered by offender, status, height or kind."""

    permission_classes = [requires(Capability.READ_INVESTIGATIONS)]
    serializer_class = EvidenceSerializer
    item = staticmethod(evidence_item)
    filterset_class = EvidenceFilterSet
    cursor_fields = (("committed_height", int), ("evidence_id", bytes))

    def get_queryset(self) -> QuerySet[Any]:
        return queries.evidence_rows()


class EvidenceDetailView(ApiView):
    """One evidence item with its proof bytes."""

    permission_classes = [requires(Capability.READ_INVESTIGATIONS)]

    @extend_schema(
        tags=["evidence"], operation_id="getEvidence", summary="One evidence item by id",
        parameters=[OpenApiParameter("evidence_id", str, OpenApiParameter.PATH,
                                     description="Evidence id (64 hex)",
                                     pattern=r"^[0-9a-fA-F]{64}$")],
        responses={200: EvidenceDetailSerializer, **DETAIL_ERRORS})
    def get(self, request: Request, evidence_id: str) -> Response:
        row = queries.find_evidence(_identifier(queries.parse_hash, evidence_id, "evidence"))
        if row is None:
            raise NotFound("No evidence with this id.")
        return Response(EvidenceDetailSerializer(row).data)


class ValidatorListView(ApiView):
    """The active validators with power and reputation (basis points)."""

    permission_classes = [requires(Capability.READ_LEDGER)]

    @extend_schema(tags=["status"], operation_id="listValidators", summary="Active validators",
                   responses={200: ValidatorSerializer(many=True), **READ_ERRORS})
    def get(self, request: Request) -> Response:
        return Response([validator_item(row) for row in queries.active_validators()])
