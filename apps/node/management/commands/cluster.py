"""`manage.py cluster up|status|down|traffic`: a local cluster on loopback in one command.

    manage.py cluster up --validators 4 [--observers 1] [--dir .cluster] [--rate 20]
    manage.py cluster status [--dir .cluster] [--json]
    manage.py cluster down [--dir .cluster] [--grace 20] [--purge]
    manage.py cluster traffic --dir .cluster --rate 20      (foreground; `up` starts it)

`up` generates genesis and keys once (``init_cluster``), gives every node its own PostgreSQL
database (cloned from a migrated template), creates the demo admin login, starts the embedded
Kafka-protocol broker, the validators (node i: HTTP on 127.0.0.1:<http base + i>, peers on
127.0.0.1:<p2p base + i>), one ingest consumer per node and a traffic generator playing the AI
layer, then waits until the heights climb and prints URLs and the login. ``--observers N`` adds
N observers (``obs-<j>``: HTTP and peers on the ports after the validators'), which follow the
chain by block sync, serve the API and admin, and never vote. Processes run in the
background with pid files under DIR/run and logs under DIR/logs (see apps/node/localcluster.py).
`down` sends SIGTERM to everything (traffic, ingest, validators, broker in that order) and
SIGKILL to what is still running after ``--grace`` seconds.
"""

from __future__ import annotations

import json
import os
import signal
import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.node.localcluster import DEFAULT_SERVER_URL, ClusterError, LocalCluster, last_line

DEFAULT_DIR = ".cluster"
DEFAULT_REDIS_URL = os.environ.get("CLUSTER_REDIS_URL", "redis://127.0.0.1:6379/12")


