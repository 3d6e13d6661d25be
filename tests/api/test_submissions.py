"""Submitting signed transactions: per-kind permissions, mempool admission, pending until
committed, Idempotency-Key, body limits, and an audit entry for every attempt."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.api.models import IdempotencyKey
from apps.audit.models import AuditEntry
from apps.ledger.models import Transaction as LedgerTransaction
from apps.mempool.admission import reset_default_pipeline
from apps.mempool.models import MempoolTransaction
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.txs import (
    Approval,
    Entity,
    GovernanceChange,
    GovernanceOperation,
    ParameterName,
    PolicyChange,
    PolicyOperation,
    SecurityEvent,
    Transaction,
    sign_transaction,
)
from tests.api.conftest import ClientFor

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

CHAIN = "api-test"
PRODUCER = SigningKey.from_seed(bytes([9]) * 32)
STRANGER = SigningKey.from_seed(bytes([10]) * 32)
NOW_MS = 1_700_000_000_000
URL = "/api/v1/submissions/"


@pytest.fixture(autouse=True)
def mempool(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The node's mempool admits producer soc-1 (policy, governance) on chain api-test, with
    the wall clock pinned so the signed creation times are fresh."""
    path = tmp_path / "producers.json"
    path.write_text(json.dumps({"producers": [{
        "producer_id": "soc-1", "keys": [{"public_key": PRODUCER.public_key.raw.hex()}],
        "kinds": ["policy", "governance", "security_event"], "rate_per_second": 100,
        "burst": 100, "max_pending": 1000}]}))
    settings.MEMPOOL_PRODUCERS_PATH = str(path)
    settings.MEMPOOL_CHAIN_ID = CHAIN
    monkeypatch.setattr("apps.api.submit_views.time.time_ns", lambda: NOW_MS * 1_000_000)
    reset_default_pipeline()
    yield
    reset_default_pipeline()


def policy_tx(nonce: int = 1, key: SigningKey = PRODUCER) -> Transaction:
    change = PolicyChange(PolicyOperation.QUARANTINE, Entity.of("ip", "192.0.2.7"), "worm",
                          expires_at_ms=NOW_MS + 3_600_000)
    return sign_transaction(key, change, chain_id=CHAIN, producer_id="soc-1", nonce=nonce,
                            created_at_ms=NOW_MS - 10)


def governance_tx(nonce: int = 100) -> Transaction:
    change = GovernanceChange(GovernanceOperation.CHANGE_PARAMETER, 0,
                              (Approval("v0", bytes(64)),),
                              parameter=ParameterName.TX_MAX_AGE_MS, value=60_000)
    return sign_transaction(PRODUCER, change, chain_id=CHAIN, producer_id="soc-1",
                            nonce=nonce, created_at_ms=NOW_MS - 10)


def event_tx() -> Transaction:
    event = SecurityEvent(source="ids", offender=Entity.of("ip", "192.0.2.8"), category="scan",
                          severity=5, confidence_bps=5000, observed_at_ms=NOW_MS - 20,
                          detector="det", payload_ref="f" * 64)
    return sign_transaction(PRODUCER, event, chain_id=CHAIN, producer_id="soc-1", nonce=7,
                            created_at_ms=NOW_MS - 10)


def body(transaction: Transaction | bytes) -> dict[str, str]:
    raw = transaction if isinstance(transaction, bytes) else transaction.wire
    return {"tx": base64.b64encode(raw).decode()}


def audits(outcome: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action="api.submit_transaction", outcome=outcome))


def test_an_operator_submits_a_policy_change_that_stays_pending_until_committed(
        client_for: ClientFor) -> None:
    transaction = policy_tx()
    response = client_for("operator").post(URL, body(transaction), format="json")
    assert response.status_code == 202, response.content
    answer = response.json()
    assert answer == {"tx_id": transaction.tx_id.hex(), "kind": "policy", "producer_id": "soc-1",
                      "admission": "admitted", "status": "pending",
                      "status_url": f"/api/v1/submissions/{transaction.tx_id.hex()}/"}
    assert MempoolTransaction.objects.filter(tx_id=transaction.tx_id).exists()
    viewer = client_for("viewer")
    assert viewer.get(answer["status_url"]).json() == {
        "tx_id": transaction.tx_id.hex(), "status": "pending", "block_height": None}
    # Once a block commits it (here: the row a commit writes), the status follows.
    LedgerTransaction.objects.create(block_height=42, idx=0, tx_id=transaction.tx_id,
                                     kind="policy", payload=transaction.wire,
                                     content_hash=transaction.wire_hash)
    assert viewer.get(answer["status_url"]).json()["status"] == "committed"
    [entry] = audits("success")
    assert entry.actor == "user:operator-user" and entry.target == f"tx:{answer['tx_id']}"
    assert entry.details["kind"] == "policy" and entry.details["via"]
    assert entry.request_id == response["X-Request-ID"]


def test_a_resubmission_is_a_duplicate_not_a_second_transaction(client_for: ClientFor) -> None:
    client = client_for("operator")
    client.post(URL, body(policy_tx()), format="json")
    again = client.post(URL, body(policy_tx()), format="json")
    assert again.status_code == 202 and again.json()["admission"] == "duplicate"
    assert MempoolTransaction.objects.count() == 1


