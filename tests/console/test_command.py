"""``manage.py console sync`` and ``console resubmit``."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from apps.console.choices import ActionStatus
from apps.console.models import Case, CaseAction
from apps.console.services import do_confirm
from tests.console.chain import LiveChain

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def run(*args: str) -> list[dict[str, Any]]:
    out = io.StringIO()
    call_command("console", *args, "--json", stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_sync_reads_to_the_tip_and_resubmit_admits_signed_actions(
        chain: LiveChain, analyst: User, mempool: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    chain.commit([chain.event("192.0.2.10", severity=9).wire])
    chain.commit()

    (step,) = run("sync")
    assert (step["from"], step["to"], step["cases"]) == (0, 2, 1)
    assert run("sync") == []

    monkeypatch.setattr("apps.console.services.submit_actions", lambda *a, **k: [])
    do_confirm(case_id=Case.objects.get().pk, acting_user=analyst)
    monkeypatch.undo()
    (report,) = run("resubmit")
    assert report["outcomes"] == {"pending": 1}
    chain.commit_mempool()
    (step,) = run("sync")
    assert step["settled"] == 1
    assert CaseAction.objects.get().status == ActionStatus.COMMITTED


def test_follow_mode_resubmits_only_stale_signed_actions(
        chain: LiveChain, analyst: User, mempool: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from apps.console.management.commands.console import STALE_SIGNED_SECONDS, Command

    chain.commit([chain.event("192.0.2.11", severity=9).wire,
                  chain.event("192.0.2.12", severity=9).wire])
    run("sync")
    monkeypatch.setattr("apps.console.services.submit_actions", lambda *a, **k: [])
    for case in Case.objects.all():
        do_confirm(case_id=case.pk, acting_user=analyst)
    monkeypatch.undo()
    old = CaseAction.objects.order_by("requested_at").first()
    assert old is not None
    CaseAction.objects.filter(pk=old.pk).update(
        requested_at=timezone.now() - timedelta(seconds=STALE_SIGNED_SECONDS + 5))

    command = Command(stdout=io.StringIO())
    command._resubmit_stale(as_json=True)

    statuses = dict(CaseAction.objects.values_list("pk", "status"))
    assert statuses.pop(old.pk) == ActionStatus.PENDING
    assert list(statuses.values()) == [ActionStatus.SIGNED]  # a live web process's, left alone
