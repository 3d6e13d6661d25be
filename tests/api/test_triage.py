"""Evidence triage through the REST API, on PostgreSQL: the console's workflow (its services,
status machine and permissions), idempotent POSTs, audited writes and typed refusals.

Committed evidence opens a case (the console's ledger sync); an analyst triages, annotates and
confirms it; the quarantine is a signed policy transaction pending in the mempool, and only the
block that commits it quarantines the offender."""

from __future__ import annotations

from typing import Any

import pytest

from apps.audit.models import AuditEntry
from apps.console.models import Case, CaseAction, CaseNote, CaseStatusChange
from apps.console.projection import do_sync_ledger
from apps.mempool.models import MempoolTransaction
from tests.api.conftest import ClientFor
from tests.api.pages import walk
from tests.console.chain import LiveChain
from tests.console.conftest import console_key, mempool  # noqa: F401 - fixtures

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

OFFENDER = "203.0.113.77"


@pytest.fixture
def case(db: None) -> Case:
    """A case opened by committed evidence against OFFENDER."""
    chain = LiveChain()
    event = chain.event(OFFENDER, severity=5)
    chain.commit([event.wire])
    chain.commit([chain.evidence([event.tx_id]).wire])
    do_sync_ledger()
    found = Case.objects.get()
    found.chain = chain  # type: ignore[attr-defined]  # the test commits the mempool with it
    return found


def post(client: Any, url: str, body: dict[str, Any] | None = None, **headers: str) -> Any:
    return client.post(url, body or {}, format="json", **headers)


def test_an_analyst_confirms_and_the_quarantine_is_pending_until_a_block_commits_it(
        client_for: ClientFor, case: Case, mempool: Any) -> None:  # noqa: F811
    analyst = client_for("analyst")
    url = f"/api/v1/cases/{case.reference}/"
    shown = analyst.get(url).json()
    assert (shown["status"], shown["offender"], shown["assignee"]) == (
        "new", f"ip:{OFFENDER}", None)
    assert analyst.get(f"/api/v1/cases/{case.id}/").json() == shown

    triaged = post(analyst, url + "triage/").json()["case"]
    assert (triaged["status"], triaged["assignee"]) == ("triaging", "analyst-user")
    noted = post(analyst, url + "notes/", {"body": "  beaconing every 60 s  "}).json()
    assert noted["note"]["body"] == "beaconing every 60 s"
    assert CaseNote.objects.get(case=case).author_name == "analyst-user"

    answer = post(analyst, url + "confirm/", {"quarantine_hours": 2, "comment": "worm"},
                  HTTP_X_REQUEST_ID="req-confirm-1")
    assert answer.status_code == 200, answer.content
    confirmed = answer.json()
    assert confirmed["case"]["status"] == "confirmed"
    assert confirmed["case"]["closure_reason"] == "true_positive"
    action = confirmed["action"]
    assert (action["kind"], action["entity"], action["status"]) == (
        "quarantine", f"ip:{OFFENDER}", "pending")
    assert confirmed["case"]["actions"] == [action]
    # Nothing shared was edited: the decision waits in the mempool as a signed transaction.
    assert MempoolTransaction.objects.filter(tx_id=bytes.fromhex(action["tx_id"])).exists()
    entity_url = f"/api/v1/entities/ip/{OFFENDER}/"
    assert analyst.get(entity_url).json()["quarantine"] is None
    assert analyst.get(f"/api/v1/submissions/{action['tx_id']}/").json()["status"] == \
        "pending"

    case.chain.commit_mempool()  # type: ignore[attr-defined]

    settled = analyst.get(url).json()["actions"][0]
    assert settled["status"] == "committed" and settled["block_height"] == 3
    # The state after block 3 is provable once block 4's header carries its root.
    case.chain.commit([])  # type: ignore[attr-defined]
    quarantine = analyst.get(entity_url).json()["quarantine"]
    assert quarantine and quarantine["fields"]["cause"] == action["tx_id"]
    assert [c.to_status for c in CaseStatusChange.objects.filter(case=case)] == [
        "triaging", "confirmed"]
    audited = AuditEntry.objects.filter(request_id="req-confirm-1")
    assert {"console.case.confirm", "console.action.signed"} <= {a.action for a in audited}


