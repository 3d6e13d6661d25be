"""``manage.py keygen``: thin command over cybermesh.keyfiles."""

from __future__ import annotations

import json
import stat
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.keys.management.commands.keygen import Command
from cybermesh.keyfiles import load_aead_key, load_signing_key

pytestmark = pytest.mark.unit


def _run(*args: str) -> str:
    out = StringIO()
    call_command(Command(), *args, stdout=out)
    return out.getvalue()


def test_keygen_writes_a_0600_node_key_and_prints_only_public_identity(tmp_path: Path) -> None:
    path = tmp_path / "node_key.json"
    printed = json.loads(_run("--out", str(path), "--json"))
    key = load_signing_key(path)
    assert printed == {"kind": "node", "key_id": key.key_id,
                       "public_key": key.public_key.raw.hex(), "path": str(path)}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["seed"] not in json.dumps(printed)


def test_keygen_makes_producer_and_aead_keys(tmp_path: Path) -> None:
    assert "kind=producer" in _run("--out", str(tmp_path / "p.json"), "--kind", "producer")
    printed = _run("--out", str(tmp_path / "a.json"), "--kind", "aead", "--label", "2025")
    assert "key_id=2025" in printed
    aead = load_aead_key(tmp_path / "a.json")
    assert aead.key_id == "2025"
    assert aead.key.hex() not in printed


def test_keygen_refuses_to_overwrite_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "node_key.json"
    _run("--out", str(path))
    before = path.read_bytes()
    with pytest.raises(CommandError, match="refusing to overwrite"):
        _run("--out", str(path))
    assert path.read_bytes() == before
