"""`manage.py run_node`: start a validator (or, with ``NODE_TYPE=observer``, an observer).

Components:
  all     (default) the consensus worker and the ASGI server (admin, REST API) in one process —
          the quick start and `cluster up`;
  worker  only the consensus worker (the only writer of consensus state);
  web     only the ASGI server, reading what the worker wrote (scale these out freely).

SIGTERM or Ctrl-C: the worker finishes the commit in flight, flushes and closes its peer links,
then the process exits 0. A bad genesis, a missing key or a port in use is one clear line on
stderr and exit status 1.
"""

from __future__ import annotations

import asyncio
import errno
import json
import re
import signal
import socket
import threading
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, SystemCheckError

from apps.node.membership import MembershipError, Role, parse_observers, role_of
from apps.node.observer import ObserverConfig, ObserverRuntime
from apps.node.p2p.config import NetworkConfig
from apps.node.p2p.errors import P2PConfigError
from apps.node.p2p.tls import check_validator_certificates, genesis_certificates
from apps.node.runtime import CATCHUP_LAG, NodeRuntime, RuntimeConfig
from cybermesh.keyfiles import KeyFileError, load_signing_key
from cybermesh.logging import get_logger
from cybermesh.protocol.genesis import Genesis, GenesisError
from cybermesh.protocol.validator_set import ValidatorSet
from cybermesh.topology import load_genesis

logger = get_logger(__name__)

_CHECK_LINE = re.compile(r"^\S*: \([\w.]+\) ")


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _load_genesis() -> Genesis:
    if not settings.CLUSTER_TOPOLOGY:
        raise CommandError("CLUSTER_TOPOLOGY is not set: name the genesis file")
    try:
        genesis = load_genesis(settings.CLUSTER_TOPOLOGY)
        # Certificates in genesis are optional (trust is by key); present ones must match.
        document = json.loads(Path(settings.CLUSTER_TOPOLOGY).read_text())
        certificates = genesis_certificates(document)
        present = {v.validator_id for v in genesis.validator_set if v.validator_id in certificates}
        if present:
            check_validator_certificates(ValidatorSet(genesis.validator_set.epoch, tuple(
                v for v in genesis.validator_set if v.validator_id in present)), certificates)
    except GenesisError as error:
        raise CommandError("bad genesis: " + "; ".join(error.problems)) from None
    except P2PConfigError as error:
        raise CommandError(f"bad genesis: {error}") from None
    return genesis


def _network_config(genesis: Genesis) -> NetworkConfig:
    try:
        return NetworkConfig(
            chain_id=genesis.chain_id, listen_host=settings.P2P_LISTEN_HOST,
            listen_port=settings.P2P_LISTEN_PORT, allowed_ips=tuple(settings.ALLOWED_IPS),
            max_message_size=settings.P2P_MAX_MESSAGE_SIZE, topic_names=settings.P2P_TOPICS,
            bootstrap_addresses=tuple(settings.TRUSTED_P2P_PEERS),
            dial_source_host=getattr(settings, "P2P_DIAL_SOURCE_HOST", "") or None)
    except P2PConfigError as error:
        raise CommandError(f"bad peer-to-peer settings: {error}") from None


def build_runtime_config() -> RuntimeConfig | ObserverConfig:
    """The worker's configuration from settings and the committed ledger; CommandError with
    one line on any problem (apps/node/membership.py says who may run as what)."""
    genesis = _load_genesis()
    if not settings.NODE_KEY_PATH:
        raise CommandError("NODE_KEY_PATH is not set: name this node's key file")
    try:
        key = load_signing_key(settings.NODE_KEY_PATH)
    except KeyFileError as error:
        raise CommandError(str(error)) from None
    try:
        observers = parse_observers(getattr(settings, "P2P_OBSERVERS", ()))
        role = role_of(node_type=settings.NODE_TYPE, node_id=settings.NODE_ID, key=key,
                       genesis=genesis, observers=observers)
    except MembershipError as error:
        raise CommandError(str(error)) from None
    network = _network_config(genesis)
    if role is Role.OBSERVER:
        return ObserverConfig(node_id=settings.NODE_ID, genesis=genesis, signing_key=key,
                              network=network)
    if role is Role.JOINING:
        logger.warning("not a validator of the set this node knows: following the chain "
                       "until an epoch includes this id and key", node_id=settings.NODE_ID)
    return RuntimeConfig(node_id=settings.NODE_ID, genesis=genesis, signing_key=key,
                         observers=observers, network=network,
                         vote_journal=getattr(settings, "NODE_VOTE_JOURNAL", "") or None,
                         catchup_lag=int(getattr(settings, "NODE_CATCHUP_LAG", CATCHUP_LAG)))


