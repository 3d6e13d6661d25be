"""Every audit test gets its own 0600 keyring file; heads are signed only where a test asks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from apps.audit.keyring import create_keyring_file


@pytest.fixture(autouse=True)
def audit_keyring_path(settings: Any, tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "audit-keyring.json"
    create_keyring_file(path)
    settings.AUDIT_SIGNING_KEY = str(path)
    settings.AUDIT_LOG_PATH = ""
    settings.AUDIT_HEAD_INTERVAL = 0
    return path
