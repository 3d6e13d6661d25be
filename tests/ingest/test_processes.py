"""``manage.py ingest`` as a real process: kill -9 mid-batch, the broker going away and coming
back, graceful SIGTERM; ``manage.py produce`` and ``manage.py dlq`` from the command line."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from apps.mempool.models import MempoolTransaction, PendingDeadLetter, ProducerNonce
from cybermesh.embedded_broker import EmbeddedBroker
from cybermesh.kafka_config import dlq_topic
from cybermesh.keyfiles import generate_signing_key
from cybermesh.protocol.txs import Category, Entity, EntityKind, SecurityEvent
from cybermesh.sdk import BadKind
from tests.ingest.conftest import CHAIN_ID, Detector, make_producer, write_allowlist
from tests.ingest.kafka_support import (
    PYTHON,
    REPO,
    create_topics,
    process_env,
    read_topic,
    start_process,
    stop_process,
    unique_topics,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

INGEST_TOPICS = ("anomalies", "evidence", "policy")


def mempool_count() -> int:
    return MempoolTransaction.objects.count()


def mempool_ids() -> set[bytes]:
    return {bytes(t) for t in MempoolTransaction.objects.values_list("tx_id", flat=True)}


def committed_total(bootstrap: str, group: str, topics: dict[str, str]) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        wanted = [TopicPartition(topics[name], partition) for name in INGEST_TOPICS
                  for partition in range(3)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(wanted, timeout=10))
    finally:
        consumer.close()


class Node:
    """One validator's ingest process, restartable, on a fixed group and allowlist."""

    def __init__(self, tmp_path: Path, bootstrap: str, topics: dict[str, str],
                 allowlist: Path) -> None:
        self.group = f"cybermesh-kill-{uuid.uuid4().hex[:8]}"
        self.env = process_env(bootstrap=bootstrap, topics=topics,
                               MEMPOOL_PRODUCERS_PATH=str(allowlist),
                               MEMPOOL_CHAIN_ID=CHAIN_ID, KAFKA_CONSUMER_GROUP=self.group,
                               NODE_ID="node-under-test", INGEST_POLL_TIMEOUT_MS=200,
                               INGEST_RETRY_BASE_S=0.1, INGEST_RETRY_MAX_S=1)
        self.tmp_path = tmp_path
        self.runs = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.tmp_path / f"ingest-{self.runs}.log"

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        self.runs += 1
        self.process = start_process(
            [PYTHON, str(REPO / "manage.py"), "ingest", "--json", "--batch-size", "100",
             *extra], self.env, self.log_path)
        return self.process

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> dict[str, Any]:
        """SIGTERM; return the summary line the process printed on its way out."""
        assert self.process is not None
        code = stop_process(self.process, timeout_s=30)
        assert code == 0, self.log()
        lines = [line for line in self.log().splitlines()
                 if line.startswith('{"') and '"ingest.stopped"' in line]
        assert lines, self.log()
        return dict(json.loads(lines[-1]))


@pytest.fixture
def detectors() -> list[Detector]:
    return [make_producer("detector-a"), make_producer("detector-b")]


@pytest.fixture
def allowlist(tmp_path: Path, detectors: list[Detector]) -> Path:
    return write_allowlist(tmp_path / "producers.json", detectors)


@pytest.fixture
def node_factory(tmp_path: Path, allowlist: Path) -> Iterator[Any]:
    nodes: list[Node] = []

    def make(bootstrap: str, topics: dict[str, str]) -> Node:
        node = Node(tmp_path, bootstrap, topics, allowlist)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        if node.process is not None and node.process.poll() is None:
            node.kill()


