"""Optional mutual TLS: a client certificate verified by a trusted TLS-terminating proxy
authenticates as the API client it is mapped to; the same headers from anyone else mean
nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.checks import run_checks
from rest_framework.test import APIClient

from apps.audit.models import AuditEntry

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

PROXY = "10.9.0.5"
GRAFANA = "CN=grafana,OU=dashboards,O=Example SOC"
OPERATOR = "CN=soar,O=Example SOC"


@pytest.fixture
def mtls(settings: Any, tokens: dict[str, str]) -> None:
    settings.API_MTLS_TRUSTED_PROXIES = ["10.9.0.0/24"]
    settings.API_MTLS_CLIENTS = {GRAFANA: "viewer-user", OPERATOR: "operator-user"}


def get(path: str, *, peer: str = PROXY, subject: str | None = GRAFANA,
        verify: str = "SUCCESS") -> Any:
    headers = {"REMOTE_ADDR": peer, "HTTP_X_SSL_CLIENT_VERIFY": verify}
    if subject is not None:
        headers["HTTP_X_SSL_CLIENT_S_DN"] = subject
    return APIClient().get(path, **headers)


def test_a_verified_certificate_from_the_proxy_gets_its_clients_role(mtls: None) -> None:
    assert get("/api/v1/blocks/").status_code == 200
    assert get("/api/v1/evidence/").status_code == 403  # a viewer
    assert get("/api/v1/evidence/", subject=OPERATOR).status_code == 200


def test_the_headers_mean_nothing_from_anyone_but_the_proxy(mtls: None) -> None:
    spoofed = get("/api/v1/blocks/", peer="10.9.1.5")
    assert spoofed.status_code == 401
    assert spoofed.json()["code"] == "not_authenticated"
    assert get("/api/v1/blocks/", peer="127.0.0.1").status_code == 401


def test_an_unverified_unknown_or_inactive_client_is_refused(mtls: None) -> None:
    for answer in (get("/api/v1/blocks/", verify="FAILED:certificate has expired"),
                   get("/api/v1/blocks/", verify=""),
                   get("/api/v1/blocks/", subject="CN=mallory,O=Elsewhere"),
                   get("/api/v1/blocks/", subject="CN=" + "x" * 5000)):
        assert answer.status_code == 401
        assert answer.json()["code"] == "authentication_failed"
    User.objects.filter(username="viewer-user").update(is_active=False)
    assert get("/api/v1/blocks/").status_code == 401


def test_without_trusted_proxies_the_feature_is_off(mtls: None, settings: Any) -> None:
    settings.API_MTLS_TRUSTED_PROXIES = []
    assert get("/api/v1/blocks/").status_code == 401


def test_a_proxied_request_without_a_certificate_can_use_a_token(
        mtls: None, tokens: dict[str, str]) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['analyst']}")
    assert client.get("/api/v1/evidence/", REMOTE_ADDR=PROXY).status_code == 200


def test_writes_name_the_certificate_in_the_audit_trail(mtls: None) -> None:
    response = APIClient().post("/api/v1/submissions/", {"tx": "AAAA"}, format="json",
                                REMOTE_ADDR=PROXY, HTTP_X_SSL_CLIENT_S_DN=OPERATOR,
                                HTTP_X_SSL_CLIENT_VERIFY="SUCCESS")
    assert response.status_code == 422  # not a transaction, but authenticated as operator
    entry = AuditEntry.objects.get(action="api.submit_transaction")
    assert entry.actor == "user:operator-user"
    assert entry.details["via"].startswith("cert-")


def test_bad_settings_are_reported_by_the_system_checks(settings: Any) -> None:
    settings.API_MTLS_TRUSTED_PROXIES = ["10.0.0.300/8"]
    settings.API_MTLS_CLIENTS = {"CN=x": 7}
    ids = {message.id for message in run_checks(tags=["api"])}
    assert {"api.E001", "api.E002"} <= ids
