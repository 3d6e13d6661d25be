"""``manage.py governance``: propose, approve across validators, submit through real mempool
admission, follow to commit and to the epoch boundary, on PostgreSQL."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.audit.models import AuditEntry
from apps.governance.proposals import load_proposal
from apps.governance.queries import governance_view
from apps.mempool.models import MempoolTransaction
from cybermesh.keyfiles import KeyKind, generate_signing_key
from tests.governance.chain import LiveChain

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

COMMAND = "apps.governance.management.commands.governance._wait"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("governance", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def run_json(*args: str) -> dict[str, Any]:
    return json.loads(run(*args, "--json").strip().splitlines()[-1])


def as_validator(chain: LiveChain, index: int) -> list[str]:
    return ["--key", str(chain.key_paths[index]), "--validator-id", f"v{index}"]


def on_wait(monkeypatch: pytest.MonkeyPatch, *steps: Callable[[], object]) -> list[int]:
    """Each time the command waits, run the next step (then nothing); returns a wait counter."""
    calls: list[int] = []
    pending = list(steps)

    def wait(_seconds: float) -> None:
        calls.append(1)
        if pending:
            pending.pop(0)()

    monkeypatch.setattr(COMMAND, wait)
    return calls


def test_adding_a_validator_collects_a_quorum_submits_and_follows_to_activation(
        chain: LiveChain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    new_key = generate_signing_key(tmp_path / "v4.json", kind=KeyKind.NODE)
    proposal_file = tmp_path / "add-v4.json"
    first = run_json("add-validator", "--id", "v4", "--public-key", new_key.public_key.raw.hex(),
                     "--power", "1", "--address", "127.0.0.1:7104", "--out", str(proposal_file))
    # v0 (this node) approved; 1 of the 3 needed out of 4: written, not submitted.
    assert first["approvals"] == ["v0"] and first["quorum_power"] == 3
    assert first["submitted"] is False and first["missing"] == ["v1", "v2", "v3"]
    assert first["chain"] == {"height": 0, "epoch": 0, "epoch_ends_after_height": 4}
    assert not MempoolTransaction.objects.exists()
    second = run_json("approve", str(proposal_file), *as_validator(chain, 1))
    assert second["approvals"] == ["v0", "v1"] and second["submitted"] is False
    # The third approval reaches the quorum: the command submits through the mempool and
    # follows; meanwhile the node commits a block with what its mempool holds.
    on_wait(monkeypatch, chain.commit_mempool)
    third = run_json("approve", str(proposal_file), *as_validator(chain, 2))
    assert third["submitted"] is True and third["admission"] == "admitted"
    status = third["status"]
    assert status["stage"] == "scheduled" and status["height"] == chain.height
    assert status["applies_after_height"] == 4 and status["change"]["validator_id"] == "v4"
    assert governance_view().validators.get("v4") is None  # not before the epoch boundary
    chain.finish_epoch()
    after = run_json("status", third["tx_id"])
    assert after["stage"] == "active"
    view = governance_view()
    assert view.chain.epoch == 1 and "v4" in view.validators.active
    assert view.validators.get("v4").public_key == new_key.public_key.raw
    proposal = load_proposal(proposal_file)
    assert [tx_id.hex() for tx_id in proposal.submitted] == [third["tx_id"]]
    actions = list(AuditEntry.objects.filter(action__startswith="governance.")
                   .order_by("seq").values_list("action", "outcome"))
    assert actions == [("governance.approve", "success")] * 3 + [
        ("governance.submit", "success")]


def approve_all(chain: LiveChain, proposal_file: Path, indexes: tuple[int, ...]) -> None:
    for index in indexes:
        run_json("approve", str(proposal_file), *as_validator(chain, index), "--no-submit")


def test_rotating_a_key_from_the_next_key_file_is_followed_until_active(
        chain: LiveChain, monkeypatch: pytest.MonkeyPatch) -> None:
    # v0 rotates: its next key sits beside NODE_KEY_PATH (node_key.next.json convention).
    next_path = chain.key_paths[0].with_name("v0.next.json")
    next_key = generate_signing_key(next_path, kind=KeyKind.NODE)
    proposal_file = chain.key_paths[0].parent.parent / "rotate.json"
    run_json("rotate-key", "--id", "v0", "--out", str(proposal_file))
    approve_all(chain, proposal_file, (1,))
    waits = on_wait(monkeypatch, chain.commit_mempool, chain.commit, chain.commit, chain.commit)
    result = run_json("approve", str(proposal_file), *as_validator(chain, 2),
                      "--until", "active", "--poll-interval", "0")
    assert result["status"]["stage"] == "active" and result["status"]["epoch"] == 0
    assert len(waits) >= 2
    entry = governance_view().validators.get("v0")
    assert entry is not None and entry.public_key == next_key.public_key.raw


def test_a_change_for_another_epoch_is_refused_before_anything_is_signed(
        chain: LiveChain, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="names epoch 5, the chain is in epoch 0"):
        run("set-parameter", "--name", "quarantine_duration_ms", "--value", "60000",
            "--epoch", "5", "--out", str(tmp_path / "p.json"))
    assert not (tmp_path / "p.json").exists()
    assert not AuditEntry.objects.filter(action__startswith="governance.",
                                         outcome="success").exists()


def test_an_invalid_change_is_refused_with_the_executors_reason(chain: LiveChain) -> None:
    # Removing a validator would leave 3, below min_validators (4).
    with pytest.raises(CommandError, match="cannot shrink below 4"):
        run("remove-validator", "--id", "v3")
    with pytest.raises(CommandError, match="already registered"):
        run("add-validator", "--id", "v1", "--public-key", chain.keys[1].public_key.raw.hex(),
            "--power", "1", "--address", "127.0.0.1:7999")
    with pytest.raises(CommandError, match="must be within"):
        run("set-parameter", "--name", "quarantine_threshold_ppm", "--value", "2000000")


def test_submitting_without_a_quorum_is_refused_and_audited(
        chain: LiveChain, tmp_path: Path) -> None:
    proposal_file = tmp_path / "power.json"
    run_json("set-power", "--id", "v3", "--power", "2", "--out", str(proposal_file))
    approve_all(chain, proposal_file, (1,))
    with pytest.raises(CommandError, match=r"power 2 of the 3 a quorum needs; not yet "
                                           r"approved by v2, v3"):
        run("submit", str(proposal_file))
    assert not MempoolTransaction.objects.exists()
    failure = AuditEntry.objects.get(action="governance.submit")
    assert failure.outcome == "failure" and failure.details["reason"] == "no_quorum"


def test_only_an_active_validator_with_its_own_key_approves(
        chain: LiveChain, tmp_path: Path) -> None:
    proposal_file = tmp_path / "param.json"
    run_json("set-parameter", "--name", "tx_max_future_ms", "--value", "60000",
             "--out", str(proposal_file))
    with pytest.raises(CommandError, match="not 'v2''s registered validator key"):
        run("approve", str(proposal_file), "--key", str(chain.key_paths[1]),
            "--validator-id", "v2")
    stranger = tmp_path / "stranger.json"
    generate_signing_key(stranger, kind=KeyKind.NODE)
    with pytest.raises(CommandError, match="'v9' is not an active validator"):
        run("approve", str(proposal_file), "--key", str(stranger), "--validator-id", "v9")
    assert load_proposal(proposal_file).approvals[0].validator_id == "v0"
    assert len(load_proposal(proposal_file).approvals) == 1


def test_an_edited_proposal_file_is_refused(chain: LiveChain, tmp_path: Path) -> None:
    proposal_file = tmp_path / "param.json"
    run_json("set-parameter", "--name", "tx_max_future_ms", "--value", "60000",
             "--out", str(proposal_file))
    document = json.loads(proposal_file.read_text())
    document["summary"]["value"] = 1  # show approvers something other than what they sign
    proposal_file.write_text(json.dumps(document))
    with pytest.raises(CommandError, match="summary does not match the change"):
        run("approve", str(proposal_file), *as_validator(chain, 1))


def test_a_producer_that_is_not_allowlisted_is_refused_by_admission(
        chain: LiveChain, tmp_path: Path) -> None:
    proposal_file = tmp_path / "param.json"
    run_json("set-parameter", "--name", "tx_max_future_ms", "--value", "60000",
             "--out", str(proposal_file), "--no-submit")
    approve_all(chain, proposal_file, (1, 2))
    with pytest.raises(CommandError, match=r"unknown_producer.*MEMPOOL_PRODUCERS_PATH"):
        run("submit", str(proposal_file), "--producer-key", str(chain.key_paths[1]),
            "--producer-id", "v1")
    assert not MempoolTransaction.objects.exists()
    failure = AuditEntry.objects.get(action="governance.submit")
    assert failure.outcome == "failure" and failure.details["reason"] == "unknown_producer"


def test_a_transaction_committed_after_its_epoch_ended_is_reported_ignored(
        chain: LiveChain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proposal_file = tmp_path / "param.json"
    run_json("set-parameter", "--name", "tx_max_future_ms", "--value", "60000",
             "--out", str(proposal_file))
    approve_all(chain, proposal_file, (1,))
    # The epoch ends before the leader includes the transaction: the executor ignores it.
    on_wait(monkeypatch, lambda: (chain.finish_epoch(), chain.commit_mempool()))
    with pytest.raises(CommandError, match="ignored by the executor: wrong_epoch"):
        run("approve", str(proposal_file), *as_validator(chain, 2), "--poll-interval", "0")
    [tx_id] = load_proposal(proposal_file).submitted
    status = run_json("status", tx_id.hex())
    assert status["stage"] == "ignored" and status["reason"] == "wrong_epoch"
    assert governance_view().parameters.tx_max_future_ms == 5 * 60 * 1000  # unchanged


def test_following_times_out_with_a_hint_and_the_transaction_stays_pending(
        chain: LiveChain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proposal_file = tmp_path / "param.json"
    run_json("set-parameter", "--name", "tx_max_future_ms", "--value", "60000",
             "--out", str(proposal_file))
    approve_all(chain, proposal_file, (1,))
    on_wait(monkeypatch)
    with pytest.raises(CommandError, match=r"still at stage mempool after 0 s; check "
                                           r"later with: manage\.py governance status"):
        run("approve", str(proposal_file), *as_validator(chain, 2), "--timeout", "0")
    [tx_id] = load_proposal(proposal_file).submitted
    assert run_json("status", tx_id.hex())["stage"] == "mempool"
    summary = run_json("status", str(proposal_file))
    assert summary["approvals"] == ["v0", "v1", "v2"]
    assert [item["stage"] for item in summary["transactions"]] == ["mempool"]
    # Submitting again follows the transaction already on its way instead of making a second
    # one (which the executor would ignore as a duplicate change).
    on_wait(monkeypatch, chain.commit_mempool)
    again = run_json("submit", str(proposal_file))
    assert again["tx_id"] == tx_id.hex() and again["admission"] == "existing"
    assert again["status"]["stage"] == "scheduled"
    assert load_proposal(proposal_file).submitted == (tx_id,)


def test_a_proposal_is_found_by_its_id_in_the_data_directory(chain: LiveChain) -> None:
    created = run_json("set-power", "--id", "v2", "--power", "3")
    proposal_id = created["proposal_id"]
    assert created["proposal_file"].endswith(f"governance/{proposal_id}.json")
    approved = run_json("approve", proposal_id, *as_validator(chain, 3), "--no-submit")
    assert approved["approvals"] == ["v0", "v3"]
    assert run_json("status", proposal_id)["missing"] == ["v1", "v2"]


def test_a_policy_change_is_submitted_and_followed_to_its_commit(
        chain: LiveChain, monkeypatch: pytest.MonkeyPatch) -> None:
    on_wait(monkeypatch, chain.commit_mempool)
    result = run_json("propose-policy", "--op", "quarantine", "--entity", "ip:192.0.2.7",
                      "--reason", "worm outbreak", "--expires-in", "3600")
    assert result["admission"] == "admitted"
    assert result["status"]["stage"] == "committed" and result["status"]["kind"] == "policy"
    with pytest.raises(CommandError, match="invalid policy change"):
        run("propose-policy", "--op", "set-rule", "--entity", "ip:not-an-ip", "--reason", "x",
            "--scope", "*", "--action", "deny", "--expires-in", "60")


def test_status_of_an_unknown_transaction_exits_non_zero(chain: LiveChain) -> None:
    with pytest.raises(CommandError, match="is not known to this node"):
        run("status", "ab" * 32)
    with pytest.raises(CommandError, match="no proposal file"):
        run("status", "missing.json")


def test_text_output_shows_the_progress_and_the_outcome(
        chain: LiveChain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proposal_file = tmp_path / "param.json"
    text = run("set-parameter", "--name", "tx_max_future_ms", "--value", "60000",
               "--out", str(proposal_file))
    assert "approvals: v0 (power 1 of 3 needed)" in text
    assert "chain at block 0, epoch 0 ends after block 4 (approvals expire then)" in text
    assert f"manage.py governance approve {proposal_file.name}" in text
    approve_all(chain, proposal_file, (1,))
    on_wait(monkeypatch, chain.commit_mempool)
    text = run("approve", str(proposal_file), *as_validator(chain, 2))
    assert "submitted transaction" in text
    assert "scheduled: committed in block 1; applies at the end of epoch 0 (after block 4)" in text


def test_the_new_validators_tls_certificate_is_checked_and_carried_in_the_proposal(
        chain: LiveChain, tmp_path: Path) -> None:
    from apps.node.p2p.tls import certificate_for

    new_key = generate_signing_key(tmp_path / "v4.json", kind=KeyKind.NODE)
    good = tmp_path / "v4.pem"
    good.write_bytes(certificate_for(new_key, "v4", "127.0.0.1:7104"))
    wrong = tmp_path / "v5.pem"
    wrong.write_bytes(certificate_for(new_key, "v5", "127.0.0.1:7104"))
    arguments = ["add-validator", "--id", "v4", "--public-key", new_key.public_key.raw.hex(),
                 "--power", "1", "--address", "127.0.0.1:7104"]
    with pytest.raises(CommandError, match="certificate of 'v5'"):
        run(*arguments, "--tls-certificate", str(wrong), "--out", str(tmp_path / "bad.json"))
    assert not (tmp_path / "bad.json").exists()
    run_json(*arguments, "--tls-certificate", str(good), "--out", str(tmp_path / "p.json"))
    assert load_proposal(tmp_path / "p.json").tls_certificate == good.read_text()


def test_a_transaction_that_expires_from_the_mempool_is_reported_and_can_be_resubmitted(
        chain: LiveChain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.mempool.services import expire
    from tests.governance.chain import now_ms

    proposal_file = tmp_path / "param.json"
    run_json("set-parameter", "--name", "tx_max_future_ms", "--value", "60000",
             "--out", str(proposal_file))
    approve_all(chain, proposal_file, (1,))
    on_wait(monkeypatch, lambda: expire(now_ms() + 24 * 3600 * 1000))
    with pytest.raises(CommandError, match="left the mempool without being committed"):
        run("approve", str(proposal_file), *as_validator(chain, 2), "--poll-interval", "0")
    [first] = load_proposal(proposal_file).submitted
    # Nothing of it is on its way any more: submit builds a new transaction.
    on_wait(monkeypatch, chain.commit_mempool)
    again = run_json("submit", str(proposal_file))
    assert again["admission"] == "admitted" and again["tx_id"] != first.hex()
    assert again["status"]["stage"] == "scheduled"