def run_worker(config: RuntimeConfig | ObserverConfig, stop: threading.Event | None = None,
               started: threading.Event | None = None) -> None:
    """Run the consensus worker (or the observer's follower) until SIGTERM/SIGINT (main
    thread) or ``stop`` is set."""

    async def main() -> None:
        stop_async = asyncio.Event()
        loop = asyncio.get_running_loop()
        if stop is None:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop_async.set)
        else:
            loop.run_in_executor(None, lambda: (stop.wait(), loop.call_soon_threadsafe(
                stop_async.set)))
        runtime = ObserverRuntime(config) if isinstance(config, ObserverConfig) \
            else NodeRuntime(config)
        await runtime.run(stop_async, on_started=started.set if started else None)

    asyncio.run(main())


class Command(BaseCommand):
    help = "Start this node: consensus worker and/or web server."
    requires_system_checks = "__all__"

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--component", choices=["all", "worker", "web"], default="all")
        parser.add_argument("--bind", default="",
                            help="host:port of the web server (default 127.0.0.1:$HTTP_PORT "
                                 "or 8000)")

    def check(self, *args: Any, **kwargs: Any) -> None:
        """The system checks, with their errors on one line (an operator reads the last line
        of a failed start; the full report is one ``manage.py check`` away).

        ``cybermesh.W005`` (a validator id missing from genesis) is only a warning: it is
        decided by :func:`build_runtime_config`, which knows the committed ledger (a
        validator added by governance is in no genesis and must still start)."""
        try:
            super().check(*args, **kwargs)
        except SystemCheckError as error:
            problems = [line.strip() for line in str(error).splitlines()
                        if _CHECK_LINE.match(line.strip())]
            raise CommandError("refusing to start: " + "; ".join(problems or [
                str(error).strip().splitlines()[-1]])) from None

    def handle(self, *args: Any, **options: Any) -> None:
        component = options["component"]
        bind = options["bind"] or f"127.0.0.1:{getattr(settings, 'HTTP_PORT', 8000)}"
        host, _, port_text = bind.rpartition(":")
        if not port_text.isdigit():
            raise CommandError(f"--bind {bind!r} must be host:port")
        port = int(port_text)
        config = build_runtime_config() if component in ("all", "worker") else None
        if config is not None and not _port_free(settings.P2P_LISTEN_HOST,
                                                 settings.P2P_LISTEN_PORT):
            raise CommandError(f"P2P port {settings.P2P_LISTEN_HOST}:"
                               f"{settings.P2P_LISTEN_PORT} is already in use")
        if component in ("all", "web") and not _port_free(host, port):
            raise CommandError(f"HTTP port {host}:{port} is already in use")
        if component == "worker":
            assert config is not None  # noqa: S101
            run_worker(config)
            return
        stop = threading.Event()
        worker: threading.Thread | None = None
        if config is not None:
            worker = threading.Thread(target=run_worker, args=(config, stop), name="worker",
                                      daemon=False)
            worker.start()
        try:
            self._serve_web(host, port)
        finally:
            stop.set()
            if worker is not None:
                worker.join(timeout=30)

    def _serve_web(self, host: str, port: int) -> None:
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server

        from cybermesh.asgi import application

        self.stdout.write(f"serving http://{host}:{port}/")
        Server(application=application,
               endpoints=build_endpoint_description_strings(host=host, port=port),
               signal_handlers=True, verbosity=0).run()
