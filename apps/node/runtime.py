"""The consensus worker: a thin imperative shell around the sans-I/O consensus core.

Two threads share the work. The asyncio loop owns the peer network and the timers; a single
*consensus thread* owns the core, the application and every database write. Each turn of the
loop takes one event from a bounded queue and runs :meth:`NodeRuntime.step` on the consensus
thread; ``step`` feeds the core, carries out the actions that touch durable state **in order**
(safety data before anything is sent, commits through the ledger) and hands back what the loop
must do on the network. Because all sends leave after ``step`` returned, every
``PersistSafetyData`` of a turn is durable before any vote or timeout of that turn is on the wire.

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
from typing import Any

import structlog
from django.db import close_old_connections
from prometheus_client import Counter, Gauge

from apps.audit.services import record_audit
from apps.ledger.models import Block as BlockRow
from apps.ledger.rows import load_block
from apps.node.application import Application
from apps.node.bootstrap import load_or_create_tip
from apps.node.models import NodeStatus
from apps.node.p2p.errors import PenaltyReason
from apps.node.p2p.framing import Topic
from apps.node.p2p.peers import NodeIdentity
from apps.node.p2p.transport import PeerNetwork
from apps.node.safety_store import (
    load_safety_data,
    needs_double_sign_guard,
    persist_safety_data,
)
from cybermesh.db import run_serializable
from cybermesh.protocol.block_builder import BlockLimits
from cybermesh.protocol.codec import CodecError, DecodeLimits, decode, encode
from cybermesh.protocol.consensus.core import ConsensusCore, CoreConfig
from cybermesh.protocol.consensus.errors import CertificateError, MessageError
from cybermesh.protocol.consensus.events import (
    Action,
    Broadcast,
    CommitBlocks,
    CommittedBlock,
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
    TimerFired,
)
from cybermesh.protocol.consensus.messages import (
    Block,
    Evidence,
    Heartbeat,
    Message,
    Proposal,
    QuorumCert,
    SyncRequest,
    SyncResponse,
    Timeout,
    TimeoutCert,
    Vote,
)
from cybermesh.protocol.consensus.pacemaker import PacemakerParameters
from cybermesh.protocol.consensus.signatures import Ed25519Signer, Ed25519Verifier
from cybermesh.protocol.consensus.wire import (
    DEFAULT_WIRE_LIMITS,
    decode_message,
    encode_message,
    parse_block,
    parse_qc,
)
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.executor.params import ExecutorParameters
from cybermesh.protocol.genesis import Genesis

logger = structlog.get_logger(__name__)

HEIGHT = Gauge("cybermesh_height", "Committed height.", ["node_id"])
VIEW = Gauge("cybermesh_view", "Current consensus view.", ["node_id"])
VIEW_CHANGES = Counter("cybermesh_view_changes", "Views entered without a QC (timeouts).",
                       ["node_id"])
DROPPED_EVENTS = Counter("cybermesh_runtime_dropped_events",
                         "Inbound messages dropped because the event queue was full.",
                         ["node_id"])
LEDGER_SYNC_BLOCKS = Counter("cybermesh_ledger_sync_blocks",
                             "Committed blocks fetched from peers and committed here.",
                             ["node_id"])

# Ledger sync frames share the block-sync topic with consensus sync, under their own tags
# (consensus message tags are small integers; these can never collide with one).
LEDGER_SYNC_REQUEST = 0xF0
LEDGER_SYNC_RESPONSE = 0xF1
LEDGER_SYNC_BATCH = 64
LEDGER_SYNC_TIMEOUT_S = 3.0
# Behind by more than this many blocks: catch up through the ledger, not through consensus.
CATCHUP_LAG = 16
QUEUE_CAPACITY = 20_000

_TOPIC_OF: dict[type, Topic] = {
    Proposal: Topic.PROPOSAL, Vote: Topic.VOTE, Timeout: Topic.VIEWCHANGE,
    TimeoutCert: Topic.NEWVIEW, Heartbeat: Topic.HEARTBEAT, Evidence: Topic.EVIDENCE,
    SyncRequest: Topic.BLOCKSYNC, SyncResponse: Topic.BLOCKSYNC,
}
_SIGNED_BY_US = (Vote, Timeout, Proposal, Heartbeat)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class RuntimeConfig:
    node_id: str
    genesis: Genesis
    signing_key: SigningKey
    certificates: dict[str, bytes]
    network: Any  # apps.node.p2p.config.NetworkConfig
    status_interval_s: float = 1.0
    executor_parameters: ExecutorParameters = field(default_factory=ExecutorParameters)


@dataclass(slots=True)
class Outbound:
    """Work for the event loop, produced by one consensus step."""

    sends: list[tuple[str, Message]] = field(default_factory=list)
    broadcasts: list[Message] = field(default_factory=list)
    timer: ScheduleTimer | None = None
    penalize: list[tuple[str, PenaltyReason]] = field(default_factory=list)
    ledger_sync_from: tuple[str, int] | None = None
    raw_sends: list[tuple[str, bytes]] = field(default_factory=list)
    new_validators: Any = None


class NodeRuntime:
    """One validator's consensus worker (see the module docstring)."""

    def __init__(self, config: RuntimeConfig) -> None:
        self.config = config
        self.node_id = config.node_id
        self.log = logger.bind(node_id=self.node_id)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="consensus")
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=QUEUE_CAPACITY)
        self._timer: asyncio.TimerHandle | None = None
        self._stopping = False
        self._sync_outstanding_until = 0.0
        self._seen_qc_height = 0
        self._guard_views: int | None = None  # set while the double-sign guard holds
        self.network: PeerNetwork | None = None
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
            now_ms=now_ms())
        self.app = Application(
            chain_id=self.config.genesis.chain_id, node_id=self.node_id, limits=self._limits,
            executor=tip.executor, committed=tip.block, committed_root=tip.state_root,
            lookup=self.core.tree.get)
        self._guard_start_view = self.core.highest_qc.view
        return self.core.handle(Start())

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
        actions += core.handle(event)
        out = self._perform(actions)
        self.log.debug("step", kind=type(event).__name__,
                       message=type(getattr(event, "message", None)).__name__,
                       sender=getattr(event, "sender", ""), view=core.view,
                       height=core.committed.height, sends=len(out.sends),
                       broadcasts=[type(m).__name__ for m in out.broadcasts],
                       to=[(p, type(m).__name__) for p, m in out.sends])
        if isinstance(event, MessageReceived):
            if core.stats.dropped > dropped_before:
                out.penalize.append((event.sender, PenaltyReason.INVALID_MESSAGE))
            self._note_progress(event, out)
        if core.view > view_before and core.highest_qc.view < core.view - 1:
            VIEW_CHANGES.labels(self.node_id).inc()
        self._release_guard()
        return out

    def _note_progress(self, event: MessageReceived, out: Outbound) -> None:
        message = event.message
        qc: QuorumCert | None = None
        if isinstance(message, Proposal):
            qc = message.block.qc
        if qc is None:
            return
        self._seen_qc_height = max(self._seen_qc_height, qc.height)
        assert self.core is not None  # noqa: S101
        if qc.height > self.core.committed.height + CATCHUP_LAG:
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
                pending.extend(self.core.handle(self._payload_for(action)))
            elif isinstance(action, ReportEvidence):
                self._report_evidence(action)
            elif isinstance(action, EnterEpoch):
                out.new_validators = action.validator_set
                self.log.info("entered epoch", epoch=action.validator_set.epoch,
                              member=action.member)
            else:  # SafetyAlarm: two conflicting certified chains — never silent
                self.log.critical("consensus safety alarm", alarm=repr(action))
                record_audit(actor=self.node_id, action="consensus.safety_alarm",
                             outcome="alarm", details={"alarm": repr(action)[:1000]})
        return out

    def _guarded(self, message: Message) -> bool:
        return self._guard_views is not None and isinstance(message, _SIGNED_BY_US)

    def _payload_for(self, request: RequestPayload) -> PayloadReady:
        assert self.app is not None and self.core is not None  # noqa: S101
        content = self.app.build(parent_id=request.parent_id, height=request.height,
                                 now_ms=self.core.now_ms)
        if content is None:
            return PayloadReady(request.epoch, request.view, None, b"\x00" * 32,
                                b"\x00" * 32)
        return PayloadReady(request.epoch, request.view, content.payload, content.tx_root,
                            content.state_root, content.next_validators)

    def _commit(self, action: CommitBlocks) -> None:
        assert self.app is not None  # noqa: S101
        outcomes = self.app.commit(action)
        tip = action.blocks[-1].block
        HEIGHT.labels(self.node_id).set(tip.height)
        self.log.info("committed", height=tip.height, blocks=len(outcomes),
                      txs=sum(len(item.block.payload) > 1 for item in action.blocks))

    def _report_evidence(self, action: ReportEvidence) -> None:
        evidence = action.evidence
        self.log.warning("equivocation evidence", offender=evidence.validator_id,
                         view=evidence.view)
        record_audit(actor=self.node_id, action="consensus.evidence", target=evidence.validator_id,
                     outcome="reported", details={"epoch": evidence.epoch, "view": evidence.view,
                                                  "kind": int(evidence.kind)})

    # ------------------------------------------------------------------ ledger sync

    def serve_ledger_sync(self, payload: bytes) -> bytes | None:
        """Committed blocks with commit QCs for a peer that is behind (consensus thread)."""
        try:
            request = decode(payload[1:], DecodeLimits(max_bytes=64, max_depth=2, max_items=4))
        except CodecError:
            return None
        if not (isinstance(request, list) and len(request) == 2
                and all(type(v) is int and v >= 0 for v in request)):
            return None
        first, count = request
        count = min(count, LEDGER_SYNC_BATCH)
        close_old_connections()
        heights = list(BlockRow.objects.filter(height__gte=first, height__lt=first + count)
                       .order_by("height").values_list("height", flat=True))
        items = []
        for height in heights:
            loaded = load_block(height)
            if loaded is None:
                break
            block, qc = loaded
            items.append([block.to_cbor(), qc.to_cbor()])
        if not items:
            return None
        return bytes((LEDGER_SYNC_RESPONSE,)) + encode(items)

    def absorb_ledger_sync(self, sender: str, payload: bytes) -> tuple[Outbound, bool]:
        """Verify and commit blocks a peer served; return the new core's actions."""
        assert self.core is not None and self.app is not None  # noqa: S101
        out = Outbound()
        try:
            items = decode(payload[1:], DecodeLimits(max_bytes=len(payload), max_depth=10,
                                                     max_items=1 + len(payload) // 2))
            pairs = [(parse_block(b, DEFAULT_WIRE_LIMITS), parse_qc(q)) for b, q in items]
        except (CodecError, MessageError, TypeError, ValueError):
            out.penalize.append((sender, PenaltyReason.BAD_BLOCK))
            return out, False
        committed = 0
        for block, qc in pairs:
            tip = self.app.committed
            if block.height <= tip.height:
                continue
            links = (block.height == tip.height + 1 and block.parent_id == tip.block_id
                     and qc.block_id == block.block_id and block.epoch == self.core.epoch.epoch)
            try:
                if links:
                    self.core.certificates.verify_qc(qc, self.core.epoch)
            except CertificateError:
                links = False
            if not links:
                out.penalize.append((sender, PenaltyReason.BAD_BLOCK))
                break
            self.app.commit(CommitBlocks(blocks=(CommittedBlock(block, qc),), proof_block=block,
                                         proof_qc=qc))
            committed += 1
            if block.next_validators is not None:
                break  # the epoch ends here: the rebuilt core takes it from there
        if committed:
            LEDGER_SYNC_BLOCKS.labels(self.node_id).inc(committed)
            self.log.info("caught up through the ledger", blocks=committed,
                          height=self.app.committed.height)
            rebuilt = self._perform(self._build_core())
            rebuilt.penalize.extend(out.penalize)
            return rebuilt, True
        return out, False

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
            "synced": synced, "voting": core.member and self._guard_views is None,
            "peers": peers})

    # ------------------------------------------------------------------ event loop side

    async def _on_message(self, peer: str, topic: Topic, payload: bytes) -> None:
        loop = asyncio.get_running_loop()
        if topic is Topic.BLOCKSYNC and payload[:1] == bytes((LEDGER_SYNC_REQUEST,)):
            reply = await loop.run_in_executor(self._pool, self.serve_ledger_sync, payload)
            if reply is not None and self.network is not None:
                await self.network.send(peer, Topic.BLOCKSYNC, reply)
            return
        if topic is Topic.BLOCKSYNC and payload[:1] == bytes((LEDGER_SYNC_RESPONSE,)):
            out, _ = await loop.run_in_executor(self._pool, self.absorb_ledger_sync, peer,
                                                payload)
            self._sync_outstanding_until = 0.0
            await self._deliver(out)
            return
        try:
            message = decode_message(payload)
        except MessageError as error:
            if self.network is not None:
                self.network.penalize(peer, PenaltyReason.MALFORMED)
            self.log.info("undecodable message", peer=peer, error=str(error))
            return
        try:
            self._queue.put_nowait(MessageReceived(peer, message))
        except asyncio.QueueFull:
            DROPPED_EVENTS.labels(self.node_id).inc()

    async def _deliver(self, out: Outbound) -> None:
        network = self.network
        assert network is not None  # noqa: S101
        if out.new_validators is not None:
            network.update_validators(out.new_validators, self.config.certificates)
        for peer, reason in out.penalize:
            network.penalize(peer, reason)
        for message in out.broadcasts:
            await network.broadcast(_TOPIC_OF[type(message)], encode_message(message))
        for peer, message in out.sends:
            await network.send(peer, _TOPIC_OF[type(message)], encode_message(message),
                               expect_reply=isinstance(message, SyncRequest))
        if out.timer is not None:
            self._schedule(out.timer)
        if out.ledger_sync_from is not None and time.monotonic() > self._sync_outstanding_until:
            peer, first = out.ledger_sync_from
            self._sync_outstanding_until = time.monotonic() + LEDGER_SYNC_TIMEOUT_S
            request = bytes((LEDGER_SYNC_REQUEST,)) + encode([first, LEDGER_SYNC_BATCH])
            await network.send(peer, Topic.BLOCKSYNC, request, expect_reply=True)

    def _schedule(self, timer: ScheduleTimer) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        event = TimerFired(timer.epoch, timer.view, timer.timer_id)
        self._timer = loop.call_later(timer.duration_ms / 1000, self._enqueue, event)

    def _enqueue(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            DROPPED_EVENTS.labels(self.node_id).inc()

    async def _status_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            peers = [] if self.network is None else [
                {"id": p.peer_id, "connected": p.connected, "score": round(p.score, 2),
                 "address": p.address} for p in self.network.peers()]
            try:
                await loop.run_in_executor(self._pool, self.write_status, peers)
            except Exception:
                self.log.exception("status write failed")
            await asyncio.sleep(self.config.status_interval_s)

    async def run(self, stop: asyncio.Event,
                  on_started: Callable[[], None] | None = None) -> None:
        """Run until ``stop`` is set; then finish the step in flight and close the peers."""
        loop = asyncio.get_running_loop()
        start_out = await loop.run_in_executor(
            self._pool, lambda: self._perform(self._build_core()))
        assert self.core is not None  # noqa: S101
        self.network = PeerNetwork(
            self.config.network, NodeIdentity(self.node_id, self.config.signing_key),
            self.core.epoch.validator_set, self.config.certificates, self._on_message,
            on_quarantine=self._on_quarantine)
        await self.network.start()
        self.log.info("node started", height=self.core.committed.height,
                      epoch=self.core.epoch.epoch)
        status = asyncio.create_task(self._status_loop())
        await self._deliver(start_out)
        if on_started is not None:
            on_started()
        stop_wait = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                get = asyncio.create_task(self._queue.get())
                done, _ = await asyncio.wait({get, stop_wait},
                                             return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    break
                out = await loop.run_in_executor(self._pool, self.step, get.result())
                await self._deliver(out)
        finally:
            self._stopping = True
            status.cancel()
            stop_wait.cancel()
            if self._timer is not None:
                self._timer.cancel()
            await self.network.stop()
            self._pool.shutdown(wait=True)  # the step in flight (a commit) finishes first
            self.log.info("node stopped")

    def _on_quarantine(self, peer: str, reason: PenaltyReason) -> None:
        self.log.warning("peer quarantined", peer=peer, reason=reason.value)
        self._pool.submit(record_audit, actor=self.node_id, action="p2p.quarantine",
                          target=peer, outcome="quarantined", details={"reason": reason.value})


