"""What the network knows about its peers: records, public status, counters, the dedup rule."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from apps.node.p2p.errors import PenaltyReason, RefusalReason
from apps.node.p2p.framing import Topic
from apps.node.p2p.link import Link
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.validator_set import Validator


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Who we are: our validator id and the key our TLS certificate holds."""

    validator_id: str
    signing_key: SigningKey


@dataclass(frozen=True, slots=True)
class PeerStatus:
    peer_id: str
    address: str
    connected: bool
    score: float
    quarantined_until: float | None  # on the network's injected clock; None = not quarantined
    outbound: bool | None  # we dialled the live link; None when not connected
    observer: bool = False  # follows by block sync only (P2P_OBSERVERS)


@dataclass(slots=True)
class NetworkStats:
    """Per-network counters (the Prometheus metrics are process-wide); tests read these."""

    refused: Counter[RefusalReason] = field(default_factory=Counter)
    penalties: Counter[PenaltyReason] = field(default_factory=Counter)
    quarantines: Counter[PenaltyReason] = field(default_factory=Counter)
    frames_received: Counter[Topic] = field(default_factory=Counter)
    frames_sent: Counter[Topic] = field(default_factory=Counter)
    rate_limited: Counter[Topic] = field(default_factory=Counter)
    forbidden: Counter[Topic] = field(default_factory=Counter)  # observers' consensus frames
    replies_exempted: Counter[Topic] = field(default_factory=Counter)
    send_dropped: Counter[Topic] = field(default_factory=Counter)
    callback_errors: int = 0


@dataclass(slots=True)
class PeerRecord:
    """A validator we keep a link to, its live link (if any) and its dialler."""

    validator: Validator
    link: Link | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dialler: asyncio.Task[None] | None = None
    attempts: int = 0


def keep_new_link(own_id: str, peer_id: str, existing_dialer: str, new_dialer: str) -> bool:
    """Dedup rule for a second authenticated link to the same peer; True = replace the old one.

    A pair keeps the link dialled by the lower id. A new link from the same dialler as the old
    one replaces it: that side reconnected, so it believes the old link dead. Both ends run
    this on the same (dialer) facts and reach the same answer without a message.
    """
    preferred = min(own_id, peer_id)
    return not (existing_dialer == preferred and new_dialer != preferred)