class Command(BaseCommand):
    help = "Run a local cluster of validators on loopback (up, status, down)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        up = actions.add_parser("up", help="start (or restart) the cluster")
        up.add_argument("--validators", type=int, default=4)
        up.add_argument("--observers", type=int, default=0,
                        help="observer nodes: follow by block sync, serve the API, never vote")
        up.add_argument("--rate", type=float, default=20.0,
                        help="events per second the traffic generator publishes (0: none)")
        up.add_argument("--bad-ratio", type=float, default=0.03,
                        help="share of malformed / forged / unauthorised / replayed events")
        up.add_argument("--http-base-port", type=int, default=8000)
        up.add_argument("--p2p-base-port", type=int, default=7000)
        up.add_argument("--database-server", default=DEFAULT_SERVER_URL,
                        help="PostgreSQL server URL (one database per node is created there)")
        up.add_argument("--fresh", action="store_true",
                        help="drop the node databases first: a new chain, same keys")
        up.add_argument("--no-kafka", action="store_true",
                        help="no broker, ingest or traffic: validators only")
        up.add_argument("--no-notifications", action="store_true",
                        help="no Celery notifiers: commits are not announced on control.*")
        up.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help="Redis for the notifiers' Celery queues (one queue per node)")
        up.add_argument("--wait", type=float, default=120.0,
                        help="seconds to wait for the heights to climb")
        status = actions.add_parser("status", help="height, view, state root, peers per node")
        status.add_argument("--json", action="store_true")
        down = actions.add_parser("down", help="stop every process of the cluster")
        down.add_argument("--grace", type=float, default=20.0,
                          help="seconds between SIGTERM and SIGKILL")
        down.add_argument("--purge", action="store_true",
                          help="also drop the databases (keys and genesis stay)")
        traffic = actions.add_parser("traffic", help="run the traffic generator (foreground)")
        traffic.add_argument("--rate", type=float, default=20.0)
        traffic.add_argument("--bad-ratio", type=float, default=0.03)
        traffic.add_argument("--seed", type=int, default=None)
        for sub in (up, status, down, traffic):
            sub.add_argument("--dir", default=DEFAULT_DIR, help="cluster directory")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except ClusterError as error:
            raise CommandError(str(error)) from None

    # ------------------------------------------------------------------ up

    def _up(self, options: dict[str, Any]) -> None:
        if options["validators"] < 1 or options["observers"] < 0:
            raise CommandError("--validators must be at least 1 and --observers at least 0")
        if options["rate"] < 0 or not 0 <= options["bad_ratio"] <= 1:
            raise CommandError("--rate must be >= 0 and --bad-ratio within 0..1")
        cluster = LocalCluster(Path(options["dir"]), validators=options["validators"],
                               observers=options["observers"],
                               http_base_port=options["http_base_port"],
                               p2p_base_port=options["p2p_base_port"],
                               server_url=options["database_server"])
        say = self._progress
        if cluster.init():
            say(f"generated genesis and keys for {cluster.validators} validators in "
                f"{cluster.root}")
        cluster.init_observers()
        running = [record.name for record in cluster.processes.records() if record.alive()]
        if running:
            raise CommandError(f"already running: {', '.join(running)} "
                               "(`manage.py cluster down` first)")
        password_file = cluster.root / "admin-password"
        say("preparing one PostgreSQL database per node")
        created = cluster.prepare_databases(fresh=options["fresh"],
                                            admin_password_file=password_file)
        if created:
            say(f"created {', '.join(cluster.database_name(i) for i in created)}")
        kafka = not options["no_kafka"]
        if kafka:
            bootstrap = cluster.start_broker()
            say(f"Kafka-protocol broker on {bootstrap}")
        self._start_notifiers(cluster, enabled=kafka and not options["no_notifications"],
                              redis_url=options["redis_url"])
        before = {index: (cluster.node_view(index).height or 0)
                  for index in range(cluster.nodes)}
        for index in range(cluster.nodes):
            cluster.start_node(index)
        say(f"started {cluster.validators} validators"
            + (f" and {cluster.observers} observer(s)" if cluster.observers else ""))
        if kafka:
            for index in range(cluster.validators):
                cluster.start_ingest(index)
            if options["rate"] > 0:
                cluster.start_traffic(rate=options["rate"], bad_ratio=options["bad_ratio"])
                say(f"traffic generator: {options['rate']:g} events/s, "
                    f"{options['bad_ratio']:.0%} bad on purpose")
        self._wait_for_progress(cluster, before, climbing=kafka and options["rate"] > 0,
                                timeout_s=options["wait"])
        self._print_status(cluster, as_json=False)
        self._print_welcome(cluster, options["dir"])

    def _start_notifiers(self, cluster: LocalCluster, *, enabled: bool, redis_url: str) -> None:
        if not enabled:
            cluster.save_state(notifications_redis="")
            return
        cluster.enable_notifications(redis_url)
        for index in range(cluster.validators):
            cluster.start_notifier(index)
        self._progress(f"started {cluster.validators} Celery notifiers "
                       "(outbox -> control.* topics)")

    def _wait_for_progress(self, cluster: LocalCluster, before: dict[int, int], *,
                           climbing: bool, timeout_s: float) -> None:
        watched = [cluster.node_name(i) for i in range(cluster.nodes)]

        def climbed() -> bool:
            heights = cluster.heights()
            return all(h is not None and h >= before[i] + 2 for i, h in enumerate(heights))

        def reporting() -> bool:
            return all(view.height is not None for view in cluster.node_views())

        self._progress("waiting for the heights to climb" if climbing
                       else "waiting for every node's status")
        try:
            cluster.wait_for(climbed if climbing else reporting, timeout_s=timeout_s,
                             what="the heights to climb" if climbing else "every node's status",
                             watch=watched)
        except ClusterError as error:
            raise CommandError(f"{error} (logs in {cluster.processes.log_dir}; "
                               "`manage.py cluster down` stops what started)") from None

    def _print_welcome(self, cluster: LocalCluster, directory: str) -> None:
        password_file = cluster.root / "admin-password"
        password = password_file.read_text().strip()
        lines = ["", "  CyberMesh cluster is up", ""]
        for index in range(cluster.nodes):
            url = cluster.http_url(index)
            lines.append(f"    {cluster.node_ids[index]:<8} {url}admin/   {url}api/v1/status/")
        lines += ["", f"    API docs  {cluster.http_url(0)}api/docs/",
                  f"    Login     admin / {password}   (same on every node; kept in "
                  f"{password_file}, mode 0600)",
                  f"    Logs      {cluster.processes.log_dir}",
                  f"    Status    manage.py cluster status --dir {directory}",
                  f"    Stop      manage.py cluster down --dir {directory}", ""]
        self.stdout.write("\n".join(lines))

    # ------------------------------------------------------------------ status

    def _status(self, options: dict[str, Any]) -> None:
        cluster = self._existing(options["dir"])
        self._print_status(cluster, as_json=options["json"])

    def _print_status(self, cluster: LocalCluster, *, as_json: bool) -> None:
        views = cluster.node_views()
        others = {record.name: record.alive() for record in cluster.processes.records()
                  if not record.name.startswith(("node-", "obs-"))}
        if as_json:
            self.stdout.write(json.dumps({"nodes": [view.as_dict() for view in views],
                                          "processes": others}, sort_keys=True))
            return
        header = (f"{'node':<8} {'process':<8} {'height':>7} {'view':>7} {'peers':>5} "
                  f"{'synced':<6} {'mempool':>7}  state root")
        self.stdout.write(header)
        for view in views:
            if view.error:
                self.stdout.write(f"{view.node_id:<8} {view.process:<8} ({view.error})")
                continue
            self.stdout.write(
                f"{view.node_id:<8} {view.process:<8} {view.height:>7} {view.view:>7} "
                f"{view.peers:>5} {'yes' if view.synced else 'no':<6} {view.mempool:>7}  "
                f"{view.state_root[:16]}")
        if others:
            self.stdout.write("other processes: " + ", ".join(
                f"{name} {'running' if alive else 'stopped'}"
                for name, alive in sorted(others.items())))

    # ------------------------------------------------------------------ down

    def _down(self, options: dict[str, Any]) -> None:
        cluster = self._existing(options["dir"])

        def killed(name: str) -> None:
            self._progress(f"{name} did not stop within {options['grace']:g}s: SIGKILL "
                           f"(last log line: {last_line(cluster.processes.log_path(name))})")

        stopped = cluster.stop_all(grace_s=options["grace"], on_kill=killed)
        self._progress(f"stopped {', '.join(stopped) if stopped else 'nothing (not running)'}")
        if options["purge"]:
            cluster.drop_databases()
            state = cluster.state()
            state.pop("kafka_bootstrap", None)
            cluster.state_path.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
            self._progress("dropped the node databases (genesis and keys are kept)")

    # ------------------------------------------------------------------ traffic

    def _traffic(self, options: dict[str, Any]) -> None:
        from apps.node.demo_traffic import run_traffic

        cluster = self._existing(options["dir"])
        stop = {"now": False}

        def request_stop(_signum: int, _frame: Any) -> None:
            stop["now"] = True

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, request_stop)
        seed = options["seed"] if options["seed"] is not None else time.time_ns() % (1 << 32)
        self._progress(f"traffic seed {seed}")
        summary = run_traffic(
            key_path=cluster.root / "producers" / "ai-demo.key", producer_id="ai-demo",
            genesis_path=cluster.genesis_path, rate=options["rate"],
            bad_ratio=options["bad_ratio"], seed=seed, should_stop=lambda: stop["now"])
        self.stdout.write(json.dumps({"event": "traffic.stopped", **summary}, sort_keys=True))

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _existing(directory: str) -> LocalCluster:
        cluster = LocalCluster(Path(directory))
        if not cluster.initialized():
            raise CommandError(f"{directory} holds no cluster (`manage.py cluster up` first)")
        return cluster

    def _progress(self, message: str) -> None:
        self.stdout.write(f"cluster: {message}")
        self.stdout.flush()
