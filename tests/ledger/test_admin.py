"""The ledger, state, validator and evidence admin pages: viewable, never editable."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from apps.ledger.models import Block
from apps.ledger.services import commit_block
from tests.ledger.chain import ChainBuilder

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True),
              pytest.mark.urls("tests.ledger.admin_urls")]

PAGES = ["ledger_block", "ledger_outboxmessage", "state_stateversion", "state_statesnapshot",
         "validators_validator", "evidence_evidence"]


@pytest.fixture
def admin_client() -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.org", "pw-12345678")
    client = Client()
    client.force_login(user)
    return client


def test_ledger_admin_pages_list_and_show_but_offer_no_edits(admin_client: Client) -> None:
    for item in ChainBuilder().build(2):
        commit_block(block=item.block, qc=item.qc, execution=item.execution,
                     snapshot_interval=1)
    for page in PAGES:
        response = admin_client.get(reverse(f"admin:{page}_changelist"))
        assert response.status_code == 200, page
        assert admin_client.get(reverse(f"admin:{page}_add")).status_code == 403, page
    detail = admin_client.get(reverse("admin:ledger_block_change", args=[1]))
    assert detail.status_code == 200
    assert Block.objects.get(height=1).block_hash.hex() in detail.content.decode()
    delete = admin_client.post(reverse("admin:ledger_block_delete", args=[1]), {"post": "yes"})
    assert delete.status_code == 403 and Block.objects.filter(height=1).exists()
