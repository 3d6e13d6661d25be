"""Quorum and timeout certificates: verification, and aggregation of votes and timeouts.

A certificate is valid when its signers are distinct members of the epoch's validator set
holding at least the quorum power (n - f, i.e. 2f + 1 for n = 3f + 1), and every signature is
valid for the certificate's statement. Two quorums intersect in more than f power, hence in an
honest validator: this is what lets one certificate exclude a conflicting one.

Verified certificates are remembered (bounded), because the same QC arrives many times (inside
proposals, timeouts, sync responses) and signature checks dominate the cost. The memory is
keyed by the certificate's value (frozen dataclasses hash and compare by every field, which is
exactly what the canonical encoding and its digest depend on), so a repeated certificate costs
one dictionary lookup instead of a re-encoding and a SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cybermesh.protocol.consensus.errors import CertificateError, CertificateErrorReason
from cybermesh.protocol.consensus.messages import (
    QuorumCert,
    Timeout,
    TimeoutCert,
    Vote,
    timeout_statement,
)
from cybermesh.protocol.consensus.signatures import Domains, Verifier, VerifyItem
from cybermesh.protocol.validator_set import ValidatorSet

_R = CertificateErrorReason
VERIFIED_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class EpochState:
    """An epoch: its validator set and its root (the committed block the epoch grows from)."""

    epoch: int
    validator_set: ValidatorSet
    root_id: bytes
    root_height: int


class CertificateVerifier:
    """Verifies QCs, TCs and single signed messages against an epoch's validator set."""

    def __init__(self, *, verifier: Verifier, domains: Domains) -> None:
        self._verifier = verifier
        self._domains = domains
        self._verified: dict[QuorumCert | TimeoutCert, None] = {}
        self.signatures_checked = 0

    @property
    def domains(self) -> Domains:
        return self._domains

    def _remember(self, certificate: QuorumCert | TimeoutCert) -> None:
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[certificate] = None

    def _check_signers(self, signers: tuple[str, ...], epoch: EpochState, what: str) -> None:
        validator_set = epoch.validator_set
        for signer in signers:
            if signer not in validator_set:
                raise CertificateError(_R.UNKNOWN_SIGNER, f"{what}: {signer!r} not in epoch "
                                       f"{epoch.epoch}")
        if len(set(signers)) != len(signers):
            raise CertificateError(_R.DUPLICATE_SIGNER, f"{what}: a signer appears twice")
        if not validator_set.has_quorum(signers):
            raise CertificateError(_R.NO_QUORUM, f"{what}: {validator_set.power_of(signers)} < "
                                   f"{validator_set.quorum.quorum_power} power")

    def _verify(self, items: list[VerifyItem], what: str) -> None:
        self.signatures_checked += len(items)
        failed = self._verifier.verify_batch(items)
        if failed:
            raise CertificateError(_R.BAD_SIGNATURE, f"{what}: {len(failed)} bad signature(s)")

    def verify_qc(self, qc: QuorumCert, epoch: EpochState) -> None:
        """Raise :class:`CertificateError` unless ``qc`` is valid in ``epoch``."""
        if qc.epoch != epoch.epoch:
            raise CertificateError(_R.WRONG_EPOCH, f"QC epoch {qc.epoch} != {epoch.epoch}")
        if qc.view == 0:
            # The genesis QC: unsigned, and valid only for the epoch's root block.
            if qc.signatures or qc.block_id != epoch.root_id or qc.height != epoch.root_height:
                raise CertificateError(_R.BAD_GENESIS, "view-0 QC must be the epoch's root QC")
            return
        if qc in self._verified:
            return
        self._check_signers(qc.signers, epoch, "QC")
        statement = qc.statement()
        keys = epoch.validator_set
        vote_domain = self._domains.vote
        self._verify([(keys._by_id[s].public_key, vote_domain, statement, sig)
                      for s, sig in qc.signatures], "QC")
        self._remember(qc)

    def verify_tc(self, tc: TimeoutCert, epoch: EpochState) -> None:
        """Raise :class:`CertificateError` unless ``tc`` is valid in ``epoch``."""
        if tc.epoch != epoch.epoch:
            raise CertificateError(_R.WRONG_EPOCH, f"TC epoch {tc.epoch} != {epoch.epoch}")
        if tc in self._verified:
            return
        self._check_signers(tc.signers, epoch, "TC")
        keys = epoch.validator_set
        domain = self._domains.timeout
        self._verify([(keys._by_id[s].public_key, domain, timeout_statement(tc.epoch, tc.view, qv),
                       sig) for s, qv, sig in tc.signatures], "TC")
        self._remember(tc)

    def verify_signed(self, signer: str, domain_kind: str, statement: bytes, signature: bytes,
                      epoch: EpochState) -> bool:
        """True when ``signer`` is in the epoch and signed ``statement`` in that domain."""
        validator = epoch.validator_set.get(signer)
        if validator is None:
            return False
        domain = getattr(self._domains, domain_kind)
        self.signatures_checked += 1
        return not self._verifier.verify_batch([(validator.public_key, domain, statement,
                                                 signature)])


