"""The application side of consensus: build payloads, check proposals, commit blocks.

Consensus orders opaque payloads; this module is what gives them meaning on a node:

* **Build.** The leader asks for a payload extending a certified parent. We take candidates
  from the mempool, drop the ones already carried by the uncommitted ancestors, and let the
  deterministic block builder choose and order them. The header's ``state_root`` is the root
  after executing the *parent* (execution lags one block), which we know because every block
  this node accepted was executed speculatively when it was checked.
* **Check.** A replica votes only for a payload that an honest leader could have built: the
  block builder's own validation (size, decoding, order, signatures), the tx root, no
  transaction already committed or carried by an ancestor, equivocation evidence whose
  signatures prove the accusation (apps/node/evidence.py; the executor does not verify them),
  the parent's state root, and a validator-set change exactly when the executor says the
  epoch ends.
* **Commit.** A committed block is persisted through the ledger in one serializable
  transaction with the state updates, evidence, notifications and audit entries its
  execution produced; the mempool forgets its transactions.

Speculative execution is cheap because the executor is pure and its ``State`` is a persistent
map: executing a proposal shares almost everything with its parent's state. Merkle nodes of
uncommitted blocks stay in memory (``StagedNodeReader``); only committed batches reach the
database, so two forks at one height never collide in the store.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import structlog
from prometheus_client import Counter

from apps.ledger.models import Transaction as LedgerTransaction
from apps.ledger.records import CommitOutcome, PreparedState
from apps.ledger.services import commit_block
from apps.mempool.models import MempoolTransaction
from apps.mempool.queries import block_candidates
from apps.mempool.services import remove_committed
from apps.node.evidence import equivocation_of, equivocation_problem
from apps.state.execution import ExecutedBlock, LedgerExecutor, execute_block
from apps.state.nodestore import DatabaseNodeStore
from cybermesh.protocol.block_builder import (
    EQUIVOCATION_WEIGHT,
    BlockLimits,
    Candidate,
    PayloadRejected,
    build_payload,
    validate_payload,
)
from cybermesh.protocol.codec import encode
from cybermesh.protocol.consensus.events import CommitBlocks
from cybermesh.protocol.consensus.messages import Block
from cybermesh.protocol.consensus.signatures import Domains, Ed25519Verifier
from cybermesh.protocol.executor import State, active_validator_set
from cybermesh.protocol.executor.apply import ExecutorError
from cybermesh.protocol.merkle.nodestore import NodeBatch, StagedNodeReader
from cybermesh.protocol.merkle.sparse import SparseMerkleTree
from cybermesh.protocol.txs import Transaction, TxRejected, decode_transaction
from cybermesh.protocol.validator_set import Validator

logger = structlog.get_logger(__name__)

PROPOSALS_REFUSED = Counter(
    "cybermesh_proposals_refused",
    "Proposed payloads this node refused to vote for, by reason.", ["reason"])
BLOCKS_COMMITTED = Counter("cybermesh_blocks_committed", "Blocks committed by this node.")
TXS_COMMITTED = Counter("cybermesh_transactions_committed",
                        "Transactions committed by this node.")

EMPTY_PAYLOAD = encode([])
BlockLookup = Callable[[bytes], Block | None]
# How many speculative executions to keep: forks die quickly in 2-chain HotStuff, but a
# partition can leave a few uncommitted branches around until the next commit prunes them.
MAX_SPECULATIONS = 512


@dataclass(frozen=True, slots=True)
class Speculation:
    """A block executed before it committed: its state, root and Merkle nodes."""

    block: Block
    executed: ExecutedBlock
    root: bytes
    batch: NodeBatch
    tx_ids: frozenset[bytes]


@dataclass(frozen=True, slots=True)
class ProposalContent:
    payload: bytes | None
    tx_root: bytes
    state_root: bytes
    next_validators: tuple[Validator, ...] | None


class RefusedProposal(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def freeze_loaded_state() -> None:
    """Move everything alive now out of the cyclic garbage collector's reach.

    An Application is built right after the node loaded its ledger tip: the executor state
    (a persistent map of every record), caches and modules, all of it long-lived. CPython's
    full collections, triggered by the allocations of every block executed and every Merkle
    tree update, walk every tracked object each time; frozen objects are skipped. Measured on
    ``bench_executor``'s blocks: the state tree update about twice as fast (docs/merkle.md).
    Frozen objects are still freed when their reference count drops (a replaced state is),
    only cycles among them are not collected, and a loaded state has none. A rebuild after a
    ledger catch-up builds a new Application and freezes again.
    """
    gc.collect()
    gc.freeze()


class Application:
    """Payload building, proposal checks and commits for one node (used by the worker only)."""

    def __init__(self, *, chain_id: str, node_id: str, limits: BlockLimits,
                 executor: LedgerExecutor, committed: Block, committed_root: bytes,
                 lookup: BlockLookup, store: DatabaseNodeStore | None = None) -> None:
        self.chain_id = chain_id
        self.node_id = node_id
        self.limits = limits
        self.executor = executor
        self.store = store or DatabaseNodeStore()
        self.committed = committed
        self.committed_root = committed_root
        self._lookup = lookup
        self._speculations: dict[bytes, Speculation] = {}
        self._domains = Domains.for_chain(chain_id)
        self._verifier = Ed25519Verifier()
        freeze_loaded_state()

    # ------------------------------------------------------------------ speculation

    def _ancestry(self, block_id: bytes) -> list[Speculation] | None:
        """Speculations from the committed tip (exclusive) up to ``block_id``, oldest first."""
        chain: list[Speculation] = []
        current = block_id
        while current != self.committed.block_id:
            speculation = self._speculations.get(current)
            if speculation is None:
                block = self._lookup(current)
                if block is None or block.height <= self.committed.height:
                    return None
                speculation = self._execute(block)
                if speculation is None:
                    return None
            chain.append(speculation)
            current = speculation.block.parent_id
        chain.reverse()
        return chain

    def _execute(self, block: Block,
                 transactions: Sequence[Transaction] | None = None) -> Speculation | None:
        """Execute ``block`` on its parent's speculative (or committed) state.

        ``transactions``: its payload as ``validate_payload`` decoded it, when the caller
        just checked it (else the payload is decoded here).
        """
        known = self._speculations.get(block.block_id)
        if known is not None:
            return known
        ancestry = self._ancestry(block.parent_id)
        if ancestry is None:
            return None
        parent_state = ancestry[-1].executed.state if ancestry else self.executor.state
        try:
            executed = execute_block(parent_state, block, transactions=transactions)
        except ExecutorError as error:
            logger.warning("speculative execution failed", height=block.height,
                           error=str(error))
            return None
        reader = StagedNodeReader(self.store, [speculation.batch for speculation in ancestry])
        updates = {update.key: update.value for update in executed.execution.state_updates}
        root, batch = SparseMerkleTree(reader).apply(
            block.height - 1, updates, block.height)
        tx_ids = frozenset(record.tx_id for record in executed.execution.transactions or ())
        speculation = Speculation(block=block, executed=executed, root=root, batch=batch,
                                  tx_ids=tx_ids)
        if len(self._speculations) >= MAX_SPECULATIONS:
            oldest = min(self._speculations.values(), key=lambda s: s.block.height)
            del self._speculations[oldest.block.block_id]
        self._speculations[block.block_id] = speculation
        return speculation

    def root_after(self, block_id: bytes) -> bytes | None:
        if block_id == self.committed.block_id:
            return self.committed_root
        ancestry = self._ancestry(block_id)
        return ancestry[-1].root if ancestry else None

    def _pending_tx_ids(self, block_id: bytes) -> set[bytes]:
        ancestry = self._ancestry(block_id) or []
        pending: set[bytes] = set()
        for speculation in ancestry:
            pending |= speculation.tx_ids
        return pending

    @staticmethod
    def _next_validators(parent: Speculation | None, executed: ExecutedBlock,
                         executor_state_epoch: int) -> tuple[Validator, ...] | None:
        parent_epoch = (parent.executed.state.validators.epoch if parent
                        else executor_state_epoch)
        if executed.state.validators.epoch == parent_epoch:
            return None
        return active_validator_set(executed.state).validators

    # ------------------------------------------------------------------ leader side

    def build(self, *, parent_id: bytes, height: int, now_ms: int) -> ProposalContent | None:
        """The payload, tx root and parent state root for a proposal; None if unknown parent."""
        ancestry = self._ancestry(parent_id)
        if ancestry is None:
            return None
        parent_block = ancestry[-1].block if ancestry else self.committed
        state_root = ancestry[-1].root if ancestry else self.committed_root
        block_time = max(now_ms, parent_block.timestamp_ms + 1)
        pending = set().union(*(s.tx_ids for s in ancestry)) if ancestry else set()
        parent_state = ancestry[-1].executed.state if ancestry else self.executor.state
        candidates = self._without_bad_evidence(
            [c for c in block_candidates(block_time_ms=block_time, limits=self.limits)
             if c.tx_id not in pending], parent_state)
        built = build_payload(candidates, limits=self.limits, block_time_ms=block_time)
        payload = built.payload if built.tx_ids else None
        next_validators = None
        if payload is not None:
            # Execute the payload as the block will be, to announce an epoch change it causes.
            provisional = Block(epoch=parent_block.epoch, view=0, height=height,
                                parent_id=parent_id, proposer=self.node_id,
                                timestamp_ms=block_time, payload=payload, tx_root=built.tx_root,
                                state_root=state_root,
                                validator_set_hash=parent_block.validator_set_hash,
                                qc=parent_block.qc)
            try:
                executed = execute_block(parent_state, provisional)
            except ExecutorError as error:
                logger.error("own payload does not execute; proposing none", error=str(error))
                return ProposalContent(payload=None, tx_root=built.tx_root,
                                       state_root=state_root, next_validators=None)
            next_validators = self._next_validators(ancestry[-1] if ancestry else None,
                                                    executed,
                                                    self.executor.state.validators.epoch)
        return ProposalContent(payload=payload, tx_root=built.tx_root, state_root=state_root,
                               next_validators=next_validators)

    def _without_bad_evidence(self, candidates: list[Candidate],
                              parent_state: State) -> list[Candidate]:
        """Drop equivocation evidence replicas would refuse (only those rows are decoded)."""
        suspects = set(MempoolTransaction.objects.filter(
            kind="evidence", weight=EQUIVOCATION_WEIGHT).values_list("tx_id", flat=True))
        if not suspects:
            return candidates
        suspects = {bytes(tx_id) for tx_id in suspects}
        validators = active_validator_set(parent_state)
        kept = []
        for candidate in candidates:
            if candidate.tx_id in suspects:
                try:
                    transaction = decode_transaction(candidate.wire,
                                                     expected_chain_id=self.chain_id,
                                                     verify=False)
                except TxRejected:
                    continue
                proof = equivocation_of(transaction)
                problem = proof and equivocation_problem(
                    proof, validators=validators, domains=self._domains,
                    verifier=self._verifier)
                if problem:
                    logger.warning("not proposing evidence", tx_id=candidate.tx_id.hex(),
                                   problem=problem)
                    continue
            kept.append(candidate)
        return kept

    # ------------------------------------------------------------------ replica side

    def check(self, block: Block) -> bool:
        """Whether ``block``'s content is valid on top of its parent (the payload check)."""
        try:
            self._check(block)
        except RefusedProposal as refusal:
            PROPOSALS_REFUSED.labels(refusal.reason).inc()
            logger.warning("refused proposal", height=block.height, view=block.view,
                           proposer=block.proposer, reason=str(refusal))
            return False
        return True

    def _check(self, block: Block) -> None:
        # An empty payload is how a leader with nothing to propose drives pending commits.
        payload = block.payload or EMPTY_PAYLOAD
        try:
            validated = validate_payload(payload, limits=self.limits,
                                         block_time_ms=block.timestamp_ms,
                                         chain_id=self.chain_id)
        except PayloadRejected as error:
            raise RefusedProposal(error.reason.value, error.detail) from None
        if validated.tx_root != block.tx_root:
            raise RefusedProposal("tx_root", "tx root does not match the payload")
        ancestry = self._ancestry(block.parent_id)
        if ancestry is None:
            raise RefusedProposal("unknown_parent", "parent cannot be executed here")
        parent_root = ancestry[-1].root if ancestry else self.committed_root
        if block.state_root != parent_root:
            raise RefusedProposal("state_root", "state root differs from the parent's result")
        parent_state = ancestry[-1].executed.state if ancestry else self.executor.state
        for transaction in validated.transactions:
            proof = equivocation_of(transaction)
            problem = proof and equivocation_problem(
                proof, validators=active_validator_set(parent_state), domains=self._domains,
                verifier=self._verifier)
            if problem:
                raise RefusedProposal("evidence", problem)
        ids = set(validated.tx_ids)
        pending = set().union(*(s.tx_ids for s in ancestry)) if ancestry else set()
        if ids & pending:
            raise RefusedProposal("replayed_tx", "a transaction is already in an ancestor")
        if ids and LedgerTransaction.objects.filter(tx_id__in=list(ids)).exists():
            raise RefusedProposal("replayed_tx", "a transaction is already committed")
        # An empty payload (b"") was validated as the empty array; it executes as it is.
        speculation = self._execute(block, validated.transactions if block.payload else None)
        if speculation is None:
            raise RefusedProposal("execution", "the block does not execute")
        expected = self._next_validators(ancestry[-1] if ancestry else None,
                                         speculation.executed,
                                         self.executor.state.validators.epoch)
        if block.next_validators != expected:
            raise RefusedProposal("next_validators",
                                  "validator-set change differs from the executor's")

    # ------------------------------------------------------------------ commit

    def commit(self, action: CommitBlocks) -> list[CommitOutcome]:
        outcomes = []
        for item in action.blocks:
            outcomes.append(self._commit_one(item.block, item.qc))
        return outcomes

    def _commit_one(self, block: Block, qc: object) -> CommitOutcome:
        if block.height <= self.executor.state.height:
            # A replay (restart, sync): the ledger turns it into a no-op or a divergence alarm.
            return commit_block(block=block, qc=qc, node_id=self.node_id)  # type: ignore[arg-type]
        speculation = self._execute(block)
        if speculation is None:
            raise RuntimeError(f"committed block {block.height} cannot be executed; the "
                               "ledger would diverge (check the executor logs)")
        # The tree batch was computed when the block was checked: the commit only writes it.
        execution = replace(speculation.executed.execution, prepared_state=PreparedState(
            base_root=self.committed_root, batch=speculation.batch))
        outcome = commit_block(block=block, qc=qc,  # type: ignore[arg-type]
                               execution=execution, node_id=self.node_id)
        self.executor.advance(speculation.executed)
        self.committed = block
        self.committed_root = outcome.state_root
        self._forget_at_or_below(block.height)
        if speculation.tx_ids:
            remove_committed(speculation.tx_ids)
        BLOCKS_COMMITTED.inc()
        TXS_COMMITTED.inc(len(speculation.tx_ids))
        return outcome

    def _forget_at_or_below(self, height: int) -> None:
        for block_id in [bid for bid, s in self._speculations.items()
                         if s.block.height <= height]:
            del self._speculations[block_id]

    def known_blocks(self) -> Iterable[Block]:
        return (speculation.block for speculation in self._speculations.values())
