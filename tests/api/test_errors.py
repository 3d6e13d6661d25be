"""Every failure has the same RFC 9457 body: type, title, status, detail, code, instance,
request_id (and ``errors`` on validation problems)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.api.conftest import ClientFor

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:cybermesh:problem:{code}"
    assert body["title"] and body["detail"]
    assert body["instance"].startswith("/api/v1/")
    assert body["request_id"] == response["X-Request-ID"]
    return body


def test_a_bad_limit_names_the_field(client_for: ClientFor, committed_chain: Any) -> None:
    body = assert_problem(client_for("viewer").get("/api/v1/blocks/?limit=0"), 400,
                          "validation_error")
    assert list(body["errors"]) == ["limit"]


def test_a_tampered_cursor_is_a_validation_error(client_for: ClientFor,
                                                 committed_chain: Any) -> None:
    body = assert_problem(client_for("viewer").get("/api/v1/blocks/?cursor=%%%"), 400,
                          "validation_error")
    assert body["errors"] == {"cursor": ["Invalid cursor."]}


def test_bad_filters_are_validation_errors(client_for: ClientFor) -> None:
    client = client_for("analyst")
    body = assert_problem(client.get("/api/v1/transactions/?since=yesterday&height=-1"), 400,
                          "validation_error")
    assert set(body["errors"]) == {"since", "height"}
    body = assert_problem(client.get("/api/v1/evidence/?status=maybe"), 400,
                          "validation_error")
    assert set(body["errors"]) == {"status"}
    body = assert_problem(client.get("/api/v1/transactions/?since=2024-01-02T00:00:00Z"
                                     "&until=2024-01-01T00:00:00Z"), 400, "validation_error")
    assert set(body["errors"]) == {"until"}


def test_a_malformed_block_id_is_400_and_a_missing_block_404(client_for: ClientFor,
                                                            committed_chain: Any) -> None:
    client = client_for("viewer")
    assert_problem(client.get("/api/v1/blocks/not-a-block/"), 400, "validation_error")
    assert_problem(client.get("/api/v1/blocks/99999/"), 404, "not_found")
    assert_problem(client.get(f"/api/v1/blocks/{'cd' * 32}/"), 404, "not_found")
    assert_problem(client.get("/api/v1/transactions/xyz/"), 400, "validation_error")


def test_an_unknown_path_is_a_problem_404_for_any_method(client_for: ClientFor) -> None:
    assert_problem(APIClient().get("/api/v1/nothing/here/"), 404, "not_found")
    assert_problem(client_for("viewer").delete("/api/v1/nothing/"), 404, "not_found")


def test_a_wrong_method_is_405(client_for: ClientFor) -> None:
    assert_problem(client_for("admin").delete("/api/v1/blocks/"), 405, "method_not_allowed")


def test_missing_and_invalid_credentials_are_401() -> None:
    assert_problem(APIClient().get("/api/v1/blocks/"), 401, "not_authenticated")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer cm_0123456789_" + "A" * 43)
    assert_problem(client.get("/api/v1/blocks/"), 401, "authentication_failed")
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert_problem(client.get("/api/v1/blocks/"), 401, "authentication_failed")
    client.credentials(HTTP_AUTHORIZATION="Bearer a b")
    assert_problem(client.get("/api/v1/blocks/"), 401, "authentication_failed")


def test_a_client_request_id_is_echoed_and_a_bad_one_replaced(client_for: ClientFor) -> None:
    client = client_for("viewer")
    response = client.get("/api/v1/blocks/?limit=0", HTTP_X_REQUEST_ID="req-123")
    assert response["X-Request-ID"] == "req-123"
    assert response.json()["request_id"] == "req-123"
    response = client.get("/api/v1/blocks/", HTTP_X_REQUEST_ID="bad id\n")
    assert response["X-Request-ID"] != "bad id\n" and len(response["X-Request-ID"]) == 32


def test_throttled_clients_get_429_with_retry_after(client_for: ClientFor,
                                                    settings: Any) -> None:
    settings.API_THROTTLE_RATES = {"read": "3/min"}
    client = client_for("viewer")
    statuses = [client.get("/api/v1/validators/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/api/v1/validators/")
    body = assert_problem(response, 429, "throttled")
    assert int(response["Retry-After"]) >= 1 and body["retry_after_seconds"] >= 1
    # Another client has its own bucket.
    assert client_for("analyst").get("/api/v1/validators/").status_code == 200


def test_unicode_digits_are_not_numbers(client_for: ClientFor) -> None:
    # "²".isdigit() is True in Python, int("²") raises: found by the schema fuzzer.
    client = client_for("viewer")
    assert_problem(client.get("/api/v1/blocks/?limit=²"), 400, "validation_error")
    assert_problem(client.get("/api/v1/blocks/?limit=٣"), 400, "validation_error")
    assert client.get("/api/v1/blocks/", HTTP_CONTENT_LENGTH="²").status_code == 200


def test_control_characters_in_a_path_get_a_problem_404(client_for: ClientFor) -> None:
    # A newline escapes "." and "$" in a regex route; found by the schema fuzzer.
    assert_problem(client_for("viewer").get("/api/v1/entities//%0A/"), 404, "not_found")
    assert_problem(client_for("viewer").get("/api/v1/blocks/1/%0A"), 404, "not_found")
