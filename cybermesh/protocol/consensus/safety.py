"""SafetyRules: the only code that signs votes and timeouts, and what it must remember.

These are the 2-chain HotStuff rules of Jolteon / DiemBFT v4 as implemented by Aptos's
``safety_rules_2chain``. Each check is a member of :class:`Rule`; tests may construct
``SafetyRules(..., disabled_rules=frozenset({Rule.X}))`` to prove that the simulator notices
when one of them is missing. Production code never passes ``disabled_rules``.

The caller (the core) has already verified the signatures of the QC and TC it hands in; the
checks here are the view arithmetic that makes signing safe. Every method that signs returns
the new :class:`SafetyData`, which the runtime must make durable before the signed message
leaves the node (rule ``PERSIST_BEFORE_SEND``): after a crash the node restarts from what was
persisted, so it can never sign a second, different vote for a view it already voted in.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, replace

from cybermesh.protocol.codec import CodecError, DecodeLimits, decode
from cybermesh.protocol.consensus import canonical
from cybermesh.protocol.consensus.errors import SafetyRuleViolation
from cybermesh.protocol.consensus.messages import Block, QuorumCert, Timeout, TimeoutCert, Vote
from cybermesh.protocol.consensus.signatures import Domains, Signer
from cybermesh.protocol.consensus.wire import parse_vote_body


class Rule(enum.Enum):
    """The individually switchable safety checks (all enabled in production)."""

    EPOCH_MATCHES = "epoch_matches"
    VOTE_VIEW_MONOTONIC = "vote_view_monotonic"
    VOTE_EXTENDS_QC_OR_TC = "vote_extends_qc_or_tc"
    VOTE_TC_EXTENDS_HIGHEST_QC = "vote_tc_extends_highest_qc"
    TIMEOUT_FOLLOWS_CERTIFICATE = "timeout_follows_certificate"
    TIMEOUT_QC_AT_LEAST_LOCK = "timeout_qc_at_least_lock"
    TIMEOUT_NOT_BELOW_LAST_VOTE = "timeout_not_below_last_vote"
    TIMEOUT_RAISES_LAST_VOTED_VIEW = "timeout_raises_last_voted_view"
    PERSIST_BEFORE_SEND = "persist_before_send"
    PROPOSAL_VIEW_MONOTONIC = "proposal_view_monotonic"


@dataclass(frozen=True, slots=True)
class SafetyData:
    """What a validator must never forget (persisted before any signature leaves the node).

    ``highest_qc_view`` is the lock: the highest QC view this node has voted on top of or
    timed out with. A timeout must carry a QC at least this high.
    """

    epoch: int
    last_voted_view: int = 0
    last_vote: Vote | None = None
    highest_qc_view: int = 0
    highest_timeout_view: int = 0
    last_proposed_view: int = 0

    def to_bytes(self) -> bytes:
        vote = None if self.last_vote is None else self.last_vote.to_cbor()
        return canonical.encode([1, self.epoch, self.last_voted_view, vote, self.highest_qc_view,
                       self.highest_timeout_view, self.last_proposed_view])

    @classmethod
    def from_bytes(cls, data: bytes) -> SafetyData:
        """Decode persisted safety data; raises ``ValueError`` on anything malformed."""
        try:
            value = decode(data, DecodeLimits(max_bytes=4096, max_depth=4, max_items=64))
        except CodecError as error:
            raise ValueError(f"safety data: {error}") from None
        if not (isinstance(value, list) and len(value) == 7 and value[0] == 1):
            raise ValueError("safety data: unknown layout")
        _, epoch, last_voted, vote, qc_view, timeout_view, proposed_view = value
        last_vote = None
        if vote is not None:
            last_vote = parse_vote_body(vote)
        for number in (epoch, last_voted, qc_view, timeout_view, proposed_view):
            if type(number) is not int or number < 0:
                raise ValueError("safety data: counters must be non-negative integers")
        return cls(epoch=epoch, last_voted_view=last_voted,  # type: ignore[arg-type]
                   last_vote=last_vote, highest_qc_view=qc_view,  # type: ignore[arg-type]
                   highest_timeout_view=timeout_view,  # type: ignore[arg-type]
                   last_proposed_view=proposed_view)  # type: ignore[arg-type]


class SafetyRules:
    """Signs votes and timeouts for one validator, refusing anything the rules forbid."""

    def __init__(self, *, validator_id: str, signer: Signer, domains: Domains,
                 safety_data: SafetyData,
                 disabled_rules: frozenset[Rule] = frozenset()) -> None:
        self._validator_id = validator_id
        self._signer = signer
        self._domains = domains
        self._data = safety_data
        self._disabled = disabled_rules

    @property
    def data(self) -> SafetyData:
        return self._data

    def enforces(self, rule: Rule) -> bool:
        return not self._disabled or rule not in self._disabled

    def start_epoch(self, epoch: int) -> SafetyData:
        """Reset for a new epoch: views restart, so every counter starts again from zero."""
        if epoch > self._data.epoch:
            self._data = SafetyData(epoch=epoch)
        return self._data

    def _check(self, rule: Rule, ok: bool, detail: Callable[[], str]) -> None:
        # ``detail`` is only formatted for a refusal: checks pass on every vote and timeout.
        if not ok and rule not in self._disabled:
            raise SafetyRuleViolation(rule, detail())

    def make_vote(self, block: Block, tc: TimeoutCert | None) -> tuple[Vote, SafetyData | None]:
        """Sign a vote for ``block`` (entered through ``tc`` if its QC is not the previous view).

        Returns the vote and the safety data to persist first, or ``None`` for the data when the
        vote is the stored one for this view (a repeated request never produces a second
        signature). Raises :class:`SafetyRuleViolation` when voting would be unsafe.
        """
        data = self._data
        self._check(Rule.EPOCH_MATCHES, block.epoch == data.epoch,
                    lambda: f"block epoch {block.epoch} != {data.epoch}")
        stored = data.last_vote
        if stored is not None and stored.view == block.view and stored.epoch == block.epoch \
                and stored.block_id == block.block_id:
            return stored, None
        # Voting rule 1: one vote per view, views only go up (also covers 'no vote after a
        # timeout in the same view', because a timeout raises last_voted_view).
        self._check(Rule.VOTE_VIEW_MONOTONIC, block.view > data.last_voted_view,
                    lambda: f"view {block.view} <= last voted view {data.last_voted_view}")
        qc_view = block.qc.view
        extends_previous = block.view == qc_view + 1
        tc_ok = False
        if tc is not None and block.view == tc.view + 1:
            tc_ok = (qc_view >= tc.highest_qc_view
                     or not self.enforces(Rule.VOTE_TC_EXTENDS_HIGHEST_QC))
        # Voting rule 2: extend the previous view's QC, or skip a failed view through a TC
        # while extending a QC at least as high as any of the TC's 2f+1 timeouts reported.
        self._check(Rule.VOTE_EXTENDS_QC_OR_TC, extends_previous or tc_ok,
                    lambda: f"view {block.view}: QC view {qc_view}, TC "
                    f"{None if tc is None else (tc.view, tc.highest_qc_view)}")
        vote = Vote(epoch=block.epoch, view=block.view, block_id=block.block_id,
                    height=block.height, voter=self._validator_id,
                    signature=self._signer.sign(self._domains.vote, block.statement()))
        self._data = SafetyData(epoch=data.epoch,
                                last_voted_view=max(data.last_voted_view, block.view),
                                last_vote=vote, highest_qc_view=max(data.highest_qc_view, qc_view),
                                highest_timeout_view=data.highest_timeout_view,
                                last_proposed_view=data.last_proposed_view)
        return vote, self._data

    def sign_proposal(self, block: Block) -> tuple[bytes, SafetyData]:
        """Sign ``block`` as its proposer: one proposal per view, even across a crash.

        A leader that crashed after broadcasting a proposal and restarted would otherwise build
        a second block for the same view (another timestamp) and equivocate without any fault
        of its own; persisting the view closes that hole.
        """
        data = self._data
        self._check(Rule.PROPOSAL_VIEW_MONOTONIC, block.view > data.last_proposed_view,
                    lambda: f"view {block.view} <= last proposed view {data.last_proposed_view}")
        signature = self._signer.sign(self._domains.proposal, block.statement())
        self._data = SafetyData(epoch=data.epoch, last_voted_view=data.last_voted_view,
                                last_vote=data.last_vote, highest_qc_view=data.highest_qc_view,
                                highest_timeout_view=data.highest_timeout_view,
                                last_proposed_view=max(data.last_proposed_view, block.view))
        return signature, self._data

    def make_timeout(self, view: int, high_qc: QuorumCert,
                     tc: TimeoutCert | None) -> tuple[Timeout, SafetyData]:
        """Sign a timeout for ``view`` carrying ``high_qc``; returns it and the data to persist.

        A timeout in a view this node already voted in is allowed (its vote is already counted
        and cannot be changed); a vote after a timeout in the same view is not, which the raise
        of ``last_voted_view`` below guarantees.
        """
        data = self._data
        self._check(Rule.EPOCH_MATCHES, high_qc.epoch == data.epoch,
                    lambda: f"QC epoch {high_qc.epoch} != {data.epoch}")
        tc_view = tc.view if tc is not None else 0
        self._check(Rule.TIMEOUT_FOLLOWS_CERTIFICATE,
                    view in (high_qc.view + 1, tc_view + 1),
                    lambda: f"view {view} follows neither QC {high_qc.view} nor TC {tc_view}")
        self._check(Rule.TIMEOUT_QC_AT_LEAST_LOCK, high_qc.view >= data.highest_qc_view,
                    lambda: f"QC view {high_qc.view} below lock {data.highest_qc_view}")
        self._check(Rule.TIMEOUT_NOT_BELOW_LAST_VOTE, view >= data.last_voted_view,
                    lambda: f"view {view} below last voted view {data.last_voted_view}")
        last_voted = data.last_voted_view
        if self.enforces(Rule.TIMEOUT_RAISES_LAST_VOTED_VIEW):
            last_voted = max(last_voted, view)
        timeout = Timeout(epoch=data.epoch, view=view, high_qc=high_qc,
                          sender=self._validator_id, signature=b"")
        timeout = replace(timeout, signature=self._signer.sign(self._domains.timeout,
                                                               timeout.statement()))
        self._data = replace(data, last_voted_view=last_voted,
                             highest_qc_view=max(data.highest_qc_view, high_qc.view),
                             highest_timeout_view=max(data.highest_timeout_view, view))
        return timeout, self._data
