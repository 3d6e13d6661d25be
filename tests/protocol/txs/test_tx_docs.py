"""The hex examples in docs/transactions.md decode, verify and carry the id the doc states."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cybermesh.protocol.txs import decode_transaction

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[3] / "docs" / "transactions.md"
EXAMPLE = re.compile(r"tx id `([0-9a-f]{64})`:\s*```hex\n([0-9a-f\n]+)```")


def _examples() -> list[tuple[str, bytes]]:
    return [(tx_id, bytes.fromhex(hex_text.replace("\n", "")))
            for tx_id, hex_text in EXAMPLE.findall(DOC.read_text())]


def test_the_doc_has_an_example_of_every_kind() -> None:
    kinds = {decode_transaction(wire).kind.value for _, wire in _examples()}
    assert kinds == {"security_event", "evidence", "policy", "governance", "audit_anchor"}


@pytest.mark.parametrize(("tx_id", "wire"), _examples(), ids=lambda value: str(value)[:12])
def test_each_example_decodes_verifies_and_has_its_id(tx_id: str, wire: bytes) -> None:
    assert decode_transaction(wire, expected_chain_id="cybermesh-test").tx_id.hex() == tx_id