@dataclass(slots=True)
class _BlockVotes:
    signatures: dict[str, bytes] = field(default_factory=dict)
    height: int = 0


class VoteAggregator:
    """Collects verified votes per (view, block) until their power reaches a quorum.

    Only verified votes enter (the core checks each signature first), duplicates are ignored,
    and a second vote by one voter for another block in the same view is returned as the
    earlier vote so the caller can build equivocation evidence.
    """

    def __init__(self) -> None:
        self._by_block: dict[tuple[int, bytes], _BlockVotes] = {}
        self._first_vote: dict[tuple[int, str], Vote] = {}
        self._done: set[int] = set()

    def seen(self, vote: Vote) -> Vote | None:
        """The earlier vote of this voter in this view, if any."""
        return self._first_vote.get((vote.view, vote.voter))

    def add(self, vote: Vote, validator_set: ValidatorSet) -> QuorumCert | None:
        """Add a verified vote; return a new QC when this vote completes a quorum."""
        key = (vote.view, vote.voter)
        if key not in self._first_vote:
            self._first_vote[key] = vote
        elif self._first_vote[key].block_id != vote.block_id:
            return None  # an equivocating voter counts once, for its first block
        if vote.view in self._done:
            return None
        entry = self._by_block.setdefault((vote.view, vote.block_id), _BlockVotes())
        entry.height = vote.height
        entry.signatures.setdefault(vote.voter, vote.signature)
        if not validator_set.has_quorum(entry.signatures):
            return None
        self._done.add(vote.view)
        return QuorumCert(epoch=vote.epoch, view=vote.view, block_id=vote.block_id,
                          height=entry.height,
                          signatures=tuple(sorted(entry.signatures.items())))

    def prune_below(self, view: int) -> None:
        self._by_block = {k: v for k, v in self._by_block.items() if k[0] >= view}
        self._first_vote = {k: v for k, v in self._first_vote.items() if k[0] >= view}
        self._done = {v for v in self._done if v >= view}


class TimeoutAggregator:
    """Collects verified timeouts per view; reports f+1 power (join) and 2f+1 power (TC)."""

    def __init__(self) -> None:
        self._by_view: dict[int, dict[str, tuple[int, bytes]]] = {}
        self._done: set[int] = set()

    def add(self, timeout: Timeout,
            validator_set: ValidatorSet) -> tuple[bool, TimeoutCert | None]:
        """Add a verified timeout; return (more than f power timed out, new TC or None)."""
        entries = self._by_view.setdefault(timeout.view, {})
        entries.setdefault(timeout.sender, (timeout.high_qc.view, timeout.signature))
        one_honest = validator_set.has_one_honest(entries)
        if timeout.view in self._done or not validator_set.has_quorum(entries):
            return one_honest, None
        self._done.add(timeout.view)
        tc = TimeoutCert(epoch=timeout.epoch, view=timeout.view,
                         signatures=tuple(sorted((s, qv, sig)
                                                 for s, (qv, sig) in entries.items())))
        return one_honest, tc

    def prune_below(self, view: int) -> None:
        self._by_view = {k: v for k, v in self._by_view.items() if k >= view}
        self._done = {v for v in self._done if v >= view}
