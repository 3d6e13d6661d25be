"""What goes into the consensus state machine (events) and what comes out (actions).

The runtime performs actions strictly in list order. In particular a
:class:`PersistSafetyData` must be durable before any later :class:`Send` or :class:`Broadcast`
of the same list is performed: that ordering is what makes a crash unable to cause a double
signature.
"""

from __future__ import annotations

from dataclasses import dataclass

from cybermesh.protocol.consensus.messages import Block, Evidence, Message, QuorumCert
from cybermesh.protocol.consensus.safety import SafetyData
from cybermesh.protocol.validator_set import Validator, ValidatorSet

# ----------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Start:
    """First event after construction (or restart): schedules the view timer, maybe proposes."""


@dataclass(frozen=True, slots=True)
class Tick:
    """The runtime's clock (milliseconds); used for block timestamps and the skew check."""

    now_ms: int


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A decoded message from the authenticated peer ``sender``."""

    sender: str
    message: Message


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer scheduled by :class:`ScheduleTimer` expired (stale ids are ignored)."""

    epoch: int
    view: int
    timer_id: int


@dataclass(frozen=True, slots=True)
class PayloadReady:
    """The application's answer to :class:`RequestPayload` (``payload`` None: nothing to do).

    ``state_root`` is the state root after executing the parent block; ``next_validators`` a
    validator-set change decided by a governance transaction in ``payload``.
    """

    epoch: int
    view: int
    payload: bytes | None
    tx_root: bytes
    state_root: bytes
    next_validators: tuple[Validator, ...] | None = None


Event = Start | Tick | MessageReceived | TimerFired | PayloadReady

# ----------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Send:
    to: str
    message: Message


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send to every other validator of the current epoch."""

    message: Message


@dataclass(frozen=True, slots=True)
class PersistSafetyData:
    data: SafetyData


@dataclass(frozen=True, slots=True)
class CommittedBlock:
    block: Block
    qc: QuorumCert


@dataclass(frozen=True, slots=True)
class CommitBlocks:
    """Blocks committed in height order, each with a QC certifying it.

    ``proof_block`` / ``proof_qc`` are the 2-chain proof: ``proof_qc`` certifies ``proof_block``,
    whose own QC certifies the highest committed block (or a descendant, when the commit stopped
    at a reconfiguration block) in the directly preceding view.
    """

    blocks: tuple[CommittedBlock, ...]
    proof_block: Block
    proof_qc: QuorumCert


@dataclass(frozen=True, slots=True)
class ScheduleTimer:
    """Deliver ``TimerFired(epoch, view, timer_id)`` after ``duration_ms``.

    Only the most recently scheduled timer counts; earlier ones may be cancelled or delivered.
    """

    epoch: int
    view: int
    duration_ms: int
    timer_id: int


@dataclass(frozen=True, slots=True)
class RequestPayload:
    """Ask the application for a block payload extending ``parent_id`` at ``height``."""

    epoch: int
    view: int
    height: int
    parent_id: bytes


@dataclass(frozen=True, slots=True)
class ReportEvidence:
    evidence: Evidence


@dataclass(frozen=True, slots=True)
class EnterEpoch:
    """A committed reconfiguration started ``validator_set.epoch``; ``member`` says if we vote."""

    validator_set: ValidatorSet
    member: bool


@dataclass(frozen=True, slots=True)
class SafetyAlarm:
    """A certified 2-chain conflicts with this node's committed prefix: safety is broken.

    Only possible with more than f faulty power (or a bug). The runtime must stop the node and
    alert an operator; the node commits nothing on the conflicting chain.
    """

    height: int
    committed_id: bytes
    conflicting_id: bytes


Action = (Send | Broadcast | PersistSafetyData | CommitBlocks | ScheduleTimer | RequestPayload
          | ReportEvidence | EnterEpoch | SafetyAlarm)
