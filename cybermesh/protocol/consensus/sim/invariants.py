"""Invariants checked after every step of a simulation.

* agreement: no two honest nodes commit different blocks at one height;
* committed prefixes only grow: each commit extends the node's own last committed block;
* every committed block carries a valid QC for itself, and every commit a valid 2-chain proof;
* no honest node releases two different votes in one (epoch, view). A vote is released when
  it leaves the signer's memory: persisted as the node's last vote (so a leader's vote for
  itself, which never crosses the network, counts) or handed to the network. A signature that
  a crash cut off before either never existed for anyone else, so a restarted node may sign
  that view again (found by ``make sim``: equivocate n=7 seed 623 flagged exactly that);
* evidence only ever accuses a faulty validator, and verifies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cybermesh.protocol.consensus.core import DEFAULT_LEADER_WINDOW
from cybermesh.protocol.consensus.errors import CertificateError
from cybermesh.protocol.consensus.events import CommitBlocks
from cybermesh.protocol.consensus.evidence import verify_evidence
from cybermesh.protocol.consensus.leader import history_depth
from cybermesh.protocol.consensus.messages import Block, Evidence, QuorumCert, Vote
from cybermesh.protocol.consensus.quorum import CertificateVerifier, EpochState
from cybermesh.protocol.consensus.signatures import Domains, Verifier
from cybermesh.protocol.crypto.signing import Domain


class InvariantViolation(AssertionError):
    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}")


@dataclass(slots=True)
class NodeLedger:
    """What one instance has durably committed (survives crashes)."""

    epoch: EpochState
    tip: Block
    tip_qc: QuorumCert | None = None
    commits: list[tuple[int, int]] = field(default_factory=list)  # (time, height)
    # The last committed blocks (the runtime reads them from its ledger on a restart, to
    # rebuild the leader schedule's memory of failed leaders).
    recent: list[Block] = field(default_factory=list)

    def remember(self, blocks: list[Block],
                 keep: int = history_depth(DEFAULT_LEADER_WINDOW)) -> None:
        self.recent.extend(blocks)
        del self.recent[:-keep]


class InvariantChecker:
    def __init__(self, *, honest: frozenset[str], genesis_epoch: EpochState,
                 verifier: Verifier, domains: Domains) -> None:
        self.honest = honest
        self.domains = domains
        self._verifier = verifier
        self._certs = CertificateVerifier(verifier=verifier, domains=domains)
        self.epochs: dict[int, EpochState] = {genesis_epoch.epoch: genesis_epoch}
        self.committed: dict[int, bytes] = {}
        self.votes: dict[tuple[str, int, int], bytes] = {}
        self.votes_signed = 0
        self.evidence_seen = 0
        self.violations: list[InvariantViolation] = []

    def fail(self, kind: str, detail: str) -> None:
        violation = InvariantViolation(kind, detail)
        self.violations.append(violation)
        raise violation

    def on_sign(self, validator_id: str, domain: Domain, message: bytes) -> None:
        """Every signature an instance makes (the signers' observer): counted, not judged."""
        if domain == self.domains.vote and validator_id in self.honest:
            self.votes_signed += 1

    def on_vote_released(self, validator_id: str, vote: Vote) -> None:
        """An honest vote left its signer's memory (persisted or sent): one per view."""
        key = (validator_id, vote.epoch, vote.view)
        earlier = self.votes.get(key)
        if earlier is None:
            self.votes[key] = vote.block_id
        elif earlier != vote.block_id:
            self.fail("honest-double-vote", f"{validator_id} released votes for two blocks in "
                      f"epoch {vote.epoch} view {vote.view}")

    def on_commit(self, who: str, ledger: NodeLedger, action: CommitBlocks, now: int) -> None:
        epoch = self.epochs.get(action.blocks[0].block.epoch)
        if epoch is None:
            self.fail("unknown-epoch", f"{who} committed in an epoch nobody entered")
            return
        previous = ledger.tip
        for committed in action.blocks:
            block, qc = committed.block, committed.qc
            if block.parent_id != previous.block_id or block.height != previous.height + 1:
                self.fail("prefix-not-extended",
                          f"{who} committed height {block.height} not on its tip "
                          f"{previous.height}")
            if qc.block_id != block.block_id or qc.view != block.view:
                self.fail("bad-certificate", f"{who}: QC does not certify block {block.height}")
            try:
                self._certs.verify_qc(qc, self.epochs[block.epoch])
            except (CertificateError, KeyError) as error:
                self.fail("bad-certificate", f"{who}: height {block.height}: {error}")
            known = self.committed.setdefault(block.height, block.block_id)
            if known != block.block_id:
                self.fail("agreement", f"{who} committed {block.block_id.hex()[:12]} at height "
                          f"{block.height}, another honest node {known.hex()[:12]}")
            previous = block
        proof_block, proof_qc = action.proof_block, action.proof_qc
        if proof_qc.block_id != proof_block.block_id \
                or proof_block.view != proof_block.qc.view + 1:
            self.fail("bad-commit-proof", f"{who}: proof is not a direct 2-chain")
        try:
            self._certs.verify_qc(proof_qc, epoch)
        except CertificateError as error:
            self.fail("bad-commit-proof", f"{who}: {error}")
        ledger.tip = previous
        ledger.tip_qc = action.blocks[-1].qc
        ledger.remember([committed.block for committed in action.blocks])
        ledger.commits.append((now, previous.height))

    def on_epoch(self, epoch: EpochState) -> None:
        known = self.epochs.setdefault(epoch.epoch, epoch)
        if known.root_id != epoch.root_id or known.validator_set != epoch.validator_set:
            self.fail("agreement", f"two different epoch {epoch.epoch} starts")

    def on_evidence(self, who: str, evidence: Evidence) -> None:
        self.evidence_seen += 1
        if evidence.validator_id in self.honest:
            self.fail("honest-accused", f"{who} reported evidence against honest "
                      f"{evidence.validator_id}")
        epoch = self.epochs.get(evidence.epoch)
        validator = None if epoch is None else epoch.validator_set.get(evidence.validator_id)
        if validator is None or not verify_evidence(evidence, validator.public_key,
                                                    self.domains, self._verifier):
            self.fail("bad-evidence", f"{who} reported evidence that does not verify")
