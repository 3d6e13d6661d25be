"""ConsensusCore: the sans-I/O 2-chain HotStuff state machine of one validator.

``handle(event) -> list[Action]`` is the whole interface. Nothing in here reads a clock, draws a
random number or touches the network: the runtime and the simulator feed events in and carry
out the returned actions in order (see :mod:`.events`). The flow of one view v:

1. Entering v (through a QC or TC for v - 1) the node schedules its view timer; the leader of v
   asks the application for a payload and proposes a block extending its highest QC (with the
   TC for v - 1 when it entered through one).
2. A replica checks the proposal (leader, signature, shape, timestamp, certificates), processes
   the certificates it carries (which may commit blocks and move it to v), and, if the block is
   for its current view, asks SafetyRules for a vote, persists, and sends the vote to the leader
   of v + 1.
3. The leader of v + 1 aggregates 2f + 1 votes (by power) into a QC and enters v + 1.
4. If the timer fires first, the node signs a timeout for v carrying its highest QC and
   broadcasts it; f + 1 timeouts make a node join, 2f + 1 form a TC that moves everyone on.

Commit rule (2-chain): a QC for B1 whose parent B0 is certified by B1's own QC in view
B1.view - 1 commits B0 and all its ancestors.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from cybermesh.protocol.consensus import sync
from cybermesh.protocol.consensus.block_tree import BlockTree
from cybermesh.protocol.consensus.errors import CertificateError, SafetyRuleViolation
from cybermesh.protocol.consensus.events import (
    Action,
    Broadcast,
    CommitBlocks,
    CommittedBlock,
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
from cybermesh.protocol.consensus.evidence import make_evidence
from cybermesh.protocol.consensus.leader import (
    CommittedView,
    LeaderSchedule,
    ReputationLeaderElection,
)
from cybermesh.protocol.consensus.messages import (
    Block,
    EvidenceKind,
    Heartbeat,
    Message,
    Proposal,
    QuorumCert,
    SignedStatement,
    SyncRequest,
    SyncResponse,
    Timeout,
    TimeoutCert,
    Vote,
    genesis_qc,
)
from cybermesh.protocol.consensus.pacemaker import Pacemaker, PacemakerParameters
from cybermesh.protocol.consensus.quorum import (
    CertificateVerifier,
    EpochState,
    TimeoutAggregator,
    VoteAggregator,
)
from cybermesh.protocol.consensus.safety import Rule, SafetyData, SafetyRules
from cybermesh.protocol.consensus.signatures import Domains, Signer, Verifier
from cybermesh.protocol.validator_set import ValidatorSet

# A silent leader can claim to be idle only this often per view before replicas time out: an
# idle system and a leader that censors are indistinguishable to consensus, so the claim is
# bounded and the view rotates anyway after heartbeat_interval_ms * this many milliseconds.
MAX_HEARTBEATS_PER_VIEW = 20

LeaderFactory = Callable[[ValidatorSet], LeaderSchedule]
DEFAULT_LEADER_WINDOW = 10
PayloadCheck = Callable[[Block], bool]


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """Per-node configuration (all integers; the pacemaker bounds come from genesis)."""

    validator_id: str
    chain_id: str
    pacemaker: PacemakerParameters = field(default_factory=PacemakerParameters)
    max_clock_skew_ms: int = 5000
    heartbeat_interval_ms: int = 500
    leader_window: int = DEFAULT_LEADER_WINDOW
    future_view_window: int = 1000
    max_sync_blocks: int = 64
    committed_window: int = 256


@dataclass(slots=True)
class CoreStats:
    """Counters for tests, metrics and the benchmark."""

    proposals: int = 0
    votes_sent: int = 0
    timeouts_sent: int = 0
    committed_blocks: int = 0
    dropped: int = 0
    conflicts: int = 0
    sync_requests: int = 0


class ConsensusCore:
    """One validator's consensus state machine (see the module docstring)."""

    def __init__(self, *, config: CoreConfig, signer: Signer, verifier: Verifier,
                 epoch: EpochState, committed: Block, committed_qc: QuorumCert | None = None,
                 safety_data: SafetyData | None = None,
                 leader_factory: LeaderFactory | None = None,
                 payload_check: PayloadCheck | None = None,
                 disabled_rules: frozenset[Rule] = frozenset(), now_ms: int = 0,
                 recent_committed: Sequence[CommittedView] = ()) -> None:
        """``recent_committed``: (epoch, height, view, timestamp, proposer) of the last blocks
        up to ``committed``, in height order (``leader.history_depth(window)`` of them).
        A restarted node replays them into the leader schedule, whose reputation gate would
        otherwise start empty while every other node remembers the failures it learnt: their
        leaders would differ, and its proposals would be refused as not the leader's (seen in
        the kill -9 cluster test)."""
        self.config = config
        self.validator_id = config.validator_id
        self.domains = Domains.for_chain(config.chain_id)
        self.certificates = CertificateVerifier(verifier=verifier, domains=self.domains)
        self.signer = signer
        self._leader_factory: LeaderFactory = leader_factory or (
            lambda vs: ReputationLeaderElection(vs, window=config.leader_window,
                                                clock=lambda: self.now_ms))
        self._payload_check = payload_check
        data = safety_data or SafetyData(epoch=epoch.epoch)
        self.safety = SafetyRules(validator_id=self.validator_id, signer=signer,
                                  domains=self.domains, safety_data=data,
                                  disabled_rules=disabled_rules)
        self.safety.start_epoch(epoch.epoch)
        self.pacemaker = Pacemaker(config.pacemaker)
        self.stats = CoreStats()
        self.now_ms = now_ms
        self.epoch_end_proofs: dict[int, SyncResponse] = {}
        self._actions: list[Action] = []
        self._local: deque[Message] = deque()
        self._install_epoch(epoch, committed, committed_qc)
        self._replay_leader_history(recent_committed)

    def _replay_leader_history(self, blocks: Sequence[CommittedView]) -> None:
        parent: CommittedView | None = None
        for block in blocks:
            if block.epoch == self.epoch.epoch and block.height <= self.committed.height:
                self._teach_leaders(parent, block)
            parent = block

    def _teach_leaders(self, parent: CommittedView | None, block: CommittedView) -> None:
        """Tell the leader schedule that ``block`` committed on ``parent``. The views before an
        epoch's first block blame nobody: validators start, or enter the epoch, at different
        times (blaming them put two validators in the gate at every start, which switched it
        off for the first window)."""
        parent_view = None if parent is None or parent.epoch != block.epoch \
            or parent.height == self.epoch.root_height else parent.view
        self.leaders.record_committed(parent_view, block.view, block.timestamp_ms,
                                      block.proposer)

    # ------------------------------------------------------------------ state per epoch

    def _install_epoch(self, epoch: EpochState, committed: Block,
                       committed_qc: QuorumCert | None) -> None:
        self.epoch = epoch
        self.member = self.validator_id in epoch.validator_set
        self._set_digest = epoch.validator_set.digest()
        self.tree = BlockTree(committed, committed_window=self.config.committed_window)
        if committed.block_id == epoch.root_id or committed_qc is None:
            committed_qc = genesis_qc(epoch.epoch, epoch.root_id, epoch.root_height)
        self.highest_qc = committed_qc
        self.highest_tc: TimeoutCert | None = None
        self.leaders = self._leader_factory(epoch.validator_set)
        self._votes = VoteAggregator()
        self._timeouts = TimeoutAggregator()
        self._my_timeout: Timeout | None = None
        self._proposed_view = 0
        self._seen_proposals: dict[tuple[int, str], SignedStatement] = {}
        self._pending_commit: QuorumCert | None = None
        self._sync_asked: dict[tuple[bytes, str], int] = {}
        self.sync_outstanding = sync.OutstandingRequests()
        self._timer_id = 0
        self._idle = False
        self._heartbeats = 0
        self.pacemaker.reset(0)

    @property
    def view(self) -> int:
        return self.pacemaker.view

    @property
    def committed(self) -> Block:
        return self.tree.committed

    # ------------------------------------------------------------------ entry point

    def handle(self, event: Event) -> list[Action]:
        """Process one event; return the actions to perform, in order."""
        if type(event) is Tick:  # the runtime's clock, before nearly every event: keep it cheap
            self.now_ms = max(self.now_ms, event.now_ms)
            return []
        self._actions = []
        if isinstance(event, MessageReceived):
            self._dispatch(event.sender, event.message, local=False)
        elif isinstance(event, TimerFired):
            if (event.epoch, event.view) == (self.epoch.epoch, self.view) \
                    and event.timer_id == self._timer_id:
                if self._idle:
                    self._idle = False
                    self._schedule_timer()
                    self._request_payload()
                else:
                    self._local_timeout()
                    self._schedule_timer()
        elif isinstance(event, Tick):
            self.now_ms = max(self.now_ms, event.now_ms)
        elif isinstance(event, PayloadReady):
            self._on_payload(event)
        elif isinstance(event, Start):
            self._start()
        while self._local:
            self._dispatch(self.validator_id, self._local.popleft(), local=True)
        actions, self._actions = self._actions, []
        return actions

    def _start(self) -> None:
        if self.view == 0:
            self._advance(self.highest_qc.view + 1, progress=True)
        else:
            self._schedule_timer()

    def _dispatch(self, sender: str, message: Message, *, local: bool) -> None:
        epoch = getattr(message, "epoch", self.epoch.epoch)
        if epoch != self.epoch.epoch and not isinstance(message, SyncRequest):
            if epoch > self.epoch.epoch and not local:
                self._ask_sync(b"\x00" * 32, sender)
            self.stats.dropped += 1
            return
        if isinstance(message, Proposal):
            self._on_proposal(sender, message, local)
        elif isinstance(message, Vote):
            self._on_vote(message, local)
        elif isinstance(message, Timeout):
            self._on_timeout(sender, message, local)
        elif isinstance(message, TimeoutCert):
            if self._verified_tc(message):
                self._process_tc(message)
        elif isinstance(message, Heartbeat):
            self._on_heartbeat(message)
        elif isinstance(message, SyncRequest):
            response = sync.answer(self, message)
            if response is not None and sender != self.validator_id:
                self._actions.append(Send(sender, response))
        elif isinstance(message, SyncResponse):
            sync.absorb(self, sender, message)

    # ------------------------------------------------------------------ output helpers

    def _send(self, to: str, message: Message) -> None:
        if to == self.validator_id:
            self._local.append(message)
        else:
            self._actions.append(Send(to, message))

    def _broadcast(self, message: Message) -> None:
        self._actions.append(Broadcast(message))
        self._local.append(message)

    def _persist_then(self, data: SafetyData | None, send: Callable[[], None]) -> None:
        """Persist before the signature leaves (unless a test disabled that rule)."""
        if data is None:
            send()
        elif self.safety.enforces(Rule.PERSIST_BEFORE_SEND):
            self._actions.append(PersistSafetyData(data))
            send()
        else:
            send()
            self._actions.append(PersistSafetyData(data))

    def _schedule_timer(self) -> None:
        self._timer_id += 1
        duration = self.pacemaker.suspect_timeout_ms if self.leaders.suspect(self.view) \
            else self.pacemaker.timeout_ms
        self._actions.append(ScheduleTimer(self.epoch.epoch, self.view, duration,
                                           self._timer_id))

    def _ask_sync(self, block_id: bytes, to: str | None) -> None:
        # Once per (block, peer) and view: a node stuck in one view (an epoch it cannot leave
        # without the epoch-end proof) must still be able to ask the next peer it hears from,
        # the first one may have restarted and lost the proof.
        key = (block_id, to or "")
        if to is None or to == self.validator_id or self._sync_asked.get(key) == self.view:
            return
        if len(self._sync_asked) > 256:
            self._sync_asked.clear()
        self._sync_asked[key] = self.view
        self.sync_outstanding.add(to, block_id)
        self.stats.sync_requests += 1
        self._actions.append(Send(to, SyncRequest(self.epoch.epoch, self.committed.height,
                                                  block_id)))

    # ------------------------------------------------------------------ certificates

    def _verified_qc(self, qc: QuorumCert) -> bool:
        try:
            self.certificates.verify_qc(qc, self.epoch)
        except CertificateError:
            self.stats.dropped += 1
            return False
        return True

    def _verified_tc(self, tc: TimeoutCert) -> bool:
        try:
            self.certificates.verify_tc(tc, self.epoch)
        except CertificateError:
            self.stats.dropped += 1
            return False
        return True

    def process_qc(self, qc: QuorumCert, sender: str | None) -> None:
        """A verified QC: raise the highest QC, apply the commit rule, enter qc.view + 1."""
        if qc.view > self.highest_qc.view:
            self.highest_qc = qc
        self.try_commit(qc, sender)
        if qc.epoch == self.epoch.epoch:
            self._advance(qc.view + 1, progress=True)

    def _process_tc(self, tc: TimeoutCert) -> None:
        if self.highest_tc is None or tc.view > self.highest_tc.view:
            self.highest_tc = tc
        self._advance(tc.view + 1, progress=False)

    def _advance(self, view: int, *, progress: bool) -> None:
        expected = not progress and self.leaders.suspect(self.view)  # only a failure asks
        if not self.pacemaker.enter(view, progress=progress, expected_failure=expected):
            return
        self._my_timeout = None
        self._idle = False
        self._heartbeats = 0
        self._votes.prune_below(view - 1)
        self._timeouts.prune_below(view - 1)
        if len(self._seen_proposals) > 64:
            self._seen_proposals = {k: v for k, v in self._seen_proposals.items()
                                    if k[0] >= view - 1}
        self._schedule_timer()
        if self.member and self.leaders.leader(view) == self.validator_id \
                and self._proposed_view < view:
            self._proposed_view = view
            self._request_payload()

    def _request_payload(self) -> None:
        self._actions.append(RequestPayload(self.epoch.epoch, self.view,
                                            self.highest_qc.height + 1,
                                            self.highest_qc.block_id))

    def _send_heartbeat(self) -> None:
        """Idle leader: tell replicas it is alive, ask again after the heartbeat interval."""
        epoch, view, qc_view = self.epoch.epoch, self.view, self.highest_qc.view
        unsigned = Heartbeat(epoch, view, qc_view, self.validator_id, b"")
        signature = self.signer.sign(self.domains.heartbeat, unsigned.statement())
        self._actions.append(Broadcast(Heartbeat(epoch, view, qc_view, self.validator_id,
                                                 signature)))
        self._heartbeats += 1
        self._idle = True
        self._timer_id += 1
        self._actions.append(ScheduleTimer(epoch, view, self.config.heartbeat_interval_ms,
                                           self._timer_id))

    # ------------------------------------------------------------------ commit rule

    def try_commit(  # noqa: PLR0911 -- one exit per case of the rule
            self, qc: QuorumCert, sender: str | None) -> None:
        """Apply the 2-chain commit rule to a verified QC for block B1."""
        tree = self.tree
        if qc.epoch != self.epoch.epoch:
            return
        if qc.height <= tree.committed.height + 1:
            self._check_old_two_chain(qc)  # B0 at or below the tip: it must be committed
            return
        b1 = tree.get(qc.block_id)
        if b1 is None:
            self._pending_commit = qc
            self._ask_sync(qc.block_id, sender or self._someone_in(qc))
            return
        if b1.qc.view == 0 or b1.view != b1.qc.view + 1:
            return  # B1 does not directly follow its parent: no 2-chain
        chain, missing = tree.chain_above_committed(b1.qc.block_id)
        if missing is not None:
            self._pending_commit = qc
            self._ask_sync(missing, sender or self._someone_in(qc))
            return
        if not chain:
            return
        if chain[0].parent_id != tree.committed.block_id:
            self._alarm(tree.committed.height, chain[0].block_id)
            return
        if self._pending_commit is not None and self._pending_commit.view <= qc.view:
            self._pending_commit = None
        self._commit(chain, b1, qc)

    def _check_old_two_chain(self, qc: QuorumCert) -> None:
        b1 = self.tree.get(qc.block_id)
        if b1 is None or b1.qc.view == 0 or b1.view != b1.qc.view + 1:
            return
        b0_height = b1.qc.height
        if self.tree.knows_committed_height(b0_height) \
                and not self.tree.is_committed(b1.qc.block_id):
            self._alarm(b0_height, b1.qc.block_id)

    def _alarm(self, height: int, conflicting_id: bytes) -> None:
        self.stats.conflicts += 1
        self._actions.append(SafetyAlarm(height, self.tree.committed.block_id, conflicting_id))

    def _someone_in(self, qc: QuorumCert) -> str | None:
        for signer in qc.signers:
            if signer != self.validator_id:
                return signer
        return None

    def _commit(self, chain: list[Block], proof_block: Block, proof_qc: QuorumCert) -> None:
        certificates = [chain[i + 1].qc for i in range(len(chain) - 1)]
        certificates.append(proof_block.qc)
        for index, block in enumerate(chain):
            if block.next_validators is not None:
                chain = chain[: index + 1]  # the epoch ends at its reconfiguration block
                certificates = certificates[: index + 1]
                break
        parent = self.tree.committed
        for block in chain:
            self._teach_leaders(parent, block)
            parent = block
        self._actions.append(CommitBlocks(
            blocks=tuple(CommittedBlock(b, c) for b, c in zip(chain, certificates, strict=True)),
            proof_block=proof_block, proof_qc=proof_qc))
        self.stats.committed_blocks += len(chain)
        self.tree.mark_committed(chain)
        tip = chain[-1]
        if tip.next_validators is not None:
            sync.enter_next_epoch(self, tip, proof_block, proof_qc)

    # ------------------------------------------------------------------ proposals

    def _on_payload(self, event: PayloadReady) -> None:
        view = self.view
        if (event.epoch, event.view) != (self.epoch.epoch, view) or self._proposed_view != view \
                or not self.member:
            return
        payload = event.payload
        qc = self.highest_qc
        if payload is None and not self._content_awaits_commit() \
                and self._heartbeats < MAX_HEARTBEATS_PER_VIEW:
            self._send_heartbeat()
            return
        payload = payload or b""  # certified blocks await commit: an empty block drives them
        tc = self.highest_tc if (self.highest_tc is not None and self.highest_tc.view == view - 1
                                 and qc.view != view - 1) else None
        parent = self.tree.get(qc.block_id)
        timestamp = self.now_ms if parent is None else max(self.now_ms, parent.timestamp_ms + 1)
        block = Block(epoch=self.epoch.epoch, view=view, height=qc.height + 1,
                      parent_id=qc.block_id, proposer=self.validator_id,
                      timestamp_ms=timestamp, payload=payload, tx_root=event.tx_root,
                      state_root=event.state_root, validator_set_hash=self._set_digest, qc=qc,
                      next_validators=event.next_validators)
        try:
            signature, data = self.safety.sign_proposal(block)
        except SafetyRuleViolation:
            return
        self.stats.proposals += 1
        self._seen_proposals[(view, self.validator_id)] = SignedStatement(
            block.block_id, block.height, signature)
        proposal = Proposal(block=block, tc=tc, signature=signature)
        self._persist_then(data, lambda: self._broadcast(proposal))

    def _content_awaits_commit(self) -> bool:
        """Whether a certified, uncommitted block with a payload waits for a child.

        The 2-chain rule commits a block only when its direct child is certified too, so the
        last block of a burst would wait for the next burst. An empty child drives it home at
        once; empty blocks themselves never need one, so an idle chain stops growing. The QC
        that commits a block with content is also carried once more in a proposal, because the
        other replicas learn certificates only from proposals (heartbeats carry just a view).
        """
        certified = self.highest_qc.block_id
        chain, missing = self.tree.chain_above_committed(certified)
        if missing is not None or any(block.payload for block in chain):
            return True
        block = self.tree.get(certified)
        parent = None if block is None else self.tree.get(block.parent_id)
        return bool(parent is not None and parent.payload)

    def _proposal_well_formed(self, proposal: Proposal) -> bool:
        block, tc = proposal.block, proposal.tc
        if not (block.parent_id == block.qc.block_id and block.height == block.qc.height + 1
                and block.qc.view < block.view and block.validator_set_hash == self._set_digest
                and block.timestamp_ms <= self.now_ms + self.config.max_clock_skew_ms):
            return False
        if tc is not None and not (tc.view < block.view and tc.epoch == block.epoch):
            return False
        if block.next_validators is not None and not sync.valid_next_set(self, block):
            return False
        parent = self.tree.get(block.parent_id)
        return parent is None or block.timestamp_ms > parent.timestamp_ms

    def _on_proposal(  # noqa: PLR0911 -- one early exit per check, in protocol order
            self, sender: str, proposal: Proposal, local: bool) -> None:
        block = proposal.block
        view = block.view
        if view < self.view or view > self.view + self.config.future_view_window \
                or block.proposer != self.leaders.leader(view):
            self.stats.dropped += 1
            return
        key = (view, block.proposer)
        earlier = self._seen_proposals.get(key)
        if earlier is not None and earlier.block_id == block.block_id and not local:
            return  # a duplicate of a proposal already processed
        if not local and not (
                self.certificates.verify_signed(block.proposer, "proposal", block.statement(),
                                                proposal.signature, self.epoch)
                and self._proposal_well_formed(proposal)):
            self.stats.dropped += 1
            return
        if earlier is not None and earlier.block_id != block.block_id:
            self._actions.append(ReportEvidence(make_evidence(
                EvidenceKind.DOUBLE_PROPOSAL, epoch=block.epoch, view=view,
                validator_id=block.proposer, one=earlier,
                other=SignedStatement(block.block_id, block.height, proposal.signature))))
            return  # never vote for the second of two conflicting proposals
        self._seen_proposals[key] = SignedStatement(block.block_id, block.height,
                                                    proposal.signature)
        if not local and (not self._verified_qc(block.qc)
                          or (proposal.tc is not None and not self._verified_tc(proposal.tc))):
            return
        self.tree.insert(block)
        self.process_qc(block.qc, sender)
        if proposal.tc is not None:
            self._process_tc(proposal.tc)
        if self._pending_commit is not None:
            self.try_commit(self._pending_commit, sender)
        if view != self.view or not self.member:
            return
        if self._payload_check is not None and not self._payload_check(block):
            return
        try:
            vote, data = self.safety.make_vote(block, proposal.tc)
        except SafetyRuleViolation:
            return
        next_leader = self.leaders.leader(view + 1)
        self.stats.votes_sent += 1
        self._persist_then(data, lambda: self._send(next_leader, vote))

    # ------------------------------------------------------------------ votes and timeouts

    def _on_vote(self, vote: Vote, local: bool) -> None:
        if vote.view < self.highest_qc.view or vote.view > self.view + 100 \
                or self.leaders.leader(vote.view + 1) != self.validator_id \
                or vote.voter not in self.epoch.validator_set:
            return
        earlier = self._votes.seen(vote)
        if earlier is not None and earlier.block_id == vote.block_id:
            return
        if not local and not self.certificates.verify_signed(
                vote.voter, "vote", vote.statement(), vote.signature, self.epoch):
            self.stats.dropped += 1
            return
        if earlier is not None:
            self._actions.append(ReportEvidence(make_evidence(
                EvidenceKind.DOUBLE_VOTE, epoch=vote.epoch, view=vote.view,
                validator_id=vote.voter,
                one=SignedStatement(earlier.block_id, earlier.height, earlier.signature),
                other=SignedStatement(vote.block_id, vote.height, vote.signature))))
        qc = self._votes.add(vote, self.epoch.validator_set)
        if qc is not None:
            self.process_qc(qc, None)

    def _on_timeout(self, sender: str, timeout: Timeout, local: bool) -> None:
        if timeout.sender not in self.epoch.validator_set:
            return
        if timeout.view < self.view and timeout.high_qc.view <= self.highest_qc.view:
            return
        if not local and not (
                self.certificates.verify_signed(timeout.sender, "timeout", timeout.statement(),
                                                timeout.signature, self.epoch)
                and self._verified_qc(timeout.high_qc)):
            self.stats.dropped += 1
            return
        self.process_qc(timeout.high_qc, sender)
        high_tc = timeout.high_tc
        if high_tc is not None and not local and high_tc.view >= self.view \
                and self._verified_tc(high_tc):
            self._process_tc(high_tc)
        if timeout.view < self.view or timeout.view > self.view + self.config.future_view_window:
            return
        join, tc = self._timeouts.add(timeout, self.epoch.validator_set)
        if tc is not None:
            self._process_tc(tc)
        elif join and timeout.view == self.view and self._my_timeout is None:
            self._local_timeout()  # f + 1 timed out: at least one honest node did, join it

    def _local_timeout(self) -> None:
        if not self.member:
            return
        view = self.view
        if self._my_timeout is not None and self._my_timeout.view == view:
            self._actions.append(Broadcast(replace(self._my_timeout, high_tc=self.highest_tc)))
            return
        tc = self.highest_tc if (self.highest_tc is not None
                                 and self.highest_tc.view + 1 == view) else None
        try:
            timeout, data = self.safety.make_timeout(view, self.highest_qc, tc)
        except SafetyRuleViolation:
            return
        timeout = replace(timeout, high_tc=self.highest_tc)
        self._my_timeout = timeout
        self.pacemaker.record_failure(expected=self.leaders.suspect(view))
        self.stats.timeouts_sent += 1
        self._persist_then(data, lambda: self._broadcast(timeout))

    def _on_heartbeat(self, heartbeat: Heartbeat) -> None:
        """A live but idle leader: restart the view timer instead of timing out."""
        if heartbeat.view != self.view or heartbeat.sender != self.leaders.leader(self.view):
            return
        if self._heartbeats < MAX_HEARTBEATS_PER_VIEW and self.certificates.verify_signed(
                heartbeat.sender, "heartbeat", heartbeat.statement(), heartbeat.signature,
                self.epoch):
            self._heartbeats += 1
            self._schedule_timer()
