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
