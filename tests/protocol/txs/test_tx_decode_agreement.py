"""``decode_transaction`` against its old strict path, on random valid and mutated transactions.

The old path is kept here as the reference: every CBOR item decoded by the pure-Python strict
decoder (``decode_strict``) and the wire split by the generic decoder, no byte-layout shortcut.
The two must agree on every input: accepted with the same fields, body, id and wire, or refused
with the same reason, field and text.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

from cybermesh.protocol.codec import decode_strict, encode
from cybermesh.protocol.txs import (
    Entity,
    GovernanceOperation,
    TxRejected,
    decode_transaction,
    envelope,
)
from tests.protocol.txs.tx_builders import (
    CHAIN_ID,
    anchor,
    artifact_evidence,
    equivocation,
    governance,
    policy,
    quarantine,
    release,
    security_event,
    signed,
)

pytestmark = pytest.mark.unit


def _outcome(data: bytes) -> tuple[Any, ...]:
    try:
        tx = decode_transaction(data, expected_chain_id=CHAIN_ID, verify=False)
    except TxRejected as error:
        return ("refused", error.reason, error.field, str(error))
    return ("ok", tx, tx.body, tx.tx_id, tx.wire, tx.version)


def _reference_outcome(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    with monkeypatch.context() as patch:
        patch.setattr(envelope, "decode", decode_strict)
        patch.setattr(envelope, "_split_wire", lambda _data: None)
        return _outcome(data)


def _transactions(rng: random.Random) -> list[bytes]:
    payloads = [
        security_event(severity=rng.randrange(1, 11), confidence_bps=rng.randrange(10_001)),
        security_event(offender=Entity.of("host", f"db-{rng.randrange(99)}.corp.example")),
        artifact_evidence(supports=(b"\x01" * 32, b"\x02" * 32)),
        equivocation(view=rng.randrange(1, 1 << 40)),
        policy(),
        quarantine(Entity.of("ip", f"198.51.100.{rng.randrange(256)}")),
        release(Entity.of("ip", "198.51.100.4")),
        *(governance(operation) for operation in GovernanceOperation),
        anchor(audit_seq=rng.randrange(1 << 63)),
    ]
    return [signed(payload, nonce=rng.randrange(1, 1 << 64)).wire for payload in payloads]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    mutated = bytearray(data)
    for _ in range(rng.randrange(1, 3)):
        position = rng.randrange(len(mutated))
        operation = rng.randrange(4)
        if operation == 0:
            mutated[position] ^= 1 << rng.randrange(8)
        elif operation == 1:
            mutated.insert(position, rng.choice((0x00, 0x18, 0x1F, 0x9F, 0xBF, 0xC2, 0xF5,
                                                 0xF7, 0xFB, rng.randrange(256))))
        elif operation == 2:
            del mutated[position]
        else:
            mutated[position] = rng.randrange(256)
    return bytes(mutated)


def _rewrapped(rng: random.Random, wire: bytes) -> bytes:
    """A mutated body in a well-formed wire, so the body's own rules are what is tested."""
    body, signature = decode_strict(wire)  # type: ignore[misc]
    return encode([_mutate(rng, body), signature])


def test_decode_agrees_with_the_strict_reference_path(monkeypatch: pytest.MonkeyPatch) -> None:
    seed = int(os.environ.get("TX_DECODE_SEED", random.SystemRandom().randrange(1 << 32)))
    print(f"tx decode agreement seed: {seed} (replay with TX_DECODE_SEED={seed})")
    rng = random.Random(seed)
    accepted = refused = 0
    for _ in range(25):
        for wire in _transactions(rng):
            for data in (wire, _mutate(rng, wire), _rewrapped(rng, wire),
                         _rewrapped(rng, wire), wire + b"\x00", wire[:-1]):
                expected = _reference_outcome(data, monkeypatch)
                assert _outcome(data) == expected, f"seed {seed}: {data.hex()}"
                if expected[0] == "ok":
                    accepted += 1
                else:
                    refused += 1
    assert accepted > 100 and refused > 500, f"seed {seed}: {accepted} / {refused}"


@pytest.mark.parametrize("wire_hex_change", [
    ("82", "9f"),  # indefinite-length outer array
    ("5840", "5b0000000000000040"),  # non-shortest signature head
])
def test_a_non_canonical_wire_is_refused_like_the_reference(
    wire_hex_change: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wire = signed(security_event()).wire.hex()
    old, new = wire_hex_change
    index = wire.rindex(old) if old == "5840" else 0
    data = bytes.fromhex(wire[:index] + new + wire[index + len(old):]
                         + ("ff" if new == "9f" else ""))
    outcome = _outcome(data)
    assert outcome[0] == "refused"
    assert outcome == _reference_outcome(data, monkeypatch)
