"""The committed OpenAPI document is what the code generates, it validates without warnings,
and a client generated from it works against a live server (responses match the document)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from apps.api.tokens import issue_token
from tests.api.openapi_client import (
    SCHEMA_PATH,
    GeneratedClient,
    SchemaMismatch,
    load_document,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.unit
def test_the_committed_schema_is_what_the_code_generates(tmp_path: Path) -> None:
    generated = tmp_path / "openapi.yaml"
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn",
         "--file", str(generated)], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert generated.read_text() == SCHEMA_PATH.read_text(), (
        "schema/openapi.yaml is out of date: run `manage.py spectacular --validate "
        "--fail-on-warn --file schema/openapi.yaml` and review the diff")


@pytest.mark.unit
def test_every_operation_is_named_described_and_documents_its_errors() -> None:
    document = load_document()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            name = f"{method.upper()} {path}"
            assert operation.get("operationId") and operation.get("summary"), name
            assert operation.get("description"), name
            statuses = set(operation["responses"])
            if path not in ("/api/v1/health/", "/api/v1/ready/"):
                assert {"401", "403", "429"} <= statuses, name
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == ["application/problem+json"], name


@pytest.fixture
def live_client(live_server: Any, tokens: dict[str, str]) -> Any:
    def make(role: str | None) -> GeneratedClient:
        return GeneratedClient(load_document(), live_server.url,
                               token=None if role is None else tokens[role])
    return make


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_generated_client_walks_the_api(live_client: Any, policy_chain_items: Any) -> None:
    analyst = live_client("analyst")
    assert analyst.getHealth().body["status"] == "ok"
    status = analyst.getStatus().body
    assert status["latest_block"]["height"] == policy_chain_items[-1].block.height
    assert [v["validator_id"] for v in analyst.listValidators().body] == [
        "v0", "v1", "v2", "v3"]
    page = analyst.listBlocks(limit=2).body
    assert [block["height"] for block in page["results"]] == [3, 2]
    cursor = parse_qs(urlsplit(page["next"]).query)["cursor"][0]
    assert [b["height"] for b in analyst.listBlocks(limit=2, cursor=cursor).body["results"]] \
        == [1, 0]
    block = analyst.getBlock(block_id=page["results"][0]["hash"]).body
    assert block["header"]["height"] == 3
    transactions = analyst.listTransactions(kind="policy").body["results"]
    assert len(transactions) == 3
    detail = analyst.getTransaction(tx_id=transactions[0]["tx_id"]).body
    assert detail["kind"] == "policy"
    assert analyst.listEvidence().body["results"] == []
    proof = analyst.getStateProof(record="quarantine", subject_kind="ip",
                                  subject_value="198.51.100.200").body
    assert proof["included"]
    assert analyst.getEntity(kind="ip", value="198.51.100.200").body["quarantine"]
    assert analyst.listEntityHistory(kind="ip", value="198.51.100.200",
                                     record="quarantine").body["results"]
    assert analyst.getReady().status in (200, 503)
    # Errors are documented too: each of these is checked against its documented body.
    assert analyst.getBlock(block_id="99999").status == 404
    assert analyst.getStateProof(key="zz").status == 400
    assert analyst.getSubmission(tx_id="ab" * 32).status == 404
    assert analyst.submitTransaction(body={"tx": "AA=="}).status == 403
    assert live_client(None).listBlocks().status == 401


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_generated_client_catches_an_undocumented_answer(live_client: Any,
                                                             tokens: dict[str, str]) -> None:
    document = load_document()
    # Pretend the document forgot that listBlocks can be refused with 403.
    del document["paths"]["/api/v1/blocks/"]["get"]["responses"]["403"]
    from django.contrib.auth.models import User
    nobody = User.objects.get(username="no-role-user")
    token = issue_token(user=nobody, name="t", acting_user="test").token
    client = GeneratedClient(document, live_client(None).base_url, token=token)
    with pytest.raises(SchemaMismatch, match="403 is not documented"):
        client.listBlocks()
    with pytest.raises(TypeError, match="unknown arguments"):
        client.listBlocks(colour="red")
    # And a body that does not match its documented schema.
    document["components"]["schemas"]["Validator"]["properties"]["power"]["type"] = "string"
    from tests.api.conftest import register_validators
    from tests.ledger.chain import ChainBuilder
    register_validators(ChainBuilder())
    client = GeneratedClient(document, live_client(None).base_url, token=tokens["viewer"])
    with pytest.raises(SchemaMismatch, match="is not of type 'string'"):
        client.listValidators()
