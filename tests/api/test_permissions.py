"""Role x endpoint: every endpoint answers exactly the roles that hold its capability.

Anonymous callers get 401 with ``WWW-Authenticate``, a user without the capability 403, a user
with it the endpoint's answer. The expected table is written out, not derived from
``apps.api.roles``, so a change to a role shows up here as a failing cell.
"""

from __future__ import annotations

from typing import Any

import pytest

from apps.api.roles import ROLE_CAPABILITIES, Capability, Role
from tests.api.conftest import ClientFor

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

ROLES = ("none", "viewer", "analyst", "operator", "admin", "superuser")
LEDGER = {"viewer", "analyst", "operator", "admin", "superuser"}
INVESTIGATIONS = {"analyst", "operator", "admin", "superuser"}
SUBMITTERS = {"operator", "admin", "superuser"}
TRIAGERS = INVESTIGATIONS  # console.triage_case / confirm_case / view_case
REOPENERS = SUBMITTERS  # console.reopen_case
MISSING_CASE = "CM-0000000000ff"
EVERYONE = {None, *ROLES}
MISSING_ID = "ab" * 32

# (method, path, roles allowed (None: anonymous), status when allowed)
ENDPOINTS: list[tuple[str, str, set[Any], int]] = [
    ("get", "/api/v1/health/", EVERYONE, 200),
    ("get", "/api/v1/status/", LEDGER, 200),
    ("get", "/api/v1/validators/", LEDGER, 200),
    ("get", "/api/v1/blocks/", LEDGER, 200),
    ("get", "/api/v1/blocks/1/", LEDGER, 200),
    ("get", "/api/v1/transactions/", LEDGER, 200),
    ("get", f"/api/v1/transactions/{MISSING_ID}/", LEDGER, 404),
    ("get", "/api/v1/evidence/", INVESTIGATIONS, 200),
    ("get", f"/api/v1/evidence/{MISSING_ID}/", INVESTIGATIONS, 404),
    ("get", f"/api/v1/state/proof/?key={MISSING_ID}", LEDGER, 200),
    ("get", "/api/v1/entities/ip/192.0.2.1/", INVESTIGATIONS, 200),
    ("get", "/api/v1/entities/ip/192.0.2.1/history/", INVESTIGATIONS, 200),
    ("get", f"/api/v1/submissions/{MISSING_ID}/", LEDGER, 404),
    ("get", "/api/v1/policy/", LEDGER, 200),
    ("get", "/api/v1/policy/decision/?entity_kind=ip&entity_value=192.0.2.1", LEDGER, 200),
    # An empty body: the roles allowed to submit get as far as validating it.
    ("post", "/api/v1/submissions/", SUBMITTERS, 400),
    # Triage: the roles allowed get as far as looking the case up.
    ("get", "/api/v1/cases/", TRIAGERS, 200),
    ("get", f"/api/v1/cases/{MISSING_CASE}/", TRIAGERS, 404),
    ("post", f"/api/v1/cases/{MISSING_CASE}/triage/", TRIAGERS, 404),
    ("post", f"/api/v1/cases/{MISSING_CASE}/confirm/", TRIAGERS, 404),
    ("post", f"/api/v1/cases/{MISSING_CASE}/dismiss/", TRIAGERS, 404),
    ("post", f"/api/v1/cases/{MISSING_CASE}/assign/", TRIAGERS, 404),
    ("post", f"/api/v1/cases/{MISSING_CASE}/notes/", TRIAGERS, 404),
    ("post", f"/api/v1/cases/{MISSING_CASE}/reopen/", REOPENERS, 404),
]


def test_the_roles_hold_the_documented_capabilities() -> None:
    assert ROLE_CAPABILITIES == {
        Role.VIEWER: (Capability.READ_LEDGER,),
        Role.ANALYST: (Capability.READ_LEDGER, Capability.READ_INVESTIGATIONS),
        Role.OPERATOR: (Capability.READ_LEDGER, Capability.READ_INVESTIGATIONS,
                        Capability.SUBMIT_POLICY, Capability.READ_METRICS),
        Role.ADMIN: (Capability.READ_LEDGER, Capability.READ_INVESTIGATIONS,
                     Capability.SUBMIT_POLICY, Capability.READ_METRICS,
                     Capability.SUBMIT_GOVERNANCE),
    }


@pytest.mark.usefixtures("committed_chain")
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_role_matrix(client_for: ClientFor, endpoint: tuple[str, str, set[Any], int]) -> None:
    method, path, allowed, ok_status = endpoint
    for role in (None, *ROLES):
        response = getattr(client_for(role), method)(path, format="json")
        if role in allowed:
            expected = ok_status
        elif role is None:
            expected = 401
        else:
            expected = 403
        assert response.status_code == expected, (role, path, response.content[:300])
        if expected == 401:
            assert response["WWW-Authenticate"].startswith("Bearer")
        if expected in (401, 403):
            assert response["Content-Type"] == "application/problem+json"
            assert response.json()["code"] in ("not_authenticated", "permission_denied")


def test_a_session_login_counts_like_a_token(client_for: ClientFor,
                                             committed_chain: Any) -> None:
    from django.contrib.auth.models import User
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(User.objects.get(username="viewer-user"))
    assert client.get("/api/v1/blocks/").status_code == 200
    assert client.get("/api/v1/evidence/").status_code == 403
