"""The consensus worker: a thin imperative shell around the sans-I/O consensus core.

Two threads share the work. The asyncio loop (apps/node/worker_loop.py) owns the peer network
and the timers; a single *consensus thread* (this module) owns the core, the application and
every database write. Each turn of the loop takes one event from a bounded queue and runs
:meth:`NodeRuntime.step` on the consensus thread; ``step`` feeds the core, carries out the
actions that touch durable state **in order** (safety data before anything is sent, commits
through the ledger) and hands back what the loop must do on the network. Because all sends
leave after ``step`` returned, every ``PersistSafetyData`` of a turn is durable before any vote
or timeout of that turn is on the wire.

Catch-up. The core fetches missing *uncommitted* blocks itself (consensus sync). A node that is
further behind than the core's window (a restart after a long outage, a new member) catches up
through the ledger instead: it asks a peer for committed blocks with their commit certificates,
verifies each certificate against the epoch's validator set and the hash links to its own tip,
executes and commits them, and rebuilds the core on the new tip. Block-sync replies are exempt
from the peers' flood limits (see docs/p2p.md), so an isolated node can always catch up.

Double-sign guard. A node whose ledger exists but whose safety record is missing (a wiped or
restored disk) may have voted in views it no longer remembers. It runs the core but lets no
signed message leave until it has seen certificates for two views formed after it started:
every view it could have voted in before is then in the past.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import structlog
from django.db import close_old_connections
from prometheus_client import Counter, Gauge

from apps.audit.services import record_audit
from apps.ledger.models import Block as BlockRow
from apps.mempool.services import expire
from apps.node import ledger_sync
from apps.node.application import Application
from apps.node.bootstrap import load_or_create_tip
from apps.node.epoch_proofs import persist_epoch_proof, recent_epoch_proofs
from apps.node.evidence import submit_evidence
from apps.node.models import NodeStatus
from apps.node.outbound import Outbound
from apps.node.p2p.errors import PenaltyReason
from apps.node.safety_store import (
    load_recovery,
    load_safety_data,
    needs_double_sign_guard,
    persist_recovery,
    persist_safety_data,
)
from apps.node.sync_server import serve_committed
from apps.node.worker_loop import WorkerLoop
from cybermesh.db import run_serializable
from cybermesh.protocol.block_builder import BlockLimits
from cybermesh.protocol.consensus.core import ConsensusCore, CoreConfig
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
    ScheduleTimer,
    Send,
    Start,
    Tick,
)
from cybermesh.protocol.consensus.leader import history_depth
from cybermesh.protocol.consensus.messages import (
    Block,
    Heartbeat,
    Message,
    Proposal,
    SyncRequest,
    SyncResponse,
    Timeout,
    Vote,
)
from cybermesh.protocol.consensus.pacemaker import PacemakerParameters
from cybermesh.protocol.consensus.signatures import Ed25519Signer, Ed25519Verifier
from cybermesh.protocol.consensus.sync import KEPT_EPOCH_PROOFS
from cybermesh.protocol.consensus.wire import DEFAULT_WIRE_LIMITS
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.executor.params import ExecutorParameters
from cybermesh.protocol.genesis import Genesis
from cybermesh.protocol.validator_set import ValidatorSet

logger = structlog.get_logger(__name__)

HEIGHT = Gauge("cybermesh_height", "Committed height.", ["node_id"])
VIEW = Gauge("cybermesh_view", "Current consensus view.", ["node_id"])
VIEW_CHANGES = Counter("cybermesh_view_changes", "Views entered without a QC (timeouts).",
                       ["node_id"])
LEDGER_SYNC_BLOCKS = Counter("cybermesh_ledger_sync_blocks",
                             "Committed blocks fetched from peers and committed here.",
                             ["node_id"])

# Behind by more than this many blocks: catch up through the ledger, not through consensus.
CATCHUP_LAG = 16
EPOCH_HINT_INTERVAL_S = 2.0

_SIGNED_BY_US = (Vote, Timeout, Proposal, Heartbeat)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class CommittedView(NamedTuple):
    epoch: int
    height: int
    view: int
    timestamp_ms: int
    proposer: str


def recent_committed_views(tip_height: int, count: int) -> list[CommittedView]:
    """(epoch, height, view, timestamp, proposer) of the last ``count`` committed blocks:
    the leader schedule's memory of failed leaders is rebuilt from them (ConsensusCore)."""
    rows = BlockRow.objects.filter(height__gt=tip_height - count, height__lte=tip_height) \
        .order_by("height").values_list("epoch", "height", "view", "timestamp_ms", "proposer_id")
    return [CommittedView(*row) for row in rows]


