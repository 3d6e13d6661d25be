"""`manage.py cluster up|status|down` end to end, as `make demo` runs it: validators with the
web server, the embedded Kafka-protocol broker, an ingest consumer and a Celery notifier per
node and the traffic generator; events flow from Kafka into committed blocks on every node, and
every node announces its commits on ``control.commits.v1``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from apps.node.localcluster import LocalCluster, free_port_base

pytestmark = pytest.mark.cluster
REPO = Path(__file__).resolve().parents[2]
SERVER_URL = os.environ.get("CLUSTER_DATABASE_SERVER", "postgres://postgres@127.0.0.1:5432")


def manage(*args: str, timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    return subprocess.run([sys.executable, "manage.py", "cluster", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout_s, check=False)


def commit_announcers(bootstrap: str, *, timeout_s: float = 60) -> set[str]:
    """The node ids that published at least one commit notice (Celery drained its outbox)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "commit-announcers",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition("control.commits.v1", partition, 0)
                     for partition in range(3)])
    nodes: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while len(nodes) < 4 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                nodes.update(value.decode() for key, value in message.headers() or []
                             if key == "node-id" and value is not None)
    finally:
        consumer.close()
    return nodes


def test_cluster_up_status_down(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    base = free_port_base(20, low=20_000, high=30_000)
    try:
        up = manage("up", "--validators", "4", "--dir", str(directory), "--rate", "30",
                    "--p2p-base-port", str(base), "--http-base-port", str(base + 10),
                    "--database-server", SERVER_URL, "--wait", "150")
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        assert "CyberMesh cluster is up" in up.stdout
        password = (directory / "admin-password").read_text().strip()
        assert f"admin / {password}" in up.stdout

        status = manage("status", "--dir", str(directory), "--json")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert [node["process"] for node in report["nodes"]] == ["running"] * 4
        assert all(node["height"] >= 2 and node["peers"] == 3 for node in report["nodes"])
        assert report["processes"] == {
            "ingest-0": True, "ingest-1": True, "ingest-2": True, "ingest-3": True,
            "notifier-0": True, "notifier-1": True, "notifier-2": True, "notifier-3": True,
            "kafka": True, "traffic": True}

        with urllib.request.urlopen(f"http://127.0.0.1:{base + 11}/api/v1/health/",
                                    timeout=10) as answer:
            assert answer.status == 200

        cluster = LocalCluster(directory)
        for index in range(4):  # events went Kafka -> ingest -> mempool -> blocks everywhere
            rows = cluster.query(index, "SELECT count(*) FROM transactions "
                                        "WHERE producer_id = 'ai-demo'")
            assert rows[0][0] > 0
        announced = commit_announcers(str(cluster.state()["kafka_bootstrap"]))
        assert announced == {f"node-{index}" for index in range(4)}, announced
        records = {record.name: record for record in cluster.processes.records()}

        down = manage("down", "--dir", str(directory), "--grace", "30")
        assert down.returncode == 0, down.stderr
        assert "SIGKILL" not in down.stdout
        assert not any(record.alive() for record in records.values())
    finally:
        manage("down", "--dir", str(directory), "--grace", "5", "--purge", timeout_s=120)
