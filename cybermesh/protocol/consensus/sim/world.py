"""The simulated world: instances of the core, a seeded network, faults, and the checker.

One :class:`Simulation` runs one schedule: ``Simulation(config, seed).run()`` returns a
:class:`SimResult`. Everything random is drawn from one :class:`SimRng` (forked per concern),
so the same (config, seed) replays the same schedule step for step.

Time is simulated milliseconds. Before ``heal_at_ms`` (GST) the network may drop, duplicate,
delay and reorder messages, partition the nodes, crash and restart them (a restarted node keeps
only its persisted safety data and its committed ledger) and skew their clocks; after it, the
network delivers every message within ``delay_max_ms``. Liveness is then checked: every honest
instance must commit ``liveness_commits`` new blocks within ``liveness_bound_ms``.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from cybermesh.protocol.consensus.core import ConsensusCore, CoreConfig, LeaderFactory
from cybermesh.protocol.consensus.errors import MessageError
from cybermesh.protocol.consensus.events import (
    Action,
    Broadcast,
    CommitBlocks,
    EnterEpoch,
    Event,
    MessageReceived,
    PayloadReady,
    PersistSafetyData,
    ReportEvidence,
    RequestPayload,
    SafetyAlarm,
    ScheduleTimer,
    Send,
    Start,
    Tick,
    TimerFired,
)
from cybermesh.protocol.consensus.leader import FixedLeaderSchedule
from cybermesh.protocol.consensus.messages import (
    ZERO_HASH,
    Block,
    Message,
    Proposal,
    QuorumCert,
    Timeout,
    Vote,
)
from cybermesh.protocol.consensus.pacemaker import PacemakerParameters
from cybermesh.protocol.consensus.quorum import EpochState
from cybermesh.protocol.consensus.safety import Rule, SafetyData
from cybermesh.protocol.consensus.signatures import Domains, Signer, Verifier
from cybermesh.protocol.consensus.sim.byzantine import Fault, Outgoing, RawSend, rewrite
from cybermesh.protocol.consensus.sim.invariants import (
    InvariantChecker,
    InvariantViolation,
    NodeLedger,
)
from cybermesh.protocol.consensus.sim.keys import SimSigner, SimVerifier, sim_public_key
from cybermesh.protocol.consensus.sim.rng import SimRng
from cybermesh.protocol.consensus.wire import decode_message, encode_message
from cybermesh.protocol.validator_set import Validator, ValidatorSet

CHAIN_ID = "cybermesh-sim"
_DELIVER, _TIMER, _PAYLOAD, _CRASH, _RESTART, _LATER = range(6)


@dataclass(frozen=True, slots=True)
class TwinsScenario:
    """Per view 1..len(views): (groups of instance indexes that can talk, leader id)."""

    views: tuple[tuple[tuple[frozenset[int], ...], str], ...]


@dataclass(frozen=True, slots=True)
class SimConfig:
    validators: int = 4
    heal_at_ms: int = 6_000
    max_duration_ms: int = 60_000
    delay_min_ms: int = 2
    delay_max_ms: int = 40
    drop_per_mille: int = 0
    duplicate_per_mille: int = 0
    partitions: int = 0
    crashes: int = 0
    crash_after_vote: bool = False
    clock_skew_ms: int = 0
    faults: tuple[Fault, ...] = ()
    twins: int = 0
    disabled_rules: frozenset[Rule] = frozenset()
    wire: bool = True
    base_timeout_ms: int = 300
    max_timeout_ms: int = 2_400
    reconfigure_at_height: int = 0
    liveness_commits: int = 3
    liveness_bound_ms: int = 30_000
    scenario: TwinsScenario | None = None
    check_liveness: bool = True
    # Who is faulty: the first ``twins`` ids are twinned, the next get ``faults`` in order.
    # Empty: drawn from the seed. Systematic Twins fix it, so the enumeration is exhaustive
    # up to relabelling validators (leaders and partitions range over every choice).
    faulty_ids: tuple[str, ...] = ()


@dataclass(slots=True)
class Instance:
    index: int
    validator_id: str
    secret: bytes
    fault: Fault | None
    twin: bool
    rng: SimRng
    skew_ms: int
    signer: Signer
    ledger: NodeLedger
    core: ConsensusCore
    # The last PersistSafetyData (immutable). Serialised only at a restart, which reloads it
    # through to_bytes/from_bytes exactly as the runtime's store would.
    persisted: SafetyData | None = None
    crashed: bool = False
    crash_pending: bool = False
    seen_qcs: list[QuorumCert] = field(default_factory=list)
    timer_id: int = 0  # the latest ScheduleTimer of the current core

    @property
    def honest(self) -> bool:
        return self.fault is None and not self.twin


@dataclass(slots=True)
class SimResult:
    seed: int
    config: SimConfig
    violation: InvariantViolation | None = None
    liveness_ok: bool | None = None
    liveness_detail: str = ""
    steps: int = 0
    delivered: int = 0
    undecodable: int = 0
    committed_height: int = 0
    max_view: int = 0
    evidence: int = 0
    end_ms: int = 0

    @property
    def ok(self) -> bool:
        return self.violation is None and self.liveness_ok is not False

    def summary(self) -> str:
        state = "ok" if self.ok else (f"VIOLATION {self.violation}" if self.violation
                                      else f"LIVENESS FAILED {self.liveness_detail}")
        return (f"seed={self.seed} {state} height={self.committed_height} view={self.max_view} "
                f"steps={self.steps} delivered={self.delivered} evidence={self.evidence} "
                f"t={self.end_ms}ms")


def validator_ids(count: int) -> list[str]:
    return [f"v{index:02d}" for index in range(count)]


def genesis_block(validator_set: ValidatorSet) -> Block:
    return Block(epoch=0, view=0, height=0, parent_id=ZERO_HASH, proposer="", timestamp_ms=0,
                 payload=b"", tx_root=ZERO_HASH, state_root=ZERO_HASH,
                 validator_set_hash=validator_set.digest(),
                 qc=QuorumCert(epoch=0, view=0, block_id=ZERO_HASH, height=0, signatures=()))


def _secret(validator_id: str) -> bytes:
    return hashlib.sha256(b"cybermesh-sim-secret/" + validator_id.encode()).digest()


class Simulation:
    def __init__(self, config: SimConfig, seed: int, *,
                 signer_factory: Callable[[str, bytes, Callable[..., None]], Signer] | None = None,
                 verifier: Verifier | None = None,
                 public_key_of: Callable[[bytes], bytes] = sim_public_key,
                 checker_verifier: Verifier | None = None) -> None:
        self.config = config
        self.seed = seed
        self.rng = SimRng(seed)
        self._net_rng = self.rng.fork(1)
        self.now = 0
        self._seq = 0
        self._queue: list[tuple[int, int, int, int, object]] = []
        ids = validator_ids(config.validators)
        self.validator_ids = ids
        validators = tuple(Validator(vid, public_key_of(_secret(vid)), 1) for vid in ids)
        self.genesis_set = ValidatorSet(epoch=0, validators=validators)
        self.genesis = genesis_block(self.genesis_set)
        self.epoch0 = EpochState(0, self.genesis_set, self.genesis.block_id, 0)
        secrets = {public_key_of(_secret(vid)): _secret(vid) for vid in ids}
        self.verifier: Verifier = verifier or SimVerifier(secrets)
        faulty = list(ids)
        self.rng.fork(2).shuffle(faulty)
        if config.faulty_ids:
            faulty = list(config.faulty_ids)
        twinned = set(faulty[: config.twins])
        fault_of = dict(zip(faulty[config.twins:], config.faults, strict=False))
        self.honest = frozenset(vid for vid in ids if vid not in twinned and vid not in fault_of)
        self.checker = InvariantChecker(honest=self.honest, genesis_epoch=self.epoch0,
                                        verifier=checker_verifier or self.verifier,
                                        domains=Domains.for_chain(CHAIN_ID))
        self._signer_factory = signer_factory or SimSigner
        self.instances: list[Instance] = []
        for vid in ids:
            for copy in range(2 if vid in twinned else 1):
                self._add_instance(vid, fault_of.get(vid), vid in twinned, copy)
        self.by_id: dict[str, list[int]] = {}
        for inst in self.instances:
            self.by_id.setdefault(inst.validator_id, []).append(inst.index)
        self.result = SimResult(seed=seed, config=config)
        self._reconfigured = False

    # ------------------------------------------------------------------ construction

    def _leader_factory(self) -> LeaderFactory | None:
        scenario = self.config.scenario
        if scenario is None:
            return None
        leaders = {view + 1: leader for view, (_, leader) in enumerate(scenario.views)}
        return lambda vs: FixedLeaderSchedule(leaders, vs.ids)

    def _make_core(self, inst_signer: Signer, vid: str, ledger: NodeLedger,
                   safety: SafetyData | None, honest: bool) -> ConsensusCore:
        config = self.config
        pacemaker = PacemakerParameters(
            base_timeout_ms=config.base_timeout_ms, min_timeout_ms=config.base_timeout_ms // 2,
            max_timeout_ms=config.max_timeout_ms, timeout_increase_bps=15000,
            timeout_decrease_ms=max(1, config.base_timeout_ms // 20))
        return ConsensusCore(
            config=CoreConfig(validator_id=vid, chain_id=CHAIN_ID, pacemaker=pacemaker,
                              max_clock_skew_ms=2 * config.clock_skew_ms + 1000),
            signer=inst_signer, verifier=self.verifier, epoch=ledger.epoch,
            committed=ledger.tip, committed_qc=ledger.tip_qc, safety_data=safety,
            leader_factory=self._leader_factory(),
            disabled_rules=config.disabled_rules if honest else frozenset(),
            now_ms=self.now, recent_committed=ledger.recent)

    def _add_instance(self, vid: str, fault: Fault | None, twin: bool, copy: int) -> None:
        index = len(self.instances)
        rng = self.rng.fork(100 + index)
        skew = rng.between(-self.config.clock_skew_ms, self.config.clock_skew_ms)
        signer = self._signer_factory(vid, _secret(vid), self.checker.on_sign)
        ledger = NodeLedger(epoch=self.epoch0, tip=self.genesis)
        honest = fault is None and not twin
        core = self._make_core(signer, vid, ledger, None, honest)
        self.instances.append(Instance(index=index, validator_id=vid, secret=_secret(vid),
                                       fault=fault, twin=twin, rng=rng, skew_ms=skew,
                                       signer=signer, ledger=ledger, core=core))

    # ------------------------------------------------------------------ scheduling

    def _push(self, at: int, kind: int, index: int, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, kind, index, payload))

    def later(self, inst: Instance, delay_ms: int, actions: list[Action]) -> None:
        """A faulty node's delayed sends (e.g. the crosswise re-send of an equivocation)."""
        self._push(self.now + delay_ms, _LATER, inst.index, actions)

    def _plan_faults(self) -> None:
        config, rng = self.config, self.rng.fork(3)
        heal = config.heal_at_ms
        self._partitions: list[tuple[int, int, frozenset[int]]] = []
        for _ in range(config.partitions):
            start = rng.below(max(1, heal - 200))
            end = min(heal, start + rng.between(200, max(201, heal // 2)))
            side = frozenset(i for i in range(len(self.instances)) if rng.chance(500))
            self._partitions.append((start, end, side))
        for _ in range(config.crashes):
            index = rng.below(len(self.instances))
            self._push(rng.below(max(1, heal - 500)), _CRASH, index, None)

    def _connected(self, src: Instance, dst: Instance) -> bool:
        scenario = self.config.scenario
        if scenario is not None and self.now < self.config.heal_at_ms:
            view = src.core.view
            if 1 <= view <= len(scenario.views):
                groups = scenario.views[view - 1][0]
                return any(src.index in g and dst.index in g for g in groups)
            return True
        for start, end, side in self._partitions:
            if start <= self.now < end and ((src.index in side) != (dst.index in side)):
                return False
        return True

    def _transmit(self, src: Instance, dst: Instance, item: object) -> None:
        if not self._connected(src, dst):
            return
        config, rng, now = self.config, self._net_rng, self.now
        faulty_period = now < config.heal_at_ms
        if faulty_period and config.drop_per_mille and rng.chance(config.drop_per_mille):
            return
        self._push(now + rng.between(config.delay_min_ms, config.delay_max_ms), _DELIVER,
                   dst.index, (src.validator_id, item))
        if faulty_period and config.duplicate_per_mille \
                and rng.chance(config.duplicate_per_mille):
            self._push(now + rng.between(config.delay_min_ms, 3 * config.delay_max_ms),
                       _DELIVER, dst.index, (src.validator_id, item))

    # ------------------------------------------------------------------ performing actions

    def _wire(self, message: Message) -> object:
        return encode_message(message) if self.config.wire else message

    def _perform(self, inst: Instance, actions: list[Action]) -> None:
        outgoing: list[Outgoing] = (rewrite(self, inst, actions) if inst.fault is not None
                                    else list(actions))
        cut = len(outgoing)
        crash_now = False
        if inst.crash_pending:
            if self.config.crash_after_vote:
                for position, action in enumerate(outgoing):
                    if isinstance(action, Send | Broadcast) \
                            and isinstance(action.message, Vote | Timeout):
                        cut, crash_now = position + 1, True
                        break
            elif outgoing:
                cut, crash_now = inst.rng.below(len(outgoing) + 1), True
        for action in outgoing[:cut]:
            self._execute(inst, action)
        if crash_now:
            self._crash(inst)

    def _execute(  # noqa: PLR0912
            self, inst: Instance, action: Outgoing) -> None:
        if isinstance(action, Send):
            if inst.honest and isinstance(action.message, Vote):
                self.checker.on_vote_released(inst.validator_id, action.message)
            item = self._wire(action.message)
            for index in self.by_id.get(action.to, ()):
                if index != inst.index:
                    self._transmit(inst, self.instances[index], item)
        elif isinstance(action, Broadcast):
            item = self._wire(action.message)
            for other in self.instances:
                if other.validator_id != inst.validator_id:
                    self._transmit(inst, other, item)
        elif isinstance(action, RawSend):
            for index in self.by_id.get(action.to, ()):
                self._transmit(inst, self.instances[index], action.data)
        elif isinstance(action, PersistSafetyData):
            inst.persisted = action.data
            if inst.honest and action.data.last_vote is not None:
                self.checker.on_vote_released(inst.validator_id, action.data.last_vote)
        elif isinstance(action, ScheduleTimer):
            inst.timer_id = action.timer_id
            self._push(self.now + action.duration_ms, _TIMER, inst.index,
                       TimerFired(action.epoch, action.view, action.timer_id))
        elif isinstance(action, RequestPayload):
            self._push(self.now + 1, _PAYLOAD, inst.index, self._payload(inst, action))
        elif isinstance(action, CommitBlocks):
            if inst.honest:
                self.checker.on_commit(inst.validator_id, inst.ledger, action, self.now)
            else:
                inst.ledger.tip = action.blocks[-1].block
                inst.ledger.tip_qc = action.blocks[-1].qc
                inst.ledger.remember([committed.block for committed in action.blocks])
            self.result.committed_height = max(self.result.committed_height,
                                               inst.ledger.tip.height)
        elif isinstance(action, ReportEvidence):
            self.result.evidence += 1
            if inst.honest:
                self.checker.on_evidence(inst.validator_id, action.evidence)
        elif isinstance(action, SafetyAlarm):
            if inst.honest:
                self.checker.fail("agreement", f"{inst.validator_id} saw a certified 2-chain "
                                  f"conflicting with its committed block at {action.height}")
        elif isinstance(action, EnterEpoch):
            inst.ledger.epoch = inst.core.epoch
            inst.ledger.tip_qc = None
            if inst.honest:
                self.checker.on_epoch(inst.core.epoch)

    def _payload(self, inst: Instance, request: RequestPayload) -> PayloadReady:
        # Twins run on separate machines with separate mempools: their payloads differ, so
        # two instances of one key that lead the same view equivocate, as in the Twins paper.
        source = b"sim-payload/%d/%d/%s" % (request.epoch, request.view,
                                            inst.validator_id.encode())
        if inst.twin:
            source += b"/instance-%d" % inst.index
        payload = hashlib.sha256(source).digest()
        next_validators = None
        target = self.config.reconfigure_at_height
        if target and request.epoch == 0 and request.height == target:
            current = inst.core.epoch.validator_set.validators
            kept = current[:-1]  # the last validator leaves; the first gets double power
            next_validators = (Validator(kept[0].validator_id, kept[0].public_key, 2),
                               *kept[1:])
        return PayloadReady(request.epoch, request.view, payload,
                            hashlib.sha256(payload).digest(),
                            hashlib.sha256(request.parent_id).digest(), next_validators)

    def _crash(self, inst: Instance) -> None:
        inst.crashed = True
        inst.crash_pending = False
        restart = min(self.now + inst.rng.between(100, 1500), self.config.heal_at_ms)
        self._push(max(restart, self.now + 1), _RESTART, inst.index, None)

    def rebuild_core(self, inst: Instance) -> None:
        """A restarted core: from the persisted safety data and the committed ledger only.

        As the runtime's bootstrap does, a committed tip that ends its epoch (it carries
        ``next_validators``) starts the next epoch, even if the crash cut off the
        ``EnterEpoch`` action that followed the commit.
        """
        ledger, tip = inst.ledger, inst.ledger.tip
        if tip.next_validators is not None and tip.epoch == ledger.epoch.epoch:
            validator_set = ValidatorSet(epoch=tip.epoch + 1, validators=tip.next_validators)
            ledger.epoch = EpochState(tip.epoch + 1, validator_set, tip.block_id, tip.height)
            ledger.tip_qc = None
            if inst.honest:
                self.checker.on_epoch(ledger.epoch)
        safety = (None if inst.persisted is None
                  else SafetyData.from_bytes(inst.persisted.to_bytes()))
        inst.core = self._make_core(inst.signer, inst.validator_id, ledger, safety, inst.honest)

    def _restart(self, inst: Instance) -> None:
        self.rebuild_core(inst)
        inst.crashed = False
        self._deliver(inst, Start())

    # ------------------------------------------------------------------ the loop

    def _deliver(self, inst: Instance, event: Event) -> None:
        core = inst.core
        local_now = max(0, self.now + inst.skew_ms)
        if local_now > core.now_ms:
            core.handle(Tick(local_now))
        self._perform(inst, core.handle(event))

    def _step(self, kind: int, index: int, payload: object) -> None:  # noqa: PLR0912
        inst = self.instances[index]
        if inst.crashed and kind != _RESTART:
            return
        if kind == _DELIVER:
            sender: str = payload[0]  # type: ignore[index]
            item: object = payload[1]  # type: ignore[index]
            if isinstance(item, bytes):
                try:
                    message = decode_message(item)
                except MessageError:
                    self.result.undecodable += 1
                    return
            else:
                message = item  # type: ignore[assignment]
            self.result.delivered += 1
            if inst.fault is not None and isinstance(message, Proposal):
                inst.seen_qcs.append(message.block.qc)
                del inst.seen_qcs[:-16]
            self._deliver(inst, MessageReceived(sender, message))
        elif kind == _TIMER:
            # The core ignores every timer but the latest it scheduled (its timer ids are the
            # ones in the ScheduleTimer actions), so stale ones need not be delivered at all.
            if payload.timer_id == inst.timer_id:  # type: ignore[attr-defined]
                self._deliver(inst, payload)  # type: ignore[arg-type]
        elif kind == _PAYLOAD:
            self._deliver(inst, payload)  # type: ignore[arg-type]
        elif kind == _LATER:
            for action in payload:  # type: ignore[attr-defined]
                self._execute(inst, action)
        elif kind == _CRASH:
            if inst.crash_pending or inst.crashed:
                return
            inst.crash_pending = True
            if not self.config.crash_after_vote:
                return
            self._push(self.config.heal_at_ms - 1, _CRASH + 100, index, None)
        elif kind == _RESTART:
            self._restart(inst)
        elif kind == _CRASH + 100 and inst.crash_pending:
            self._crash(inst)

    def _live(self) -> bool:
        """Every honest instance committed ``liveness_commits`` blocks after the heal."""
        heal, needed = self.config.heal_at_ms, self.config.liveness_commits
        return all(sum(1 for t, _ in inst.ledger.commits if t >= heal) >= needed
                   for inst in self.instances if inst.honest)

    def run(self) -> SimResult:
        self._plan_faults()
        for inst in self.instances:
            self._deliver(inst, Start())
        config, result = self.config, self.result
        deadline = min(config.max_duration_ms, config.heal_at_ms + config.liveness_bound_ms)
        queue = self._queue
        try:
            while queue:
                at, _, kind, index, payload = heapq.heappop(queue)
                if at > deadline:
                    break
                self.now = at
                result.steps += 1
                self._step(kind, index, payload)
                if at >= config.heal_at_ms and result.steps % 64 == 0 and self._live():
                    break
        except InvariantViolation as violation:
            result.violation = violation
        result.end_ms = self.now
        result.max_view = max(inst.core.view for inst in self.instances)
        if config.check_liveness and result.violation is None:
            result.liveness_ok = self._live()
            if not result.liveness_ok:
                lagging = [(inst.validator_id, len(inst.ledger.commits))
                           for inst in self.instances if inst.honest]
                result.liveness_detail = (f"not every honest node committed "
                                          f"{config.liveness_commits} blocks within "
                                          f"{config.liveness_bound_ms}ms of the heal: {lagging}")
        return result


def run_schedule(config: SimConfig, seed: int) -> SimResult:
    """Run one schedule; the same (config, seed) always gives the same result."""
    return Simulation(config, seed).run()
