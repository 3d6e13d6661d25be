"""Configuration of the peer network: one frozen dataclass, no Django.

:meth:`NetworkConfig.from_settings` reads the ``P2P_*`` / ``ALLOWED_IPS`` attributes of any
settings-like object (``django.conf.settings`` in the runtime), so this package never imports
Django itself.

Per-topic size caps default to what the consensus wire format can produce
(``cybermesh.protocol.consensus.wire.WireLimits``) with headroom, and never exceed
``max_message_size`` (``P2P_MAX_MESSAGE_SIZE``). Proposals and block-sync frames are capped by
``max_message_size`` alone; the runtime splits sync responses to fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from apps.node.p2p.allowlist import Allowlist
from apps.node.p2p.backoff import Backoff
from apps.node.p2p.control import CONTROL_CAP
from apps.node.p2p.errors import P2PConfigError
from apps.node.p2p.framing import APPLICATION_TOPICS, Topic
from apps.node.p2p.ratelimit import RateLimit
from apps.node.p2p.scoring import ScoringConfig
from cybermesh.protocol.genesis import parse_address

DEFAULT_TOPIC_NAMES: Mapping[str, str] = MappingProxyType({
    "proposal": "consensus/proposal",
    "vote": "consensus/vote",
    "viewchange": "consensus/viewchange",
    "newview": "consensus/newview",
    "heartbeat": "consensus/heartbeat",
    "evidence": "consensus/evidence",
    "blocksync": "consensus/blocksync",
})
CONTROL_TOPIC_NAME = "p2p/control"

# None = max_message_size.
DEFAULT_TOPIC_CAPS: Mapping[Topic, int | None] = MappingProxyType({
    Topic.CONTROL: CONTROL_CAP,
    Topic.PROPOSAL: None,
    Topic.VOTE: 4 * 1024,
    Topic.VIEWCHANGE: 64 * 1024,
    Topic.NEWVIEW: 64 * 1024,
    Topic.HEARTBEAT: 4 * 1024,
    Topic.EVIDENCE: 16 * 1024,
    Topic.BLOCKSYNC: None,
})

# Frames per second and burst, per peer. Far above an honest peer's rate (one proposal and one
# vote per view, a heartbeat every 500 ms), low enough that a flood is cut off at once.
DEFAULT_RATE_LIMITS: Mapping[Topic, RateLimit] = MappingProxyType({
    Topic.CONTROL: RateLimit(frames_per_second=10, burst=20),
    Topic.PROPOSAL: RateLimit(frames_per_second=50, burst=100),
    Topic.VOTE: RateLimit(frames_per_second=200, burst=400),
    Topic.VIEWCHANGE: RateLimit(frames_per_second=100, burst=200),
    Topic.NEWVIEW: RateLimit(frames_per_second=100, burst=200),
    Topic.HEARTBEAT: RateLimit(frames_per_second=20, burst=40),
    Topic.EVIDENCE: RateLimit(frames_per_second=20, burst=40),
    Topic.BLOCKSYNC: RateLimit(frames_per_second=100, burst=200),
})


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """Everything :class:`~apps.node.p2p.transport.PeerNetwork` needs besides keys and peers.

    Durations are seconds. ``dial_source_host`` binds outgoing connections to a local address
    (multi-homed hosts; tests use it to dial from 127.0.0.2). ``bootstrap_addresses``
    (``TRUSTED_P2P_PEERS``) are dialled in addition to the validator set's addresses; whoever
    answers there must still be a validator of the set. ``higher_id_dial_delay`` is the head
    start the higher id of a pair gives the lower id before dialling it (see transport).
    """

    chain_id: str
    listen_host: str = "127.0.0.1"
    listen_port: int = 7000
    allowed_ips: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    max_message_size: int = 4 * 1024 * 1024
    topic_names: Mapping[str, str] = field(default_factory=lambda: DEFAULT_TOPIC_NAMES)
    topic_caps: Mapping[Topic, int] = field(default_factory=dict)
    rate_limits: Mapping[Topic, RateLimit] = field(default_factory=dict)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    backoff: Backoff = field(default_factory=Backoff)
    dial_source_host: str | None = None
    bootstrap_addresses: tuple[str, ...] = ()
    higher_id_dial_delay: float = 2.0
    handshake_timeout: float = 5.0
    ping_interval: float = 2.0
    idle_timeout: float = 10.0
    tick_interval: float = 0.25
    send_queue_frames: int = 1024
    send_queue_bytes: int = 64 * 1024 * 1024
    max_pending_handshakes: int = 64
    max_reply_credits: int = 64

    def __post_init__(self) -> None:
        unknown = sorted(set(self.topic_names) - set(DEFAULT_TOPIC_NAMES))
        if unknown:
            raise P2PConfigError(f"P2P_TOPICS has unknown kinds: {', '.join(unknown)}")
        if self.max_message_size < 1024:
            raise P2PConfigError("max_message_size must be at least 1024 bytes")
        if not 0 < self.ping_interval < self.idle_timeout:
            raise P2PConfigError("need 0 < ping_interval < idle_timeout")
        if (self.handshake_timeout <= 0 or self.tick_interval <= 0 or self.send_queue_frames < 1
                or self.higher_id_dial_delay < 0):
            raise P2PConfigError("timeouts, tick interval and send queue must be positive")
        Allowlist.from_cidrs(self.allowed_ips)  # raises on a bad CIDR at construction time
        for address in self.bootstrap_addresses:
            try:
                parse_address(address)
            except ValueError as error:
                raise P2PConfigError(f"TRUSTED_P2P_PEERS: {error}") from None

    def allowlist(self) -> Allowlist:
        return Allowlist.from_cidrs(self.allowed_ips)

    def names(self) -> dict[Topic, str]:
        names = {Topic.CONTROL: CONTROL_TOPIC_NAME}
        for topic in APPLICATION_TOPICS:
            names[topic] = self.topic_names.get(topic.kind, DEFAULT_TOPIC_NAMES[topic.kind])
        return names

    def caps(self) -> dict[Topic, int]:
        caps: dict[Topic, int] = {}
        for topic in Topic:
            default = DEFAULT_TOPIC_CAPS[topic]
            cap = self.topic_caps.get(topic, self.max_message_size if default is None else default)
            caps[topic] = min(cap, self.max_message_size)
        return caps

    def limits(self) -> dict[Topic, RateLimit]:
        return {topic: self.rate_limits.get(topic, DEFAULT_RATE_LIMITS[topic]) for topic in Topic}

    @classmethod
    def from_settings(cls, settings: Any, *, chain_id: str, **overrides: Any) -> NetworkConfig:
        """Build from a settings-like object with ``P2P_LISTEN_HOST``, ``P2P_LISTEN_PORT``,
        ``P2P_TOPICS``, ``P2P_MAX_MESSAGE_SIZE``, ``ALLOWED_IPS`` and (optional)
        ``TRUSTED_P2P_PEERS`` attributes."""
        values: dict[str, Any] = {
            "chain_id": chain_id,
            "listen_host": settings.P2P_LISTEN_HOST,
            "listen_port": int(settings.P2P_LISTEN_PORT),
            "allowed_ips": tuple(settings.ALLOWED_IPS),
            "max_message_size": int(settings.P2P_MAX_MESSAGE_SIZE),
            "topic_names": dict(settings.P2P_TOPICS),
            "bootstrap_addresses": tuple(getattr(settings, "TRUSTED_P2P_PEERS", ())),
        }
        values.update(overrides)
        return cls(**values)
