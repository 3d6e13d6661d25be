"""The ledger explorer and validators pages: read-only for everyone, with verification status
recomputed from the rows (and shown failing when a row is tampered with)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse

from apps.node.models import NodeStatus
from cybermesh.protocol.genesis import genesis_document
from tests.console.chain import CHAIN_ID, LiveChain

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def root() -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.org", "pw-1234567")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def genesis(settings: Any, tmp_path: Path, chain: LiveChain) -> Path:
    document = genesis_document(
        chain_id=CHAIN_ID, genesis_time_ms=chain.genesis_ms,
        validators=[(v.validator_id, v.public_key, v.power, v.address)
                    for v in chain.builder.validator_set])
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(document))
    settings.CLUSTER_TOPOLOGY = str(path)
    return path


def _block_page(client: Client, height: int) -> str:
    response = client.get(reverse("admin:ledger_block_change", args=[height]))
    assert response.status_code == 200
    return response.content.decode()


def test_block_page_verifies_signatures_and_state_against_the_genesis_set(
        chain: LiveChain, genesis: Path, root: Client) -> None:
    event = chain.event("192.0.2.1")
    chain.commit([event.wire])
    chain.commit()

    page = _block_page(root, 1)

    assert 'id="verification-status">verified' in page
    assert "certificates (quorum of valid signatures) and state root recomputed" in page
    assert event.tx_id.hex() in page  # the transaction links to its own page


def test_a_tampered_block_row_fails_verification(chain: LiveChain, genesis: Path,
                                                 root: Client) -> None:
    chain.commit([chain.event("192.0.2.1").wire])
    with connection.cursor() as cursor:  # what an attacker with database access would do
        cursor.execute("UPDATE blocks SET proposer_id = 'mallory' WHERE height = 1")

    page = _block_page(root, 1)

    assert 'id="verification-status">FAILED' in page
    assert "block_hash" in page


def test_without_a_genesis_the_structural_checks_run_and_say_what_was_not_checked(
        chain: LiveChain, root: Client) -> None:
    chain.commit([chain.event("192.0.2.1").wire])
    with connection.cursor() as cursor:
        cursor.execute("UPDATE blocks SET tx_root = %s WHERE height = 1", [bytes(32)])

    page = _block_page(root, 1)

    assert 'id="verification-status">FAILED' in page
    assert "not checked: no genesis file" in page


def test_transaction_page_rechecks_signature_and_inclusion(chain: LiveChain,
                                                          root: Client) -> None:
    event = chain.event("192.0.2.1")
    chain.commit([chain.event("192.0.2.2").wire, event.wire])
    url = reverse("admin:ledger_transaction_detail", args=[event.tx_id.hex()])

    good = root.get(url).content.decode()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE transactions SET payload = %s WHERE tx_id = %s",
                       [event.wire[:-1] + bytes([event.wire[-1] ^ 1]), event.tx_id])
    bad = root.get(url).content.decode()

    assert 'id="verification-status">verified' in good and "192.0.2.1" in good
    assert "entry 1 of 2" in good
    assert 'id="verification-status">FAILED' in bad
    assert root.get(reverse("admin:ledger_transaction_detail",
                            args=["00" * 32])).status_code == 404


def test_transaction_list_filters_and_pages_by_key(chain: LiveChain, root: Client) -> None:
    for index in range(3):
        chain.commit([chain.event(f"192.0.2.{index + 1}").wire])
    url = reverse("admin:ledger_transaction_changelist")

    listed = root.get(url, {"kind": "security_event"}).content.decode()
    older = root.get(url, {"before": "3.0"}).content.decode()

    assert listed.count("security_event</td>") == 3
    assert older.count("security_event</td>") == 2
    assert root.get(url, {"before": "x"}).status_code == 404


def test_nobody_can_edit_the_ledger(chain: LiveChain, root: Client) -> None:
    chain.commit([chain.event("192.0.2.1").wire])
    for page in ("ledger_block", "ledger_outboxmessage", "validators_validator",
                 "evidence_evidence", "state_stateversion", "mempool_mempooltransaction",
                 "audit_auditentry"):
        assert root.get(reverse(f"admin:{page}_changelist")).status_code == 200, page
        assert root.get(reverse(f"admin:{page}_add")).status_code == 403, page
    assert root.post(reverse("admin:ledger_block_delete", args=[1]),
                     {"post": "yes"}).status_code == 403


def test_validators_page_shows_health_score_and_pending_governance(
        chain: LiveChain, root: Client, settings: Any) -> None:
    settings.NODE_ID = "v0"
    NodeStatus.objects.create(node_id="v0", node_type="validator", height=chain.height,
                              synced=True, voting=True, peers=[
                                  {"id": "v1", "connected": True, "score": 97.5,
                                   "address": "127.0.0.1:7001"},
                                  {"id": "v2", "connected": False, "score": -3.0,
                                   "address": "127.0.0.1:7002"}])

    page = root.get(reverse("admin:validators_validator_changelist")).content.decode()

    assert "this node" in page and "connected" in page and "disconnected" in page
    assert "97.50" in page and "-3.00" in page
    assert "Governance changes pending for the next epoch" in page
    assert "100.00%" in page


def test_analyst_sees_the_explorer_viewer_sees_no_evidence(chain: LiveChain, analyst: User,
                                                           viewer: User) -> None:
    chain.commit([chain.event("192.0.2.1").wire])
    analyst_client, viewer_client = Client(), Client()
    analyst_client.force_login(analyst)
    viewer_client.force_login(viewer)

    assert analyst_client.get(reverse("admin:ledger_block_change", args=[1])).status_code == 200
    assert analyst_client.get(reverse("admin:evidence_evidence_changelist")).status_code == 200
    assert viewer_client.get(reverse("admin:ledger_block_changelist")).status_code == 200
    assert viewer_client.get(reverse("admin:evidence_evidence_changelist")).status_code == 403
