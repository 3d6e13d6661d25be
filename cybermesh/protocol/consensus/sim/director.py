"""A scripted simulation: the adversary owns the network and the faulty validators' keys.

Random schedules rarely hit the few interleavings that a missing timeout rule makes unsafe (a
timeout in one view followed by a vote in it; a restart that forgets the highest QC while the
lock survives). A :class:`ScriptedSimulation` runs the same honest cores, with the same
invariant checker, but nothing is delivered unless the script says so: every message an honest
node sends waits in :attr:`ScriptedSimulation.outbox`, every view timer waits until the script
fires it. That is the asynchronous network of the model (before GST the adversary decides what
arrives when). The faulty validators run no core at all: a :class:`Coalition` signs with their
keys whatever the script needs (proposals, votes, timeouts) and aggregates what honest nodes
sent into certificates.

Scripts are plain functions (see :mod:`.scenarios`); they react to what the honest nodes
actually signed, so the same script run with every rule on simply fails to build its attack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from cybermesh.protocol.consensus.core import LeaderFactory
from cybermesh.protocol.consensus.events import Event, MessageReceived, Start, TimerFired
from cybermesh.protocol.consensus.leader import FixedLeaderSchedule
from cybermesh.protocol.consensus.messages import (
    Block,
    Message,
    Proposal,
    QuorumCert,
    Timeout,
    TimeoutCert,
    Vote,
)
from cybermesh.protocol.consensus.safety import Rule
from cybermesh.protocol.consensus.sim.byzantine import Fault
from cybermesh.protocol.consensus.sim.invariants import InvariantViolation
from cybermesh.protocol.consensus.sim.world import (
    _DELIVER,
    _PAYLOAD,
    _TIMER,
    Instance,
    SimConfig,
    Simulation,
)
from cybermesh.protocol.consensus.wire import decode_message
from cybermesh.protocol.crypto.hashing import sha256


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message an instance sent, waiting for the script to deliver or drop it."""

    sender: str
    to: int  # instance index
    message: Message


class ScriptedSimulation(Simulation):
    """Honest cores + checker; the script delivers messages and fires timers explicitly.

    ``faulty_leads`` views 1..n are led by the (single) faulty validator, whose instance is
    silent: the script speaks for it through :attr:`coalition`.
    """

    def __init__(self, *, validators: int = 4, disabled_rules: frozenset[Rule] = frozenset(),
                 faulty_leads: int = 8, seed: int = 0) -> None:
        self._faulty_leads = faulty_leads
        self.outbox: list[Envelope] = []
        self.timers: dict[int, TimerFired] = {}
        self.log: list[str] = []
        config = SimConfig(validators=validators, faults=(Fault.SILENT,),
                           disabled_rules=disabled_rules, check_liveness=False)
        super().__init__(config, seed)
        faulty = [inst for inst in self.instances if not inst.honest]
        self.coalition = Coalition(self, faulty[0])

    # ------------------------------------------------------------------ world overrides

    def _leader_factory(self) -> LeaderFactory | None:
        faulty = sorted(set(self.validator_ids) - self.honest)[0]
        leaders = dict.fromkeys(range(1, self._faulty_leads + 1), faulty)
        return lambda vs: FixedLeaderSchedule(leaders, vs.ids)

    def _push(self, at: int, kind: int, index: int, payload: object) -> None:
        if kind == _TIMER:
            assert isinstance(payload, TimerFired)  # noqa: S101 -- only timers come here
            self.timers[index] = payload  # only the latest timer of a node counts
        elif kind == _DELIVER:
            sender: str = payload[0]  # type: ignore[index]
            item: object = payload[1]  # type: ignore[index]
            message: Message = (decode_message(item) if isinstance(item, bytes)
                                else item)  # type: ignore[assignment]
            self.outbox.append(Envelope(sender, index, message))
        elif kind != _PAYLOAD:  # honest nodes never lead a scripted view: no payloads needed
            super()._push(at, kind, index, payload)

    def _transmit(self, src: Instance, dst: Instance, item: object) -> None:
        self._push(self.now, _DELIVER, dst.index, (src.validator_id, item))

    # ------------------------------------------------------------------ script verbs

    def start(self) -> None:
        for inst in self.instances:
            if inst.honest:
                self._deliver(inst, Start())

    def honest_instances(self) -> list[Instance]:
        return [inst for inst in self.instances if inst.honest]

    def _step_to(self, inst: Instance, event: Event) -> None:
        self.now += 5  # simulated time moves forward with every scripted step
        self._deliver(inst, event)

    def deliver(self, inst: Instance, message: Message, sender: str | None = None) -> None:
        """Hand ``message`` to ``inst`` (from the coalition unless ``sender`` is given)."""
        self._step_to(inst, MessageReceived(sender or self.coalition.validator_id, message))

    def fire_timer(self, inst: Instance) -> None:
        """The view timer of ``inst`` expires (the adversary delayed everything until then)."""
        timer = self.timers.pop(inst.index, None)
        if timer is not None:
            self._step_to(inst, timer)

    def take(self, kind: type, *, sender: str | None = None,
             where: Callable[[Message], bool] | None = None) -> list[Message]:
        """Remove from the outbox (and return) the messages of ``kind`` that match."""
        taken: list[Message] = []
        kept: list[Envelope] = []
        for envelope in self.outbox:
            message = envelope.message
            matches = isinstance(message, kind) and (sender is None or envelope.sender == sender) \
                and (where is None or where(message))
            if not matches:
                kept.append(envelope)
            elif message not in taken:  # a broadcast reaches the outbox once per recipient
                taken.append(message)
        self.outbox = kept
        return taken

    def restart(self, inst: Instance) -> None:
        """Crash ``inst`` and restart it from its persisted safety data and committed ledger."""
        self.rebuild_core(inst)
        self.timers.pop(inst.index, None)
        self.outbox = [e for e in self.outbox if e.sender != inst.validator_id]
        self._step_to(inst, Start())

    def note(self, text: str) -> None:
        self.log.append(f"t={self.now}ms {text}")


