"""The audit admin is read-only for everyone, superusers included."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEntry
from apps.audit.services import record_audit, sign_head

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def superuser_client() -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-12345678")
    client = Client()
    client.force_login(user)
    return client


def test_superusers_can_list_and_view_entries_but_not_add_change_or_delete(
        superuser_client: Client) -> None:
    entry = record_audit(actor="analyst", action="policy.approve", target="policy/1",
                         outcome="success", request_id="req-123")
    sign_head()
    changelist = superuser_client.get(reverse("admin:audit_auditentry_changelist"))
    assert changelist.status_code == 200
    assert b"policy.approve" in changelist.content
    assert reverse("admin:audit_auditentry_add").encode() not in changelist.content
    assert superuser_client.get(reverse("admin:audit_auditentry_add")).status_code == 403
    change_url = reverse("admin:audit_auditentry_change", args=[entry.seq])
    detail = superuser_client.get(change_url)
    assert detail.status_code == 200
    assert b'name="_save"' not in detail.content
    assert superuser_client.post(change_url, {"actor": "mallory"}).status_code == 403
    delete_url = reverse("admin:audit_auditentry_delete", args=[entry.seq])
    assert superuser_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.get(seq=entry.seq).actor == "analyst"
    assert superuser_client.get(reverse("admin:audit_audithead_changelist")).status_code == 200
    assert superuser_client.get(reverse("admin:audit_audithead_add")).status_code == 403


def test_the_changelist_search_finds_by_request_id(superuser_client: Client) -> None:
    record_audit(actor="a", action="x", outcome="success", request_id="req-wanted")
    record_audit(actor="b", action="y", outcome="failure", request_id="req-other")
    response = superuser_client.get(reverse("admin:audit_auditentry_changelist"),
                                    {"q": "req-wanted"})
    assert response.status_code == 200
    assert b"req-wanted" in response.content and b"req-other" not in response.content
