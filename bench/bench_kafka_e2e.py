"""Kafka in to Kafka out on 4 loopback validators, and ingest memory under a 10x burst.

What runs: ``LocalCluster`` (the code behind ``manage.py cluster up``) with the embedded
Kafka-protocol broker, 4 validators (``run_node --component worker``), per node an ingest
consumer (its own consumer group: every validator sees every event) and a Celery notifier that
drains the node's outbox to ``control.*``. This process plays the AI layer and a downstream
consumer:

* it publishes signed security events to ``ai.anomalies.v1`` at each offered rate for
  ``PHASE_S`` seconds, each about a fresh offender, so each committed event yields one
  ``reputation_changed`` notice on ``control.reputation.v1`` whose cause is the event's tx id;
* it consumes ``control.reputation.v1`` and takes, per event, the first notice of any node
  (what a consumer that drops repeats by dedupe id sees first).

Figures: per offered load, events/s announced and the Kafka-in to Kafka-out latency p50 / p99
(publish call to first notice received, same host clock); p99 at about half of the peak
(target <= 500 ms). Ceilings, same run: raw Ed25519 verifies/s x cores / validators for the
rate, and the broker's own produce-to-consume round trip for the latency (the floor any
Kafka-in to Kafka-out path pays twice).

Memory: each ingest process's resident memory is sampled every 0.25 s; the steady-state
median (during the last steady phase) is compared with the maximum while a burst of 10x the
peak rate's phase volume is published at once and worked off (target: flat, ratio <= 1.25).

    .venv/bin/python -m bench.bench_kafka_e2e      (PostgreSQL and Redis on 127.0.0.1; ~3 min)
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.bench_cluster import (  # also sets Django up
    VALIDATORS,
    make_cluster,
    percentile,
    raw_verify_per_second,
    rss_mb,
    tear_down,
)
from bench.harness import Report, figure

LOADS = [int(rate) for rate in os.environ.get("BENCH_E2E_LOADS", "25,50,100").split(",")]
PHASE_S = float(os.environ.get("BENCH_E2E_PHASE_S", "8"))
DRAIN_S = 30.0
BURST_FACTOR = 10
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
NOTICES = "control.reputation.v1"
EVENTS = "ai.anomalies.v1"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class NoticeCollector(threading.Thread):
    """Consume ``control.reputation.v1``: first arrival time per cause (tx id hex)."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Consumer, TopicPartition

        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-e2e",
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 10})
        self.consumer.assign([TopicPartition(NOTICES, partition, 0) for partition in range(3)])
        self.first: dict[str, int] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            message = self.consumer.poll(0.05)
            if message is None or message.error() is not None:
                continue
            arrived = now_ms()
            fields = json.loads(message.value())["fields"]
            self.first.setdefault(str(fields[3]), arrived)
        self.consumer.close()


class IngestMemory(threading.Thread):
    """Resident memory of every ingest process, sampled every 0.25 s, with time stamps."""

    def __init__(self, cluster: Any) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.samples: list[tuple[float, float]] = []  # (monotonic, max MB over processes)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.25):
            sizes = []
            for index in range(VALIDATORS):
                record = self.cluster.processes.record(f"ingest-{index}")
                if record is not None and record.alive():
                    sizes.append(rss_mb(record.pid))
            if sizes:
                self.samples.append((time.monotonic(), max(sizes)))

    def between(self, start: float, end: float) -> list[float]:
        return [mb for at, mb in self.samples if start <= at <= end]


class Publisher:
    """Signed security events, one fresh offender each, published with their send times."""

    def __init__(self, cluster: Any, bootstrap: str) -> None:
        from cybermesh.keyfiles import load_signing_key
        from cybermesh.protocol.txs import TxKind
        from cybermesh.sdk import TrafficGenerator
        from cybermesh.sdk.producer import EventProducer

        genesis_chain = str(cluster.state().get("chain_id"))
        key = load_signing_key(str(cluster.root / "producers" / "ai-demo.key"))
        self.generator = TrafficGenerator(key, producer_id="ai-demo", chain_id=genesis_chain,
                                          seed=7)
        self.producer = EventProducer(key, producer_id="ai-demo", chain_id=genesis_chain,
                                      config={"bootstrap.servers": bootstrap, "acks": "all",
                                              "enable.idempotence": True, "linger.ms": 2},
                                      topics={TxKind.SECURITY_EVENT: EVENTS})
        self.sent_at: dict[str, int] = {}
        self.counter = 0

    def event(self, at_ms: int) -> Any:
        from cybermesh.protocol.txs import Entity, EntityKind

        self.counter += 1
        number = self.counter
        offender = Entity.of(EntityKind.IP, f"10.{number >> 16 & 255}.{number >> 8 & 255}."
                                            f"{number & 255}")
        payload = dataclasses.replace(self.generator.security_event(at_ms), offender=offender,
                                      severity=8, confidence_bps=9000)
        return self.generator.sign(payload, at_ms)

    def publish(self, count: int, rate: float | None) -> list[str]:
        """``count`` events at ``rate`` per second (None: as fast as possible)."""
        started = time.monotonic()
        ids = []
        for index in range(count):
            if rate is not None:
                delay = started + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            transaction = self.event(now_ms())
            self.producer.publish_transaction(transaction)
            self.sent_at[transaction.tx_id.hex()] = now_ms()
            ids.append(transaction.tx_id.hex())
        self.producer.flush(30)
        return ids