def test_dismissal_needs_a_reason_and_reopening_needs_an_operator(
        client_for: ClientFor, case: Case) -> None:
    analyst, operator = client_for("analyst"), client_for("operator")
    url = f"/api/v1/cases/{case.reference}/"
    missing = post(analyst, url + "dismiss/")
    assert missing.status_code == 400 and "reason" in missing.json()["errors"]
    assert post(analyst, url + "dismiss/", {"reason": "true_positive"}).status_code == 400
    dismissed = post(analyst, url + "dismiss/", {"reason": "false_positive",
                                                 "comment": "lab scanner"})
    assert dismissed.json()["case"]["status"] == "dismissed"
    assert dismissed.json()["case"]["closure_reason"] == "false_positive"

    refused = post(analyst, url + "confirm/", {"quarantine": False})
    assert refused.status_code == 409
    body = refused.json()
    assert (body["code"], body["reason"]) == ("case_state_conflict", "bad_transition")
    assert refused["Content-Type"] == "application/problem+json"
    assert AuditEntry.objects.filter(action="api.case.confirm", outcome="failure").exists()

    assert post(analyst, url + "reopen/", {"comment": "new intel"}).status_code == 403
    assert post(operator, url + "reopen/").status_code == 400  # a comment is required
    reopened = post(operator, url + "reopen/", {"comment": "new intel"})
    assert reopened.status_code == 200
    assert reopened.json()["case"]["status"] == "triaging"
    assert reopened.json()["case"]["closed_at"] is None
    assert post(operator, url + "reopen/", {"comment": "again"}).status_code == 409


def test_assigning_names_an_active_user_or_nobody(client_for: ClientFor, case: Case) -> None:
    analyst = client_for("analyst")
    url = f"/api/v1/cases/{case.reference}/assign/"
    unknown = post(analyst, url, {"assignee": "mallory"})
    assert unknown.status_code == 400 and "assignee" in unknown.json()["errors"]
    assert post(analyst, url, {"assignee": "operator-user"}).json()["case"]["assignee"] == \
        "operator-user"
    assert post(analyst, url, {"assignee": None}).json()["case"]["assignee"] is None
    assert post(analyst, url, {}).status_code == 400  # null must be said, not implied


def test_a_retried_confirmation_is_answered_once(client_for: ClientFor, case: Case,
                                                 mempool: Any) -> None:  # noqa: F811
    analyst = client_for("analyst")
    url = f"/api/v1/cases/{case.reference}/confirm/"
    first = post(analyst, url, {"quarantine_hours": 1}, HTTP_IDEMPOTENCY_KEY="confirm-42")
    again = post(analyst, url, {"quarantine_hours": 1}, HTTP_IDEMPOTENCY_KEY="confirm-42")
    assert first.status_code == again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert CaseAction.objects.filter(case=case).count() == 1
    other = post(analyst, url, {"quarantine_hours": 3}, HTTP_IDEMPOTENCY_KEY="confirm-42")
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    # Without the key, a second confirmation is refused by the workflow, not repeated.
    assert post(analyst, url, {"quarantine_hours": 1}).status_code == 409


def test_without_a_signing_key_a_confirmation_changes_nothing(
        client_for: ClientFor, case: Case, settings: Any) -> None:
    settings.CONSOLE_SIGNING_KEY_PATH = "/nonexistent/console-producer.json"
    answer = post(client_for("analyst"), f"/api/v1/cases/{case.reference}/confirm/")
    assert answer.status_code == 503
    assert answer.json()["reason"] == "signer_unavailable"
    case.refresh_from_db()
    assert case.status == "new" and not CaseAction.objects.exists()
    # Declining the quarantine needs no key.
    confirmed = post(client_for("analyst"), f"/api/v1/cases/{case.reference}/confirm/",
                     {"quarantine": False})
    assert confirmed.json()["case"]["status"] == "confirmed"
    assert confirmed.json()["action"] is None


