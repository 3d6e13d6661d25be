"""Authenticated, encrypted peer links between validators (TLS 1.3, mutual auth).

The runtime uses :class:`PeerNetwork`; init_cluster uses :func:`certificate_for`. See
docs/p2p.md for the rules (trust, framing, scoring, rate limits, dedup).
"""

from apps.node.p2p.config import NetworkConfig
from apps.node.p2p.errors import P2PConfigError, PenaltyReason, RefusalReason
from apps.node.p2p.framing import Topic
from apps.node.p2p.peers import NetworkStats, NodeIdentity, PeerStatus
from apps.node.p2p.ratelimit import RateLimit
from apps.node.p2p.scoring import ScoringConfig
from apps.node.p2p.tls import (
    certificate_for,
    check_validator_certificates,
    genesis_certificates,
    identity_from_pem,
)
from apps.node.p2p.transport import PeerNetwork

__all__ = [
    "NetworkConfig",
    "NetworkStats",
    "NodeIdentity",
    "P2PConfigError",
    "PeerNetwork",
    "PeerStatus",
    "PenaltyReason",
    "RateLimit",
    "RefusalReason",
    "ScoringConfig",
    "Topic",
    "certificate_for",
    "check_validator_certificates",
    "genesis_certificates",
    "identity_from_pem",
]