def test_governance_needs_the_admin_role(client_for: ClientFor) -> None:
    response = client_for("operator").post(URL, body(governance_tx()), format="json")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert len(audits("denied")) == 1
    response = client_for("admin").post(URL, body(governance_tx()), format="json")
    assert response.status_code == 202, response.content
    assert response.json()["kind"] == "governance"


def test_roles_without_a_submit_capability_are_refused_before_the_body_is_read(
        client_for: ClientFor) -> None:
    for role in ("viewer", "analyst", "none"):
        assert client_for(role).post(URL, body(policy_tx()), format="json").status_code == 403
    assert client_for(None).post(URL, body(policy_tx()), format="json").status_code == 401
    assert not MempoolTransaction.objects.exists()


def test_other_kinds_bad_bytes_and_bad_signatures_are_422_with_a_reason(
        client_for: ClientFor) -> None:
    client = client_for("admin")
    cases = {
        "kind_not_accepted": body(event_tx()),
        "malformed_encoding": body(b"\xff\x00garbage"),
        "unknown_producer": body(policy_tx(nonce=3, key=STRANGER)),
    }
    reasons = {}
    for expected, payload in cases.items():
        response = client.post(URL, payload, format="json")
        assert response.status_code == 422, (expected, response.content)
        assert response.json()["code"] == "transaction_rejected"
        reasons[expected] = response.json()["reason"]
    assert reasons["kind_not_accepted"] == "kind_not_accepted"
    assert reasons["malformed_encoding"] == "malformed_encoding"
    # soc-1's allowlisted key is PRODUCER: a transaction signed by another key is refused.
    assert reasons["unknown_producer"] == "unknown_producer"
    assert len(audits("failure")) == 3
    assert not MempoolTransaction.objects.exists()


def test_a_bad_body_is_a_validation_error(client_for: ClientFor) -> None:
    client = client_for("operator")
    for payload in ({}, {"tx": "***"}, {"tx": 5}, {"tx": ""}):
        response = client.post(URL, payload, format="json")
        assert response.status_code == 400 and "tx" in response.json()["errors"], payload
    response = client.post(URL, "not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "malformed_request"
    response = client.post(URL, "tx=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and response.json()["code"] == "unsupported_media_type"


def test_an_oversized_body_is_refused_with_413_before_parsing(client_for: ClientFor) -> None:
    response = client_for("operator").post(URL, {"tx": "A" * 200_000}, format="json")
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"


def test_an_idempotency_key_replays_the_first_answer(client_for: ClientFor) -> None:
    client = client_for("operator")
    first = client.post(URL, body(policy_tx()), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    second = client.post(URL, body(policy_tx()), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == second.status_code == 202
    assert second.json() == first.json() and second["Idempotent-Replayed"] == "true"
    assert first.json()["admission"] == "admitted"  # the replay did not re-admit
    assert len(audits("success")) == 1


def test_an_idempotency_key_reused_for_another_body_is_422(client_for: ClientFor) -> None:
    client = client_for("operator")
    client.post(URL, body(policy_tx(1)), format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    response = client.post(URL, body(policy_tx(2)), format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert response.status_code == 422 and response.json()["code"] == "idempotency_key_reused"
    assert MempoolTransaction.objects.count() == 1
    # Keys are per user: another user may use the same key for its own request.
    other = client_for("admin").post(URL, body(policy_tx(2)), format="json",
                                     HTTP_IDEMPOTENCY_KEY="k-2")
    assert other.status_code == 202


def test_a_refusal_is_replayed_and_a_request_in_progress_is_409(client_for: ClientFor) -> None:
    client = client_for("operator")
    first = client.post(URL, body(event_tx()), format="json", HTTP_IDEMPOTENCY_KEY="k-3")
    second = client.post(URL, body(event_tx()), format="json", HTTP_IDEMPOTENCY_KEY="k-3")
    assert first.status_code == second.status_code == 422
    assert second.json() == first.json()
    assert second["Content-Type"] == "application/problem+json"
    row = IdempotencyKey.objects.get(key="k-3")
    IdempotencyKey.objects.filter(pk=row.pk).update(status_code=0)  # as if still running
    response = client.post(URL, body(event_tx()), format="json", HTTP_IDEMPOTENCY_KEY="k-3")
    assert response.status_code == 409 and response.json()["code"] == "idempotency_in_progress"


def test_a_bad_idempotency_key_is_a_validation_error(client_for: ClientFor) -> None:
    response = client_for("operator").post(URL, body(policy_tx()), format="json",
                                           HTTP_IDEMPOTENCY_KEY="x" * 201)
    assert response.status_code == 400 and "Idempotency-Key" in response.json()["errors"]


def test_an_unconfigured_mempool_is_503_and_releases_the_key(client_for: ClientFor,
                                                             settings: Any) -> None:
    settings.MEMPOOL_PRODUCERS_PATH = ""
    reset_default_pipeline()
    client = client_for("operator")
    response = client.post(URL, body(policy_tx()), format="json", HTTP_IDEMPOTENCY_KEY="k-4")
    assert response.status_code == 503 and response.json()["code"] == "service_unavailable"
    assert not IdempotencyKey.objects.filter(key="k-4").exists()


def test_submission_status_of_an_unknown_or_malformed_id(client_for: ClientFor) -> None:
    client = client_for("viewer")
    assert client.get(f"/api/v1/submissions/{'ab' * 32}/").status_code == 404
    assert client.get("/api/v1/submissions/xyz/").status_code == 400
