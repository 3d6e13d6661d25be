"""Hostile bytes never reach the database and never raise: Hypothesis over the pure steps.

No ``django_db`` mark: pytest-django refuses any database access here, so these tests also
prove that everything refused before step 4b is refused without a query.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.mempool.admission import AdmissionPipeline, AdmissionStatus, AdmissionStep
from cybermesh.protocol.codec import encode
from tests.mempool.conftest import MakePipeline
from tests.mempool.factories import NOW, event

pytestmark = pytest.mark.unit

TEMPLATE = event(1)


@pytest.fixture(scope="module")
def fuzz_pipeline() -> AdmissionPipeline:
    from apps.mempool.admission import MempoolConfig
    from tests.mempool.factories import CHAIN, allowlist

    return AdmissionPipeline(MempoolConfig(chain_id=CHAIN), allowlist())


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=600))
def test_random_bytes_are_refused_at_the_decoding_steps(fuzz_pipeline: AdmissionPipeline,
                                                        raw: bytes) -> None:
    result = fuzz_pipeline.admit(raw, now_ms=NOW, source="fuzz")
    assert result.status is AdmissionStatus.REJECTED
    assert result.reason is not None
    assert result.reason.step <= AdmissionStep.SCHEMA


@settings(max_examples=300, deadline=None)
@given(position=st.integers(0, len(TEMPLATE.wire) - 1), flip=st.integers(1, 255))
def test_any_flipped_byte_of_a_signed_transaction_is_refused_without_a_query(
        fuzz_pipeline: AdmissionPipeline, position: int, flip: int) -> None:
    raw = bytearray(TEMPLATE.wire)
    raw[position] ^= flip
    result = fuzz_pipeline.admit(bytes(raw), now_ms=NOW, source="fuzz")
    assert result.status is AdmissionStatus.REJECTED
    assert result.reason is not None
    assert result.reason.step <= AdmissionStep.AUTHORIZATION


@settings(max_examples=100, deadline=None)
@given(body=st.recursive(st.none() | st.booleans() | st.integers(-2**64, 2**64 - 1)
                         | st.binary(max_size=40) | st.text(max_size=20),
                         lambda children: st.lists(children, max_size=9)
                         | st.dictionaries(st.text(max_size=8), children, max_size=5),
                         max_leaves=30))
def test_structured_garbage_in_a_signed_wrapper_is_refused(fuzz_pipeline: AdmissionPipeline,
                                                           body: object) -> None:
    raw = encode([encode(body), bytes(64)])  # type: ignore[arg-type]
    result = fuzz_pipeline.admit(raw, now_ms=NOW, source="fuzz")
    assert result.status is AdmissionStatus.REJECTED


def test_the_make_pipeline_fixture_needs_no_database(make_pipeline: MakePipeline) -> None:
    result = make_pipeline().admit(b"\x80", now_ms=NOW, source="fuzz")
    assert result.reason is not None and result.reason.value == "schema"
