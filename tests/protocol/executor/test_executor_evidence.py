"""Evidence: confirmation lowers the offender once; equivocation punishes a validator."""

from __future__ import annotations

import pytest

from cybermesh.protocol.executor import active_validator_set
from cybermesh.protocol.executor.events import EvidenceConfirmed, Quarantined, ReputationChanged
from cybermesh.protocol.executor.events import IgnoreReason as Ig
from cybermesh.protocol.executor.keys import Subject, tx_key
from cybermesh.protocol.executor.records import EventRecord, EvidenceRecord, EvidenceStatus
from cybermesh.protocol.txs import CustodyAction, CustodyEntry
from tests.protocol.executor.executor_chain import Chain, event_tx, ignored, of_type
from tests.protocol.txs.tx_builders import artifact_evidence, equivocation, signed

pytestmark = pytest.mark.unit


def _evidence(chain: Chain, *event_ids: bytes, nonce: int = 50) -> object:
    custody = (CustodyEntry("sensor-eu-1", CustodyAction.COLLECTED, chain.now_ms - 10),)
    return signed(artifact_evidence(supports=tuple(event_ids), custody=custody), nonce=nonce,
                  created_at_ms=chain.now_ms)


def test_evidence_confirms_known_events_and_costs_each_offender_once() -> None:
    chain = Chain()
    first = event_tx("198.51.100.1", severity=1, created_at_ms=chain.now_ms)
    second = event_tx("198.51.100.2", severity=1, nonce=2, created_at_ms=chain.now_ms)
    chain.block([first, second])
    evidence = _evidence(chain, first.tx_id, second.tx_id, b"\xee" * 32)
    step = chain.block([evidence])
    [confirmed] = of_type(step.events, EvidenceConfirmed)
    assert set(confirmed.event_ids) == {first.tx_id, second.tx_id}
    assert set(confirmed.subjects) == {Subject("ip", "198.51.100.1"), Subject("ip", "198.51.100.2")}
    impact = chain.state.parameters.evidence_impact_ppm
    drops = [e.old_ppm - e.new_ppm for e in of_type(step.events, ReputationChanged)]
    assert drops == [impact, impact]
    record = chain.state.get(tx_key(first.tx_id))
    assert isinstance(record, EventRecord) and record.confirmed
    # A second evidence naming the same events is recorded but costs nothing more.
    again = chain.block([_evidence(chain, first.tx_id, nonce=51)])
    assert not of_type(again.events, ReputationChanged)
    assert not of_type(again.events, EvidenceConfirmed)


def test_evidence_for_unknown_events_is_kept_as_unmatched() -> None:
    chain = Chain()
    evidence = _evidence(chain, b"\x01" * 32)
    step = chain.block([evidence])
    assert not of_type(step.events, EvidenceConfirmed)
    record = chain.state.get(tx_key(evidence.tx_id))
    assert isinstance(record, EvidenceRecord) and record.status is EvidenceStatus.UNMATCHED


def test_confirmation_can_push_an_offender_into_quarantine() -> None:
    chain = Chain()
    events = [event_tx(nonce=n, created_at_ms=chain.now_ms) for n in range(4)]  # 600_000 left
    chain.block(events)
    step = chain.block([_evidence(chain, events[0].tx_id)])  # -150_000 -> 450_000
    assert len(of_type(step.events, Quarantined)) == 1


def test_equivocation_lowers_the_validator_and_quarantine_removes_it_next_epoch() -> None:
    chain = Chain()
    step = chain.block([signed(equivocation("validator-3"), created_at_ms=chain.now_ms)])
    subject = Subject.validator("validator-3")
    [changed] = of_type(step.events, ReputationChanged)
    assert (changed.subject, changed.new_ppm) == (subject, 500_000)
    [quarantined] = of_type(step.events, Quarantined)
    assert quarantined.subject == subject and quarantined.reason == "equivocation"
    assert "validator-3" in active_validator_set(chain.state)  # not before the epoch ends
    while chain.state.chain.epoch == 0:
        chain.block()
    assert "validator-3" not in active_validator_set(chain.state)
    assert len(active_validator_set(chain.state)) == 3


def test_the_same_equivocation_is_punished_once() -> None:
    chain = Chain()
    chain.block([signed(equivocation(), created_at_ms=chain.now_ms)])
    replayed = signed(equivocation(), nonce=2, created_at_ms=chain.now_ms)
    assert ignored(chain.block([replayed]).events) == [Ig.DUPLICATE_EVIDENCE]


def test_equivocation_by_an_unknown_validator_is_ignored() -> None:
    chain = Chain()
    step = chain.block([signed(equivocation("validator-77"), created_at_ms=chain.now_ms)])
    assert ignored(step.events) == [Ig.UNKNOWN_VALIDATOR]


def test_quarantined_validators_stay_while_too_few_would_remain() -> None:
    chain = Chain()  # min_validators = 3 in the test parameters
    chain.block([signed(equivocation(f"validator-{i}"), nonce=i, created_at_ms=chain.now_ms)
                 for i in (1, 2)])
    while chain.state.chain.epoch == 0:
        chain.block()
    assert len(active_validator_set(chain.state)) == 4  # excluding both would leave 2 < 3