def test_a_case_is_named_by_its_reference_or_uuid(client_for: ClientFor, case: Case) -> None:
    analyst = client_for("analyst")
    assert analyst.get("/api/v1/cases/CM-0123456789ab/").status_code == 404
    bad = analyst.get("/api/v1/cases/case-1/")
    assert bad.status_code == 400 and "case_id" in bad.json()["errors"]
    assert post(analyst, "/api/v1/cases/../triage/").status_code in (400, 404)


def test_a_refusal_echoing_a_nul_is_answered_again_not_stored(client_for: ClientFor,
                                                               db: None) -> None:
    # Found by the schema fuzzer: jsonb cannot store U+0000, which the problem body's
    # "instance" (the path) carried; storing the answer for the Idempotency-Key was a 500.
    analyst = client_for("analyst")
    for _ in range(2):
        answer = post(analyst, "/api/v1/cases/%00/triage/", HTTP_IDEMPOTENCY_KEY="nul-1")
        assert answer.status_code == 400 and "case_id" in answer.json()["errors"]
        assert not answer.has_header("Idempotent-Replayed")


def _cases(count: int) -> list[Case]:
    from datetime import timedelta

    from django.utils import timezone

    start = timezone.now() - timedelta(hours=1)
    made = []
    for index in range(count):
        at = start + timedelta(minutes=index // 2)  # pairs share a creation time
        made.append(Case.objects.create(
            reference=f"CM-{index:012x}", title=f"case {index}", source="evidence",
            severity="high" if index % 3 == 0 else "low", offender_kind="ip",
            offender_value=f"192.0.2.{index % 4}", height=index, first_seen_at=at,
            created_at=at, updated_at=at, status_changed_at=at))
    return made


def test_the_queue_pages_newest_first_and_filters_like_the_admin(
        client_for: ClientFor, tokens: dict[str, str]) -> None:
    from django.contrib.auth.models import User

    made = _cases(9)
    analyst = client_for("analyst")
    expected = sorted(made, key=lambda case: (case.created_at, case.id), reverse=True)
    listed = walk(analyst, "/api/v1/cases/?limit=2")
    assert [item["reference"] for item in listed] == [case.reference for case in expected]
    assert listed[0] == {key: value for key, value in analyst.get(
        f"/api/v1/cases/{listed[0]['reference']}/").json().items() if key != "actions"}

    post(analyst, f"/api/v1/cases/{made[0].reference}/triage/")  # assigned to the analyst
    Case.objects.filter(pk=made[1].pk).update(
        assignee=User.objects.get(username="operator-user"))
    mine = walk(analyst, "/api/v1/cases/?assignee=me")
    assert [item["reference"] for item in mine] == [made[0].reference]
    assert mine[0]["status"] == "triaging"
    assert [i["reference"] for i in walk(analyst, "/api/v1/cases/?assignee=operator-user")] \
        == [made[1].reference]
    assert len(walk(analyst, "/api/v1/cases/?assignee=none&limit=3")) == 7
    assert [i["reference"] for i in walk(analyst, "/api/v1/cases/?status=triaging")] == [
        made[0].reference]
    assert {i["offender"] for i in walk(analyst, "/api/v1/cases/?offender=ip:192.0.2.1")} \
        == {"ip:192.0.2.1"}
    assert {i["severity"] for i in walk(analyst, "/api/v1/cases/?severity=high")} == {"high"}
    for bad in ("status=open", "severity=urgent", "assignee=a%20b", "offender=nokind",
                "cursor=AAAA"):
        assert analyst.get(f"/api/v1/cases/?{bad}").status_code == 400, bad