def publish(detectors: list[Detector], bootstrap: str, topics: dict[str, str], count: int,
            *, seed: int, settings: Any, forged_every: int = 0) -> tuple[set[bytes], set[bytes]]:
    """``count`` valid events (the realistic mix over the three topics) from the detectors,
    with a forged security event after every ``forged_every`` valid ones; return the valid
    tx ids and the forged values."""
    settings.KAFKA_TOPICS = topics
    valid: set[bytes] = set()
    forged: set[bytes] = set()
    now_ms = time.time_ns() // 1_000_000
    for index, detector in enumerate(detectors):
        traffic = detector.traffic(seed + index)
        with detector.sdk(bootstrap) as sdk:
            for number, event in enumerate(traffic.stream(now_ms, count // len(detectors))):
                assert event.transaction is not None
                sdk.publish_transaction(event.transaction)
                valid.add(event.transaction.tx_id)
                if forged_every and number % forged_every == forged_every - 1:
                    letter = traffic.bad(BadKind.FORGED, now_ms)
                    sdk.publish_raw(letter.value, topic_name=topics["anomalies"],
                                    key=letter.key)
                    forged.add(letter.value)
    return valid, forged


def test_kill_9_in_the_middle_of_a_batch_loses_nothing_and_duplicates_nothing(
        settings: Any, detectors: list[Detector], node_factory: Any, tmp_path: Path) -> None:
    seed = int(os.environ.get("KILL_TEST_SEED", random.randrange(1 << 30)))
    print(f"kill test seed {seed} (replay with KILL_TEST_SEED={seed})")
    rng = random.Random(seed)
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    try:
        bootstrap = broker.bootstrap_servers
        topics = unique_topics("k")
        create_topics(bootstrap, [topics[name] for name in INGEST_TOPICS])
        published, forged = publish(detectors, bootstrap, topics, 9000, seed=seed,
                                    settings=settings, forged_every=8)
        node = node_factory(bootstrap, topics)

        # Kill 1, provably mid-batch: a failpoint parks the node on its fourth batch after the
        # batch is durable (admitted, dead letters acknowledged) and before its offsets are
        # committed; it is killed there.
        node.env["CYBERMESH_FAILPOINTS"] = "ingest.before_offset_commit=pause@4"
        node.start()
        wait_for(lambda: "failpoint ingest.before_offset_commit paused" in node.log(),
                 timeout_s=90, message=f"the node reaching the failpoint; log:\n{node.log()}")
        admitted = mempool_count()
        committed = committed_total(bootstrap, node.group, topics)
        dead = len(read_topic(bootstrap, dlq_topic(topics["anomalies"]), quiet_s=0.5,
                              timeout_s=5))
        node.kill()
        print(f"kill at the failpoint: {admitted} admitted, {dead} dead letters, "
              f"{committed} offsets committed")
        assert committed <= admitted + dead  # never an offset past what is durable
        assert committed < admitted  # the kill landed between admission and the offset commit
        del node.env["CYBERMESH_FAILPOINTS"]
        node.start()

        # Kill 2, at a random moment.
        before = mempool_count()
        wait_for(lambda: mempool_count() > before + 300 or mempool_count() == len(published),
                 timeout_s=60, message=f"progress after restart; log:\n{node.log()}")
        time.sleep(rng.uniform(0, 0.3))
        node.kill()
        admitted = mempool_count()
        committed = committed_total(bootstrap, node.group, topics)
        dead = len(read_topic(bootstrap, dlq_topic(topics["anomalies"]), quiet_s=0.5,
                              timeout_s=5))
        print(f"random kill: {admitted} admitted, {dead} dead letters, {committed} committed")
        assert committed <= admitted + dead  # never an offset past what is durable

        node.start()
        wait_for(lambda: mempool_count() >= len(published), timeout_s=120,
                 message=f"catch-up after the kills; log:\n{node.log()}")
        wait_for(lambda: committed_total(bootstrap, node.group, topics)
                 == len(published) + len(forged), timeout_s=60,
                 message="offsets committed to the end")
        node.terminate()
        assert mempool_ids() == published  # nothing lost ...
        assert mempool_count() == len(published)  # ... nothing twice
        assert ProducerNonce.objects.count() == len(published)
        letters = read_topic(bootstrap, dlq_topic(topics["anomalies"]), quiet_s=1.0)
        assert {letter.value for letter in letters} == forged  # every forgery dead-lettered
        assert {letter.headers["dlq-reason"] for letter in letters} == {"bad_signature"}
    finally:
        broker.stop()


def test_ingestion_resumes_after_the_broker_goes_away_and_comes_back(
        settings: Any, detectors: list[Detector], node_factory: Any, tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    port = broker.port
    topics = unique_topics("o")
    try:
        create_topics(broker.bootstrap_servers, [topics[name] for name in INGEST_TOPICS])
        node = node_factory(broker.bootstrap_servers, topics)
        node.env["LOG_LEVEL"] = "INFO"
        node.start()
        wait_for(lambda: "ingest.assigned" in node.log(), timeout_s=60,
                 message=f"the node joining its group; log:\n{node.log()}")

        # The broker goes away with the node connected, stays away, and comes back on the
        # same address. Memory storage: it comes back empty (no topics, offsets or groups),
        # so the outage is placed before the AI layer publishes (nothing is lost with it).
        broker.stop()
        wait_for(lambda: "Connection refused" in node.log(), timeout_s=30,
                 message="the node noticing the outage")
        time.sleep(2)
        broker = EmbeddedBroker(port=port, log_path=tmp_path / "broker.log").start()
        create_topics(broker.bootstrap_servers, [topics[name] for name in INGEST_TOPICS])
        published, forged = publish(detectors, broker.bootstrap_servers, topics, 400, seed=2,
                                    settings=settings, forged_every=50)
        wait_for(lambda: mempool_count() == len(published), timeout_s=120,
                 message=f"ingest after the outage; log:\n{node.log()[-5000:]}")
        assert mempool_ids() == published
        letters = read_topic(broker.bootstrap_servers, dlq_topic(topics["anomalies"]),
                             expected=len(forged), timeout_s=60)
        assert {letter.value for letter in letters} == forged
        assert {letter.headers["dlq-reason"] for letter in letters} == {"bad_signature"}
        summary = node.terminate()
        assert summary["admitted"] == len(published)
        assert summary["dead_lettered"] >= len(forged)
    finally:
        broker.stop()


def run_command(env: dict[str, str], *argv: str, check: bool = True
                ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([PYTHON, str(REPO / "manage.py"), *argv], env=env,
                            cwd=REPO, capture_output=True, text=True, timeout=120,
                            check=False)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_produce_command_publishes_signed_traffic_and_dlq_commands_list_show_redrive(
        kafka_broker: EmbeddedBroker, tmp_path: Path, node_factory: Any) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    topics = unique_topics("c")
    create_topics(bootstrap, [topics[name] for name in INGEST_TOPICS])
    key_path = tmp_path / "producer.json"
    key = generate_signing_key(key_path, kind="producer")
    detector = Detector("detector-cli", key)
    allowlist = write_allowlist(tmp_path / "cli-producers.json", [detector])
    node = node_factory(bootstrap, topics)
    node.env["MEMPOOL_PRODUCERS_PATH"] = str(allowlist)
    env = node.env

    produced = run_command(env, "produce", "--key", str(key_path), "--producer-id",
                           "detector-cli", "--chain-id", CHAIN_ID, "--count", "60",
                           "--bad-ratio", "0.25", "--bad", "forged,malformed", "--seed", "11",
                           "--rate", "500", "--json")
    summary = json.loads(produced.stdout)
    assert summary["published"] == summary["delivered"] == 60
    bad_count = summary["by_kind"].get("forged", 0) + summary["by_kind"].get("malformed", 0)
    assert bad_count > 0

    node.start()
    wait_for(lambda: mempool_count() == 60 - bad_count, timeout_s=60,
             message=f"admission; log:\n{node.log()}")

    def dlq_list(*extra: str) -> list[dict[str, Any]]:
        return list(json.loads(run_command(env, "dlq", "list", "--json", "--timeout", "3",
                                           *extra).stdout))

    listed = wait_for(lambda: len(dlq_list()) == bad_count and dlq_list(), timeout_s=30,
                      message="dead letters")
    assert {entry["reason"] for entry in listed} <= {"bad_signature", "malformed"}
    assert all(entry["node_id"] == "node-under-test" for entry in listed)
    forged = [entry for entry in listed if entry["reason"] == "bad_signature"]
    assert len(dlq_list("--reason", "malformed")) == bad_count - len(forged)

    shown = json.loads(run_command(env, "dlq", "show", listed[0]["ref"], "--json").stdout)
    assert shown["ref"] == listed[0]["ref"]
    assert shown["headers"]["dlq-source-topic"] in {topics[name] for name in INGEST_TOPICS}
    assert "decodes" in shown["value"]

    refused = run_command(env, "dlq", "redrive", check=False)
    assert refused.returncode != 0 and "needs a selection" in refused.stderr
    dry = json.loads(run_command(env, "dlq", "redrive", "--reason", "bad_signature",
                                 "--dry-run", "--json", "--timeout", "3").stdout)
    assert sorted(dry["would_redrive"]) == sorted(entry["ref"] for entry in forged)
    redriven = json.loads(run_command(env, "dlq", "redrive", "--ref", listed[0]["ref"],
                                      "--json", "--timeout", "3").stdout)
    assert redriven == {"redriven": 1}
    # Re-driven, refused again by the validator: a second dead letter for the same event,
    # which says where it came from.
    wait_for(lambda: len(dlq_list()) == bad_count + 1, timeout_s=30, message="re-drive")
    node.terminate()


def test_kill_9_between_an_eviction_and_its_dead_letter_loses_nothing(
        settings: Any, kafka_broker: EmbeddedBroker, detectors: list[Detector],
        node_factory: Any) -> None:
    """The mempool is full of low-priority events (their offsets committed); higher-priority
    ones evict some. The process is killed after the eviction is committed in the database
    and before the evicted events reach the DLQ: after a restart every event is in the mempool
    or in the DLQ as ``evicted``, and the offsets reach the end."""
    pool = 20
    bootstrap = kafka_broker.bootstrap_servers
    topics = unique_topics("e")
    create_topics(bootstrap, [topics[name] for name in INGEST_TOPICS])
    settings.KAFKA_TOPICS = topics  # where the SDK publishes
    node = node_factory(bootstrap, topics)
    node.env["MEMPOOL_MAX_TXS"] = str(pool)
    node.env["CYBERMESH_FAILPOINTS"] = "ingest.before_eviction_dead_letter=pause@1"

    def publish_events(detector: Detector, severity: int, count: int) -> dict[bytes, bytes]:
        now_ms = time.time_ns() // 1_000_000
        with detector.sdk(bootstrap) as sdk:
            sent = [sdk.publish(SecurityEvent(
                source="ids", offender=Entity.of(EntityKind.IP, f"10.8.{severity}.{index}"),
                category=Category.SCAN, severity=severity, confidence_bps=0,
                observed_at_ms=now_ms - 1000, detector="rules/v1",
                payload_ref=f"{index:064x}")) for index in range(count)]
        return {transaction.tx_id: transaction.wire for transaction in sent}

    low = publish_events(detectors[0], 1, pool)
    node.start()
    wait_for(lambda: committed_total(bootstrap, node.group, topics) == pool, timeout_s=90,
             message="the low-priority events admitted and committed")
    high = publish_events(detectors[1], 9, 8)
    wait_for(lambda: "failpoint ingest.before_eviction_dead_letter paused" in node.log(),
             timeout_s=60, message=f"the node reaching the failpoint; log:\n{node.log()}")
    evicted = set(low) - mempool_ids()
    assert len(evicted) == len(high) and set(high) <= mempool_ids()  # committed in the DB
    pending = {bytes(tx_id) for tx_id in
               PendingDeadLetter.objects.values_list("tx_id", flat=True)}
    assert pending == evicted  # kept, in the same transaction, for the DLQ
    assert committed_total(bootstrap, node.group, topics) == pool  # batch not committed
    assert read_topic(bootstrap, dlq_topic(topics["anomalies"]), quiet_s=0.5,
                      timeout_s=5) == []
    node.kill()

    del node.env["CYBERMESH_FAILPOINTS"]
    node.start()
    wait_for(lambda: not PendingDeadLetter.objects.exists(), timeout_s=60,
             message=f"the pending dead letters drained; log:\n{node.log()}")
    wait_for(lambda: committed_total(bootstrap, node.group, topics) == pool + len(high),
             timeout_s=60, message="offsets committed to the end")
    node.terminate()
    letters = read_topic(bootstrap, dlq_topic(topics["anomalies"]), expected=len(evicted))
    assert {letter.headers["dlq-reason"] for letter in letters} == {"evicted"}
    assert {letter.headers["dlq-retryable"] for letter in letters} == {"true"}
    dead = {bytes.fromhex(letter.headers["dlq-tx-id"]): letter.value for letter in letters}
    assert dead == {tx_id: low[tx_id] for tx_id in evicted}  # the evicted bytes, each once
    # Nothing lost, nothing twice: every event is pooled or dead-lettered.
    assert mempool_ids() | set(dead) == set(low) | set(high)
    assert mempool_count() == pool and not mempool_ids() & set(dead)
