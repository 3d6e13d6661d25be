"""Test support for clusters of real node processes on loopback.

``ClusterHarness`` wraps :class:`apps.node.localcluster.LocalCluster` (the code behind
``manage.py cluster``) with what the tests need: free ports, databases cloned from one
migrated template, feeders instead of Kafka, vote journals, and ledger reads. Every process it
starts is killed by :meth:`ClusterHarness.close` (the fixture calls it in a ``finally``).
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apps.node import localcluster
from apps.node.localcluster import LocalCluster, last_line

PYTHON = sys.executable


def free_port_base(count: int, rng: random.Random) -> int:
    return localcluster.free_port_base(count, low=20_000, high=30_000, rng=rng)


@dataclass
class ClusterHarness:
    cluster: LocalCluster
    tmp: Path
    feeders: dict[int, Any] = field(default_factory=dict)
    node_env: dict[int, dict[str, str]] = field(default_factory=dict)
    component: str = "worker"

    # ------------------------------------------------------------------ processes

    def start_node(self, index: int) -> None:
        extra = dict(self.node_env.get(index, {}))
        extra["NODE_VOTE_JOURNAL"] = str(self.journal_path(index))
        self.cluster.start_node(index, component=self.component, extra_env=extra)

    def start_all(self) -> None:
        for index in range(self.cluster.validators):
            self.start_node(index)

    def journal_path(self, index: int) -> Path:
        return self.tmp / f"votes-{index}.txt"

    def admitted_path(self, index: int) -> Path:
        return self.tmp / f"admitted-{index}.txt"

    def start_feeder(self, index: int, *, rate: float, count: int = 0) -> None:
        cluster = self.cluster
        env = cluster.node_env(index)
        argv = [PYTHON, "-m", "tests.cluster.feeder",
                "--key", str(cluster.root / "producers" / "ai-demo.key"),
                "--producer-id", "ai-demo", "--chain-id", self.chain_id,
                "--rate", str(rate), "--seed", str(1000 + index),
                "--out", str(self.admitted_path(index))]
        if count:
            argv += ["--count", str(count)]
        cluster.processes.start(f"feeder-{index}", argv, env)

    def start_feeders(self, *, rate: float, count: int = 0) -> None:
        for index in range(self.cluster.validators):
            self.start_feeder(index, rate=rate, count=count)

    def stop_feeders(self) -> None:
        self.cluster.processes.stop([f"feeder-{i}" for i in range(self.cluster.validators)],
                                    grace_s=10)

    def close(self) -> None:
        names = [record.name for record in self.cluster.processes.records()]
        for name in names:
            self.cluster.processes.kill(name)
        with contextlib.suppress(Exception):
            self.cluster.drop_databases()

    def logs(self, indexes: Iterable[int] | None = None, lines: int = 15) -> str:
        chosen = range(self.cluster.validators) if indexes is None else indexes
        out = []
        for index in chosen:
            name = self.cluster.node_name(index)
            path = self.cluster.processes.log_path(name)
            try:
                tail = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                tail = ["(no log)"]
            out.append(f"--- {name} ---\n" + "\n".join(line[:300] for line in tail))
        return "\n".join(out)

    # ------------------------------------------------------------------ observation

    @property
    def chain_id(self) -> str:
        import json

        return str(json.loads(self.cluster.genesis_path.read_text())["chain_id"])

    def heights(self, indexes: Iterable[int] | None = None) -> dict[int, int]:
        chosen = range(self.cluster.validators) if indexes is None else indexes
        result = {}
        for index in chosen:
            rows = self.cluster.query(index, "SELECT coalesce(max(height), -1) FROM blocks")
            result[index] = int(rows[0][0])
        return result

    def wait_heights(self, indexes: Iterable[int], at_least: int | dict[int, int], *,
                     timeout_s: float, what: str = "") -> dict[int, int]:
        chosen = list(indexes)
        targets = at_least if isinstance(at_least, dict) else dict.fromkeys(chosen, at_least)
        deadline = time.monotonic() + timeout_s
        current: dict[int, int] = {}
        while time.monotonic() < deadline:
            current = self.heights(chosen)
            if all(current[i] >= targets[i] for i in chosen):
                return current
            for index in chosen:
                if not self.cluster.node_running(index) and index in targets:
                    name = self.cluster.node_name(index)
                    raise AssertionError(
                        f"{name} exited: {last_line(self.cluster.processes.log_path(name))}")
            time.sleep(0.3)
        raise AssertionError(f"heights {current} did not reach {targets} within {timeout_s}s "
                             f"({what})\n{self.logs(chosen)}")

    def ledger(self, index: int) -> dict[int, tuple[str, str]]:
        return self.cluster.block_roots(index)

    def committed_tx_ids(self, index: int) -> set[str]:
        rows = self.cluster.query(index, "SELECT tx_id FROM transactions")
        return {bytes(row[0]).hex() for row in rows}

    def admitted(self) -> dict[str, int]:
        """tx id -> admission time (ms) over every feeder."""
        found: dict[str, int] = {}
        for index in range(self.cluster.validators):
            path = self.admitted_path(index)
            if path.exists():
                for line in path.read_text().splitlines():
                    tx_id, _, at = line.partition(" ")
                    found[tx_id] = int(at)
        return found

    def votes(self) -> dict[tuple[str, int, int], set[str]]:
        """(voter, epoch, view) -> block ids, over every node's vote journal."""
        seen: dict[tuple[str, int, int], set[str]] = {}
        for index in range(self.cluster.validators):
            path = self.journal_path(index)
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                voter, epoch, view, block_id = line.split()
                seen.setdefault((voter, int(epoch), int(view)), set()).add(block_id)
        return seen

    def assert_agreement(self, indexes: Iterable[int]) -> int:
        """Every pair of ledgers agrees on block hash and state root at every common height;
        returns the number of heights compared."""
        ledgers = {index: self.ledger(index) for index in indexes}
        common = set.intersection(*(set(ledger) for ledger in ledgers.values()))
        for height in sorted(common):
            values = {index: ledger[height] for index, ledger in ledgers.items()}
            assert len(set(values.values())) == 1, f"disagreement at height {height}: {values}"
        return len(common)

    def assert_no_double_votes(self) -> int:
        double = {key: ids for key, ids in self.votes().items() if len(ids) > 1}
        assert not double, f"validators signed two votes for one view: {double}"
        return len(self.votes())


def wait_until(predicate: Callable[[], bool], *, timeout_s: float, what: str,
               interval_s: float = 0.3) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
