"""Hostile input to every operation of the OpenAPI document: never a 500, and every answer,
error or not, is one the document describes (status, content type, body schema).

Hypothesis draws parameters and bodies per operation (garbage text, huge and negative
numbers, wrong-length hex, control characters, random JSON) and sends them with a superuser's
token, so the request gets past authorization to the parsing and the queries. On failure,
Hypothesis prints the falsifying example and how to reproduce it (``--hypothesis-seed``).
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from tests.api.openapi_client import ApiResponse, GeneratedClient, load_document

# transaction=True: every request commits on its own, as in production. One long test
# transaction at SERIALIZABLE would pile up predicate locks over hundreds of requests.
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DOCUMENT = load_document()
OPERATIONS = {operation["operationId"]: operation for item in DOCUMENT["paths"].values()
              for operation in item.values()}

# A case the triage operations can reach (its reference is among the values drawn), so the
# fuzzing gets past the lookup to the bodies and the workflow's refusals.
FUZZ_CASE = "CM-0123456789ab"
NASTY = st.sampled_from([
    "", "0", "-1", "²", "٣", "1_000", " 1", "0x10", "1e3", "9" * 40, "null", "true",
    "[]", "{}", "%00", "\x00", "\u202e", "\n",
    "ab" * 32, "AB" * 32, "ff" * 33, "zz" * 32, "../../etc/passwd", "' OR 1=1 --",
    "<script>", "ip", "cidr", "validator", "10.0.0.0/8", "::1", "reputation", "quarantine",
    "2024-01-01T00:00:00Z", "2024-13-45", "committed", "policy", " ", "a" * 5000,
    FUZZ_CASE, FUZZ_CASE, "false_positive", "true_positive", "superuser-root", "root",
])
VALUES = st.one_of(
    NASTY,
    st.text(max_size=60),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70).map(str),
    st.binary(max_size=40).map(bytes.hex),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
BODIES = st.one_of(
    JSON,
    st.fixed_dictionaries({"tx": st.one_of(VALUES, JSON)}),
    st.fixed_dictionaries({"tx": st.binary(max_size=300).map(
        lambda raw: base64.b64encode(raw).decode())}),
    st.fixed_dictionaries({}, optional={
        name: st.one_of(VALUES, JSON) for name in (
            "reason", "comment", "assignee", "body", "quarantine", "quarantine_hours")}),
)


def django_transport(client: APIClient) -> Any:
    def send(method: str, url: str, headers: dict[str, str], data: bytes | None) -> ApiResponse:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        extra = {"HTTP_" + name.upper().replace("-", "_"): value
                 for name, value in headers.items()
                 if name not in ("Content-Type", "Authorization")}
        if "Authorization" in headers:
            extra["HTTP_AUTHORIZATION"] = headers["Authorization"]
        response = client.generic(method, path, data or b"",
                                  content_type=headers.get("Content-Type", ""), **extra)
        content_type = response.get("Content-Type", "").split(";")[0]
        body = json.loads(response.content or b"null")
        return ApiResponse(response.status_code, content_type, body, dict(response.items()))
    return send


@st.composite
def arguments(draw: st.DrawFn, operation: dict[str, Any]) -> dict[str, Any]:
    chosen: dict[str, Any] = {}
    for parameter in operation.get("parameters", []):
        if parameter.get("required") or draw(st.booleans()):
            chosen[parameter["name"].replace("-", "_")] = draw(VALUES)
    if "requestBody" in operation:
        chosen["body"] = draw(BODIES)
    return chosen


@pytest.mark.parametrize("operation_id", sorted(OPERATIONS))
def test_no_input_makes_a_500_or_an_undocumented_answer(
        operation_id: str, tokens: dict[str, str], policy_chain_items: Any,
        settings_override: None, fuzz_case: None) -> None:
    client = GeneratedClient(DOCUMENT, "http://testserver", token=tokens["superuser"],
                             transport=django_transport(APIClient()))
    call = client.operations[operation_id]

    @settings(max_examples=60, deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
    @given(arguments(OPERATIONS[operation_id]))
    def probe(chosen: dict[str, Any]) -> None:
        response = call(**chosen)  # checks status, content type and body against the schema
        # 503 is documented (not ready; mempool not configured) and checked as such above.
        assert response.status < 500 or response.status == 503, (chosen, response.body)

    probe()


@pytest.fixture
def settings_override(settings: Any) -> None:
    settings.API_THROTTLE_RATES = {"read": "100000/min", "write": "100000/min",
                                   "anon": "100000/min"}


@pytest.fixture
def fuzz_case(db: None) -> None:
    from django.utils import timezone

    from apps.console.models import Case

    now = timezone.now()
    Case.objects.create(reference=FUZZ_CASE, title="fuzzed", source="evidence",
                        offender_kind="ip", offender_value="192.0.2.7", height=1,
                        first_seen_at=now, created_at=now, updated_at=now,
                        status_changed_at=now)
