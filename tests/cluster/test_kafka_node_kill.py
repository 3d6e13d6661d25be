"""A whole validator (consensus worker and its Kafka ingest consumer) killed with SIGKILL while
the AI layer keeps publishing: nothing published is lost, nothing takes effect twice.

The cluster runs as in production shape on loopback: the embedded Kafka-protocol broker, four
validators, and per validator an ingest consumer in its own consumer group. The test publishes
signed events through the producer SDK, kills node-2's worker and ingest at a random moment
(seed printed), restarts both, and checks on every node that every published event is
committed exactly once with effect (a redelivered event may be proposed again by a node that
was behind, but the executor ignores it as a replay) and that the ledgers agree.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable

import pytest

from cybermesh.keyfiles import load_signing_key
from cybermesh.protocol.txs import TxKind
from cybermesh.sdk import TrafficGenerator
from cybermesh.sdk.producer import EventProducer
from tests.cluster.harness import ClusterHarness, wait_until

pytestmark = pytest.mark.cluster

EVENTS = 500
RATE = 40.0
VICTIM = 2


class Publisher(threading.Thread):
    """The AI layer: ``EVENTS`` signed events at ``RATE`` per second, ids recorded."""

    def __init__(self, harness: ClusterHarness, bootstrap: str, seed: int) -> None:
        super().__init__(daemon=True)
        key = load_signing_key(str(harness.cluster.root / "producers" / "ai-demo.key"))
        self.generator = TrafficGenerator(key, producer_id="ai-demo",
                                          chain_id=harness.chain_id, seed=seed)
        self.producer = EventProducer(
            key, producer_id="ai-demo", chain_id=harness.chain_id,
            config={"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True},
            topics={TxKind.SECURITY_EVENT: "ai.anomalies.v1", TxKind.EVIDENCE: "ai.evidence.v1",
                    TxKind.POLICY: "ai.policy.v1"})
        self.published: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            started = time.monotonic()
            for index in range(EVENTS):
                time.sleep(max(0.0, started + index / RATE - time.monotonic()))
                event = self.generator.valid(time.time_ns() // 1_000_000)
                assert event.transaction is not None
                self.producer.publish_transaction(event.transaction)
                self.published.append(event.transaction.tx_id.hex())
            report = self.producer.flush(30)
            assert not report.failed, report
        except BaseException as error:  # noqa: BLE001 - surfaced by the test thread
            self.error = error


def effective_counts(harness: ClusterHarness, index: int) -> dict[str, int]:
    """tx id -> how many times it was committed with effect (not as a replay) on a node."""
    rows = harness.cluster.query(index, "SELECT tx_id, count(*) FROM transactions "
                                        "WHERE NOT is_replay GROUP BY tx_id")
    return {bytes(tx_id).hex(): int(count) for tx_id, count in rows}


def test_a_whole_node_killed_mid_stream_loses_no_event_and_applies_none_twice(
        make_cluster: Callable[..., ClusterHarness]) -> None:
    seed = int(os.environ.get("KAFKA_KILL_SEED", random.randrange(1 << 30)))
    print(f"kafka node kill seed {seed} (replay with KAFKA_KILL_SEED={seed})")
    rng = random.Random(seed)
    harness = make_cluster(4)
    cluster = harness.cluster
    bootstrap = cluster.start_broker()
    harness.start_all()
    for index in range(4):
        cluster.start_ingest(index)
    harness.wait_heights(range(4), 2, timeout_s=90, what="the cluster running")

    publisher = Publisher(harness, bootstrap, seed)
    publisher.start()
    wait_until(lambda: len(publisher.published) >= rng.randrange(80, 240), timeout_s=60,
               what="the publisher under way")
    cluster.kill_node(VICTIM)
    cluster.processes.kill(f"ingest-{VICTIM}")
    killed_at = len(publisher.published)
    time.sleep(rng.uniform(1.0, 4.0))
    harness.start_node(VICTIM)
    cluster.start_ingest(VICTIM)
    print(f"node-{VICTIM} killed after {killed_at} events, restarted")

    publisher.join(timeout=EVENTS / RATE + 60)
    assert publisher.error is None, publisher.error
    assert len(publisher.published) == EVENTS
    published = set(publisher.published)

    def all_committed() -> bool:
        return all(published <= set(effective_counts(harness, index)) for index in range(4))

    wait_until(all_committed, timeout_s=180,
               what=f"every published event committed on every node\n{harness.logs()}")
    for index in range(4):
        counts = effective_counts(harness, index)
        twice = {tx for tx in published if counts.get(tx, 0) != 1}
        assert not twice, f"node-{index}: {len(twice)} events applied other than once"
    top = min(harness.heights().values())
    harness.wait_heights(range(4), top, timeout_s=30, what="all nodes at the same height")
    assert harness.assert_agreement(range(4)) >= top
    assert harness.assert_no_double_votes() > 0