def broker_round_trip_ms(bootstrap: str, samples: int = 200) -> float:
    """Median produce (acks=all) to consume time of one small message on this broker."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = "control.commits.v1"  # exists; the cluster's consumers ignore a foreign key
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-rtt",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.assign([TopicPartition(topic, 0, high)])
    times = []
    for number in range(samples):
        sent = time.perf_counter()
        producer.produce(topic, value=b"rtt", key=b"bench-rtt", partition=0)
        producer.flush(10)
        while True:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None and message.key() == b"bench-rtt":
                break
        times.append((time.perf_counter() - sent) * 1000)
        if number == 0:
            times.clear()  # warm-up
    consumer.close()
    return statistics.median(times)


def wait_announced(collector: NoticeCollector, ids: list[str], timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = sum(1 for tx in ids if tx in collector.first)
        if seen == len(ids):
            return seen
        time.sleep(0.25)
    return sum(1 for tx in ids if tx in collector.first)


def committed_at_ms(cluster: Any, ids: list[str]) -> dict[str, int]:
    """tx id -> when node-0 committed the block holding it (its ``committed_at``)."""
    rows = cluster.query(0, "SELECT encode(t.tx_id, 'hex'), "
                            "(EXTRACT(EPOCH FROM b.committed_at) * 1000)::bigint "
                            "FROM transactions t JOIN blocks b ON b.height = t.block_height "
                            "WHERE t.tx_id = ANY(%s)", ([bytes.fromhex(tx) for tx in ids],))
    return {tx: int(at) for tx, at in rows}


def run_phase(cluster: Any, publisher: Publisher, collector: NoticeCollector,
              rate: int) -> dict[str, Any]:
    ids = publisher.publish(int(rate * PHASE_S), rate)
    announced = wait_announced(collector, ids, DRAIN_S)
    done = [tx for tx in ids if tx in collector.first]
    latencies = sorted(collector.first[tx] - publisher.sent_at[tx] for tx in done)
    committed = committed_at_ms(cluster, done)
    # Where the time goes: Kafka in -> committed on node-0 (ingest, mempool, consensus),
    # then committed -> first notice out (outbox, Celery, broker).
    to_commit = sorted(committed[tx] - publisher.sent_at[tx] for tx in committed)
    to_out = sorted(collector.first[tx] - committed[tx] for tx in committed)
    first = min(publisher.sent_at[tx] for tx in ids)
    last = max((collector.first[tx] for tx in done), default=first)
    return {"rate": rate, "published": len(ids), "announced": announced,
            "per_s": announced / max(0.001, (last - first) / 1000), "latencies_ms": latencies,
            "to_commit_ms": to_commit, "commit_to_out_ms": to_out}


def start(cluster: Any) -> str:
    cluster.init()
    cluster.prepare_databases()
    bootstrap = cluster.start_broker()
    cluster.enable_notifications(REDIS_URL)
    for index in range(VALIDATORS):
        cluster.start_node(index, component="worker")
        cluster.start_notifier(index)
        cluster.start_ingest(index)
    cluster.wait_for(lambda: all(v.height is not None and v.peers == VALIDATORS - 1
                                 for v in cluster.node_views()),
                     timeout_s=90, what="4 connected validators",
                     watch=[f"node-{i}" for i in range(VALIDATORS)])
    return bootstrap


def main() -> None:  # noqa: PLR0915 - one linear script: set up, phases, burst, report
    report = Report("kafka_e2e")
    verify = [raw_verify_per_second() for _ in range(3)]
    cores = os.cpu_count() or 1
    ceiling = statistics.median(verify) * cores / VALIDATORS
    root = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    cluster = make_cluster(root)
    phases: list[dict[str, Any]] = []
    memory = IngestMemory(cluster)
    try:
        bootstrap = start(cluster)
        genesis = json.loads(cluster.genesis_path.read_text())
        cluster.save_state(chain_id=genesis["chain_id"])
        rtt = broker_round_trip_ms(bootstrap)
        print(f"broker produce-to-consume round trip: {rtt:.1f} ms", flush=True)
        collector = NoticeCollector(bootstrap)
        collector.start()
        publisher = Publisher(cluster, bootstrap)
        warm = publisher.publish(20, 20)  # consumer groups joined, notifiers running
        if wait_announced(collector, warm, 120) < len(warm):
            raise SystemExit("warm-up events were never announced: see the cluster logs in "
                             f"{cluster.processes.log_dir}")
        memory.start()
        steady: tuple[float, float] = (0.0, 0.0)
        for rate in LOADS:
            began = time.monotonic()
            phase = run_phase(cluster, publisher, collector, rate)
            steady = (began, time.monotonic())
            phases.append(phase)
            lat = phase["latencies_ms"]
            print(f"offered {rate:>4} ev/s: {phase['announced']}/{phase['published']} "
                  f"announced, {phase['per_s']:.1f} ev/s, Kafka-in to Kafka-out p50 "
                  f"{percentile(lat, 0.5):.0f} ms p99 {percentile(lat, 0.99):.0f} ms (p50 "
                  f"in-to-commit {percentile(phase['to_commit_ms'], 0.5):.0f} ms, "
                  f"commit-to-out {percentile(phase['commit_to_out_ms'], 0.5):.0f} ms)",
                  flush=True)
            if phase["announced"] < 0.6 * phase["published"]:
                break
        peak = max(phases, key=lambda p: p["per_s"])
        burst_count = int(BURST_FACTOR * peak["rate"] * PHASE_S)
        print(f"burst: {burst_count} events at once (10x the peak phase)", flush=True)
        burst_began = time.monotonic()
        burst_ids = publisher.publish(burst_count, None)
        burst_announced = wait_announced(collector, burst_ids, 600)
        burst_memory = memory.between(burst_began, time.monotonic())
        steady_memory = memory.between(*steady)
    finally:
        memory.stopping.set()
        tear_down(cluster, root)
    report.add(figure("Kafka-out events/s at peak (4 validators)", "events/s",
                      [peak["per_s"]], ceiling_name="raw Ed25519 verify/s x cores / validators",
                      ceiling_median=ceiling,
                      notes=f"offered {peak['rate']} ev/s; single-core verify/s "
                            f"{statistics.median(verify):,.0f}, {cores} cores"))
    for phase in phases:
        lat = phase["latencies_ms"]
        for name, fraction in (("p50", 0.5), ("p99", 0.99)):
            report.add(figure(f"offered {phase['rate']} ev/s: in-to-out {name}", "ms",
                              [percentile(lat, fraction)], ceiling_name="broker round trip",
                              ceiling_median=rtt,
                              notes=f"{phase['announced']}/{phase['published']} announced"))
        report.add(figure(f"offered {phase['rate']} ev/s: in-to-commit p50", "ms",
                          [percentile(phase["to_commit_ms"], 0.5)],
                          notes="Kafka in -> block committed on node-0"))
        report.add(figure(f"offered {phase['rate']} ev/s: commit-to-out p50", "ms",
                          [percentile(phase["commit_to_out_ms"], 0.5)],
                          notes="node-0 committed -> first notice of any node (can be < 0)"))
    half = min(phases, key=lambda p: abs(p["per_s"] - peak["per_s"] / 2))
    p99 = percentile(half["latencies_ms"], 0.99)
    report.add(figure("in-to-out p99 at ~half of peak", "ms", [p99],
                      ceiling_name="broker round trip", ceiling_median=rtt,
                      notes=f"offered {half['rate']} ev/s; target <= 500 ms: "
                            f"{'met' if p99 <= 500 else 'MISSED'}"))
    steady_mb = statistics.median(steady_memory) if steady_memory else float("nan")
    burst_mb = max(burst_memory) if burst_memory else float("nan")
    report.add(figure("ingest resident memory under a 10x burst", "MB", [burst_mb],
                      ceiling_name="steady-state ingest memory", ceiling_median=steady_mb,
                      notes=f"{burst_announced}/{burst_count} burst events announced; "
                            f"target: flat (ratio <= 1.25): "
                            f"{'met' if burst_mb <= 1.25 * steady_mb else 'MISSED'}"))
    report.write()


if __name__ == "__main__":
    main()
