"""The console in the admin, per role: the queue (filters, search, bulk actions through the
services), the case page (operations, timeline), exports of the filtered list, the dashboard
and the offender page. Nothing here edits a case through a ModelAdmin form."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEntry
from apps.console.choices import ActionStatus, CaseSource, CaseStatus
from apps.console.models import Case, CaseAction, CaseNote
from apps.console.projection import do_sync_ledger
from apps.console.services import do_confirm
from tests.console.chain import LiveChain

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QUEUE = "admin:console_case_changelist"


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def cases(chain: LiveChain) -> dict[str, Case]:
    """An evidence case against 203.0.113.9 and two event cases (one a duplicate offender)."""
    first = chain.event("203.0.113.9", severity=6)
    chain.commit([first.wire, chain.event("198.51.100.77", severity=9).wire,
                  chain.event("198.51.100.77", severity=8, category="scan").wire])
    chain.commit([chain.evidence([first.tx_id]).wire])
    do_sync_ledger()
    evidence = Case.objects.get(source=CaseSource.EVIDENCE)
    events = list(Case.objects.filter(source=CaseSource.EVENT).order_by("created_at",
                                                                        "reference"))
    return {"evidence": evidence, "event": events[0], "duplicate": events[1]}


def test_queue_filters_assigned_to_me_and_unassigned(cases: dict[str, Case],
                                                     analyst: User) -> None:
    client = client_for(analyst)
    client.post(reverse(QUEUE), {"action": "assign_to_me",
                                 "_selected_action": [str(cases["evidence"].pk)]})

    mine = client.get(reverse(QUEUE), {"assigned": "me"}).content.decode()
    unassigned = client.get(reverse(QUEUE), {"assigned": "none"}).content.decode()

    assert cases["evidence"].reference in mine and cases["event"].reference not in mine
    assert cases["event"].reference in unassigned
    assert cases["evidence"].reference not in unassigned


@pytest.mark.parametrize("term_of", [
    lambda case: case.reference,
    lambda case: case.items.get().item_id,
    lambda case: case.items.get().item_id[:12],
    lambda case: "ip:203.0.113.9",
    lambda case: "Evidence against",
])
def test_queue_search_by_id_hash_entity_and_text(cases: dict[str, Case], analyst: User,
                                                 term_of: Any) -> None:
    page = client_for(analyst).get(reverse(QUEUE), {"q": term_of(cases["evidence"])})

    assert page.status_code == 200
    assert cases["evidence"].reference in page.content.decode()
    assert cases["event"].reference not in page.content.decode()


def test_bulk_actions_call_the_services_and_record_who(cases: dict[str, Case],
                                                       analyst: User) -> None:
    client = client_for(analyst)
    selected = [str(cases["event"].pk), str(cases["duplicate"].pk)]

    client.post(reverse(QUEUE), {"action": "merge_into_oldest",
                                 "_selected_action": selected})
    client.post(reverse(QUEUE), {"action": "dismiss_false_positive",
                                 "_selected_action": [str(cases["event"].pk)]})

    merged = Case.objects.get(pk=cases["duplicate"].pk)
    assert merged.merged_into_id == cases["event"].pk and merged.closure_reason == "duplicate"
    primary = Case.objects.get(pk=cases["event"].pk)
    assert primary.items.count() == 2 and primary.status == CaseStatus.DISMISSED
    assert primary.status_changes.last().actor_name == "alice"
    assert AuditEntry.objects.filter(action="console.case.merge", actor="user:alice").exists()


def test_viewer_cannot_see_the_queue_and_analyst_cannot_edit_a_case_form(
        cases: dict[str, Case], viewer: User, analyst: User) -> None:
    assert client_for(viewer).get(reverse(QUEUE)).status_code == 403
    client = client_for(analyst)
    page = client.get(reverse("admin:console_case_change", args=[cases["evidence"].pk]))
    assert page.status_code == 200 and 'name="title"' not in page.content.decode()
    edited = client.post(reverse("admin:console_case_change", args=[cases["evidence"].pk]),
                         {"title": "changed"})
    assert edited.status_code == 403
    assert client.get(reverse("admin:console_case_add")).status_code == 403


def test_case_page_operations_and_timeline(cases: dict[str, Case], analyst: User,
                                           mempool: Any) -> None:
    client = client_for(analyst)
    case = cases["evidence"]

    def operate(name: str, **data: Any) -> None:
        response = client.post(reverse("admin:console_case_operation", args=[case.pk, name]),
                               data)
        assert response.status_code == 302

    operate("triage")
    operate("note", body="pcap shows a credential spray")
    operate("tags", add="T1110.003, ssh", remove="")
    operate("tags", add="T999", remove="")  # refused: not an ATT&CK id
    operate("classify", severity="critical", tlp="TLP:RED")
    operate("confirm", quarantine="on", hours="12", comment="spray")

    case.refresh_from_db()
    assert case.status == CaseStatus.CONFIRMED and case.severity == "critical"
    assert sorted(case.tags.values_list("name", flat=True)) == ["T1110.003", "ssh"]
    assert CaseNote.objects.filter(case=case, author_name="alice").exists()
    action = CaseAction.objects.get(case=case)
    assert action.status == ActionStatus.PENDING and action.entity == "ip:203.0.113.9"

    page = client.get(reverse("admin:console_case_change", args=[case.pk])).content.decode()
    for text in ["pcap shows a credential spray", "new \u2192 triaging",
                 "triaging \u2192 confirmed", "Quarantine ip:203.0.113.9: pending",
                 "brute_force by ip:203.0.113.9", "artifacts evidence committed"]:
        assert text in page, text


def test_exports_of_the_filtered_list(cases: dict[str, Case], analyst: User) -> None:
    client = client_for(analyst)
    export = reverse("admin:console_case_export")

    table = client.get(export, {"format": "csv", "source": "event", "queue": "all"})
    rows = list(csv.DictReader(io.StringIO(table.content.decode())))
    listing = json.loads(client.get(export, {"format": "json", "q": "ip:203.0.113.9"}).content)

    assert table["Content-Type"].startswith("text/csv")
    assert sorted(row["reference"] for row in rows) == sorted(
        [cases["event"].reference, cases["duplicate"].reference])
    assert [case["reference"] for case in listing["cases"]] == [cases["evidence"].reference]
    assert client.get(export, {"format": "xml"}).status_code == 400


def test_stix_bundle_holds_confirmed_indicators_only(cases: dict[str, Case],
                                                     analyst: User) -> None:
    do_confirm(case_id=cases["event"].pk, acting_user=analyst, quarantine=False)

    bundle = json.loads(client_for(analyst).get(reverse("admin:console_case_export"), {
        "format": "stix", "queue": "all"}).content)

    indicators = [item for item in bundle["objects"] if item["type"] == "indicator"]
    assert [item["pattern"] for item in indicators] == [
        "[ipv4-addr:value = '198.51.100.77']"]


def test_dashboard_and_offender_pages_render_with_data(cases: dict[str, Case],
                                                       analyst: User, mempool: Any,
                                                       chain: LiveChain) -> None:
    do_confirm(case_id=cases["evidence"].pk, acting_user=analyst)
    chain.commit_mempool()
    client = client_for(analyst)

    dashboard = client.get(reverse("admin:console_dashboard"))
    data = client.get(reverse("admin:console_dashboard_data")).json()
    offender = client.get(reverse("admin:console_offender", args=["ip", "203.0.113.9"]))

    assert dashboard.status_code == 200 and b"chart.umd.min.js" in dashboard.content
    assert data["tip_height"] == chain.height and data["events"]["total"] == 3
    assert data["top_offenders"][0]["value"] == "198.51.100.77"
    assert sum(data["commit_rate"]["blocks"]) == chain.height + 1
    assert offender.status_code == 200
    assert b'id="quarantine-status">quarantined' in offender.content
    assert b"reputation-series" in offender.content
