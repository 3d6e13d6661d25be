"""The standalone verifier: it proves honest answers and names the check each forgery fails.

Answers come from the real API over a committed chain; each forgery changes one thing, as a
lying node (or a man in the middle) would.
"""

from __future__ import annotations

import ast
import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.genesis import genesis_document, parse_genesis
from cybermesh.verify import verify_answer
from tests.api.chain import QUARANTINED_IP
from tests.api.conftest import ClientFor

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def answers(client_for: ClientFor, policy_chain_items: Any) -> dict[str, Any]:
    client = client_for("analyst")
    return {
        "present": client.get(f"/api/v1/state/proof/?record=quarantine&subject_kind=ip"
                              f"&subject_value={QUARANTINED_IP}").json(),
        "absent": client.get("/api/v1/state/proof/?record=quarantine&subject_kind=ip"
                             "&subject_value=192.0.2.1").json(),
        "entity": client.get(f"/api/v1/entities/ip/{QUARANTINED_IP}/").json(),
        "block": client.get("/api/v1/blocks/2/").json(),
    }


def verdict(answer: Any, genesis_file: Path) -> tuple[bool, str]:
    result = verify_answer(answer, parse_genesis(genesis_file.read_bytes()))
    return result.proven, result.reason


def flip(hex_text: str) -> str:
    return ("1" if hex_text[0] == "0" else "0") + hex_text[1:]


def test_honest_answers_are_proven(answers: dict[str, Any], genesis_file: Path) -> None:
    for name, answer in answers.items():
        ok, reason = verdict(answer, genesis_file)
        assert ok, (name, reason)


FORGERIES: dict[str, tuple[str, Callable[[dict[str, Any]], None], str]] = {
    "changed value": ("present", lambda a: a.update(value=flip(a["value"])),
                      "Merkle proof does not show the value"),
    "value claimed absent": ("present", lambda a: a.update(value=None, included=False),
                             "does not show the absence"),
    "value claimed present": ("absent", lambda a: a.update(value="00", included=True),
                              "does not show the value"),
    "changed sibling": ("present", lambda a: a["proof"]["siblings"].__setitem__(
        0, flip(a["proof"]["siblings"][0])), "Merkle proof"),
    "dropped sibling": ("present", lambda a: a["proof"]["siblings"].pop(), "Merkle proof"),
    "changed state root": ("present", lambda a: a["block"]["header"].update(
        state_root=flip(a["block"]["header"]["state_root"])), "does not match the header"),
    "changed header, rehashed": ("present", lambda a: (
        a["block"]["header"].update(timestamp_ms=a["block"]["header"]["timestamp_ms"] + 1),
        a["block"].pop("hash")), "certifies another block"),
    "mislabelled version": ("present", lambda a: a.update(version=a["version"] - 1),
                            "is not proven by block"),
    "other subject": ("present", lambda a: a["subject"].update(value="192.0.2.9"),
                      "is not the quarantine key"),
    "other record kind": ("present", lambda a: a.update(record_kind="reputation"),
                          "is not the reputation key"),
    "included contradicts value": ("present", lambda a: a.update(included=False),
                                   "contradicts"),
    "forged signature": ("present", lambda a: a["qc"]["signatures"][0].update(
        signature=flip(a["qc"]["signatures"][0]["signature"])), "does not verify"),
    "too few signers": ("present", lambda a: a["qc"].update(
        signatures=a["qc"]["signatures"][:2]), "below the quorum"),
    "duplicate signer": ("present", lambda a: a["qc"].update(
        signatures=a["qc"]["signatures"][:2] + a["qc"]["signatures"][:1]), "appears twice"),
    "unknown signer": ("present", lambda a: a["qc"]["signatures"][0].update(
        validator_id="mallory"), "not in the trusted validator set"),
    "no signatures": ("present", lambda a: a["qc"].update(signatures=[]), "no signatures"),
    "qc for another height": ("present", lambda a: a["qc"].update(
        height=a["qc"]["height"] + 1), "differ from the header"),
    "malformed hex": ("present", lambda a: a.update(key="zz"), "not valid hex"),
    "missing proof field": ("present", lambda a: a["proof"].pop("leaf"), "missing field"),
    "block answer, changed tx root": ("block", lambda a: a["header"].update(
        tx_root=flip(a["header"]["tx_root"])), "does not match the header"),
    "entity, one forged proof": ("entity", lambda a: a["quarantine_proof"].update(
        value=flip(a["quarantine_proof"]["value"])), "Merkle proof"),
    "not an answer": ("present", lambda a: a.clear(), "not a state proof"),
}


@pytest.mark.parametrize("name", list(FORGERIES))
def test_each_forgery_is_not_proven_and_named(answers: dict[str, Any], genesis_file: Path,
                                             name: str) -> None:
    which, forge, expected = FORGERIES[name]
    answer = copy.deepcopy(answers[which])
    forge(answer)
    ok, reason = verdict(answer, genesis_file)
    assert not ok
    assert expected in reason, reason


def test_another_validator_set_proves_nothing(answers: dict[str, Any], tmp_path: Path) -> None:
    keys = [SigningKey.from_seed(bytes([index + 50]) * 32) for index in range(4)]
    other = genesis_document(chain_id="ledger-test", genesis_time_ms=0, validators=[
        (f"v{index}", key.public_key.raw, 1, f"127.0.0.1:{7000 + index}")
        for index, key in enumerate(keys)])
    path = tmp_path / "other.json"
    path.write_text(json.dumps(other))
    ok, reason = verdict(answers["present"], path)
    assert not ok and "another validator set" in reason


def test_another_chain_id_proves_nothing(answers: dict[str, Any], genesis_file: Path,
                                         tmp_path: Path) -> None:
    document = json.loads(genesis_file.read_text())
    document["chain_id"] = "other-chain"
    path = tmp_path / "other-chain.json"
    path.write_text(json.dumps(document))
    ok, reason = verdict(answers["present"], path)
    assert not ok and "does not verify" in reason


def test_the_command_exits_0_when_proven_and_1_with_the_reason(
        answers: dict[str, Any], genesis_file: Path, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(answers["present"]))
    forged = copy.deepcopy(answers["present"])
    forged["value"] = flip(forged["value"])
    bad.write_text(json.dumps(forged))
    command = [sys.executable, "-m", "cybermesh.verify"]
    result = subprocess.run([*command, str(good), str(genesis_file)], cwd=REPO,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("proven: "), result
    result = subprocess.run([*command, str(bad), str(genesis_file), "--json"], cwd=REPO,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert json.loads(result.stdout)["proven"] is False
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    result = subprocess.run([*command, str(garbage), str(genesis_file)], cwd=REPO,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "not JSON" in result.stdout


def test_the_verifier_module_imports_no_django_and_no_apps() -> None:
    tree = ast.parse((REPO / "cybermesh" / "verify.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported
                if name.split(".")[0] in ("django", "apps", "rest_framework")}
    assert all(name.startswith("cybermesh.protocol") for name in imported
               if name.startswith("cybermesh"))


def test_running_the_verifier_loads_no_django() -> None:
    probe = ("import sys, runpy; sys.argv=['verify', '--help']\n"
             "try:\n    runpy.run_module('cybermesh.verify', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
