"""Fixtures for the cluster tests: real validator processes on loopback, one PostgreSQL
database each (cloned from a template migrated once per session). Every test bounds its own
time; the fixture kills every process it started and drops the databases, pass or fail."""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.node.localcluster import LocalCluster, drop_database
from tests.cluster.harness import ClusterHarness, free_port_base

SERVER_URL = os.environ.get("CLUSTER_DATABASE_SERVER", "postgres://postgres@127.0.0.1:5432")
# Short consensus timeouts keep view changes (and so every fault test) quick on a loaded
# 2-core machine, and make the resume bound after a partition heals small. A view must still
# outlast the processing of a full block (a node that was down proposes its backlog), so
# blocks are capped at 300 transactions (~1 s of checking and executing here).
TEST_CONSENSUS = {"base_timeout_ms": 1000, "min_timeout_ms": 400, "max_timeout_ms": 3000,
                  "max_block_txs": 300}


@pytest.fixture(scope="session")
def cluster_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = f"cmtest_{uuid.uuid4().hex[:8]}_template"
    root = tmp_path_factory.mktemp("template")
    cluster = LocalCluster(root, validators=0, server_url=SERVER_URL, template=name)
    cluster.prepare_databases(migrate_template=True)
    yield name
    drop_database(SERVER_URL, name)


def edit_consensus(document: dict[str, Any]) -> None:
    document.setdefault("consensus", {}).update(TEST_CONSENSUS)


@pytest.fixture
def make_cluster(cluster_template: str, tmp_path: Path
                 ) -> Iterator[Callable[..., ClusterHarness]]:
    made: list[ClusterHarness] = []

    def make(validators: int = 4, *, proxied: bool = False, component: str = "worker",
             observers: int = 0,
             genesis_edit: Callable[[dict[str, Any]], None] | None = None) -> ClusterHarness:
        seed = random.randrange(1 << 30)
        rng = random.Random(seed)
        print(f"cluster ports seed {seed}")
        nodes = validators + observers
        p2p_base = free_port_base(3 * nodes, rng)
        root = tmp_path / f"cluster{len(made)}"
        cluster = LocalCluster(root, validators=validators, observers=observers,
                               p2p_base_port=p2p_base,
                               http_base_port=p2p_base + nodes, server_url=SERVER_URL,
                               database_prefix=f"cmtest_{uuid.uuid4().hex[:8]}",
                               template=cluster_template,
                               extra_env={"LOG_LEVEL": "INFO", "LOG_FORMAT": "json",
                                          "ALLOWED_IPS": "127.0.0.0/8",
                                          "NODE_CATCHUP_LAG": "4"})
        def edit(document: dict[str, Any]) -> None:
            edit_consensus(document)
            if genesis_edit is not None:
                genesis_edit(document)

        cluster.init(genesis_edit=edit)
        harness = ClusterHarness(cluster, root, component=component)
        made.append(harness)
        if proxied:
            # Peers dial the genesis address (the proxy on 127.0.0.1:<base + i>); node i
            # listens on 127.0.0.<2 + i>:<base + 2n + i> and dials from 127.0.0.<2 + i>, so
            # the proxy knows who calls whom and can cut any link (tests/cluster/proxy.py).
            for index in range(validators):
                host = f"127.0.0.{2 + index}"
                harness.node_env[index] = {
                    "P2P_LISTEN_HOST": host, "P2P_DIAL_SOURCE_HOST": host,
                    "P2P_LISTEN_PORT": str(p2p_base + 2 * validators + index)}
        cluster.prepare_databases(migrate_template=False)
        return harness

    try:
        yield make
    finally:
        for harness in made:
            harness.close()


def genesis_of(harness: ClusterHarness) -> dict[str, Any]:
    return json.loads(harness.cluster.genesis_path.read_text())
