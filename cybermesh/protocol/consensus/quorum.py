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
from cybermesh.protocol.validator_set import Validator, ValidatorSet

_R = CertificateErrorReason
VERIFIED_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class EpochState:
    """An epoch: its validator set and its root (the committed block the epoch grows from)."""

    epoch: int
    validator_set: ValidatorSet
    root_id: bytes
    root_height: int


_THRESHOLDS: dict[int, tuple[ValidatorSet, int, int]] = {}


def thresholds(validator_set: ValidatorSet) -> tuple[int, int]:
    """(quorum power, max faulty power) of ``validator_set``, computed once per set object.

    ``ValidatorSet.quorum`` sums every power on each call; certificates and aggregators ask
    for every message. Keyed by identity (the set is kept alive in the entry, so an id is
    never reused while cached).
    """
    entry = _THRESHOLDS.get(id(validator_set))
    if entry is None or entry[0] is not validator_set:
        math = validator_set.quorum
        if len(_THRESHOLDS) >= 64:
            _THRESHOLDS.clear()
        entry = (validator_set, math.quorum_power, math.max_faulty_power)
        _THRESHOLDS[id(validator_set)] = entry
    return entry[1], entry[2]


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

    def _check_signers(self, signers: tuple[str, ...], epoch: EpochState,
                       what: str) -> list[Validator]:
        """The signers' validators, if they are distinct members holding a quorum."""
        by_id = epoch.validator_set._by_id
        members = []
        power = 0
        for signer in signers:
            validator = by_id.get(signer)
            if validator is None:
                raise CertificateError(_R.UNKNOWN_SIGNER, f"{what}: {signer!r} not in epoch "
                                       f"{epoch.epoch}")
            members.append(validator)
            power += validator.power
        if len(set(signers)) != len(signers):
            raise CertificateError(_R.DUPLICATE_SIGNER, f"{what}: a signer appears twice")
        quorum_power, _ = thresholds(epoch.validator_set)
        if power < quorum_power:
            raise CertificateError(_R.NO_QUORUM, f"{what}: {power} < {quorum_power} power")
        return members

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
        members = self._check_signers(qc.signers, epoch, "QC")
        statement = qc.statement()
        vote_domain = self._domains.vote
        self._verify([(member.public_key, vote_domain, statement, sig)
                      for member, (_, sig) in zip(members, qc.signatures, strict=True)], "QC")
        self._remember(qc)

    def verify_tc(self, tc: TimeoutCert, epoch: EpochState) -> None:
        """Raise :class:`CertificateError` unless ``tc`` is valid in ``epoch``."""
        if tc.epoch != epoch.epoch:
            raise CertificateError(_R.WRONG_EPOCH, f"TC epoch {tc.epoch} != {epoch.epoch}")
        if tc in self._verified:
            return
        members = self._check_signers(tc.signers, epoch, "TC")
        domain = self._domains.timeout
        self._verify([(member.public_key, domain, timeout_statement(tc.epoch, tc.view, qv), sig)
                      for member, (_, qv, sig) in zip(members, tc.signatures, strict=True)],
                     "TC")
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
    power: int = 0


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
        if vote.voter not in entry.signatures:
            validator = validator_set.get(vote.voter)
            if validator is None:
                return None  # not a member: never counts
            entry.signatures[vote.voter] = vote.signature
            entry.power += validator.power
        if entry.power < thresholds(validator_set)[0]:
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
        power = validator_set.power_of(entries)
        quorum_power, max_faulty_power = thresholds(validator_set)
        one_honest = power > max_faulty_power
        if timeout.view in self._done or power < quorum_power:
            return one_honest, None
        self._done.add(timeout.view)
        tc = TimeoutCert(epoch=timeout.epoch, view=timeout.view,
                         signatures=tuple(sorted((s, qv, sig)
                                                 for s, (qv, sig) in entries.items())))
        return one_honest, tc

    def prune_below(self, view: int) -> None:
        self._by_view = {k: v for k, v in self._by_view.items() if k >= view}
        self._done = {v for v in self._done if v >= view}
