"""``manage.py reencrypt``: output, JSON, dry run, exit codes (in process and as a real
subprocess against the test database)."""

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

from apps.keys.models import SealedPayload
from apps.keys.services import seal_payload
from cybermesh.keyfiles import generate_aead_key
from tests.keys.conftest import AtRestKeys

pytestmark = pytest.mark.integration

BASE_DIR = Path(django_settings.BASE_DIR)


def _seal(count: int) -> None:
    for index in range(count):
        seal_payload(purpose="p", plaintext=f"secret-{index}".encode(), context=str(index))


def _run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("reencrypt", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_the_command_reports_what_it_moved(at_rest_keys: AtRestKeys) -> None:
    _seal(5)
    at_rest_keys.use("k2", "k1")
    out, _ = _run("--batch-size", "2")
    assert out.strip() == ("resealed 5 rows to key k2 in 3 batches (from: k1: 5); no rows "
                           "remain under older keys")
    assert set(SealedPayload.objects.values_list("key_id", flat=True)) == {"k2"}


@pytest.mark.django_db
def test_the_command_prints_one_json_object(at_rest_keys: AtRestKeys) -> None:
    _seal(2)
    at_rest_keys.use("k2", "k1")
    out, err = _run("--json")
    assert json.loads(out) == {"current_key_id": "k2", "dry_run": False,
                               "stale_before": {"k1": 2}, "examined": 2, "resealed": 2,
                               "skipped": 0, "batches": 1, "remaining": {}}
    assert err == ""  # no progress bar in JSON mode


@pytest.mark.django_db
def test_a_dry_run_reports_and_changes_nothing(at_rest_keys: AtRestKeys) -> None:
    _seal(3)
    at_rest_keys.use("k2", "k1")
    out, _ = _run("--dry-run")
    assert out.strip() == "dry run: 3 rows would move to key k2 (by key: k1: 3); all of them open"
    assert set(SealedPayload.objects.values_list("key_id", flat=True)) == {"k1"}


@pytest.mark.django_db
def test_a_missing_key_fails_with_one_line_naming_the_row_and_key_id(
        at_rest_keys: AtRestKeys) -> None:
    _seal(1)
    row_id = SealedPayload.objects.get().id
    at_rest_keys.use("k2")
    with pytest.raises(CommandError) as caught:
        _run()
    assert caught.value.returncode == 1
    assert str(caught.value) == (
        f"sealed payload {row_id} is under key id 'k1', which is not in the at-rest keyring "
        "(k2); add its key file back to AT_REST_KEYS and run again")


@pytest.mark.django_db
def test_a_bad_batch_size_and_unusable_key_files_fail_with_one_line(
        at_rest_keys: AtRestKeys) -> None:
    with pytest.raises(CommandError, match=r"^batch size must be between 1 and 10000$"):
        _run("--batch-size", "0")
    at_rest_keys.path("k1").chmod(0o640)
    with pytest.raises(CommandError, match=r"^key file .*k1\.json: is readable or writable by "
                                           r"group/others \(mode 0640\)"):
        _run()


def _manage(*args: str, data_dir: Path, audit_keyring: Path
            ) -> subprocess.CompletedProcess[str]:
    db = connection.settings_dict
    env = {**os.environ,
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "CYBERMESH_DATA_DIR": str(data_dir), "AUDIT_SIGNING_KEY": str(audit_keyring)}
    env.pop("AT_REST_KEYS", None)
    return subprocess.run([sys.executable, "manage.py", "reencrypt", *args], cwd=BASE_DIR,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.django_db(transaction=True)
def test_the_real_command_exits_zero_when_done_and_one_on_an_unknown_key_id(
        at_rest_keys: AtRestKeys, audit_keyring_path: Path, tmp_path: Path) -> None:
    # The subprocess uses the development key (AT_REST_KEYS unset): DATA_DIR/at-rest-key.json.
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    development_key = generate_aead_key(data_dir / "at-rest-key.json", key_id_label="dev")
    at_rest_keys.settings.AT_REST_KEYS = [str(data_dir / "at-rest-key.json")]
    _seal(2)

    clean = _manage("--json", data_dir=data_dir, audit_keyring=audit_keyring_path)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["current_key_id"] == "dev"

    SealedPayload.objects.update(key_id="k1")
    first = SealedPayload.objects.order_by("id").values_list("id", flat=True)[0]
    broken = _manage(data_dir=data_dir, audit_keyring=audit_keyring_path)
    assert broken.returncode == 1
    assert broken.stdout == ""
    last_line = broken.stderr.strip().splitlines()[-1]
    assert last_line == (
        f"CommandError: sealed payload {first} and 1 more rows are under key id 'k1', which is "
        "not in the at-rest keyring (dev); add its key file back to AT_REST_KEYS and run again")
    assert development_key.key.hex() not in broken.stderr + clean.stdout + clean.stderr
