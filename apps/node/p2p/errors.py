"""Why the peer layer refuses a connection or penalises a peer: enums, so they can be counted.

``RefusalReason`` labels a connection that never became (or stopped being) a link for a reason
that is the connection's fault or our policy; ``PenaltyReason`` labels misbehaviour of an
authenticated peer, which lowers its score (see :mod:`apps.node.p2p.scoring`).
"""

from __future__ import annotations

import enum


class RefusalReason(enum.Enum):
    """Why a connection was refused or dropped before it carried messages."""

    NOT_ALLOWLISTED = "not_allowlisted"      # source / destination IP outside ALLOWED_IPS
    HANDSHAKE_FAILED = "handshake_failed"    # TLS failed (below 1.3, garbage, reset, ...)
    HANDSHAKE_TIMEOUT = "handshake_timeout"  # TLS or hello not done within the bound
    UNKNOWN_KEY = "unknown_key"              # key is not one of the validator set / observers
    IDENTITY_MISMATCH = "identity_mismatch"  # cert names one id, hello or dialled address another
    PROTOCOL_MISMATCH = "protocol_mismatch"  # other chain id, protocol version or topic table
    QUARANTINED = "quarantined"              # the peer is serving a quarantine
    SELF = "self"                            # we dialled ourselves (address misconfiguration)
    DUPLICATE = "duplicate"                  # a preferred link to that peer already exists
    REMOVED = "removed"                      # peer left the validator set (epoch change)
    CONNECT_FAILED = "connect_failed"        # TCP connect failed (dialler side)
    BUSY = "busy"                            # too many handshakes in progress


class PenaltyReason(enum.Enum):
    """Misbehaviour that lowers an authenticated peer's score."""

    INVALID_SIGNATURE = "invalid_signature"
    MALFORMED = "malformed"                  # bad frame, bad control message, undecodable payload
    OVERSIZED = "oversized"                  # frame above its topic's size cap
    FLOOD = "flood"                          # topic rate limit exceeded
    TIMEOUT = "timeout"                      # no frame (not even a pong) within the idle bound
    INVALID_MESSAGE = "invalid_message"      # well-formed but wrong (stale epoch, skew, replay)
    BAD_BLOCK = "bad_block"                  # served a block that fails verification
    FORBIDDEN_TOPIC = "forbidden_topic"      # an observer sent on a consensus topic


class P2PConfigError(ValueError):
    """A configuration the peer layer cannot run with (bad CIDR, certificate/key mismatch...)."""


class HandshakeRefused(Exception):
    """A connection attempt ended without a link; ``reason`` is what gets counted."""

    def __init__(self, reason: RefusalReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
