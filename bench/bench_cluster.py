"""End-to-end on 4 loopback validators: committed tx/s, admission-to-commit latency, memory.

What runs: ``LocalCluster`` (the code behind ``manage.py cluster``) with 4 validator processes
(``run_node --component worker``), each with its own PostgreSQL database, and per node a
feeder (``bench/cluster_feeder.py``) admitting the same signed security events into its
mempool at the offered rate, as Kafka ingest would (every validator sees every event). Each
offered load runs for ``PHASE_S`` seconds, then drains.

Figures per offered load:

* committed tx/s: transactions of the phase committed on node-0 divided by the time from the
  first admission to the last commit;
* admission-to-commit latency p50 / p99: node-0's feeder's admission time to the
  ``committed_at`` of node-0's block holding the transaction (same host clock);
* resident memory per node (max VmRSS over the run, sampled every 0.5 s);
* one validator down: after the first offered load, node-3 is killed and that load runs again
  on the other three (its views, and the views whose votes go to it, fail: docs/consensus.md,
  leader gate and suspect views); committed tx/s and latency beside the healthy run of the
  same load. node-3 then restarts and catches up before the higher loads.

Ceiling, same run: raw PyNaCl ``crypto_sign_open`` verifies/s on one core, times the cores,
divided by the 4 validators sharing them. Every node verifies each transaction at admission
and again in the proposal check, so even a node doing nothing but verifying would reach only
half of that ceiling.

    .venv/bin/python -m bench.bench_cluster        (PostgreSQL on 127.0.0.1; ~2 minutes)
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cybermesh.settings")
django.setup()

from apps.node.localcluster import LocalCluster, free_port_base  # noqa: E402
from bench.harness import Report, figure  # noqa: E402

VALIDATORS = 4
LOADS = [int(rate) for rate in os.environ.get("BENCH_CLUSTER_LOADS",
                                               "50,100,200,400,800,1600").split(",")]
PHASE_S = float(os.environ.get("BENCH_CLUSTER_PHASE_S", "8"))
DRAIN_S = 20.0
SERVER_URL = os.environ.get("CLUSTER_DATABASE_SERVER", "postgres://postgres@127.0.0.1:5432")


def raw_verify_per_second(seconds: float = 1.0) -> float:
    import nacl.bindings
    import nacl.signing

    key = nacl.signing.SigningKey(b"\x07" * 32)
    signed = bytes(key.sign(b"x" * 200))
    public = bytes(key.verify_key)
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(200):
            nacl.bindings.crypto_sign_open(signed, public)
        count += 200
    return count / (time.perf_counter() - started)


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class MemorySampler(threading.Thread):
    def __init__(self, cluster: LocalCluster) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.peak: dict[str, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.5):
            for index in range(VALIDATORS):
                record = self.cluster.processes.record(f"node-{index}")
                if record is not None and record.alive():
                    name = f"node-{index}"
                    self.peak[name] = max(self.peak.get(name, 0.0), rss_mb(record.pid))


def make_cluster(root: Path) -> LocalCluster:
    base = free_port_base(3 * VALIDATORS + 10)
    return LocalCluster(root, validators=VALIDATORS, p2p_base_port=base,
                        http_base_port=base + 10, server_url=SERVER_URL,
                        database_prefix=f"cmbench_{uuid.uuid4().hex[:8]}",
                        extra_env={"LOG_LEVEL": "WARNING", "ALLOWED_IPS": "127.0.0.0/8"})


def tear_down(cluster: LocalCluster, root: Path) -> None:
    """Kill every process the benchmark started, drop its databases, remove its directory."""
    for record in cluster.processes.records():
        cluster.processes.kill(record.name)
    if cluster.initialized():
        cluster.drop_databases()
    shutil.rmtree(root, ignore_errors=True)


def start_cluster(cluster: LocalCluster) -> None:
    cluster.init()
    cluster.prepare_databases()
    for index in range(VALIDATORS):
        cluster.start_node(index, component="worker")
    cluster.wait_for(lambda: all(v.height is not None and v.peers == VALIDATORS - 1
                                 for v in cluster.node_views()),
                     timeout_s=60, what="4 connected validators",
                     watch=[f"node-{i}" for i in range(VALIDATORS)])


def run_phase(cluster: LocalCluster, root: Path, rate: int, seed: int,
              nodes: tuple[int, ...] = tuple(range(VALIDATORS))) -> dict[str, Any]:
    count = int(rate * PHASE_S)
    start_ms = time.time_ns() // 1_000_000 + 1500
    chain_id = cluster.state().get("chain_id") or "cybermesh-local"
    outputs = []
    for index in nodes:
        out = root / f"admitted-{rate}-{seed}-{index}.txt"
        outputs.append(out)
        argv = [sys.executable, "-m", "bench.cluster_feeder",
                "--key", str(cluster.root / "producers" / "ai-demo.key"),
                "--producer-id", "ai-demo", "--chain-id", chain_id, "--seed", str(seed),
                "--start-ms", str(start_ms), "--rate", str(rate), "--count", str(count),
                "--out", str(out)]
        cluster.processes.start(f"feeder-{rate}-{seed}-{index}", argv, cluster.node_env(index))
    names = [f"feeder-{rate}-{seed}-{index}" for index in nodes]
    deadline = time.monotonic() + PHASE_S + 30
    while any(cluster.processes.running(name) for name in names) and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    cluster.processes.stop(names, grace_s=2)
    admitted = {}
    for line in outputs[0].read_text().splitlines():
        tx_id, _, at = line.partition(" ")
        admitted[tx_id] = int(at)
    committed: dict[str, int] = {}
    drain_until = time.monotonic() + DRAIN_S
    while time.monotonic() < drain_until:
        rows = cluster.query(0, "SELECT encode(t.tx_id, 'hex'), "
                                "(EXTRACT(EPOCH FROM b.committed_at) * 1000)::bigint "
                                "FROM transactions t JOIN blocks b ON b.height = t.block_height "
                                "WHERE t.tx_id = ANY(%s)",
                            ([bytes.fromhex(tx_id) for tx_id in admitted],))
        committed = {tx_id: int(at) for tx_id, at in rows}
        if len(committed) >= len(admitted):
            break
        time.sleep(0.5)
    latencies = sorted(committed[tx] - admitted[tx] for tx in committed)
    first = min(admitted.values()) if admitted else 0
    last = max(committed.values()) if committed else first
    seconds = max(0.001, (last - first) / 1000)
    return {"rate": rate, "admitted": len(admitted), "committed": len(committed),
            "tx_per_s": len(committed) / seconds, "latencies_ms": latencies}


def run_degraded(cluster: LocalCluster, root: Path, rate: int) -> dict[str, Any]:
    """``rate`` on three validators with node-3 killed; node-3 then restarts and catches up."""
    down = VALIDATORS - 1
    cluster.kill_node(down)
    time.sleep(3)
    degraded = run_phase(cluster, root, rate, seed=2000, nodes=tuple(range(down)))
    lat = degraded["latencies_ms"]
    print(f"node-{down} down, offered {rate} tx/s: committed {degraded['committed']}/"
          f"{degraded['admitted']}, {degraded['tx_per_s']:.1f} tx/s, latency p50 "
          f"{percentile(lat, 0.5):.0f} ms p99 {percentile(lat, 0.99):.0f} ms", flush=True)
    cluster.start_node(down, component="worker")

    def caught_up() -> bool:
        heights = [height or 0 for height in cluster.heights()]
        return heights[down] >= max(heights) - 2
    cluster.wait_for(caught_up, timeout_s=120, what=f"node-{down} to catch up",
                     watch=[f"node-{down}"])
    return degraded


def percentile(values: list[int], fraction: float) -> float:
    if not values:
        return float("nan")
    return float(values[min(len(values) - 1, int(fraction * len(values)))])


def main() -> None:
    report = Report("cluster")
    verify = [raw_verify_per_second() for _ in range(3)]
    cores = os.cpu_count() or 1
    ceiling = statistics.median(verify) * cores / VALIDATORS
    root = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    cluster = make_cluster(root)
    sampler = MemorySampler(cluster)
    phases = []
    try:
        start_cluster(cluster)
        sampler.start()
        genesis = json.loads(cluster.genesis_path.read_text())
        cluster.save_state(chain_id=genesis["chain_id"])
        for number, rate in enumerate(LOADS):
            phase = run_phase(cluster, root, rate, seed=1000 + number)
            phases.append(phase)
            lat = phase["latencies_ms"]
            print(f"offered {rate:>5} tx/s: admitted {phase['admitted']}, committed "
                  f"{phase['committed']}, {phase['tx_per_s']:.1f} tx/s, latency p50 "
                  f"{percentile(lat, 0.5):.0f} ms p99 {percentile(lat, 0.99):.0f} ms",
                  flush=True)
            if number == 0:
                degraded = run_degraded(cluster, root, rate)
            if phase["committed"] < 0.6 * phase["admitted"]:
                break  # saturated: higher loads only queue up
    finally:
        sampler.stopping.set()
        tear_down(cluster, root)
    peak = max(phases, key=lambda p: p["tx_per_s"])
    report.add(figure("committed tx/s at peak (4 validators)", "tx/s", [peak["tx_per_s"]],
                      ceiling_name="raw Ed25519 verify/s x cores / validators",
                      ceiling_median=ceiling, target_ratio=0.4,
                      notes=f"offered {peak['rate']} tx/s; single-core verify/s "
                            f"{statistics.median(verify):,.0f}, {cores} cores"))
    for phase in phases:
        lat = phase["latencies_ms"]
        report.add(figure(f"offered {phase['rate']} tx/s: committed", "tx/s",
                          [phase["tx_per_s"]], ceiling_median=ceiling,
                          notes=f"{phase['committed']}/{phase['admitted']} committed"))
        report.add(figure(f"offered {phase['rate']} tx/s: latency p50", "ms",
                          [percentile(lat, 0.5)]))
        report.add(figure(f"offered {phase['rate']} tx/s: latency p99", "ms",
                          [percentile(lat, 0.99)]))
    half = min(phases, key=lambda p: abs(p["tx_per_s"] - peak["tx_per_s"] / 2))
    report.add(figure("latency p50 at ~half of peak", "ms",
                      [percentile(half["latencies_ms"], 0.5)],
                      notes=f"offered {half['rate']} tx/s; target <= 50 ms"))
    report.add(figure("latency p99 at ~half of peak", "ms",
                      [percentile(half["latencies_ms"], 0.99)],
                      notes=f"offered {half['rate']} tx/s; target <= 200 ms"))
    healthy = phases[0]
    report.add(figure(f"one validator down, offered {degraded['rate']} tx/s: committed",
                      "tx/s", [degraded["tx_per_s"]],
                      ceiling_name=f"the healthy run at {healthy['rate']} tx/s",
                      ceiling_median=healthy["tx_per_s"],
                      notes=f"{degraded['committed']}/{degraded['admitted']} committed"))
    for label, fraction in (("p50", 0.5), ("p99", 0.99)):
        report.add(figure(f"one validator down, offered {degraded['rate']} tx/s: latency "
                          f"{label}", "ms", [percentile(degraded["latencies_ms"], fraction)],
                          notes=f"healthy: {percentile(healthy['latencies_ms'], fraction):.0f}"
                                " ms"))
    for name, mb in sorted(sampler.peak.items()):
        report.add(figure(f"{name} peak resident memory", "MB", [mb],
                          notes="target <= 512 MB"))
    report.write()


if __name__ == "__main__":
    main()
