"""The producer allowlist file: strict parsing, key validation, reload on change."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from apps.mempool.producers import (
    MAX_ALLOWLIST_BYTES,
    AllowlistError,
    AllowlistFile,
    parse_allowlist,
)
from cybermesh.protocol.txs import TxKind
from tests.mempool.factories import ALICE, BOB

pytestmark = pytest.mark.unit


def _entry(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "producer_id": "ai-1",
        "keys": [{"key_id": ALICE.key_id, "public_key": ALICE.public_key.raw.hex()}],
        "kinds": ["security_event", "evidence"],
        "rate_per_second": 10, "burst": 20, "max_pending": 100,
    }
    entry.update(changes)
    return entry


def _document(*entries: dict[str, Any]) -> str:
    return json.dumps({"producers": list(entries)})


def _problems(document: str) -> str:
    with pytest.raises(AllowlistError) as caught:
        parse_allowlist(document)
    return "; ".join(caught.value.problems)


def test_a_valid_allowlist_maps_keys_to_producers_and_kinds() -> None:
    allowlist = parse_allowlist(_document(_entry(), _entry(
        producer_id="ai-2", keys=[{"public_key": BOB.public_key.raw.hex()}],
        kinds=["policy"])))
    found = allowlist.lookup("ai-1", ALICE.public_key.raw)
    assert found is not None
    producer, key = found
    assert key == ALICE.public_key
    assert producer.may_submit(TxKind.EVIDENCE) and not producer.may_submit(TxKind.POLICY)
    assert (producer.rate_per_second, producer.burst, producer.max_pending) == (10, 20, 100)
    assert allowlist.lookup("ai-1", BOB.public_key.raw) is None
    assert allowlist.lookup("ai-3", ALICE.public_key.raw) is None
    assert len(allowlist) == 2


@pytest.mark.parametrize(("entry", "problem"), [
    (_entry(extra=1), "unknown field"),
    (_entry(producer_id="has space"), "producer_id"),
    (_entry(keys=[]), "keys must be a list"),
    (_entry(keys=[{"public_key": "zz" * 32}]), "64 hex digits"),
    (_entry(keys=[{"public_key": "00" * 32}]), "public_key refused"),  # small order
    (_entry(keys=[{"public_key": "01" + "00" * 31}]), "public_key refused"),  # identity
    (_entry(keys=[{"key_id": "0000000000000000", "public_key": ALICE.public_key.raw.hex()}]),
     "does not match"),
    (_entry(kinds=["weather"]), "unknown kind"),
    (_entry(kinds=[]), "kinds must be a non-empty list"),
    (_entry(rate_per_second=0), "rate_per_second"),
    (_entry(burst=True), "burst"),
    (_entry(max_pending="10"), "max_pending"),
])
def test_a_bad_entry_is_refused_with_a_reason(entry: dict[str, Any], problem: str) -> None:
    assert problem in _problems(_document(entry))


def test_a_producer_or_key_listed_twice_is_refused() -> None:
    assert "listed twice" in _problems(_document(_entry(), _entry()))
    assert "belongs to both" in _problems(_document(_entry(), _entry(producer_id="ai-2")))


@pytest.mark.parametrize("document", ["", "[]", "{}", '{"producers": {}}', "{" * 100_000,
                                      '{"producers": [], "x": 1}'])
def test_a_document_of_the_wrong_shape_is_refused(document: str) -> None:
    with pytest.raises(AllowlistError):
        parse_allowlist(document)


def test_an_oversized_document_is_refused_before_parsing() -> None:
    assert "larger than" in _problems(" " * (MAX_ALLOWLIST_BYTES + 1))


def test_the_file_is_reloaded_when_it_changes_and_a_bad_edit_keeps_the_last_good(
        tmp_path: Path) -> None:
    path = tmp_path / "producers.json"
    path.write_text(_document(_entry()))
    allowlist_file = AllowlistFile(path)
    assert allowlist_file.current().lookup("ai-1", ALICE.public_key.raw) is not None
    path.write_text(_document(_entry(producer_id="ai-9")))
    os.utime(path, ns=(1, 1))
    assert allowlist_file.current().lookup("ai-9", ALICE.public_key.raw) is not None
    path.write_text("{not json")
    os.utime(path, ns=(2, 2))
    assert allowlist_file.current().lookup("ai-9", ALICE.public_key.raw) is not None


def test_a_missing_file_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(AllowlistError, match="cannot be read"):
        AllowlistFile(tmp_path / "absent.json")
