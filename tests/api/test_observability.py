"""Liveness, readiness (database and sync), Prometheus metrics, and API tokens."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db import OperationalError
from django.utils import timezone
from rest_framework.test import APIClient

from apps.api.models import ApiToken
from apps.api.tokens import hash_token, issue_token, revoke_token
from apps.audit.models import AuditEntry
from apps.node.models import NodeStatus
from tests.api.conftest import ClientFor

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def status_row(settings: Any, **fields: Any) -> NodeStatus:
    row = NodeStatus.objects.create(node_id=settings.NODE_ID, node_type="validator",
                                    height=12, **fields)
    return row


def test_health_answers_without_login_in_its_original_shape(settings: Any) -> None:
    response = APIClient().get("/api/v1/health/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "node_id": settings.NODE_ID,
                               "node_type": settings.NODE_TYPE}


def test_ready_needs_a_synced_fresh_status(settings: Any) -> None:
    client = APIClient()
    response = client.get("/api/v1/ready/")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok",
                                         "synced": "no status recorded for this node yet"}
    row = status_row(settings, synced=False)
    response = client.get("/api/v1/ready/")
    assert response.status_code == 503 and "not synced" in response.json()["detail"]
    row.synced = True
    row.save()
    response = client.get("/api/v1/ready/")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "node_id": settings.NODE_ID,
                               "checks": {"database": "ok", "synced": "ok"}}
    NodeStatus.objects.filter(pk=row.pk).update(
        updated_at=timezone.now() - timedelta(minutes=5))
    response = client.get("/api/v1/ready/")
    assert response.status_code == 503 and "stale" in response.json()["checks"]["synced"]


def test_ready_fails_when_the_database_is_unreachable(settings: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    status_row(settings, synced=True)

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("connection refused")

    monkeypatch.setattr("apps.api.queries.connection.cursor", unreachable)
    response = APIClient().get("/api/v1/ready/")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "unreachable: OperationalError"}
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.urls("tests.api.urls_with_metrics")
def test_metrics_show_api_latency_by_endpoint(client_for: ClientFor) -> None:
    client_for("viewer").get("/api/v1/validators/")
    response = APIClient().get("/metrics")  # the test client comes from 127.0.0.1
    assert response.status_code == 200
    text = response.content.decode()
    assert ('cybermesh_api_request_duration_seconds_count{endpoint="/api/v1/validators/",'
            'method="GET",status="200"}') in text
    assert "cybermesh_ledger_commits" in text  # the whole process registry


@pytest.mark.urls("tests.api.urls_with_metrics")
def test_metrics_from_elsewhere_need_the_metrics_permission(tokens: dict[str, str]) -> None:
    outsider = APIClient(REMOTE_ADDR="203.0.113.5")
    assert outsider.get("/metrics").status_code == 403
    outsider.force_login(User.objects.get(username="viewer-user"))
    assert outsider.get("/metrics").status_code == 403
    outsider.force_login(User.objects.get(username="operator-user"))
    assert outsider.get("/metrics").status_code == 200


def test_a_token_is_stored_only_as_a_hash(roles: None) -> None:
    user = User.objects.create_user("script")
    issued = issue_token(user=user, name="dashboard", acting_user="test")
    row = ApiToken.objects.get()
    assert bytes(row.secret_hash) == hash_token(issued.token)
    assert issued.token.split("_")[2] not in repr(row.__dict__)
    entry = AuditEntry.objects.get(action="api.token.issue")
    assert issued.token not in str(entry.details) and entry.target == f"token:{row.prefix}"


def test_revoked_expired_and_inactive_tokens_are_refused(roles: None) -> None:
    user = User.objects.create_user("script")
    user.groups.add(Group.objects.get(name="viewer"))
    issued = issue_token(user=user, name="t", acting_user="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.token}")
    assert client.get("/api/v1/validators/").status_code == 200
    assert ApiToken.objects.get().last_used_at is not None
    # The right prefix with a wrong secret.
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.token[:-1]}"
                       f"{'A' if issued.token[-1] != 'A' else 'B'}")
    assert forged.get("/api/v1/validators/").status_code == 401
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get("/api/v1/validators/").status_code == 401
    ApiToken.objects.update(expires_at=None)
    user.is_active = False
    user.save()
    assert client.get("/api/v1/validators/").status_code == 401
    user.is_active = True
    user.save()
    assert client.get("/api/v1/validators/").status_code == 200
    assert revoke_token(prefix=issued.record.prefix, acting_user="test")
    assert client.get("/api/v1/validators/").status_code == 401
    assert not revoke_token(prefix=issued.record.prefix, acting_user="test")


def test_the_token_command_prints_the_token_once_and_lists_prefixes(roles: None) -> None:
    User.objects.create_user("script")
    out = StringIO()
    call_command("api_token", "create", "--user", "script", "--name", "grafana", stdout=out)
    token = out.getvalue().strip()
    assert token.startswith("cm_")
    listing = StringIO()
    call_command("api_token", "list", stdout=listing)
    assert token.split("_")[1] in listing.getvalue()
    assert token.split("_")[2] not in listing.getvalue()
