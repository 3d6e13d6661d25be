"""Quarantine: threshold, extension, manual quarantine and release, automatic expiry."""

from __future__ import annotations

import pytest

from cybermesh.protocol.executor.events import IgnoreReason as Ig
from cybermesh.protocol.executor.events import Quarantined, Released, ReleaseReason
from cybermesh.protocol.executor.keys import Subject, quarantine_key
from cybermesh.protocol.executor.records import QuarantineRecord
from cybermesh.protocol.executor.state import EXPIRY_BUCKET_MS
from cybermesh.protocol.txs import Entity
from tests.protocol.executor.executor_chain import Chain, event_tx, ignored, of_type
from tests.protocol.txs.tx_builders import quarantine, release, signed

pytestmark = pytest.mark.unit

OFFENDER = Subject("ip", "203.0.113.7")


def _record(chain: Chain) -> QuarantineRecord | None:
    record = chain.state.get(quarantine_key(OFFENDER))
    assert record is None or isinstance(record, QuarantineRecord)
    return record


def _events(chain: Chain, count: int, first_nonce: int = 0) -> list[object]:
    return [event_tx(nonce=first_nonce + n, created_at_ms=chain.now_ms) for n in range(count)]


def test_reaching_the_threshold_quarantines_for_the_configured_duration() -> None:
    chain = Chain()
    assert not of_type(chain.block(_events(chain, 4)).events, Quarantined)  # 600_000 > 500_000
    step = chain.block(_events(chain, 1, first_nonce=10))  # 500_000: at the threshold
    [quarantined] = of_type(step.events, Quarantined)
    duration = chain.state.parameters.quarantine_duration_ms
    assert quarantined.until_ms == chain.now_ms + duration
    assert quarantined.reason == "reputation"


def test_offences_during_a_quarantine_do_not_extend_it_but_the_next_one_after_does() -> None:
    chain = Chain()
    chain.block(_events(chain, 5))
    first = _record(chain)
    assert first is not None
    step = chain.block(_events(chain, 1, first_nonce=10), advance_ms=60_000)
    assert not of_type(step.events, Quarantined)
    assert _record(chain) == first
    step = chain.block(_events(chain, 1, first_nonce=20), at_ms=first.expires_at_ms + 1)
    [again] = of_type(step.events, Quarantined)
    assert again.until_ms == chain.now_ms + chain.state.parameters.quarantine_duration_ms
    assert not of_type(step.events, Released)  # replaced before its expiry was processed
    second = _record(chain)
    assert second is not None and second.since_ms == chain.now_ms


def test_quarantine_expires_at_the_end_of_its_bucket() -> None:
    chain = Chain()
    chain.block(_events(chain, 5))
    record = _record(chain)
    assert record is not None
    bucket_end = (record.expires_at_ms // EXPIRY_BUCKET_MS + 1) * EXPIRY_BUCKET_MS
    assert not of_type(chain.block(at_ms=bucket_end - 1).events, Released)
    [released] = of_type(chain.block(at_ms=bucket_end).events, Released)
    assert released.reason is ReleaseReason.EXPIRED and released.cause is None
    assert _record(chain) is None


def test_manual_quarantine_sets_the_chosen_expiry_and_release_ends_it() -> None:
    chain = Chain()
    entity = Entity.of("host", "c2.evil.example")
    subject = Subject.of(entity)
    until = chain.now_ms + 120_000
    step = chain.block([signed(quarantine(entity, until), created_at_ms=chain.now_ms)])
    [quarantined] = of_type(step.events, Quarantined)
    assert (quarantined.subject, quarantined.until_ms, quarantined.reason) == (
        subject, until, "manual")
    release_tx = signed(release(entity), nonce=2, created_at_ms=chain.now_ms)
    [released] = of_type(chain.block([release_tx]).events, Released)
    assert released.reason is ReleaseReason.MANUAL and released.cause == release_tx.tx_id
    again = signed(release(entity), nonce=3, created_at_ms=chain.now_ms)
    assert ignored(chain.block([again]).events) == [Ig.NOT_QUARANTINED]


def test_manual_quarantine_may_shorten_an_automatic_one() -> None:
    chain = Chain()
    chain.block(_events(chain, 5))
    short = chain.now_ms + 5000
    chain.block([signed(quarantine(Entity.of("ip", "203.0.113.7"), short), nonce=99,
                        created_at_ms=chain.now_ms)])
    record = _record(chain)
    assert record is not None and record.expires_at_ms == short
