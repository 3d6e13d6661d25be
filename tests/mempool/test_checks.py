"""Start-up checks refuse a mempool configuration that could not work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from apps.mempool.checks import check_mempool
from tests.mempool.factories import ALICE

pytestmark = pytest.mark.unit


def _ids(settings: Any) -> list[str]:
    return [message.id for message in check_mempool()]


def test_a_ttl_not_above_the_replay_window_is_refused(settings: Any) -> None:
    settings.MEMPOOL_TTL_MS = 1000
    settings.MEMPOOL_REPLAY_WINDOW_MS = 1000
    assert "mempool.E001" in _ids(settings)
    settings.MEMPOOL_TTL_MS = 1001
    assert "mempool.E001" not in _ids(settings)


def test_a_broken_allowlist_is_refused_and_a_good_one_passes(settings: Any,
                                                            tmp_path: Path) -> None:
    path = tmp_path / "producers.json"
    path.write_text('{"producers": [{"producer_id": "x"}]}')
    settings.MEMPOOL_PRODUCERS_PATH = str(path)
    assert "mempool.E002" in _ids(settings)
    path.write_text(json.dumps({"producers": [{
        "producer_id": "ai-1", "keys": [{"public_key": ALICE.public_key.raw.hex()}],
        "kinds": ["security_event"], "rate_per_second": 1, "burst": 1, "max_pending": 1}]}))
    assert _ids(settings) == []


def test_production_needs_an_allowlist(settings: Any) -> None:
    settings.MEMPOOL_PRODUCERS_PATH = ""
    settings.PRODUCTION = False
    assert "mempool.E003" not in _ids(settings)
    settings.PRODUCTION = True
    assert "mempool.E003" in _ids(settings)
