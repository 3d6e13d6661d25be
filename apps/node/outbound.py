"""What one consensus step hands to the event loop, and the peer topic of each message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apps.node.p2p.errors import PenaltyReason
from apps.node.p2p.framing import Topic
from cybermesh.protocol.consensus.events import ScheduleTimer
from cybermesh.protocol.consensus.messages import (
    Evidence,
    Heartbeat,
    Message,
    Proposal,
    SyncRequest,
    SyncResponse,
    Timeout,
    TimeoutCert,
    Vote,
)

TOPIC_OF: dict[type, Topic] = {
    Proposal: Topic.PROPOSAL, Vote: Topic.VOTE, Timeout: Topic.VIEWCHANGE,
    TimeoutCert: Topic.NEWVIEW, Heartbeat: Topic.HEARTBEAT, Evidence: Topic.EVIDENCE,
    SyncRequest: Topic.BLOCKSYNC, SyncResponse: Topic.BLOCKSYNC,
}


@dataclass(slots=True)
class Outbound:
    """Work for the event loop, produced by one consensus step."""

    sends: list[tuple[str, Message]] = field(default_factory=list)
    broadcasts: list[Message] = field(default_factory=list)
    timer: ScheduleTimer | None = None
    penalize: list[tuple[str, PenaltyReason]] = field(default_factory=list)
    ledger_sync_from: tuple[str, int] | None = None
    new_validators: Any = None
