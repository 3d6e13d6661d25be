"""Blocks, transactions and evidence as a dashboard reads them: pages, lookups, filters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from apps.evidence.models import Evidence
from cybermesh.protocol.codec import encode
from cybermesh.protocol.crypto.hashing import sha256
from tests.api.conftest import ClientFor
from tests.api.pages import walk
from tests.ledger.chain import CommittedItem

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def iso(milliseconds: int) -> str:
    """ISO 8601, URL-encoded (the "+" of the offset would read as a space)."""
    return quote(datetime.fromtimestamp(milliseconds / 1000, tz=UTC).isoformat())


def test_blocks_page_newest_first_without_gaps_or_repeats(
        client_for: ClientFor, executed_chain_items: list[CommittedItem]) -> None:
    blocks = walk(client_for("viewer"), "/api/v1/blocks/?limit=3")
    assert [b["height"] for b in blocks] == list(range(9, -1, -1))
    for block, item in zip(reversed(blocks), executed_chain_items, strict=True):
        assert block["hash"] == item.block.block_id.hex()
        assert block["qc"]["block_hash"] == item.block.block_id.hex()
        assert block["result_state_root"] == item.state_root.hex()


def test_a_block_by_height_and_by_hash_carries_a_header_that_hashes_to_its_id(
        client_for: ClientFor, executed_chain_items: list[CommittedItem]) -> None:
    client = client_for("viewer")
    item = executed_chain_items[4]
    by_height = client.get("/api/v1/blocks/4/").json()
    by_hash = client.get(f"/api/v1/blocks/{item.block.block_id.hex().upper()}/").json()
    assert by_height == by_hash
    header = by_height["header"]
    fields = [header["epoch"], header["view"], header["height"],
              bytes.fromhex(header["parent_hash"]), header["proposer"], header["timestamp_ms"],
              bytes.fromhex(header["payload_hash"]), bytes.fromhex(header["tx_root"]),
              bytes.fromhex(header["state_root"]), bytes.fromhex(header["validator_set_hash"]),
              bytes.fromhex(header["justify_qc_digest"]), header["next_validators"]]
    assert sha256(encode(fields)) == item.block.block_id
    assert by_height["justify_qc"]["block_hash"] == item.block.parent_id.hex()
    assert len(by_height["qc"]["signatures"]) == 4


def test_transactions_filter_by_kind_producer_height_and_block_time(
        client_for: ClientFor, executed_chain_items: list[CommittedItem]) -> None:
    client = client_for("viewer")
    everything = walk(client, "/api/v1/transactions/?limit=7")
    expected = [(item.block.height, index) for item in reversed(executed_chain_items)
                for index in reversed(range(len(_records(item))))]
    assert [(t["block_height"], t["index"]) for t in everything] == expected
    kinds = {t["kind"] for t in everything}
    assert kinds <= {"security_event", "policy", "evidence"} and len(kinds) >= 2
    for kind in kinds:
        chosen = walk(client, f"/api/v1/transactions/?kind={kind}&limit=4")
        assert chosen == [t for t in everything if t["kind"] == kind]
    assert walk(client, "/api/v1/transactions/?producer=ai-1") == everything
    assert walk(client, "/api/v1/transactions/?producer=nobody") == []
    assert walk(client, "/api/v1/transactions/?height=3") == [
        t for t in everything if t["block_height"] == 3]
    # Block time: blocks 3..5 inclusive.
    since = iso(executed_chain_items[3].block.timestamp_ms)
    until = iso(executed_chain_items[6].block.timestamp_ms)
    ranged = walk(client, f"/api/v1/transactions/?since={since}&until={until}")
    assert ranged == [t for t in everything if 3 <= t["block_height"] <= 5]
    later = iso(executed_chain_items[-1].block.timestamp_ms + 1)
    assert walk(client, f"/api/v1/transactions/?since={later}") == []


def test_transactions_filter_by_offender_and_severity(
        client_for: ClientFor, executed_chain_items: list[CommittedItem]) -> None:
    client = client_for("viewer")
    everything = walk(client, "/api/v1/transactions/?limit=50")
    events = [t for t in everything if t["kind"] == "security_event"]
    assert events and all(t["offender_id"].startswith("ip:") and 1 <= t["severity"] <= 10
                          for t in events)
    assert all(t["severity"] is None for t in everything if t["kind"] != "security_event")
    offenders = {t["offender_id"] for t in everything if t["offender_id"]}
    assert len(offenders) >= 2
    for offender in offenders:
        chosen = walk(client, f"/api/v1/transactions/?offender={quote(offender)}&limit=2")
        assert chosen == [t for t in everything if t["offender_id"] == offender]
        # Policy changes naming the offender are found too, not only the events.
    assert {t["kind"] for offender in offenders for t in everything
            if t["offender_id"] == offender} >= {"security_event", "policy"}
    for severity in {t["severity"] for t in events}:
        assert walk(client, f"/api/v1/transactions/?severity={severity}&limit=3") == [
            t for t in everything if t["severity"] == severity]
    assert walk(client, "/api/v1/transactions/?offender=ip:192.0.2.250") == []
    for bad in ("severity=0", "severity=11", "severity=high", f"offender={'x' * 301}"):
        response = client.get(f"/api/v1/transactions/?{bad}")
        assert response.status_code == 400, bad
        assert bad.split("=")[0] in response.json()["errors"], response.json()


def _records(item: CommittedItem) -> list[Any]:
    from apps.ledger.payload import decode_payload

    return list(decode_payload(item.block.payload) or ())


def test_a_transaction_detail_has_its_wire_bytes(client_for: ClientFor,
                                                 executed_chain_items: Any) -> None:
    client = client_for("viewer")
    first = client.get("/api/v1/transactions/?limit=1").json()["results"][0]
    detail = client.get(f"/api/v1/transactions/{first['tx_id']}/").json()
    import base64

    from cybermesh.protocol.txs import decode_transaction
    assert decode_transaction(base64.b64decode(detail["payload"])).tx_id.hex() == \
        first["tx_id"]


def test_evidence_filters(client_for: ClientFor, db: None) -> None:
    from django.utils import timezone
    for index, (offender, status) in enumerate([("v1", "committed"), ("v2", "confirmed"),
                                                ("v1", "confirmed")]):
        Evidence.objects.create(evidence_id=bytes([index]) * 32, kind="double_vote",
                                offender_id=offender, view=index, height=index, proof=b"p",
                                status=status, committed_height=10 + index,
                                created_at=timezone.now())
    client = client_for("analyst")
    assert [e["committed_height"] for e in walk(client, "/api/v1/evidence/?limit=1")] == [
        12, 11, 10]
    assert [e["committed_height"] for e in walk(client, "/api/v1/evidence/?offender=v1")] \
        == [12, 10]
    assert [e["offender_id"] for e in walk(client, "/api/v1/evidence/?status=confirmed")] \
        == ["v1", "v2"]
    assert [e["view"] for e in walk(client, "/api/v1/evidence/?height=1")] == [1]
    detail = client.get(f"/api/v1/evidence/{'02' * 32}/").json()
    assert detail["proof"] == "cA==" and detail["offender_id"] == "v1"


def test_fast_list_items_equal_the_documented_serializers(
        client_for: ClientFor, executed_chain_items: Any) -> None:
    from apps.api.serializers import (
        BlockSerializer,
        EvidenceSerializer,
        TransactionSerializer,
        block_item,
        evidence_item,
        transaction_item,
    )
    from apps.ledger.models import Block, Transaction

    Evidence.objects.create(evidence_id=b"\x01" * 32, kind="double_vote", offender_id="v1",
                            view=1, height=1, proof=b"p", committed_height=1,
                            created_at=datetime.now(tz=UTC))
    from apps.api import queries

    for model, serializer, build, plain in (
            (Block, BlockSerializer, block_item, queries.block_rows),
            (Transaction, TransactionSerializer, transaction_item, queries.transaction_rows),
            (Evidence, EvidenceSerializer, evidence_item, queries.evidence_rows)):
        rows = list(model.objects.all()[:20])
        assert rows
        # The endpoints build items from plain rows; the serializers document them.
        assert [build(row) for row in plain()[:20]] == serializer(rows, many=True).data


def test_a_role_change_applies_after_the_permission_cache_expires(
        client_for: ClientFor, settings: Any) -> None:
    from django.contrib.auth.models import Group, User

    from apps.api.permissions import clear_permission_cache
    settings.API_PERMISSION_CACHE_SECONDS = 3600
    client = client_for("viewer")
    assert client.get("/api/v1/evidence/").status_code == 403
    User.objects.get(username="viewer-user").groups.add(Group.objects.get(name="analyst"))
    assert client.get("/api/v1/evidence/").status_code == 403  # cached
    clear_permission_cache()  # what the TTL does after API_PERMISSION_CACHE_SECONDS
    assert client.get("/api/v1/evidence/").status_code == 200


def test_a_role_change_applies_when_only_the_permission_entry_expired(
        client_for: ClientFor, settings: Any) -> None:
    # Token authentication shares one user object between requests (apps.api.permissions.
    # cached_user); Django memoizes permissions on it, which must not outlive the entry.
    from django.contrib.auth.models import Group, User

    from apps.api import permissions
    settings.API_PERMISSION_CACHE_SECONDS = 3600
    client = client_for("viewer")
    assert client.get("/api/v1/evidence/").status_code == 403
    User.objects.get(username="viewer-user").groups.add(Group.objects.get(name="analyst"))
    permissions._cache.clear()  # the permission entry expires; the user object stays cached
    assert client.get("/api/v1/evidence/").status_code == 200


def test_status_and_validators_equal_the_documented_serializers(
        client_for: ClientFor, policy_chain_items: Any) -> None:
    from django.conf import settings as django_settings

    from apps.api import queries
    from apps.api.serializers import StatusSerializer, ValidatorSerializer
    from apps.ledger.models import Block
    from apps.node.models import NodeStatus

    NodeStatus.objects.create(node_id=django_settings.NODE_ID, node_type="validator",
                              height=3, view=4, state_root="ab" * 32, synced=True,
                              peers=[{"id": "v1", "score": 5}])
    client = client_for("viewer")
    validators = queries.active_validators()
    quorum = queries.active_quorum(validators)
    assert quorum is not None
    documented = StatusSerializer({
        "node_id": django_settings.NODE_ID, "node": queries.node_status(),
        "latest_block": Block.objects.order_by("-height").first(), "validators": validators,
        "quorum": {"total_power": quorum.total_power,
                   "max_faulty_power": quorum.max_faulty_power,
                   "quorum_power": quorum.quorum_power}}).data
    assert client.get("/api/v1/status/").json() == documented
    assert client.get("/api/v1/validators/").json() == ValidatorSerializer(
        validators, many=True).data
