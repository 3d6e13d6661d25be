"""The triage flow through the services, on PostgreSQL: committed evidence opens a case, an
analyst confirms it, the quarantine is a signed transaction that is pending in the mempool,
then committed by a block, and the executor (not the console) quarantines the offender."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from apps.audit.models import AuditEntry
from apps.console.actions import submit_actions
from apps.console.choices import ActionStatus, CaseSource, CaseStatus, ClosureReason
from apps.console.errors import ConsoleError, ConsoleProblem
from apps.console.models import Case, CaseAction, CaseStatusChange, IndexedEvent
from apps.console.offenders import offender_profile
from apps.console.projection import do_sync_ledger, sync_lag
from apps.console.services import do_confirm, do_dismiss, do_reopen, do_start_triage
from apps.mempool.models import MempoolTransaction
from cybermesh.protocol.txs import PolicyChange, PolicyOperation, decode_transaction
from tests.console.chain import LiveChain

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

OFFENDER = "203.0.113.66"


def _evidence_case(chain: LiveChain) -> Case:
    event = chain.event(OFFENDER, severity=5)
    chain.commit([event.wire])
    chain.commit([chain.evidence([event.tx_id]).wire])
    do_sync_ledger()
    return Case.objects.get(source=CaseSource.EVIDENCE)


def test_committed_evidence_and_high_severity_events_open_cases_once(chain: LiveChain) -> None:
    low, high = chain.event("198.51.100.1", severity=3), chain.event("198.51.100.2", severity=9)
    chain.commit([low.wire, high.wire])
    chain.commit([chain.evidence([low.tx_id]).wire])

    first = do_sync_ledger()
    again = do_sync_ledger()

    assert (first.from_height, first.to_height, first.events, first.evidence) == (0, 2, 2, 1)
    assert again.to_height is None and sync_lag() == 0
    cases = {case.source: case for case in Case.objects.all()}
    assert set(cases) == {CaseSource.EVENT, CaseSource.EVIDENCE} and Case.objects.count() == 2
    assert cases[CaseSource.EVENT].offender == "ip:198.51.100.2"
    assert cases[CaseSource.EVENT].severity == "critical"
    # Evidence is attributed to the offender the executor confirmed it against.
    assert cases[CaseSource.EVIDENCE].offender == "ip:198.51.100.1"
    assert IndexedEvent.objects.filter(offender_value="198.51.100.1", severity=3).exists()


def test_confirming_quarantines_only_through_a_committed_transaction(
        chain: LiveChain, analyst: User, mempool: Any) -> None:
    case = _evidence_case(chain)

    outcome = do_confirm(case_id=case.pk, acting_user=analyst)

    action = outcome.action
    assert action is not None and action.status == ActionStatus.PENDING
    assert outcome.case.status == CaseStatus.CONFIRMED
    assert outcome.case.closure_reason == ClosureReason.TRUE_POSITIVE
    assert [c.to_status for c in CaseStatusChange.objects.filter(case=case)] == [
        "triaging", "confirmed"]
    # The console edited nothing shared: the offender is not quarantined yet...
    assert offender_profile("ip", OFFENDER).quarantine is None
    # ...its decision is a signed policy transaction waiting in the mempool.
    pooled = MempoolTransaction.objects.get(tx_id=bytes.fromhex(action.tx_id))
    transaction = decode_transaction(bytes(pooled.wire), expected_chain_id="console-test")
    assert transaction.producer_id == "soc-console"
    assert isinstance(transaction.payload, PolicyChange)
    assert transaction.payload.operation is PolicyOperation.QUARANTINE
    assert str(transaction.payload.entity) == f"ip:{OFFENDER}" or \
        transaction.payload.entity.value == OFFENDER

    chain.commit_mempool()
    do_sync_ledger()

    action.refresh_from_db()
    assert action.status == ActionStatus.COMMITTED and action.committed_height == chain.height
    profile = offender_profile("ip", OFFENDER)
    assert profile.quarantine is not None and profile.quarantine.reason == "manual"
    assert profile.quarantine.cause == action.tx_id
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"console.case.confirm", "console.action.signed", "console.action.submitted",
            "console.action.committed"} <= actions


def test_confirming_without_a_signing_key_changes_nothing(chain: LiveChain,
                                                         analyst: User) -> None:
    case = _evidence_case(chain)

    with pytest.raises(ConsoleError) as refused:
        do_confirm(case_id=case.pk, acting_user=analyst)

    assert refused.value.problem is ConsoleProblem.SIGNER_UNAVAILABLE
    case.refresh_from_db()
    assert case.status == CaseStatus.NEW and not CaseAction.objects.exists()


def test_a_refused_admission_is_recorded_as_rejected(chain: LiveChain, analyst: User,
                                                     mempool: Any, settings: Any) -> None:
    case = _evidence_case(chain)
    settings.CONSOLE_PRODUCER_ID = "not-allowlisted"

    outcome = do_confirm(case_id=case.pk, acting_user=analyst)

    assert outcome.action is not None and outcome.action.status == ActionStatus.REJECTED
    assert outcome.action.status_detail.startswith("unknown_producer")
    assert not MempoolTransaction.objects.exists()
    assert AuditEntry.objects.filter(action="console.action.submitted",
                                     outcome="failure").exists()


def test_a_signed_action_left_by_a_crash_is_submitted_later(chain: LiveChain, analyst: User,
                                                            mempool: Any, monkeypatch:
                                                            pytest.MonkeyPatch) -> None:
    case = _evidence_case(chain)
    monkeypatch.setattr("apps.console.services.submit_actions", lambda *a, **k: [])

    outcome = do_confirm(case_id=case.pk, acting_user=analyst)

    assert outcome.action is not None
    assert CaseAction.objects.get().status == ActionStatus.SIGNED
    assert not MempoolTransaction.objects.exists()
    (resubmitted,) = submit_actions([outcome.action.id])
    assert resubmitted.status == ActionStatus.PENDING and MempoolTransaction.objects.exists()


def test_workflow_refuses_skipping_and_reopening_needs_the_permission(
        chain: LiveChain, analyst: User, operator: User) -> None:
    case = _evidence_case(chain)
    do_start_triage(case_id=case.pk, acting_user=analyst)
    with pytest.raises(ConsoleError) as twice:
        do_start_triage(case_id=case.pk, acting_user=analyst)
    assert twice.value.problem is ConsoleProblem.BAD_TRANSITION
    with pytest.raises(ConsoleError) as no_reason:
        do_dismiss(case_id=case.pk, acting_user=analyst, reason="bored")
    assert no_reason.value.problem is ConsoleProblem.BAD_INPUT

    do_dismiss(case_id=case.pk, acting_user=analyst, reason=ClosureReason.FALSE_POSITIVE)
    with pytest.raises(ConsoleError) as denied:
        do_reopen(case_id=case.pk, acting_user=analyst, comment="new info")
    assert denied.value.problem is ConsoleProblem.PERMISSION
    reopened = do_reopen(case_id=case.pk, acting_user=operator, comment="new info").case

    assert reopened.status == CaseStatus.TRIAGING and reopened.closed_at is None
    changes = list(CaseStatusChange.objects.filter(case=case).values_list(
        "from_status", "to_status", "actor_name"))
    assert changes == [("new", "triaging", "alice"), ("triaging", "dismissed", "alice"),
                       ("dismissed", "triaging", "olivia")]
    assert Case.objects.get(pk=case.pk).assignee == analyst
