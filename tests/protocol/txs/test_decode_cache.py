"""Decoding without re-encoding: the caches and the structural canonical check of
``decode_transaction`` take no validation away.

* A strictly decoded transaction is sealed with the bytes it arrived in: the payload's
  ``to_cbor()`` is compared with the decoded payload value by :func:`_same_encoding` instead of
  being re-encoded. That comparison must never say "same" where the encodings differ (``True``
  vs ``1``, which Python calls equal), so it is checked against the real encoder on random
  values; and whatever it cannot decide falls back to the original re-encoding.
* Validated public keys and signature domains are cached, bounded; a refused key is never
  cached, so a cache can only save work, never admit anything.
"""

from __future__ import annotations

import collections
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermesh.protocol.codec import CborValue, decode, encode
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.txs import (
    Entity,
    GovernanceOperation,
    SecurityEvent,
    Transaction,
    TxKind,
    TxRejected,
    TxRejectReason,
    decode_transaction,
    envelope,
)
from cybermesh.protocol.txs.envelope import _same_encoding, public_key_of, tx_domain
from tests.protocol.txs.tx_builders import (
    CHAIN_ID,
    anchor,
    artifact_evidence,
    equivocation,
    governance,
    mutated_wire,
    policy,
    quarantine,
    release,
    security_event,
    signed,
)

pytestmark = pytest.mark.unit

EVERY_KIND = [
    security_event(),
    security_event(severity=1, offender=Entity.of("host", "db-1.corp.example")),
    artifact_evidence(supports=(b"\x01" * 32, b"\x02" * 32)),
    equivocation(),
    policy(),
    quarantine(Entity.of("ip", "198.51.100.4")),
    release(Entity.of("ip", "198.51.100.4")),
    *(governance(operation) for operation in GovernanceOperation),
    anchor(),
]


