"""``manage.py audit verify|head|rotate-key``: output, JSON, exit codes (in process and as a
real subprocess against the test database)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.db import connection

from apps.audit.keyring import load_keyring
from apps.audit.models import AuditEntry, AuditHead
from apps.audit.services import record_audit
from apps.audit.verify import verify_chain

pytestmark = pytest.mark.integration

BASE_DIR = Path(django_settings.BASE_DIR)


def _chain(count: int) -> None:
    for index in range(count):
        record_audit(actor=f"analyst-{index}", action="evidence.accept", target=f"ev/{index}",
                     outcome="success")


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("audit", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_verify_prints_ok_with_counts() -> None:
    _chain(5)
    output = _run("verify")
    assert output.startswith("OK: 5 entries verified (#1..#5)")
    assert "no signed head yet" in output


@pytest.mark.django_db
def test_verify_json_reports_the_result() -> None:
    _chain(3)
    _run("head")
    document = json.loads(_run("verify", "--json"))
    assert document["ok"] is True
    assert document["entries_checked"] == 3
    assert document["head_seq"] == 3
    assert document["problem"] is None


@pytest.mark.django_db
def test_verify_names_the_first_broken_link_and_fails() -> None:
    _chain(5)
    AuditEntry.objects.filter(seq=4).update(target="ev/forged")
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"broken at #4: hash_mismatch") as caught:
        call_command("audit", "verify", stdout=out, stderr=io.StringIO())
    assert caught.value.returncode == 1
    assert out.getvalue().startswith("BROKEN at #4: hash_mismatch")
    assert "3 entries before it verified" in out.getvalue()


@pytest.mark.django_db
def test_verify_json_names_the_problem_and_fails() -> None:
    _chain(5)
    _run("head")
    AuditEntry.objects.filter(seq__gte=4).delete()
    out = io.StringIO()
    with pytest.raises(CommandError, match="truncated"):
        call_command("audit", "verify", "--json", stdout=out, stderr=io.StringIO())
    document = json.loads(out.getvalue())
    assert document["ok"] is False
    assert document["problem"]["seq"] == 4
    assert document["problem"]["reason"] == "truncated"


@pytest.mark.django_db
def test_head_signs_and_prints_the_head() -> None:
    _chain(2)
    document = json.loads(_run("head", "--json"))
    assert document["seq"] == 2
    assert document["entry_hash"] == AuditEntry.objects.get(seq=2).entry_hash
    assert AuditHead.objects.filter(seq=2).exists()


@pytest.mark.django_db
def test_head_on_an_empty_chain_fails_with_one_line() -> None:
    with pytest.raises(CommandError, match="empty"):
        _run("head")


@pytest.mark.django_db
def test_rotate_key_adds_a_key_audits_it_and_keeps_the_chain_verifiable(
        audit_keyring_path: Path) -> None:
    _chain(2)
    old = load_keyring(audit_keyring_path).current_key_id
    document = json.loads(_run("rotate-key", "--json", "--actor", "ops@example"))
    keyring = load_keyring(audit_keyring_path)
    assert document["previous_key_id"] == old
    assert document["current_key_id"] == keyring.current_key_id != old
    rotation_entry = AuditEntry.objects.get(seq=3)
    assert (rotation_entry.actor, rotation_entry.action) == ("ops@example", "audit.key_rotated")
    assert rotation_entry.key_id == keyring.current_key_id
    assert document["head_seq"] == 3
    assert verify_chain().ok


@pytest.mark.django_db
def test_an_unusable_keyring_fails_with_one_line(audit_keyring_path: Path) -> None:
    audit_keyring_path.chmod(0o644)
    with pytest.raises(CommandError, match="chmod 600") as caught:
        _run("verify")
    assert "\n" not in str(caught.value)


def _manage(*args: str, database_name: str, keyring: Path) -> subprocess.CompletedProcess[str]:
    db = connection.settings_dict
    env = {**os.environ,
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{database_name}",
           "AUDIT_SIGNING_KEY": str(keyring)}
    return subprocess.run([sys.executable, "manage.py", "audit", *args], cwd=BASE_DIR, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.django_db(transaction=True)
def test_the_real_command_exits_zero_on_a_clean_chain_and_non_zero_on_a_broken_one(
        audit_keyring_path: Path) -> None:
    _chain(4)
    name = connection.settings_dict["NAME"]
    clean = _manage("verify", database_name=name, keyring=audit_keyring_path)
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout.startswith("OK: 4 entries verified")

    AuditEntry.objects.filter(seq=2).update(mac="00" * 32)
    broken = _manage("verify", "--json", database_name=name, keyring=audit_keyring_path)
    assert broken.returncode == 1
    assert json.loads(broken.stdout)["problem"] == {
        "seq": 2, "reason": "bad_mac", "detail": broken.stderr.split(": ", 3)[-1].strip()}
    assert broken.stderr.strip().splitlines()[-1].startswith(
        "CommandError: audit chain broken at #2: bad_mac")
