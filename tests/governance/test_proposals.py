"""Proposal files: what an approver reads is exactly what they sign; anything else is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.governance.errors import GovernanceError, GovernanceProblem
from apps.governance.proposals import (
    MAX_PROPOSAL_BYTES,
    Proposal,
    load_proposal,
    new_change,
    save_proposal,
)
from cybermesh.protocol.codec import encode
from cybermesh.protocol.txs.governance import Approval, GovernanceOperation, ParameterName

pytestmark = pytest.mark.unit

CHAIN = "governance-unit"


def proposal() -> Proposal:
    return Proposal.of(new_change(GovernanceOperation.CHANGE_POWER, epoch=3,
                                  validator_id="v2", power=7), chain_id=CHAIN)


def refused(document: object) -> str:
    with pytest.raises(GovernanceError) as raised:
        Proposal.from_json(document)
    assert raised.value.problem is GovernanceProblem.BAD_PROPOSAL
    return str(raised.value)


def test_a_proposal_round_trips_through_its_file(tmp_path: Path) -> None:
    original = proposal().with_approval(Approval("v3", bytes([3]) * 64)).with_approval(
        Approval("v1", bytes([1]) * 64)).with_submission(bytes([9]) * 32)
    path = save_proposal(original, tmp_path / "sub" / "p.json")
    loaded = load_proposal(path)
    assert loaded == original and loaded.proposal_id == original.proposal_id
    assert [approval.validator_id for approval in loaded.approvals] == ["v1", "v3"]
    assert json.loads(path.read_text())["summary"] == {
        "op": "change_power", "epoch": 3, "validator_id": "v2", "power": 7}
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_validators_second_approval_replaces_its_first() -> None:
    once = proposal().with_approval(Approval("v1", bytes([1]) * 64))
    twice = once.with_approval(Approval("v1", bytes([2]) * 64))
    assert twice.approvals == (Approval("v1", bytes([2]) * 64),)


def test_the_id_names_the_change_on_its_chain() -> None:
    other_chain = Proposal.of(proposal().change, chain_id="another-chain")
    assert proposal().proposal_id == proposal().proposal_id != other_chain.proposal_id
    assert proposal().with_approval(Approval("v1", bytes(64))).proposal_id == \
        proposal().proposal_id


def test_an_edited_summary_or_id_is_refused() -> None:
    document = proposal().to_json()
    assert "summary does not match" in refused(
        {**document, "summary": {**document["summary"], "power": 70}})
    assert "proposal_id does not match" in refused({**document, "proposal_id": "00" * 32})


def test_a_change_that_is_not_a_canonical_governance_change_is_refused() -> None:
    document = proposal().to_json()
    body = {"op": "change_power", "epoch": 3, "validator_id": "v2", "power": 7}
    non_canonical = bytes.fromhex(document["change"]).replace(b"\x07", b"\x18\x07")
    assert "not canonical" in refused({**document, "change": non_canonical.hex()})
    with_approvals = encode({**body, "approvals": []})
    assert "without approvals" in refused({**document, "change": with_approvals.hex()})
    nested = encode({**body, "approvals": [["v1", bytes(64)]]})
    assert "not canonical CBOR" in refused({**document, "change": nested.hex()})
    assert "not a valid governance change" in refused(
        {**document, "change": encode({**body, "power": 0}).hex()})


def test_malformed_documents_are_refused_with_one_line() -> None:
    document = proposal().to_json()
    assert "exactly the fields" in refused({**document, "extra": 1})
    assert "not a cybermesh-governance-proposal/v1" in refused({**document, "format": "x"})
    unsorted = {**document, "approvals": [{"validator_id": "v2", "signature": "00" * 64},
                                          {"validator_id": "v1", "signature": "00" * 64}]}
    assert "ascending" in refused(unsorted)
    assert "lowercase hexadecimal" in refused(
        {**document, "approvals": [{"validator_id": "v1", "signature": "AA" * 64}]})
    assert "belongs only to add_validator" in refused({**document, "tls_certificate": "PEM"})


def test_files_that_are_not_proposals_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (MAX_PROPOSAL_BYTES + 1))
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\xff{")
    for path, message in ((big, "larger than"), (garbage, "not valid JSON"),
                          (tmp_path / "missing.json", "cannot be read")):
        with pytest.raises(GovernanceError, match=message):
            load_proposal(path)


def test_a_change_needs_approvals_before_it_becomes_a_transaction() -> None:
    with pytest.raises(GovernanceError) as raised:
        proposal().signed_change()
    assert raised.value.problem is GovernanceProblem.NO_QUORUM
    with pytest.raises(GovernanceError, match="invalid change_parameter"):
        new_change(GovernanceOperation.CHANGE_PARAMETER, epoch=0,
                   parameter=ParameterName.TX_MAX_AGE_MS, value=-1)
