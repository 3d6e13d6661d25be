"""End to end on one node: signed events on ai.* -> ingest -> mempool -> a committed block ->
outbox -> a Celery worker (real Redis) -> control.commits.v1, read back and checked."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from apps.audit.keyring import create_keyring_file
from apps.ingest.runner import build_worker
from apps.ledger.models import OutboxMessage
from apps.ledger.payload import compute_tx_root, decode_payload, encode_payload
from apps.ledger.services import commit_block
from apps.mempool.models import MempoolTransaction
from apps.mempool.services import remove_committed
from apps.notifications.services import drain_after_commit
from cybermesh.embedded_broker import EmbeddedBroker
from cybermesh.protocol.consensus.messages import ZERO_HASH, Block, genesis_qc
from cybermesh.protocol.crypto.hashing import sha256
from cybermesh.protocol.merkle.sparse_hashing import EMPTY_HASH
from tests.ingest.conftest import Detector
from tests.ingest.kafka_support import (
    PYTHON,
    create_topics,
    process_env,
    read_topic,
    start_process,
    stop_process,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_signed_events_travel_from_kafka_into_a_committed_block_and_out_on_control_commits(  # noqa: PLR0917
        node_settings: Any, kafka_broker: EmbeddedBroker, topics: dict[str, str],
        producers: dict[str, Detector], tmp_path: Path, redis_url: str) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    keyring = tmp_path / "audit-keyring.json"
    create_keyring_file(keyring)
    node_settings.AUDIT_SIGNING_KEY = str(keyring)
    node_settings.AUDIT_LOG_PATH = ""
    queue = f"e2e-{uuid.uuid4().hex[:10]}"
    node_settings.NOTIFICATIONS_QUEUE = queue
    create_topics(bootstrap, [topics["commits"]], partitions=1)

    # 1. The AI layer publishes signed events.
    published: set[bytes] = set()
    for name, seed in (("a", 3), ("b", 4)):
        traffic = producers[name].traffic(seed)
        with producers[name].sdk(bootstrap) as sdk:
            for event in traffic.stream(time.time_ns() // 1_000_000, 40):
                assert event.transaction is not None
                sdk.publish_transaction(event.transaction)
                published.add(event.transaction.tx_id)

    # 2. The node ingests them into its mempool.
    worker = build_worker().start()
    try:
        wait_for(lambda: worker.step() >= 0 and worker.stats.admitted >= len(published),
                 timeout_s=60, interval_s=0, message="ingest")
    finally:
        worker.close()
    wires = list(MempoolTransaction.objects.order_by("-priority", "tx_id")
                 .values_list("tx_id", "wire"))
    assert {bytes(tx_id) for tx_id, _ in wires} == published

    # 3. A block carrying them commits (the root block of a chain, certified by the genesis
    #    QC); the ledger writes its outbox rows in the same transaction; the drain is enqueued
    #    on commit and the committed transactions leave the mempool.
    payload = encode_payload(bytes(wire) for _, wire in wires)
    block = Block(epoch=0, view=0, height=0, parent_id=ZERO_HASH, proposer="v0",
                  timestamp_ms=time.time_ns() // 1_000_000, payload=payload,
                  tx_root=compute_tx_root(decode_payload(payload) or ()),
                  state_root=EMPTY_HASH, validator_set_hash=sha256(b"e2e validators"),
                  qc=genesis_qc(0, ZERO_HASH, 0))
    commit_block(block=block, qc=genesis_qc(0, block.block_id, 0), node_id="node-e2e")
    with transaction.atomic():
        drain_after_commit()
    remove_committed([bytes(tx_id) for tx_id, _ in wires])
    assert OutboxMessage.objects.filter(topic=topics["commits"]).count() == 1

    # 4. A Celery worker (real Redis broker) drains the outbox to Kafka.
    env = process_env(bootstrap=bootstrap, topics=topics, REDIS_URL=redis_url,
                      NOTIFICATIONS_QUEUE=queue, NODE_ID="node-e2e")
    celery = start_process([PYTHON, "-m", "celery", "-A", "cybermesh", "worker",
                            "--pool=solo", "-Q", queue, "--without-mingle", "--without-gossip",
                            "--without-heartbeat"], env, tmp_path / "celery.log")
    try:
        wait_for(lambda: not OutboxMessage.objects.filter(sent_at__isnull=True).exists(),
                 timeout_s=60, message=f"drain; log:\n"
                 f"{(tmp_path / 'celery.log').read_text(errors='replace')[-3000:]}")
    finally:
        stop_process(celery)

    # 5. Downstream reads control.commits.v1.
    records = read_topic(bootstrap, topics["commits"], expected=1)
    assert len(records) == 1
    notice = json.loads(records[0].value)
    assert notice["height"] == 0
    assert notice["hash"] == block.block_id.hex()
    assert notice["tx_count"] == len(published)
    assert records[0].headers["dedupe-id"] == "block:0:0"
    assert records[0].headers["node-id"] == "node-e2e"
    assert MempoolTransaction.objects.count() == 0
