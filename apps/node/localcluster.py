"""A local cluster on loopback: validators, their databases, a Kafka broker, ingest, traffic,
and per node a Celery worker that drains the node's outbox to the ``control.*`` topics.

``manage.py cluster up|status|down`` is a thin shell over :class:`LocalCluster`; the cluster
tests and the end-to-end benchmark drive the same class, so what they measure is what the demo
runs.

Layout of a cluster directory (``--dir``, default ``.cluster``)::

    genesis.json, producers.json, producers/*.key, node-<i>/{node.key,node.env}
                              written once by ``init_cluster``
    obs-<j>/{node.key,node.env}  observers (``--observers``): a TLS key and no vote; index
                              ``validators + j`` in this class, allowlisted on every validator
                              through ``P2P_OBSERVERS``
    cluster.json              database names and server, ports, broker address
    run/<name>.pid            one JSON pid record per background process
    logs/<name>.log           its stdout and stderr
    admin-password            the demo admin's password (0600)

Every process is started in its own session (``start_new_session``), so it outlives the
``cluster up`` command and a Ctrl-C in that terminal. A pid record holds the pid and the
process start time (``/proc/<pid>/stat`` field 22): ``down`` and ``status`` never signal a
process that merely reuses a recorded pid (apps/node/processes.py).

Databases: one PostgreSQL database per node (``<prefix>_node<i>``). A template database
(``<prefix>_template``) is migrated once and new node databases are cloned from it (``CREATE
DATABASE ... TEMPLATE``), which takes well under a second instead of a migration run per node.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from apps.node.processes import (
    ClusterError,
    PidRecord,
    ProcessTable,
    free_port_base,
    last_line,
    port_block_free,
    process_start_ticks,
)

__all__ = ["ClusterError", "LocalCluster", "NodeView", "PidRecord", "ProcessTable",
           "create_topics", "free_port_base", "last_line", "port_block_free"]

REPO = Path(__file__).resolve().parents[2]
MANAGE = str(REPO / "manage.py")
CLUSTER_SETTINGS = "apps.node.cluster_settings"
DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432"
# Environment keys of the caller that must not leak into node processes: each node gets its
# own database, and the quick start uses the in-memory channel layer (one process per node).
_PRIVATE_ENV = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "NODE_ID", "NODE_KEY_PATH",
                "CLUSTER_TOPOLOGY", "P2P_LISTEN_PORT", "P2P_LISTEN_HOST", "HTTP_PORT",
                "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_CONSUMER_GROUP", "MEMPOOL_PRODUCERS_PATH",
                "CYBERMESH_DATA_DIR", "DJANGO_SETTINGS_MODULE")


# --- databases -----------------------------------------------------------------------------

def database_url(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


def _connect(server_url: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(database_url(server_url, "postgres"), autocommit=True,
                               connect_timeout=5)
    except psycopg.OperationalError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise ClusterError(f"cannot reach PostgreSQL at {server_url}: {first} "
                           "(run scripts/ensure_services.sh)") from None


def database_exists(server_url: str, name: str) -> bool:
    with _connect(server_url) as connection:
        row = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                 (name,)).fetchone()
    return row is not None


def drop_database(server_url: str, name: str) -> None:
    with _connect(server_url) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


def create_database(server_url: str, name: str, *, template: str | None = None) -> None:
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template))
    with _connect(server_url) as connection:
        connection.execute(statement)


# --- the cluster ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class NodeView:
    """What ``cluster status`` shows for one node (from its NodeStatus row)."""

    node_id: str
    process: str  # running | stopped
    height: int | None = None
    view: int | None = None
    state_root: str = ""
    peers: int = 0
    synced: bool = False
    voting: bool = False
    status_age_s: float | None = None
    mempool: int | None = None
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:20] or "cluster"


@dataclass
class LocalCluster:
    """One cluster directory and everything started from it."""

    root: Path
    validators: int = 4
    observers: int = 0
    http_base_port: int = 8000
    p2p_base_port: int = 7000
    server_url: str = DEFAULT_SERVER_URL
    database_prefix: str = ""
    python: str = sys.executable
    extra_env: dict[str, str] = field(default_factory=dict)
    template: str = ""  # share one migrated template database between clusters (tests)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.processes = ProcessTable(self.root)
        saved = self._load_state()
        if saved:
            self.validators = int(saved.get("validators", self.validators))
            self.observers = max(self.observers, int(saved.get("observers", 0)))
            self.http_base_port = int(saved.get("http_base_port", self.http_base_port))
            self.p2p_base_port = int(saved.get("p2p_base_port", self.p2p_base_port))
            self.server_url = str(saved.get("server_url", self.server_url))
            self.database_prefix = str(saved.get("database_prefix", self.database_prefix))
        if not self.database_prefix:
            digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:8]
            self.database_prefix = f"cm_{_slug(self.root.name)}_{digest}"

    # ---------------------------------------------------------------- state and layout

    @property
    def state_path(self) -> Path:
        return self.root / "cluster.json"

    def _load_state(self) -> dict[str, Any]:
        try:
            data = json.loads((Path(self.root) / "cluster.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def state(self) -> dict[str, Any]:
        return self._load_state()

    def save_state(self, **updates: Any) -> None:
        data = self._load_state()
        data.update({"validators": self.validators, "observers": self.observers,
                     "http_base_port": self.http_base_port,
                     "p2p_base_port": self.p2p_base_port, "server_url": self.server_url,
                     "database_prefix": self.database_prefix, **updates})
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    @property
    def node_ids(self) -> list[str]:
        """Validators first (``node-<i>``), then observers (``obs-<j>``): a node's index."""
        return [f"node-{index}" for index in range(self.validators)] + \
            [f"obs-{index}" for index in range(self.observers)]

    @property
    def nodes(self) -> int:
        return self.validators + self.observers

    def is_observer(self, index: int) -> bool:
        return index >= self.validators

    @property
    def genesis_path(self) -> Path:
        return self.root / "genesis.json"

    def node_dir(self, index: int) -> Path:
        return self.root / self.node_ids[index]

    def database_name(self, index: int) -> str:
        return f"{self.database_prefix}_node{index}"

    @property
    def template_name(self) -> str:
        return self.template or f"{self.database_prefix}_template"

    def database_url(self, index: int) -> str:
        return database_url(self.server_url, self.database_name(index))

    def http_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.http_base_port + index}/"

    # ---------------------------------------------------------------- init

    def initialized(self) -> bool:
        return self.genesis_path.is_file()

    def init(self, *, chain_id: str | None = None,
             genesis_edit: Callable[[dict[str, Any]], None] | None = None) -> bool:
        """Write genesis and keys unless the directory already holds a cluster."""
        if self.initialized():
            genesis = json.loads(self.genesis_path.read_text())
            count = len(genesis.get("validators", []))
            if count != self.validators:
                raise ClusterError(f"{self.root} holds a {count}-validator cluster; "
                                   f"`cluster down --purge` it first or use another --dir")
            return False
        argv = [self.python, MANAGE, "init_cluster", "--validators", str(self.validators),
                "--out", str(self.root), "--p2p-base-port", str(self.p2p_base_port),
                "--http-base-port", str(self.http_base_port)]
        if chain_id:
            argv += ["--chain-id", chain_id]
        self._run(argv, self.base_env(), "init_cluster")
        if genesis_edit is not None:
            from cybermesh.topology import load_genesis

            document = json.loads(self.genesis_path.read_text())
            genesis_edit(document)
            self.genesis_path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
            load_genesis(self.genesis_path)  # an edit nodes would refuse fails here
        self.init_observers()
        self.save_state()
        return True

    def init_observers(self) -> None:
        """Key and node.env of every observer that has none yet (the validators learn their
        keys from ``P2P_OBSERVERS`` in :meth:`base_env`)."""
        from cybermesh.keyfiles import generate_signing_key

        for index in range(self.validators, self.nodes):
            node_dir = self.node_dir(index)
            if (node_dir / "node.env").is_file():
                continue
            node_dir.mkdir(parents=True, exist_ok=True)
            key_path = node_dir / "node.key"
            if not key_path.exists():
                generate_signing_key(key_path, key_id_label=self.node_ids[index])
            lines = {"NODE_ID": self.node_ids[index], "NODE_TYPE": "observer",
                     "NODE_KEY_PATH": str(key_path.resolve()),
                     "CLUSTER_TOPOLOGY": str(self.genesis_path.resolve()),
                     "P2P_LISTEN_PORT": str(self.p2p_base_port + index),
                     "HTTP_PORT": str(self.http_base_port + index),
                     "CYBERMESH_DATA_DIR": str(node_dir.resolve()),
                     "MEMPOOL_PRODUCERS_PATH": str((self.root / "producers.json").resolve())}
            (node_dir / "node.env").write_text(
                "".join(f"{key}={value}\n" for key, value in lines.items()))
        self.save_state()

    def observer_allowlist(self) -> str:
        """``P2P_OBSERVERS`` for the validators: ``id:<public key hex>`` per observer."""
        from cybermesh.keyfiles import load_signing_key

        entries = []
        for index in range(self.validators, self.nodes):
            key_path = self.node_dir(index) / "node.key"
            if key_path.is_file():
                key = load_signing_key(key_path)
                entries.append(f"{self.node_ids[index]}:{key.public_key.raw.hex()}")
        return ",".join(entries)

    # ---------------------------------------------------------------- environment

    def base_env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key not in _PRIVATE_ENV}
        env.update({"DJANGO_SETTINGS_MODULE": CLUSTER_SETTINGS, "PYTHONPATH": str(REPO),
                    "PYTHONUNBUFFERED": "1", "LOG_FORMAT": env.get("LOG_FORMAT", "json")})
        if self.observers:
            env["P2P_OBSERVERS"] = self.observer_allowlist()
        env.update(self.extra_env)
        return env

    def node_env(self, index: int, **extra: str) -> dict[str, str]:
        env = self.base_env()
        node_env = self.node_dir(index) / "node.env"
        for line in node_env.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                env[key.strip()] = value.strip()
        env["DATABASE_URL"] = self.database_url(index)
        broker = self.state().get("kafka_bootstrap")
        if broker:
            env["KAFKA_BOOTSTRAP_SERVERS"] = str(broker)
        notifications = self.state().get("notifications_redis")
        if notifications:
            # The node's commits enqueue drains on its own queue; its notifier consumes it.
            env["CELERY_BROKER_URL"] = str(notifications)
            env["NOTIFICATIONS_QUEUE"] = self.notifications_queue(index)
        env.update(extra)
        return env

    def _run(self, argv: list[str], env: Mapping[str, str], what: str,
             timeout_s: float = 300.0) -> str:
        try:
            done = subprocess.run(argv, cwd=REPO, env=dict(env), capture_output=True,  # noqa: S603
                                  text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise ClusterError(f"{what} did not finish within {timeout_s:.0f}s") from None
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise ClusterError(f"{what} failed: {lines[-1] if lines else done.returncode}")
        return done.stdout

    # ---------------------------------------------------------------- databases

    def prepare_databases(self, *, fresh: bool = False, admin_password_file: Path | None = None,
                          parallel: bool = True, migrate_template: bool = True) -> list[int]:
        """Make sure every node has a migrated database; return the indexes created anew.

        ``fresh`` drops the node databases first (a new chain). The template is migrated
        every time (a no-op when current); node databases that already existed are migrated
        too, in parallel.
        """
        env = self.base_env()
        if not database_exists(self.server_url, self.template_name):
            create_database(self.server_url, self.template_name)
            migrate_template = True
        template_env = {**env, "DATABASE_URL": database_url(self.server_url, self.template_name)}
        if migrate_template:
            self._run([self.python, MANAGE, "migrate", "--noinput", "-v", "0"], template_env,
                      "migrate (template database)")
        if admin_password_file is not None:
            self._run([self.python, MANAGE, "demo_admin", "--password-file",
                       str(admin_password_file)], template_env, "demo_admin")
        created, existing = [], []
        for index in range(self.nodes):
            name = self.database_name(index)
            if fresh:
                drop_database(self.server_url, name)
            if database_exists(self.server_url, name):
                existing.append(index)
            else:
                create_database(self.server_url, name, template=self.template_name)
                created.append(index)
        steps: list[tuple[str, list[str]]] = [("migrate", ["migrate", "--noinput", "-v", "0"])]
        if admin_password_file is not None:
            steps.append(("demo_admin", ["demo_admin", "--password-file",
                                         str(admin_password_file)]))
        for what, arguments in steps:
            self._manage_each(existing, arguments, what, parallel=parallel)
        return created

    def _manage_each(self, indexes: list[int], arguments: list[str], what: str, *,
                     parallel: bool) -> None:
        """Run one management command against several node databases (in parallel)."""
        env = self.base_env()
        running = []
        for index in indexes:
            node_env = {**env, "DATABASE_URL": self.database_url(index)}
            process = subprocess.Popen(  # noqa: S603
                [self.python, MANAGE, *arguments], cwd=REPO, env=node_env,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            running.append((index, process))
            if not parallel:
                process.wait()
        for index, process in running:
            output, _ = process.communicate(timeout=300)
            if process.returncode != 0:
                lines = output.strip().splitlines()
                raise ClusterError(f"{what} node-{index} failed: "
                                   f"{lines[-1] if lines else process.returncode}")

    def drop_databases(self) -> None:
        for index in range(self.nodes):
            drop_database(self.server_url, self.database_name(index))
        if not self.template:
            drop_database(self.server_url, self.template_name)

    # ---------------------------------------------------------------- processes

    def node_name(self, index: int) -> str:
        return self.node_ids[index]

    def start_node(self, index: int, *, component: str = "all",
                   extra_env: Mapping[str, str] | None = None) -> PidRecord:
        argv = [self.python, MANAGE, "run_node", "--component", component]
        if component != "worker":
            argv += ["--bind", f"127.0.0.1:{self.http_base_port + index}"]
        env = self.node_env(index, **dict(extra_env or {}))
        return self.processes.start(self.node_name(index), argv, env)

    def kill_node(self, index: int) -> None:
        self.processes.kill(self.node_name(index))

    def stop_node(self, index: int, *, grace_s: float = 20.0) -> None:
        self.processes.stop([self.node_name(index)], grace_s=grace_s)

    def node_running(self, index: int) -> bool:
        return self.processes.running(self.node_name(index))

    def start_broker(self) -> str:
        """Start the embedded Kafka-protocol broker (once) and create the cluster's topics."""
        from cybermesh.embedded_broker import EmbeddedBroker

        record = self.processes.record("kafka")
        if record is not None and record.alive():
            return str(self.state()["kafka_bootstrap"])
        self.processes.log_dir.mkdir(parents=True, exist_ok=True)
        broker = EmbeddedBroker(log_path=self.processes.log_path("kafka"))
        broker.start()
        assert broker.process is not None  # noqa: S101 -- start() succeeded
        pid = broker.process.pid
        ticks = process_start_ticks(pid)
        self.processes.run_dir.mkdir(parents=True, exist_ok=True)
        self.processes.pid_path("kafka").write_text(json.dumps(
            {"pid": pid, "start_ticks": ticks, "argv": ["tansu"]}) + "\n")
        broker.process.returncode = 0  # owned by the cluster from now on (see ProcessTable)
        broker.process = None
        self.save_state(kafka_bootstrap=broker.bootstrap_servers)
        create_topics(broker.bootstrap_servers)
        return broker.bootstrap_servers

    def start_ingest(self, index: int) -> PidRecord:
        env = self.node_env(index, KAFKA_CONSUMER_GROUP=f"cybermesh-{self.node_ids[index]}")
        return self.processes.start(f"ingest-{index}", [self.python, MANAGE, "ingest"], env)

    def notifications_queue(self, index: int) -> str:
        """The node's Celery queue: unique per cluster directory, so clusters sharing one Redis
        database never drain each other's outboxes."""
        return f"{self.database_prefix}_node{index}"

    def enable_notifications(self, redis_url: str) -> None:
        """Route every node's outbox drains through Celery on ``redis_url`` (before nodes start)."""
        import redis

        try:
            redis.Redis.from_url(redis_url, socket_timeout=3).ping()
        except (redis.RedisError, ValueError) as error:
            raise ClusterError(f"Redis at {redis_url} is not reachable ({error}); commit "
                               "notifications need it (or pass --no-notifications)") from None
        self.save_state(notifications_redis=redis_url)

    def start_notifier(self, index: int) -> PidRecord:
        """A Celery worker with beat for node ``index``: drains its outbox on every commit and
        sweeps it periodically (apps/notifications/tasks.py)."""
        queue = self.notifications_queue(index)
        argv = [self.python, "-m", "celery", "-A", "cybermesh", "worker", "-B", "-Q", queue,
                "--pool", "solo", "--loglevel", "INFO", "--hostname", f"{queue}@%h",
                "--schedule", str(self.node_dir(index) / "celerybeat-schedule")]
        return self.processes.start(f"notifier-{index}", argv, self.node_env(index))

    def start_traffic(self, *, rate: float, bad_ratio: float, seed: int | None = None
                      ) -> PidRecord:
        argv = [self.python, MANAGE, "cluster", "traffic", "--dir", str(self.root),
                "--rate", str(rate), "--bad-ratio", str(bad_ratio)]
        if seed is not None:
            argv += ["--seed", str(seed)]
        env = self.base_env()
        env["KAFKA_BOOTSTRAP_SERVERS"] = str(self.state()["kafka_bootstrap"])
        env["CLUSTER_TOPOLOGY"] = str(self.genesis_path)
        return self.processes.start("traffic", argv, env)

    def stop_all(self, *, grace_s: float = 20.0,
                 on_kill: Callable[[str], None] | None = None) -> list[str]:
        """Stop producers first, then consumers, then validators, then the notifiers (after
        the last commits they announce), then the broker."""
        records = {record.name for record in self.processes.records() if record.alive()}
        order = [["traffic"], sorted(n for n in records if n.startswith("ingest-")),
                 sorted(n for n in records if n.startswith(("node-", "obs-"))),
                 sorted(n for n in records if n.startswith("notifier-")), ["kafka"]]
        stopped = []
        for group in order:
            present = [name for name in group if name in records]
            self.processes.stop(present, grace_s=grace_s, on_kill=on_kill)
            stopped += present
        for record in self.processes.records():
            if not record.alive():
                self.processes.forget(record.name)
        return stopped

    # ---------------------------------------------------------------- observation

    def query(self, index: int, statement: str, parameters: tuple[Any, ...] = ()
              ) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url(index), autocommit=True,
                             connect_timeout=5) as connection:
            return connection.execute(statement, parameters).fetchall()

    def node_view(self, index: int) -> NodeView:
        node_id = self.node_ids[index]
        process = "running" if self.node_running(index) else "stopped"
        try:
            rows = self.query(index, "SELECT height, view, state_root, peers, synced, voting, "
                                     "EXTRACT(EPOCH FROM now() - updated_at) "
                                     "FROM node_nodestatus WHERE node_id = %s", (node_id,))
            pool = self.query(index, "SELECT count(*) FROM mempool_transactions")
        except psycopg.Error as error:
            return NodeView(node_id, process, error=type(error).__name__)
        if not rows:
            return NodeView(node_id, process, error="no status yet")
        height, view, root, peers, synced, voting, age = rows[0]
        connected = sum(1 for peer in peers or [] if peer.get("connected"))
        return NodeView(node_id, process, height=int(height), view=int(view), state_root=root,
                        peers=connected, synced=bool(synced), voting=bool(voting),
                        status_age_s=round(float(age), 1), mempool=int(pool[0][0]))

    def node_views(self) -> list[NodeView]:
        return [self.node_view(index) for index in range(self.nodes)]

    def heights(self) -> list[int | None]:
        return [view.height for view in self.node_views()]

    def block_roots(self, index: int, first: int = 0) -> dict[int, tuple[str, str]]:
        """height -> (block hash, state root after it) from node ``index``'s ledger."""
        rows = self.query(index, "SELECT height, hash, result_state_root "
                                 "FROM blocks WHERE height >= %s", (first,))
        return {int(h): (bytes(b).hex(), bytes(r).hex()) for h, b, r in rows}

    def wait_for(self, predicate: Callable[[], bool], *, timeout_s: float, what: str,
                 interval_s: float = 0.5, watch: Iterable[str] = ()) -> None:
        """Poll ``predicate`` until true; ClusterError on timeout or when a watched process
        exits (naming its last log line)."""
        watched = list(watch)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except psycopg.Error:
                pass  # a database still being created, a node restarting
            for name in watched:
                if not self.processes.running(name):
                    raise ClusterError(f"{name} exited; last log line: "
                                       f"{last_line(self.processes.log_path(name))}")
            time.sleep(interval_s)
        raise ClusterError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def create_topics(bootstrap: str, partitions: int = 3) -> None:
    """The ingest topics, their dead-letter topics and the control topics."""
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
    from django.conf import settings

    from cybermesh.kafka_config import dlq_topic, ingest_topics

    names = [*ingest_topics(), *(dlq_topic(name) for name in ingest_topics()),
             *(settings.KAFKA_TOPICS[name] for name in ("commits", "reputation",
                                                        "policy_updates", "evidence_updates"))]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions,
                                            replication_factor=1) for name in names])
    for name, future in futures.items():
        try:
            future.result(15)
        except Exception as error:  # noqa: BLE001 - the client raises KafkaException
            if "TOPIC_ALREADY_EXISTS" not in str(error):
                raise ClusterError(f"cannot create Kafka topic {name}: {error}") from None