@pytest.mark.parametrize("payload", EVERY_KIND, ids=lambda payload: type(payload).__name__)
def test_every_kind_decodes_to_the_signed_transaction_without_re_encoding(
    payload: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tx = signed(payload)

    def no_encoding(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("the decode fast path re-encoded the transaction")

    monkeypatch.setattr(envelope, "encode", no_encoding)
    decoded = decode_transaction(tx.wire, expected_chain_id=CHAIN_ID)
    assert decoded == tx
    assert (decoded.body, decoded.tx_id, decoded.wire) == (tx.body, tx.tx_id, tx.wire)
    assert isinstance(decoded, Transaction)


def test_a_schema_that_turns_an_integer_into_true_is_caught(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``{"severity": True} == {"severity": 1}`` in Python, but not in CBOR (0xf5 vs 0x01)."""
    tx = signed(security_event(severity=1))
    original = SecurityEvent.to_cbor

    def lossy(self: SecurityEvent) -> object:
        body = original(self)
        assert isinstance(body, dict)
        body["severity"] = True
        return body

    monkeypatch.setattr(SecurityEvent, "to_cbor", lossy)
    with pytest.raises(TxRejected) as refused:
        decode_transaction(tx.wire, verify=False)
    assert refused.value.reason is TxRejectReason.MALFORMED_ENCODING


def test_a_schema_that_gives_a_tuple_for_a_list_is_not_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    tx = signed(security_event())
    original = SecurityEvent.to_cbor

    def as_tuples(self: SecurityEvent) -> object:
        body = original(self)
        assert isinstance(body, dict) and isinstance(body["offender"], list)
        body["offender"] = tuple(body["offender"])
        return body

    monkeypatch.setattr(SecurityEvent, "to_cbor", as_tuples)
    assert decode_transaction(tx.wire).tx_id == tx.tx_id


def test_a_payload_the_structural_check_cannot_judge_is_re_encoded_and_still_checked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    tx = signed(security_event())
    original = SecurityEvent.to_cbor
    # An OrderedDict encodes like a dict: the fast check says "cannot tell", the fallback
    # re-encodes and finds the same bytes.
    monkeypatch.setattr(SecurityEvent, "to_cbor",
                        lambda self: collections.OrderedDict(original(self)))
    assert decode_transaction(tx.wire).tx_id == tx.tx_id

    def ordered_and_lossy(self: SecurityEvent) -> object:
        body = collections.OrderedDict(original(self))
        body["severity"] = 2
        return body

    monkeypatch.setattr(SecurityEvent, "to_cbor", ordered_and_lossy)
    with pytest.raises(TxRejected) as refused:
        decode_transaction(tx.wire, verify=False)
    assert refused.value.reason is TxRejectReason.MALFORMED_ENCODING


# --- _same_encoding against the real encoder ---------------------------------------------

scalars = st.one_of(st.integers(-(1 << 64), (1 << 64) - 1), st.sampled_from([0, 1, True, False]),
                    st.none(), st.binary(max_size=8), st.text(max_size=8))
keys = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.binary(max_size=3))
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(keys, children, max_size=4)),
    max_leaves=12)


def flip_bools(value: Any) -> Any:
    """The same value as Python sees it, with 0/1 and False/True swapped (CBOR differs)."""
    if type(value) is bool:
        return int(value)
    if type(value) is int and value in (0, 1):
        return bool(value)
    if isinstance(value, list | tuple):
        return [flip_bools(element) for element in value]
    if isinstance(value, dict):
        return {key: flip_bools(element) for key, element in value.items()}
    return value


@settings(max_examples=400, deadline=None)
@given(first=values, second=values)
def test_same_encoding_is_true_exactly_when_the_encoder_agrees(first: Any, second: Any) -> None:
    decoded: CborValue = decode(encode(first))
    assert _same_encoding(first, decoded) is True
    for candidate in (second, flip_bools(first)):
        verdict = _same_encoding(candidate, decoded)
        assert verdict is not None  # plain types only here: always decided
        assert verdict == (encode(candidate) == encode(first))


def test_same_encoding_leaves_subclasses_and_odd_containers_to_the_encoder() -> None:
    assert _same_encoding(TxKind.POLICY, "policy") is None
    assert _same_encoding(bytearray(b"ab"), b"ab") is None
    assert _same_encoding({True: 1}, {1: 1}) is None
    assert _same_encoding(collections.OrderedDict(a=1), {"a": 1}) is None
    assert _same_encoding([1, TxKind.POLICY], [1, "policy"]) is None
    assert _same_encoding({"a": True}, {"a": 1}) is False
    assert _same_encoding((1, b"x"), [1, b"x"]) is True


# --- caches ----------------------------------------------------------------------------------

IDENTITY_POINT = b"\x01" + bytes(31)  # small order (1): refused when a key is registered


def test_a_refused_public_key_is_never_cached_and_stays_refused() -> None:
    tx = signed(security_event())
    wire = mutated_wire(tx, lambda body: body.__setitem__(6, IDENTITY_POINT))
    before = public_key_of.cache_info()
    for _ in range(3):
        with pytest.raises(TxRejected) as refused:
            decode_transaction(wire, verify=False)
        assert refused.value.reason is TxRejectReason.BAD_PUBLIC_KEY
    after = public_key_of.cache_info()
    assert after.hits == before.hits
    assert after.misses == before.misses + 3


def test_the_key_and_domain_caches_are_bounded_and_serve_repeated_producers() -> None:
    assert public_key_of.cache_info().maxsize == 4096
    assert tx_domain.cache_info().maxsize == 256
    key = SigningKey.from_seed(b"\x33" * 32)
    payload = security_event()
    first = signed(payload, key=key, nonce=1)
    hits = public_key_of.cache_info().hits
    for nonce in range(2, 5):
        tx = signed(payload, key=key, nonce=nonce)
        assert decode_transaction(tx.wire).public_key == first.public_key
    assert public_key_of.cache_info().hits > hits
    assert tx_domain(TxKind.POLICY, CHAIN_ID) is tx_domain(TxKind.POLICY, CHAIN_ID)
