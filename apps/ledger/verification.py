"""Re-checking a committed chain from its stored bytes: ``manage.py ledger verify``.

For every block in the range the verifier recomputes, from the rows alone:

* the block id (from every header field, the payload rebuilt from the transaction rows, and
  the justifying QC) and the link to the parent's id;
* the tx root (RFC 9162 over the transaction ids) and the transaction count;
* both certificates: the justifying QC certifies the parent and the commit QC this block, each
  with a quorum of valid Ed25519 signatures of the epoch's validator set (the genesis set,
  then each set a committed reconfiguration block installed), or as the view-0 QC of the
  epoch's root block;
* the state: the header's state root equals the parent's result root, and the result root is
  recomputed by applying the block's stored state deltas to the parent version's tree.

:class:`BlockChecker` holds the database-free part, shared with ``ledger import``, which runs
it over an archive before writing anything.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from apps.ledger.models import Block as BlockRow
from apps.ledger.models import Transaction as TransactionRow
from apps.ledger.payload import compute_tx_root, decode_payload
from apps.ledger.rows import decode_qc, rebuild_block
from apps.state.models import StateValue, StateVersion
from apps.state.nodestore import DatabaseNodeStore
from apps.state.queries import iter_state
from apps.state.services import min_retained_version
from cybermesh.protocol.codec import CodecError
from cybermesh.protocol.consensus.errors import CertificateError, MessageError
from cybermesh.protocol.consensus.messages import Block, QuorumCert
from cybermesh.protocol.consensus.quorum import CertificateVerifier, EpochState
from cybermesh.protocol.consensus.signatures import Domains, Ed25519Verifier, Verifier
from cybermesh.protocol.merkle.errors import MerkleError
from cybermesh.protocol.merkle.nodestore import NodeReader
from cybermesh.protocol.merkle.sparse import SparseMerkleTree
from cybermesh.protocol.validator_set import ValidatorSet, ValidatorSetError


class VerifyReason(enum.Enum):
    MALFORMED_ROW = "malformed_row"
    BLOCK_HASH = "block_hash"
    PARENT_LINK = "parent_link"
    HEIGHT_GAP = "height_gap"
    TX_ROOT = "tx_root"
    TX_COUNT = "tx_count"
    VALIDATOR_SET = "validator_set"
    COMMIT_QC = "commit_qc"
    JUSTIFY_QC = "justify_qc"
    STATE_LINK = "state_link"
    STATE_ROOT = "state_root"
    STATE_MISSING = "state_missing"


@dataclass(frozen=True, slots=True)
class VerifyProblem:
    height: int
    reason: VerifyReason
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"height": self.height, "reason": self.reason.value, "detail": self.detail}


@dataclass(slots=True)
class VerifyReport:
    checked: int = 0
    first_height: int | None = None
    last_height: int | None = None
    state_checked: int = 0
    state_skipped: int = 0
    problems: list[VerifyProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_height(self) -> int | None:
        return min((problem.height for problem in self.problems), default=None)

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "checked": self.checked, "first_height": self.first_height,
                "last_height": self.last_height, "first_bad_height": self.first_bad_height,
                "state_checked": self.state_checked, "state_skipped": self.state_skipped,
                "problems": [problem.as_dict() for problem in self.problems]}


class BlockChecker:
    """Checks blocks in ascending height order; tracks epochs across reconfigurations.

    ``check`` returns the problems of one block given the previous block of the chain (None
    for the first block checked). Epoch 0's root is the block whose commit QC is epoch 0's
    view-0 QC (the genesis block); each reconfiguration block is the next epoch's root.
    """

    def __init__(self, *, chain_id: str, genesis_set: ValidatorSet,
                 verifier: Verifier | None = None) -> None:
        self._certificates = CertificateVerifier(verifier=verifier or Ed25519Verifier(),
                                                 domains=Domains.for_chain(chain_id))
        self._sets: dict[int, ValidatorSet] = {genesis_set.epoch: genesis_set}
        self._roots: dict[int, tuple[bytes, int]] = {}

    def learn_epoch_root(self, block: Block) -> None:
        """Record what an earlier block (outside the checked range) says about epochs."""
        if block.next_validators is not None:
            next_epoch = block.epoch + 1
            try:
                self._sets[next_epoch] = ValidatorSet(next_epoch, block.next_validators)
            except ValidatorSetError:
                return
            self._roots[next_epoch] = (block.block_id, block.height)

    def _epoch(self, epoch: int) -> EpochState | None:
        validator_set = self._sets.get(epoch)
        if validator_set is None:
            return None
        root_id, root_height = self._roots.get(epoch, (b"", -1))
        return EpochState(epoch=epoch, validator_set=validator_set, root_id=root_id,
                          root_height=root_height)

    def check(self, block: Block, qc: QuorumCert, previous: Block | None) -> list[VerifyProblem]:
        problems = [VerifyProblem(block.height, reason, detail)
                    for reason, detail in self._links(block, previous)]
        problems.extend(VerifyProblem(block.height, reason, detail)
                        for reason, detail in self._certificates_of(block, qc))
        if not problems:
            self.learn_epoch_root(block)
        return problems

    @staticmethod
    def _links(block: Block, previous: Block | None) -> list[tuple[VerifyReason, str]]:
        found = []
        if previous is not None:
            if block.height != previous.height + 1:
                found.append((VerifyReason.HEIGHT_GAP, f"follows height {previous.height}"))
            elif block.parent_id != previous.block_id:
                found.append((VerifyReason.PARENT_LINK,
                              f"parent {block.parent_id.hex()[:16]} is not block "
                              f"{previous.height} ({previous.block_id.hex()[:16]})"))
        transactions = decode_payload(block.payload)
        if transactions is not None and compute_tx_root(transactions) != block.tx_root:
            found.append((VerifyReason.TX_ROOT, "tx root does not match the transactions"))
        return found

    def _certificates_of(self, block: Block, qc: QuorumCert) -> list[tuple[VerifyReason, str]]:
        height = block.height
        if (block.epoch == 0 and 0 not in self._roots and qc.view == 0
                and not qc.signatures):
            self._roots[0] = (block.block_id, height)  # the genesis block roots epoch 0
        epoch = self._epoch(block.epoch)
        if epoch is None:
            return [(VerifyReason.VALIDATOR_SET, f"no validator set for epoch {block.epoch}")]
        found = []
        if block.validator_set_hash != epoch.validator_set.digest():
            found.append((VerifyReason.VALIDATOR_SET, "validator set hash is not the epoch's"))
        if qc.block_id != block.block_id or qc.height != height or qc.epoch != block.epoch:
            found.append((VerifyReason.COMMIT_QC, "the commit QC certifies another block"))
        else:
            found.extend(self._verify(VerifyReason.COMMIT_QC, qc, epoch))
        if height != epoch.root_height:  # a root block's justification is the previous epoch's
            justify = block.qc
            if justify.block_id != block.parent_id or justify.height != height - 1:
                found.append((VerifyReason.JUSTIFY_QC,
                              "the block's QC does not certify its parent"))
            else:
                found.extend(self._verify(VerifyReason.JUSTIFY_QC, justify, epoch))
        return found

    def _verify(self, reason: VerifyReason, qc: QuorumCert,
                epoch: EpochState) -> list[tuple[VerifyReason, str]]:
        try:
            self._certificates.verify_qc(qc, epoch)
        except CertificateError as error:
            return [(reason, str(error))]
        return []


def recompute_state_root(reader: NodeReader, *, version: int, base_version: int | None,
                         deltas: Mapping[bytes, bytes | None]) -> bytes:
    """The root of ``version`` from the base version's tree and the version's deltas (read
    only: the batch is computed, never written)."""
    root, _ = SparseMerkleTree(reader).apply(base_version, dict(deltas), version)
    return root


def _load_row(row: BlockRow, using: str) -> tuple[Block, QuorumCert]:
    encoded = (TransactionRow.objects.using(using).filter(block_height=row.height)
               .order_by("idx").values_list("payload", flat=True))
    return rebuild_block(row, [bytes(tx) for tx in encoded]), decode_qc(row.qc)


def _tx_count(height: int, using: str) -> int:
    return TransactionRow.objects.using(using).filter(block_height=height).count()


def verify_ledger(
    *,
    chain_id: str,
    genesis_set: ValidatorSet,
    from_height: int | None = None,
    to_height: int | None = None,
    using: str = "default",
    progress: Callable[[int], object] | None = None,
    stop_at_first: bool = False,
) -> VerifyReport:
    """Verify stored blocks ``from_height..to_height`` (inclusive; default: all)."""
    rows = BlockRow.objects.using(using).order_by("height")
    checker = BlockChecker(chain_id=chain_id, genesis_set=genesis_set)
    start = from_height if from_height is not None else 0
    for earlier in rows.filter(height__lt=start).filter(next_validators__isnull=False):
        checker.learn_epoch_root(_load_row(earlier, using)[0])
    genesis_row = rows.filter(epoch=0).first()
    if genesis_row is not None and genesis_row.height < start:
        checker.check(*_load_row(genesis_row, using), None)  # learns epoch 0's root
    selected = rows.filter(height__gte=start)
    if to_height is not None:
        selected = selected.filter(height__lte=to_height)
    previous_row = rows.filter(height=start - 1).first()
    previous = _load_row(previous_row, using)[0] if previous_row is not None else None
    previous_result = bytes(previous_row.result_state_root) if previous_row is not None else None
    horizon = min_retained_version(using=using)
    store = DatabaseNodeStore(using=using)
    report = VerifyReport()
    for row in selected.iterator(chunk_size=200):
        height = row.height
        report.first_height = height if report.first_height is None else report.first_height
        report.last_height = height
        report.checked += 1
        try:
            block, qc = _load_row(row, using)
        except (MessageError, CodecError, TypeError, ValueError) as error:
            report.problems.append(VerifyProblem(height, VerifyReason.MALFORMED_ROW,
                                                 str(error)))
            previous, previous_result = None, bytes(row.result_state_root)
            if stop_at_first:
                break
            continue
        problems = []
        if block.block_id != bytes(row.block_hash):
            problems.append(VerifyProblem(height, VerifyReason.BLOCK_HASH,
                                          f"recomputed {block.block_id.hex()[:16]}, stored "
                                          f"{bytes(row.block_hash).hex()[:16]}"))
        problems.extend(checker.check(block, qc, previous))
        if row.payload is None and _tx_count(height, using) != row.tx_count:
            problems.append(VerifyProblem(height, VerifyReason.TX_COUNT,
                                          "transaction rows do not match tx_count"))
        problems.extend(_check_state(row=row, block=block, previous_result=previous_result,
                                     horizon=horizon, store=store, report=report,
                                     using=using))
        report.problems.extend(problems)
        previous, previous_result = block, bytes(row.result_state_root)
        if progress is not None:
            progress(1)
        if problems and stop_at_first:
            break
    return report


def _check_state(*, row: BlockRow, block: Block, previous_result: bytes | None, horizon: int,
                 store: DatabaseNodeStore, report: VerifyReport,
                 using: str) -> list[VerifyProblem]:
    height = row.height
    result = bytes(row.result_state_root)
    problems = []
    if previous_result is not None and block.state_root != previous_result:
        problems.append(VerifyProblem(height, VerifyReason.STATE_LINK,
                                      "header state root is not the parent's result root"))
    versions = StateVersion.objects.using(using)
    if height < horizon:
        report.state_skipped += 1  # pruned: the nodes to recompute from are gone
        return problems
    stored_root = versions.filter(version=height).values_list("root_hash", flat=True).first()
    if stored_root is None:
        return [*problems, VerifyProblem(height, VerifyReason.STATE_MISSING,
                                         "no state version for this height")]
    if bytes(stored_root) != result:
        problems.append(VerifyProblem(height, VerifyReason.STATE_ROOT,
                                      "state_versions root differs from the block's"))
    if versions.filter(version=height - 1).exists():
        base: int | None = height - 1
        deltas = {bytes(key): None if value is None else bytes(value) for key, value in
                  StateValue.objects.using(using).filter(version=height)
                  .values_list("key_hash", "value")}
    elif not versions.filter(version__lt=height).exists():
        # The lowest version kept (genesis, or the prune horizon): rebuild it from the full
        # materialized state, which pruning keeps complete at the horizon.
        base, deltas = None, dict(iter_state(height, using=using))
    else:
        return [*problems, VerifyProblem(height, VerifyReason.STATE_MISSING,
                                         "the parent state version is missing")]
    try:
        recomputed = recompute_state_root(store, version=height, base_version=base,
                                          deltas=deltas)
        tree_root = SparseMerkleTree(store).root_hash(height)
    except (MerkleError, CodecError) as error:
        return [*problems, VerifyProblem(height, VerifyReason.STATE_ROOT, str(error))]
    report.state_checked += 1
    if recomputed != result:
        problems.append(VerifyProblem(height, VerifyReason.STATE_ROOT,
                                      f"recomputed {recomputed.hex()[:16]}, stored "
                                      f"{result.hex()[:16]}"))
    elif tree_root != result:
        problems.append(VerifyProblem(height, VerifyReason.STATE_ROOT,
                                      "the stored tree's root node differs from the block's"))
    return problems
