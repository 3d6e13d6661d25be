"""Every TxRejectReason is produced by at least one malformed transaction.

Each case starts from a valid, signed transaction, changes one thing in its decoded body and
re-signs it (so the schema rule, not the signature check, is what refuses it), then expects one
exact reason. A final test checks that the table covers the whole enum.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cybermesh.protocol.codec import encode
from cybermesh.protocol.txs import (
    MAX_TX_BYTES,
    Entity,
    GovernanceOperation,
    TxRejected,
    TxRejectReason,
    decode_transaction,
)
from cybermesh.protocol.txs.evidence import MAX_SUPPORTED_EVENTS
from cybermesh.protocol.txs.policy import MAX_POLICY_HORIZON_MS
from tests.protocol.txs.tx_builders import (
    CHAIN_ID,
    T0,
    anchor,
    artifact_evidence,
    equivocation,
    governance,
    mutated_wire,
    policy,
    quarantine,
    security_event,
    signed,
)

pytestmark = pytest.mark.unit

R = TxRejectReason
Body = list[Any]


def _set_payload(name: str, value: object) -> Callable[[Body], None]:
    def change(body: Body) -> None:
        body[7][name] = value
    return change


def _drop_payload(name: str) -> Callable[[Body], None]:
    def change(body: Body) -> None:
        del body[7][name]
    return change


def _set_body(index: int, value: object) -> Callable[[Body], None]:
    def change(body: Body) -> None:
        body[index] = value
    return change


def _edit(payload_name: str, edit: Callable[[Any], None]) -> Callable[[Body], None]:
    def change(body: Body) -> None:
        edit(body[7][payload_name])
    return change


EVENT = signed(security_event())
EVIDENCE = signed(artifact_evidence(supports=(b"\x01" * 32, b"\x02" * 32)))
EQUIVOCATION = signed(equivocation())
POLICY = signed(policy())
GOVERNANCE_ADD = signed(governance(GovernanceOperation.ADD_VALIDATOR))
GOVERNANCE_PARAMETER = signed(governance(GovernanceOperation.CHANGE_PARAMETER))
ANCHOR = signed(anchor())

# (case id, valid tx, change to its body, expected reason)
BODY_CASES: list[tuple[str, Any, Callable[[Body], None], TxRejectReason]] = [
    ("body_too_short", EVENT, lambda body: body.pop(), R.BAD_STRUCTURE),
    ("payload_missing_field", EVENT, _drop_payload("detector"), R.BAD_STRUCTURE),
    ("payload_unknown_field", EVENT, _set_payload("extra", 1), R.BAD_STRUCTURE),
    ("payload_not_a_map", EVENT, _set_body(7, [1, 2]), R.BAD_STRUCTURE),
    ("severity_as_text", EVENT, _set_payload("severity", "7"), R.WRONG_TYPE),
    ("severity_as_bool", EVENT, _set_payload("severity", True), R.WRONG_TYPE),
    ("version_2", EVENT, _set_body(0, 2), R.UNSUPPORTED_VERSION),
    ("unknown_kind", EVENT, _set_body(1, "sighting"), R.UNKNOWN_KIND),
    ("chain_id_uppercase", EVENT, _set_body(2, "CyberMesh"), R.BAD_CHAIN_ID),
    ("producer_with_space", EVENT, _set_body(3, "ai detector"), R.BAD_PRODUCER),
    ("negative_nonce", EVENT, _set_body(4, -1), R.BAD_NONCE),
    ("created_at_zero", EVENT, _set_body(5, 0), R.BAD_TIMESTAMP),
    ("public_key_short", EVENT, _set_body(6, b"\x01" * 31), R.BAD_PUBLIC_KEY),
    ("public_key_small_order", EVENT, _set_body(6, bytes(32)), R.BAD_PUBLIC_KEY),
    ("policy_reason_control_char", POLICY, _set_payload("reason", "bad\x1b[2Jreason"),
     R.BAD_TEXT),
    ("policy_reason_too_long", POLICY, _set_payload("reason", "x" * 257), R.BAD_TEXT),
    ("too_many_supported_events", EVIDENCE,
     _set_payload("supports", [bytes([i // 256, i % 256]) + bytes(30)
                               for i in range(MAX_SUPPORTED_EVENTS + 1)]), R.LIST_TOO_LONG),
    ("no_artifacts", EVIDENCE, _set_payload("artifacts", []), R.EMPTY_LIST),
    ("supports_unsorted", EVIDENCE, _set_payload("supports", [b"\x02" * 32, b"\x01" * 32]),
     R.NOT_CANONICAL_ORDER),
    ("supports_repeated", EVIDENCE, _set_payload("supports", [b"\x01" * 32, b"\x01" * 32]),
     R.NOT_CANONICAL_ORDER),
    ("supports_short_hash", EVIDENCE, _set_payload("supports", [b"\x01" * 31]), R.BAD_HASH),
    ("anchor_short_head_hash", ANCHOR, _set_payload("head_hash", b"\x01" * 16), R.BAD_HASH),
    ("offender_not_an_ip", EVENT, _set_payload("offender", ["ip", "999.1.1.1"]), R.BAD_ENTITY),
    ("offender_ipv4_mapped_not_canonical", EVENT,
     _set_payload("offender", ["ip", "::ffff:203.0.113.7"]), R.BAD_ENTITY),
    ("offender_ip_with_zone", EVENT, _set_payload("offender", ["ip", "fe80::1%eth0"]),
     R.BAD_ENTITY),
    ("offender_cidr_host_bits", EVENT, _set_payload("offender", ["cidr", "10.0.0.1/8"]),
     R.BAD_ENTITY),
    ("offender_host_uppercase", EVENT, _set_payload("offender", ["host", "Evil.Example"]),
     R.BAD_ENTITY),
    ("offender_unknown_kind", EVENT, _set_payload("offender", ["mac", "00:11"]), R.BAD_ENTITY),
    ("source_empty", EVENT, _set_payload("source", ""), R.BAD_SOURCE),
    ("category_unknown", EVENT, _set_payload("category", "weird"), R.BAD_CATEGORY),
    ("severity_zero", EVENT, _set_payload("severity", 0), R.BAD_SEVERITY),
    ("severity_eleven", EVENT, _set_payload("severity", 11), R.BAD_SEVERITY),
    ("confidence_over_100_percent", EVENT, _set_payload("confidence_bps", 10_001),
     R.BAD_CONFIDENCE),
    ("observed_after_creation", EVENT, _set_payload("observed_at_ms", T0 + 1),
     R.BAD_OBSERVED_TIME),
    ("detector_with_space", EVENT, _set_payload("detector", "my detector"), R.BAD_DETECTOR),
    ("payload_ref_short_hex", EVENT, _set_payload("payload_ref", "ab" * 31), R.BAD_PAYLOAD_REF),
    ("payload_ref_with_space", EVENT, _set_payload("payload_ref", "https://x/a b"),
     R.BAD_PAYLOAD_REF),
    ("evidence_kind_unknown", EVIDENCE, _set_payload("kind", "hearsay"), R.BAD_EVIDENCE_KIND),
    ("artifact_negative_size", EVIDENCE,
     _set_payload("artifacts", [{"sha256": b"\xaa" * 32, "media_type": "a/b",
                                 "size_bytes": -1}]), R.BAD_ARTIFACT),
    ("custody_unknown_action", EVIDENCE,
     _edit("custody", lambda custody: custody[0].update(action="lost")), R.BAD_CUSTODY),
    ("custody_out_of_order", EVIDENCE, _edit("custody", lambda custody: custody.reverse()),
     R.BAD_CUSTODY),
    ("custody_after_creation", EVIDENCE,
     _edit("custody", lambda custody: custody[1].update(at_ms=T0 + 10)), R.BAD_CUSTODY),
    ("equivocation_same_block", EQUIVOCATION,
     _edit("equivocation", lambda proof: proof.update(second=proof["first"])),
     R.BAD_EQUIVOCATION),
    ("equivocation_short_signature", EQUIVOCATION,
     _edit("equivocation", lambda proof: proof["first"].__setitem__(2, b"\x05" * 63)),
     R.BAD_EQUIVOCATION),
    ("policy_unknown_operation", POLICY, _set_payload("op", "delete"), R.BAD_OPERATION),
    ("policy_scope_uppercase", POLICY, _set_payload("scope", "Ingress"), R.BAD_SCOPE),
    ("policy_unknown_action", POLICY, _set_payload("action", "maybe"), R.BAD_ACTION),
    ("policy_expiry_before_creation", POLICY, _set_payload("expires_at_ms", T0 - 1),
     R.BAD_EXPIRY),
    ("policy_expiry_beyond_horizon", POLICY,
     _set_payload("expires_at_ms", T0 + MAX_POLICY_HORIZON_MS + 1), R.BAD_EXPIRY),
    ("add_validator_bad_id", GOVERNANCE_ADD, _set_payload("validator_id", "v 9"),
     R.BAD_VALIDATOR_ID),
    ("governance_negative_epoch", GOVERNANCE_ADD, _set_payload("epoch", -1), R.BAD_EPOCH),
    ("add_validator_zero_power", GOVERNANCE_ADD, _set_payload("power", 0), R.BAD_POWER),
    ("add_validator_no_port", GOVERNANCE_ADD, _set_payload("address", "10.0.0.9"),
     R.BAD_ADDRESS),
    ("add_validator_small_order_key", GOVERNANCE_ADD, _set_payload("public_key", bytes(32)),
     R.BAD_PUBLIC_KEY),
    ("unknown_parameter", GOVERNANCE_PARAMETER, _set_payload("parameter", "block_reward"),
     R.BAD_PARAMETER),
    ("negative_parameter_value", GOVERNANCE_PARAMETER, _set_payload("value", -5),
     R.BAD_PARAMETER),
    ("approval_short_signature", GOVERNANCE_ADD,
     _edit("approvals", lambda approvals: approvals[0].__setitem__(1, b"\x00" * 63)),
     R.BAD_APPROVALS),
    ("approvals_unsorted", GOVERNANCE_ADD, _edit("approvals", lambda a: a.reverse()),
     R.NOT_CANONICAL_ORDER),
    ("no_approvals", GOVERNANCE_ADD, _set_payload("approvals", []), R.EMPTY_LIST),
    ("anchor_negative_sequence", ANCHOR, _set_payload("audit_seq", -1), R.BAD_SEQUENCE),
    ("anchor_empty_key_id", ANCHOR, _set_payload("hmac_key_id", ""), R.BAD_KEY_ID),
    ("anchor_for_another_validator", ANCHOR, _set_payload("validator_id", "validator-1"),
     R.BAD_VALIDATOR_ID),
]

# (case id, wire bytes, decode keyword arguments, expected reason)
WIRE_CASES: list[tuple[str, bytes, dict[str, Any], TxRejectReason]] = [
    ("over_global_cap", b"\x00" * (MAX_TX_BYTES + 1), {}, R.TOO_LARGE),
    ("over_kind_cap", mutated_wire(EVENT, lambda body: body[7].update(
        payload_ref="https://x/" + "a" * 5000)), {}, R.TOO_LARGE),
    ("not_cbor", b"\xff\x00", {}, R.MALFORMED_ENCODING),
    ("non_canonical_cbor", encode([EVENT.body, EVENT.signature])[:-65]
     + b"\x58\x40" + EVENT.signature, {}, R.MALFORMED_ENCODING),
    ("outer_not_a_pair", encode([EVENT.body]), {}, R.BAD_STRUCTURE),
    ("body_not_bytes", encode([1, EVENT.signature]), {}, R.WRONG_TYPE),
    ("wrong_chain", EVENT.wire, {"expected_chain_id": "cybermesh-prod"}, R.WRONG_CHAIN),
    ("signature_flipped", EVENT.wire[:-1] + bytes([EVENT.wire[-1] ^ 1]), {}, R.BAD_SIGNATURE),
    ("signature_short", encode([EVENT.body, EVENT.signature[:63]]), {}, R.BAD_SIGNATURE),
]


@pytest.mark.parametrize(("case", "tx", "change", "reason"), BODY_CASES,
                         ids=[case[0] for case in BODY_CASES])
def test_body_change_is_refused_with_its_reason(case: str, tx: Any,
                                                change: Callable[[Body], None],
                                                reason: TxRejectReason) -> None:
    wire = mutated_wire(tx, change)
    with pytest.raises(TxRejected) as refused:
        decode_transaction(wire, expected_chain_id=CHAIN_ID)
    assert refused.value.reason is reason, refused.value


@pytest.mark.parametrize(("case", "wire", "options", "reason"), WIRE_CASES,
                         ids=[case[0] for case in WIRE_CASES])
def test_wire_defect_is_refused_with_its_reason(case: str, wire: bytes, options: dict[str, Any],
                                                reason: TxRejectReason) -> None:
    with pytest.raises(TxRejected) as refused:
        decode_transaction(wire, **options)
    assert refused.value.reason is reason, refused.value


def test_constructor_refuses_what_the_decoder_refuses() -> None:
    with pytest.raises(TxRejected) as refused:
        security_event(severity=11)
    assert refused.value.reason is R.BAD_SEVERITY
    with pytest.raises(TxRejected) as refused:
        signed(quarantine(Entity.of("host", "evil.example"), expires_at_ms=T0))
    assert refused.value.reason is R.BAD_EXPIRY


def test_every_reject_reason_is_produced_by_a_case() -> None:
    produced = {case[3] for case in BODY_CASES} | {case[3] for case in WIRE_CASES}
    assert produced == set(TxRejectReason), set(TxRejectReason) - produced