class Coalition:
    """The faulty validator's key in the script's hands: it signs whatever it likes."""

    def __init__(self, sim: ScriptedSimulation, instance: Instance) -> None:
        self._sim = sim
        self._instance = instance
        self.validator_id = instance.validator_id
        self._domains = instance.core.domains
        self._validator_set = sim.genesis_set

    def _sign(self, kind: str, statement: bytes) -> bytes:
        return self._instance.signer.sign(getattr(self._domains, kind), statement)

    def propose(self, view: int, qc: QuorumCert, tc: TimeoutCert | None = None,
                tag: bytes = b"") -> Proposal:
        """A well-formed block for ``view`` extending ``qc``, signed as its leader."""
        payload = b"coalition/%d/" % view + tag
        block = Block(epoch=qc.epoch, view=view, height=qc.height + 1, parent_id=qc.block_id,
                      proposer=self.validator_id, timestamp_ms=self._sim.now + view,
                      payload=payload, tx_root=sha256(payload), state_root=sha256(qc.block_id),
                      validator_set_hash=self._validator_set.digest(), qc=qc)
        return Proposal(block=block, tc=tc, signature=self._sign("proposal", block.statement()))

    def vote(self, block: Block) -> Vote:
        return Vote(epoch=block.epoch, view=block.view, block_id=block.block_id,
                    height=block.height, voter=self.validator_id,
                    signature=self._sign("vote", block.statement()))

    def timeout(self, view: int, high_qc: QuorumCert) -> Timeout:
        unsigned = Timeout(epoch=high_qc.epoch, view=view, high_qc=high_qc,
                           sender=self.validator_id, signature=b"")
        return replace(unsigned, signature=self._sign("timeout", unsigned.statement()))

    def certify(self, block: Block, votes: list[Message]) -> QuorumCert | None:
        """A QC from the coalition's vote plus the honest votes for ``block``, if a quorum."""
        signatures = {self.validator_id: self.vote(block).signature}
        for vote in votes:
            if isinstance(vote, Vote) and vote.block_id == block.block_id:
                signatures.setdefault(vote.voter, vote.signature)
        if not self._validator_set.has_quorum(signatures):
            return None
        return QuorumCert(epoch=block.epoch, view=block.view, block_id=block.block_id,
                          height=block.height, signatures=tuple(sorted(signatures.items())))

    def time_out(self, view: int, high_qc: QuorumCert,
                 timeouts: list[Message]) -> TimeoutCert | None:
        """A TC for ``view`` from the coalition's timeout (carrying ``high_qc``) + honest ones."""
        own = self.timeout(view, high_qc)
        entries = {own.sender: (own.high_qc.view, own.signature)}
        for timeout in timeouts:
            if isinstance(timeout, Timeout) and timeout.view == view:
                entries.setdefault(timeout.sender, (timeout.high_qc.view, timeout.signature))
        if not self._validator_set.has_quorum(entries):
            return None
        return TimeoutCert(epoch=high_qc.epoch, view=view, signatures=tuple(sorted(
            (sender, qc_view, signature) for sender, (qc_view, signature) in entries.items())))


@dataclass(slots=True)
class ScriptResult:
    """What a scripted scenario did: the violation the checker raised (if any) and its log."""

    name: str
    disabled_rules: frozenset[Rule]
    violation: InvariantViolation | None = None
    log: list[str] = field(default_factory=list)

    def summary(self) -> str:
        state = "ok" if self.violation is None else f"VIOLATION {self.violation}"
        rules = ",".join(sorted(rule.value for rule in self.disabled_rules)) or "none"
        return f"scenario={self.name} disabled={rules} {state}"


Script = Callable[[ScriptedSimulation], None]


def run_script(name: str, script: Script, *, disabled_rules: frozenset[Rule] = frozenset(),
               validators: int = 4) -> ScriptResult:
    """Run ``script`` in a fresh scripted world; the checker's first violation ends it."""
    sim = ScriptedSimulation(validators=validators, disabled_rules=disabled_rules)
    result = ScriptResult(name=name, disabled_rules=disabled_rules)
    try:
        sim.start()
        script(sim)
    except InvariantViolation as violation:
        result.violation = violation
    result.log = sim.log
    return result
