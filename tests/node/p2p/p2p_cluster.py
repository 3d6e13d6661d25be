"""A few real PeerNetworks on loopback for the transport tests (no Django, no mocks).

Every test runs its coroutine through :func:`run`, which bounds it with ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from apps.node.p2p import (
    NetworkConfig,
    NodeIdentity,
    PeerNetwork,
    RateLimit,
    ScoringConfig,
    Topic,
    certificate_for,
)
from apps.node.p2p.backoff import Backoff
from apps.node.p2p.control import (
    PROTOCOL_VERSION,
    Hello,
    decode_control,
    encode_control,
    topics_digest,
)
from apps.node.p2p.framing import encode_frame, read_frame
from apps.node.p2p.tls import build_contexts, identity_from_pem
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.validator_set import Validator, ValidatorSet

CHAIN_ID = "p2p-test"
TEST_TIMEOUT = 30.0


def run(coroutine: Coroutine[Any, Any, Any], timeout: float = TEST_TIMEOUT) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0,
                     what: str = "condition") -> None:
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def signing_key(name: str) -> SigningKey:
    return SigningKey.from_seed(hashlib.sha256(f"p2p-test/{name}".encode()).digest())


class FakeClock:
    """The injected clock for scores, quarantines and rate limits; tests move it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Cluster:
    """Keys, validator set and certificates of ``ids``; nodes are created on demand."""

    ids: list[str]
    hosts: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    keys: dict[str, SigningKey] = field(default_factory=dict)
    certificates: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for validator_id in self.ids:
            host = self.hosts.setdefault(validator_id, "127.0.0.1")
            self.ports[validator_id] = free_port(host)
            self.keys[validator_id] = signing_key(validator_id)
            self.certificates[validator_id] = certificate_for(
                self.keys[validator_id], validator_id, self.address(validator_id))

    def address(self, validator_id: str) -> str:
        return f"{self.hosts[validator_id]}:{self.ports[validator_id]}"

    @property
    def validator_set(self) -> ValidatorSet:
        return self.subset(self.ids)

    def subset(self, ids: list[str], epoch: int = 0) -> ValidatorSet:
        return ValidatorSet(epoch=epoch, validators=tuple(
            Validator(validator_id, self.keys[validator_id].public_key.raw, 1,
                      self.address(validator_id)) for validator_id in ids))

    def config(self, validator_id: str, **overrides: Any) -> NetworkConfig:
        values: dict[str, Any] = {
            "chain_id": CHAIN_ID,
            "listen_host": self.hosts[validator_id],
            "listen_port": self.ports[validator_id],
            "allowed_ips": ("127.0.0.0/8",),
            "backoff": Backoff(initial=0.05, maximum=0.3),
            "handshake_timeout": 3.0,
            "ping_interval": 0.5,
            "idle_timeout": 5.0,
            "tick_interval": 0.05,
            "higher_id_dial_delay": 0.5,
        }
        values.update(overrides)
        return NetworkConfig(**values)

    def node(self, validator_id: str, *, clock: Callable[[], float] | None = None,
             validator_set: ValidatorSet | None = None, responder: Responder | None = None,
             observers: dict[str, bytes] | None = None, **overrides: Any) -> Node:
        return Node(self, validator_id, clock=clock, validator_set=validator_set,
                    responder=responder, observers=observers, **overrides)


Responder = Callable[["Node", str, Topic, bytes], Awaitable[None]]


class Node:
    """A PeerNetwork plus what it received and whom it quarantined.

    ``responder`` is awaited after each message is recorded (to answer requests, or to fail).
    """

    def __init__(self, cluster: Cluster, validator_id: str, *,
                 clock: Callable[[], float] | None = None,
                 validator_set: ValidatorSet | None = None,
                 responder: Responder | None = None,
                 observers: dict[str, bytes] | None = None, **overrides: Any) -> None:
        self.validator_id = validator_id
        self.received: list[tuple[str, Topic, bytes]] = []
        self.quarantined: list[tuple[str, str]] = []
        self._responder = responder
        extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
        self.network = PeerNetwork(
            cluster.config(validator_id, **overrides),
            NodeIdentity(validator_id, cluster.keys[validator_id]),
            validator_set or cluster.validator_set, self._on_message, observers=observers,
            on_quarantine=lambda peer, reason: self.quarantined.append((peer, reason.value)),
            **extra)

    async def _on_message(self, peer_id: str, topic: Topic, payload: bytes) -> None:
        self.received.append((peer_id, topic, payload))
        if self._responder is not None:
            await self._responder(self, peer_id, topic, payload)

    def got(self, peer_id: str, topic: Topic) -> list[bytes]:
        return [payload for sender, kind, payload in self.received
                if sender == peer_id and kind is topic]


async def start_all(nodes: list[Node]) -> None:
    await asyncio.gather(*(node.network.start() for node in nodes))


async def stop_all(nodes: list[Node]) -> None:
    await asyncio.gather(*(node.network.stop() for node in nodes))


def mesh_ready(nodes: list[Node]) -> Callable[[], bool]:
    def ready() -> bool:
        return all(len(node.network.connected_peers()) == len(nodes) - 1 for node in nodes)
    return ready


def scoring(**overrides: Any) -> ScoringConfig:
    return ScoringConfig(**overrides)


def generous_limits() -> dict[Topic, RateLimit]:
    return {topic: RateLimit(frames_per_second=10_000, burst=10_000) for topic in Topic}


@dataclass
class RawPeer:
    """A hand-driven TLS client: present any certificate, send any bytes."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @classmethod
    async def connect(cls, host: str, port: int, *, context: ssl.SSLContext,
                      local_host: str | None = None) -> RawPeer:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=context, server_hostname=None,
            local_addr=(local_host, 0) if local_host else None)
        return cls(reader, writer)

    def send_hello(self, validator_id: str, config: NetworkConfig, *,
                   chain_id: str | None = None) -> None:
        hello = Hello(version=PROTOCOL_VERSION, chain_id=chain_id or config.chain_id,
                      validator_id=validator_id, topics=topics_digest(config.names()))
        self.writer.write(encode_frame(Topic.CONTROL, encode_control(hello)))

    async def authenticate_as(self, validator_id: str, config: NetworkConfig) -> None:
        """Complete the hello exchange; fail unless the server answers with its hello."""
        self.send_hello(validator_id, config)
        frame = await asyncio.wait_for(self.read_frame(config), 5)
        assert frame is not None and frame[0] is Topic.CONTROL, frame
        assert isinstance(decode_control(frame[1]), Hello), frame

    async def read_frame(self, config: NetworkConfig) -> tuple[Topic, bytes] | None:
        return await read_frame(self.reader, config.caps())

    async def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """Read until the server closes the stream (frames before that are skipped)."""
        async def drain() -> None:
            while await self.reader.read(65536):
                pass
        try:
            await asyncio.wait_for(drain(), timeout)
        except (ConnectionError, ssl.SSLError, OSError):
            return True
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.writer.close()


def client_context(key: SigningKey, certificate: bytes, trusted: list[bytes]) -> ssl.SSLContext:
    """A client context presenting ``certificate`` and trusting the keys of ``trusted``."""
    keys = [identity_from_pem(pem).public_key for pem in trusted]
    return build_contexts(key, certificate, keys).client


async def wait_all(awaitables: list[Awaitable[Any]]) -> None:
    await asyncio.gather(*awaitables)