@dataclass
class RuntimeConfig:
    node_id: str
    genesis: Genesis
    signing_key: SigningKey
    network: Any  # apps.node.p2p.config.NetworkConfig
    # Observers accepted on the block-sync topic only (P2P_OBSERVERS): id -> public key.
    observers: dict[str, bytes] = field(default_factory=dict)
    status_interval_s: float = 1.0
    expiry_interval_s: float = 30.0
    executor_parameters: ExecutorParameters = field(default_factory=ExecutorParameters)
    # Test hook (NODE_VOTE_JOURNAL): append every verified vote this node receives as
    # "<voter> <epoch> <view> <block id hex>", so a test can prove from the receivers' side
    # that no validator ever signed two votes for one view, even across kill -9.
    vote_journal: str | None = None
    # Behind by more than this many blocks: catch up through the ledger, not consensus sync.
    catchup_lag: int = CATCHUP_LAG


class NodeRuntime:
    """One validator's consensus worker (see the module docstring)."""

    def __init__(self, config: RuntimeConfig) -> None:
        self.config = config
        self.node_id = config.node_id
        self.log = logger.bind(node_id=self.node_id)
        # The consensus thread: every step, every database write (the loop hands work to it).
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="consensus")
        # Until then a ledger-sync request is out: the core's own block fetches are held back.
        self.sync_outstanding_until = 0.0
        self._seen_qc_height = 0
        self._guard_views: int | None = None  # set while the double-sign guard holds
        self.messages_seen = 0  # consensus messages received from peers (the stall probe)
        self._epoch_hints: dict[str, float] = {}  # peer -> when we last told it our epoch
        self._foreign_key_epoch: int | None = None  # set while our id holds another key
        self._recorded_qc: tuple[int, int] = (0, 0)  # (epoch, view) of the stored recovery QC
        self._vote_journal = (open(config.vote_journal, "a")  # noqa: SIM115 -- lives with us
                              if config.vote_journal else None)
        self.core: ConsensusCore | None = None
        self.app: Application | None = None
        params = config.genesis.consensus
        self._limits = BlockLimits.from_parameters(params, config.executor_parameters)
        self._core_config = CoreConfig(
            validator_id=self.node_id, chain_id=config.genesis.chain_id,
            pacemaker=PacemakerParameters(
                base_timeout_ms=params.base_timeout_ms, min_timeout_ms=params.min_timeout_ms,
                max_timeout_ms=params.max_timeout_ms,
                timeout_increase_bps=params.timeout_increase_bps,
                timeout_decrease_ms=params.timeout_decrease_ms),
            max_clock_skew_ms=params.max_clock_skew_ms,
            heartbeat_interval_ms=params.heartbeat_interval_ms,
            leader_window=params.leader_failure_window)

    # ------------------------------------------------------------------ consensus thread

    def _build_core(self) -> list[Action]:
        """(Re)build core and application from the ledger tip; return the Start actions."""
        close_old_connections()
        tip = load_or_create_tip(self.config.genesis, node_id=self.node_id)
        safety = load_safety_data(node_id=self.node_id)
        if safety is not None and safety.epoch != tip.epoch.epoch:
            safety = None if safety.epoch < tip.epoch.epoch else safety
        has_history = tip.block.height > 0
        if self._guard_views is None and needs_double_sign_guard(
                has_ledger=has_history, safety=load_safety_data(node_id=self.node_id)):
            self._guard_views = 2
            self.log.warning("double-sign guard: safety data missing, watching before voting")
        self.core = ConsensusCore(
            config=self._core_config, signer=Ed25519Signer(self.config.signing_key),
            verifier=Ed25519Verifier(), epoch=tip.epoch, committed=tip.block,
            committed_qc=tip.qc, safety_data=safety, payload_check=self._payload_check,
            now_ms=now_ms(), recent_committed=recent_committed_views(
                tip.block.height, history_depth(self._core_config.leader_window)))
        # Proofs of the epochs that ended before this one, kept across restarts: served to
        # nodes still syncing through those epoch changes (apps/node/epoch_proofs.py).
        self.core.epoch_end_proofs.update(recent_epoch_proofs(tip.epoch.epoch, KEPT_EPOCH_PROOFS))
        self.app = Application(
            chain_id=self.config.genesis.chain_id, node_id=self.node_id, limits=self._limits,
            executor=tip.executor, committed=tip.block, committed_root=tip.state_root,
            lookup=self.core.tree.get)
        actions: list[Action] = []
        recovered = load_recovery(node_id=self.node_id, epoch=tip.epoch.epoch)
        self._recorded_qc = (tip.epoch.epoch, self.core.highest_qc.view)
        if recovered is not None and recovered.qc is not None \
                and recovered.qc.height > tip.block.height:
            # The chain this node had certified before it stopped (see ConsensusRecovery);
            # the core verifies it like any sync response.
            actions += self.core.handle(MessageReceived(self.node_id, recovered))
            self.log.info("recovered uncommitted chain", qc_view=recovered.qc.view,
                          blocks=len(recovered.blocks))
        self._guard_start_view = self.core.highest_qc.view
        self._check_own_key(tip.epoch.validator_set)
        actions += self.core.handle(Start())
        return actions + self._fetch_highest_certified()

    def _fetch_highest_certified(self) -> list[Action]:
        """Ask every peer for the block our highest QC certifies if we do not hold it.

        After a restart or a ledger catch-up the core knows a QC (recovered, or from the
        ledger) whose block was only in memory. The core asks for missing blocks only when a
        peer's message names them; until then this node could neither vote on children of that
        block nor propose. Replies are self-authenticating and exempt from flood limits.
        """
        assert self.core is not None  # noqa: S101
        core = self.core
        qc = core.highest_qc
        if qc.height <= core.committed.height or core.tree.get(qc.block_id) is not None:
            return []
        request = SyncRequest(core.epoch.epoch, core.committed.height, qc.block_id)
        return [Send(peer, request) for peer in core.epoch.validator_set.ids
                if peer != self.node_id]

    def _payload_check(self, block: Block) -> bool:
        assert self.app is not None  # noqa: S101 -- built before the core is fed
        return self.app.check(block)

    def step(self, event: Event) -> Outbound:
        """One turn: feed ``event`` to the core and perform its durable actions in order."""
        close_old_connections()
        assert self.core is not None  # noqa: S101
        core = self.core
        view_before, dropped_before = core.view, core.stats.dropped
        actions = core.handle(Tick(now_ms()))
        # A message of a later epoch is no fault of its sender: we are behind an epoch change
        # (a restart, a partition, a validator that governance just added). Catch up through
        # the ledger from whoever showed us, instead of counting it against them.
        epoch_of_message = getattr(getattr(event, "message", None), "epoch", core.epoch.epoch)
        from_peer = isinstance(event, MessageReceived) and event.sender != self.node_id
        ahead = from_peer and epoch_of_message > core.epoch.epoch
        behind = from_peer and epoch_of_message < core.epoch.epoch
        if self._vote_journal is not None and isinstance(event, MessageReceived) \
                and isinstance(event.message, Vote):
            self._journal_vote(event.message)
        actions += core.handle(event)
        out = self._perform(actions)
        self._record_recovery()
        self.log.debug("step", kind=type(event).__name__,
                       message=type(getattr(event, "message", None)).__name__,
                       sender=getattr(event, "sender", ""), view=core.view,
                       height=core.committed.height, sends=len(out.sends),
                       broadcasts=[type(m).__name__ for m in out.broadcasts],
                       to=[(p, type(m).__name__) for p, m in out.sends])
        for message in out.broadcasts:
            if isinstance(message, Proposal):
                self.log.info("proposed", view=message.block.view, height=message.block.height,
                              payload_bytes=len(message.block.payload))
        if isinstance(event, MessageReceived):
            if event.sender != self.node_id:
                self.messages_seen += 1
            if ahead:
                out.ledger_sync_from = (event.sender, core.committed.height + 1)
            elif behind:
                self._hint_epoch(event.sender, out)
            elif core.stats.dropped > dropped_before:
                out.penalize.append((event.sender, PenaltyReason.INVALID_MESSAGE))
            self._note_progress(event, out)
        if out.ledger_sync_from is not None or time.monotonic() < self.sync_outstanding_until:
            # Far behind: the ledger catch-up fetches the committed blocks (with their commit
            # proof, in frame-sized batches); the core's own block fetches would only ask the
            # same peers for the same blocks again.
            out.sends = [(peer, message) for peer, message in out.sends
                         if not isinstance(message, SyncRequest)]
        if core.view > view_before and core.highest_qc.view < core.view - 1:
            VIEW_CHANGES.labels(self.node_id).inc()
            self.log.info("view change", view=core.view, highest_qc_view=core.highest_qc.view,
                          leader=core.leaders.leader(core.view),
                          timeout_ms=core.pacemaker.timeout_ms)
        self._release_guard()
        return out

    def _hint_epoch(self, peer: str, out: Outbound) -> None:
        """A peer still in an epoch we left: tell it, so it catches up through the ledger (a
        message of a later epoch is its trigger, see ``step``). It may be stuck at the
        boundary for good otherwise — e.g. the validators that could have certified the
        reconfiguration block's child left the set or are down — and it is no fault of its
        own, so it is not penalised. At most once per peer every few seconds."""
        assert self.core is not None  # noqa: S101
        now = time.monotonic()
        if now - self._epoch_hints.get(peer, -EPOCH_HINT_INTERVAL_S) < EPOCH_HINT_INTERVAL_S:
            return
        self._epoch_hints[peer] = now
        committed = self.core.committed
        out.sends.append((peer, SyncRequest(self.core.epoch.epoch, committed.height,
                                            committed.block_id)))

    def _journal_vote(self, vote: Vote) -> None:
        assert self.core is not None and self._vote_journal is not None  # noqa: S101
        if self.core.certificates.verify_signed(vote.voter, "vote", vote.statement(),
                                                vote.signature, self.core.epoch):
            self._vote_journal.write(f"{vote.voter} {vote.epoch} {vote.view} "
                                     f"{vote.block_id.hex()}\n")
            self._vote_journal.flush()

    def _record_recovery(self) -> None:
        """Persist a higher QC with its uncommitted chain before this step's sends leave."""
        assert self.core is not None  # noqa: S101
        core = self.core
        qc = core.highest_qc
        if (qc.epoch, qc.view) <= self._recorded_qc or qc.height <= core.committed.height:
            return
        chain = core.tree.serve(qc.block_id, core.committed.height, core.config.max_sync_blocks)
        persist_recovery(node_id=self.node_id,
                         response=SyncResponse(core.epoch.epoch, tuple(chain), qc))
        self._recorded_qc = (qc.epoch, qc.view)

    def _note_progress(self, event: MessageReceived, out: Outbound) -> None:
        """Switch to ledger catch-up when the network is far ahead of our ledger.

        Judged on the core's highest QC (verified: proposals, timeouts and certificates all
        raise it), so a peer cannot make us sync by claiming a height; we ask the peer whose
        message showed us the gap.
        """
        assert self.core is not None  # noqa: S101
        qc = self.core.highest_qc
        self._seen_qc_height = max(self._seen_qc_height, qc.height)
        if event.sender != self.node_id and \
                qc.height > self.core.committed.height + self.config.catchup_lag:
            out.ledger_sync_from = (event.sender, self.core.committed.height + 1)

    def _release_guard(self) -> None:
        if self._guard_views is None or self.core is None:
            return
        if self.core.highest_qc.view >= self._guard_start_view + self._guard_views:
            self._guard_views = None
            self.log.warning("double-sign guard released", view=self.core.view)

    def _perform(self, actions: list[Action]) -> Outbound:
        assert self.core is not None and self.app is not None  # noqa: S101
        out = Outbound()
        pending = deque(actions)
        while pending:
            action = pending.popleft()
            if isinstance(action, PersistSafetyData):
                persist_safety_data(node_id=self.node_id, data=action.data)
            elif isinstance(action, Send):
                if not self._guarded(action.message):
                    out.sends.append((action.to, action.message))
            elif isinstance(action, Broadcast):
                if not self._guarded(action.message):
                    out.broadcasts.append(action.message)
            elif isinstance(action, CommitBlocks):
                self._commit(action)
            elif isinstance(action, ScheduleTimer):
                out.timer = action
            elif isinstance(action, RequestPayload):
                pending.extend(self._propose(action))
            elif isinstance(action, ReportEvidence):
                self._report_evidence(action)
            elif isinstance(action, EnterEpoch):
                self._enter_epoch(action, out)
            else:  # SafetyAlarm: two conflicting certified chains — never silent
                self.log.critical("consensus safety alarm", alarm=repr(action))
                record_audit(actor=self.node_id, action="consensus.safety_alarm",
                             outcome="failure", details={"alarm": repr(action)[:1000]})
        return out

    def _enter_epoch(self, action: EnterEpoch, out: Outbound) -> None:
        assert self.core is not None  # noqa: S101
        out.new_validators = action.validator_set
        self._check_own_key(action.validator_set)
        proof = self.core.epoch_end_proofs.get(action.validator_set.epoch - 1)
        if proof is not None:
            persist_epoch_proof(proof)
        self.log.info("entered epoch", epoch=action.validator_set.epoch, member=action.member)

    def _check_own_key(self, validator_set: ValidatorSet) -> None:
        """Sign only while the epoch's set holds our id *with our key*. Otherwise our key was
        rotated away (nothing we sign would count; peers no longer accept our TLS key), or it
        is the new key of a rotation our ledger has not reached yet: either way we run, catch
        up and serve block sync, but no vote, timeout, proposal or heartbeat of ours leaves."""
        own = validator_set.get(self.node_id)
        mismatch = own is not None and own.public_key != self.config.signing_key.public_key.raw
        if mismatch and self._foreign_key_epoch != validator_set.epoch:
            self.log.warning("this epoch's validator set holds another key for this id: not "
                             "signing until an epoch holds ours (after a rotation, restart with "
                             "the key governance registered)", epoch=validator_set.epoch)
        self._foreign_key_epoch = validator_set.epoch if mismatch else None

    def _guarded(self, message: Message) -> bool:
        return (self._guard_views is not None or self._foreign_key_epoch is not None) \
            and isinstance(message, _SIGNED_BY_US)

    def _propose(self, request: RequestPayload) -> list[Action]:
        assert self.core is not None  # noqa: S101
        ready = self._payload_for(request)
        return [] if ready is None else self.core.handle(ready)

    def _payload_for(self, request: RequestPayload) -> PayloadReady | None:
        assert self.app is not None and self.core is not None  # noqa: S101
        content = self.app.build(parent_id=request.parent_id, height=request.height,
                                 now_ms=self.core.now_ms)
        if content is None:
            # The parent (or one of its ancestors) is not here yet, so its state root is
            # unknown and no valid proposal can be made: let the view time out rather than
            # propose a block every replica must refuse. The core is already fetching it.
            self.log.warning("cannot propose: parent not executable here",
                             view=request.view, height=request.height)
            return None
        return PayloadReady(request.epoch, request.view, content.payload, content.tx_root,
                            content.state_root, content.next_validators)

    def _commit(self, action: CommitBlocks) -> None:
        assert self.app is not None  # noqa: S101
        outcomes = self.app.commit(action)
        tip = action.blocks[-1].block
        HEIGHT.labels(self.node_id).set(tip.height)
        self.log.info("committed", height=tip.height, blocks=len(outcomes),
                      payload_bytes=sum(len(item.block.payload) for item in action.blocks))

    def _report_evidence(self, action: ReportEvidence) -> None:
        evidence = action.evidence
        self.log.warning("equivocation evidence", offender=evidence.validator_id,
                         view=evidence.view)
        # The report must not stop consensus: a failed audit write or a refused submission is
        # logged (with its cause) and the step goes on.
        try:
            record_audit(actor=self.node_id, action="consensus.evidence_reported",
                         target=evidence.validator_id, outcome="success",
                         details={"epoch": evidence.epoch, "view": evidence.view,
                                  "kind": int(evidence.kind)})
            # Into our own mempool: the next block we propose carries it (apps/node/evidence.py).
            submit_evidence(evidence, signing_key=self.config.signing_key,
                            node_id=self.node_id, chain_id=self.config.genesis.chain_id)
        except Exception:
            self.log.exception("equivocation evidence could not be recorded or submitted",
                               offender=evidence.validator_id)

    def expire_mempool(self) -> None:
        """Drop transactions whose TTL passed and nonces older than the replay window."""
        close_old_connections()
        result = expire(now_ms())
        if result.expired or result.nonces_pruned:
            self.log.info("mempool expiry", expired=result.expired,
                          nonces_pruned=result.nonces_pruned)

    # ------------------------------------------------------------------ ledger sync

    def serve_ledger_sync(self, payload: bytes) -> bytes | None:
        """Committed blocks and the proof they committed, for a peer that is behind
        (consensus thread; apps/node/sync_server.py)."""
        if self.core is None:
            return None
        close_old_connections()
        return serve_committed(self.core, payload,
                               max_message_size=self.config.network.max_message_size)

    def absorb_ledger_sync(self, sender: str, payload: bytes) -> tuple[Outbound, bool]:
        """Commit what a peer's response proves committed; return the rebuilt core's actions."""
        assert self.core is not None and self.app is not None  # noqa: S101
        core = self.core
        out = Outbound()
        try:
            response = ledger_sync.parse_response(payload, DEFAULT_WIRE_LIMITS)
            chosen = ledger_sync.provably_committed(
                self.app.committed, response, epoch=core.epoch.epoch,
                verify_qc=lambda qc: core.certificates.verify_qc(qc, core.epoch))
        except ledger_sync.LedgerSyncError as error:
            self.log.warning("refused ledger sync response", peer=sender, error=str(error))
            out.penalize.append((sender, PenaltyReason.BAD_BLOCK))
            return out, False
        ledger_sync.commit_chosen(self.app, chosen)
        if not chosen:
            return out, False
        epoch_before = core.epoch.epoch
        if chosen[-1][0].next_validators is not None:
            persist_epoch_proof(response)  # so we can prove this epoch change to others
        LEDGER_SYNC_BLOCKS.labels(self.node_id).inc(len(chosen))
        self.log.info("caught up through the ledger", blocks=len(chosen),
                      height=self.app.committed.height)
        rebuilt = self._perform(self._build_core())
        if self.core.epoch.epoch != epoch_before:
            rebuilt.new_validators = self.core.epoch.validator_set
            self.log.info("entered epoch through the ledger", epoch=self.core.epoch.epoch,
                          member=self.core.member)
        # Keep asking while still far behind, or while full batches come (a node that hears
        # no consensus at all — only a stall probe brought it here — learns how far it is
        # behind from the batches alone).
        if self._seen_qc_height > self.app.committed.height + self.config.catchup_lag \
                or len(chosen) >= ledger_sync.MAX_BATCH - 1:
            rebuilt.ledger_sync_from = (sender, self.app.committed.height + 1)
        return rebuilt, True

    # ------------------------------------------------------------------ status

    def write_status(self, peers: list[dict[str, Any]]) -> None:
        if self.core is None:
            return
        close_old_connections()
        run_serializable(lambda: self._write_status(peers), operation="node_status")

    def _write_status(self, peers: list[dict[str, Any]]) -> None:
        assert self.core is not None  # noqa: S101
        core = self.core
        synced = self._seen_qc_height <= core.committed.height + 3
        VIEW.labels(self.node_id).set(core.view)
        NodeStatus.objects.update_or_create(node_id=self.node_id, defaults={
            "node_type": "validator", "epoch": core.epoch.epoch,
            "height": core.committed.height, "view": core.view,
            "state_root": self.app.committed_root.hex() if self.app else "",
            "synced": synced, "voting": core.member and self._guard_views is None
            and self._foreign_key_epoch is None,
            "peers": peers})

    # ------------------------------------------------------------------ running

    def start_core(self) -> Outbound:
        """Build the core from the ledger and start it (consensus thread)."""
        return self._perform(self._build_core())

    async def run(self, stop: asyncio.Event,
                  on_started: Callable[[], None] | None = None) -> None:
        """Run until ``stop`` is set (apps/node/worker_loop.py drives this runtime)."""
        await WorkerLoop(self).run(stop, on_started)
