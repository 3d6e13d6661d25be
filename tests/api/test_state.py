"""State proofs and entities over a chain run by the real executor, checked by the standalone
verifier exactly as an auditor would (the answer as JSON, the genesis as the only trust)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from apps.api.state_queries import SubjectRecord, subject_key, subject_of
from cybermesh.protocol.genesis import parse_genesis
from cybermesh.verify import verify_answer
from tests.api.chain import QUARANTINED_IP
from tests.api.conftest import ClientFor
from tests.ledger.chain import CommittedItem

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def proven(answer: Any, genesis_file: Path) -> tuple[bool, str]:
    verdict = verify_answer(json.loads(json.dumps(answer)),
                            parse_genesis(genesis_file.read_bytes()))
    return verdict.proven, verdict.reason


def test_a_state_proof_answers_at_the_latest_provable_version_and_verifies(
        client_for: ClientFor, executed_chain_items: list[CommittedItem],
        genesis_file: Path) -> None:
    subject = subject_of("ip", "198.51.100.3")
    key = subject_key(SubjectRecord.REPUTATION, subject).hex()
    response = client_for("viewer").get(f"/api/v1/state/proof/?key={key}")
    assert response.status_code == 200, response.content
    answer = response.json()
    tip = executed_chain_items[-1]
    assert answer["version"] == tip.block.height - 1
    assert answer["block"]["hash"] == tip.block.block_id.hex()
    assert answer["block"]["header"]["state_root"] == executed_chain_items[-2].state_root.hex()
    assert proven(answer, genesis_file)[0]


def test_inclusion_and_non_inclusion_both_verify(client_for: ClientFor,
                                                 executed_chain_items: Any,
                                                 genesis_file: Path) -> None:
    client = client_for("analyst")
    present = client.get("/api/v1/state/proof/?record=reputation&subject_kind=ip"
                         "&subject_value=198.51.100.3&version=8").json()
    absent = client.get("/api/v1/state/proof/?record=reputation&subject_kind=ip"
                        "&subject_value=203.0.113.77&version=8").json()
    assert present["included"] and present["record"]["type"] == "reputation"
    assert present["record"]["fields"]["subject"] == {"kind": "ip", "value": "198.51.100.3"}
    assert not absent["included"] and absent["value"] is None and absent["record"] is None
    assert proven(present, genesis_file) == (True, proven(present, genesis_file)[1])
    assert proven(present, genesis_file)[0] and proven(absent, genesis_file)[0]


def test_an_older_version_is_proven_by_the_block_after_it(client_for: ClientFor,
                                                          executed_chain_items: Any,
                                                          genesis_file: Path) -> None:
    answer = client_for("viewer").get("/api/v1/state/proof/?record=quarantine&subject_kind=ip"
                                      "&subject_value=198.51.100.1&version=3").json()
    assert answer["version"] == 3 and answer["block"]["header"]["height"] == 4
    assert answer["block"]["header"]["state_root"] == executed_chain_items[3].state_root.hex()
    assert proven(answer, genesis_file)[0]


def test_versions_without_a_certifying_block_are_a_state_unavailable_404(
        client_for: ClientFor, executed_chain_items: Any) -> None:
    key = "00" * 32
    response = client_for("viewer").get(f"/api/v1/state/proof/?key={key}&version=9")
    assert response.status_code == 404 and response.json()["code"] == "state_unavailable"


def test_the_proof_query_is_validated(client_for: ClientFor) -> None:
    client = client_for("viewer")
    cases = {
        "": {"record", "subject_kind", "subject_value"},
        "key=abcd": {"key"},
        f"key={'00' * 32}&record=reputation": {"key"},
        "record=reputation&subject_kind=ip&subject_value=not-an-ip": {"subject_value"},
        "record=fame&subject_kind=ip&subject_value=10.0.0.1": {"record"},
        f"key={'00' * 32}&version=-1": {"version"},
    }
    for query, fields in cases.items():
        response = client.get(f"/api/v1/state/proof/?{query}")
        assert response.status_code == 400, query
        assert set(response.json()["errors"]) == fields, query


def test_an_entity_shows_records_with_proofs_that_verify(client_for: ClientFor,
                                                         policy_chain_items: Any,
                                                         genesis_file: Path) -> None:
    body = client_for("analyst").get(f"/api/v1/entities/ip/{QUARANTINED_IP}/").json()
    assert body["quarantine"]["type"] == "quarantine"
    assert body["quarantine"]["fields"]["reason"] == "manual"
    assert body["reputation"] is None  # no risk recorded: full reputation
    assert body["quarantine_proof"]["subject"] == {"kind": "ip", "value": QUARANTINED_IP}
    ok, reason = proven(body, genesis_file)
    assert ok, reason
    assert f"quarantine of ip:{QUARANTINED_IP}" in reason


def test_an_entity_value_is_normalised_and_a_bad_one_refused(client_for: ClientFor,
                                                            executed_chain_items: Any) -> None:
    client = client_for("analyst")
    response = client.get("/api/v1/entities/ip/::ffff:198.51.100.3/")
    assert response.status_code == 200
    assert response.json()["subject"] == {"kind": "ip", "value": "198.51.100.3"}
    assert client.get("/api/v1/entities/ip/999.1.1.1/").status_code == 400
    assert client.get("/api/v1/entities/planet/earth/").status_code == 400
    cidr = client.get("/api/v1/entities/cidr/10.0.0.0%2F8/")
    assert cidr.status_code == 200 and cidr.json()["subject"]["value"] == "10.0.0.0/8"
    # An empty value is refused by the history view, not read as the entity "/history"
    # (found by the schema fuzzer).
    empty = client.get("/api/v1/entities/validator//history/")
    assert empty.status_code == 400, empty.json()


def test_entity_history_lists_each_change_newest_first_in_pages(
        client_for: ClientFor, executed_chain_items: list[CommittedItem]) -> None:
    # What the chain wrote, per offender: the heights that changed its reputation record.
    changes: dict[str, list[int]] = {}
    for last in range(12):
        key = subject_key(SubjectRecord.REPUTATION, subject_of("ip", f"198.51.100.{last}"))
        changes[f"198.51.100.{last}"] = [
            item.block.height for item in executed_chain_items
            if any(update.key == key for update in item.execution.state_updates)]
    address = max(changes, key=lambda name: len(changes[name]))
    assert len(changes[address]) >= 2
    client = client_for("analyst")
    url = f"/api/v1/entities/ip/{address}/history/?limit=1"
    versions: list[int] = []
    while url:
        page = client.get(url).json()
        assert len(page["results"]) <= 1
        versions += [item["version"] for item in page["results"]]
        for item in page["results"]:
            assert item["record"] is None or item["record"]["type"] == "reputation"
        url = page["next"]
    assert versions == sorted(changes[address], reverse=True)
