"""Leader elections broken on purpose, to show the gate's tests can fail."""

from __future__ import annotations

from cybermesh.protocol.consensus.leader import ReputationLeaderElection


class NoSkipEvidenceElection(ReputationLeaderElection):
    """A skipped slot is no evidence: a replaying node cannot see that a crashed validator is
    still out once its real failure is older than the blocks it replays."""

    def _still_out(self, block):
        return None


class ForgetfulElection(NoSkipEvidenceElection):
    """A failure counts only inside its window (the rule before the fix): a crashed validator
    is let back in as soon as its last failure is ``window`` views old, fails again, and so on.
    Neither silence nor a skipped slot keeps it out.
    """

    def _candidate_rank(self, validator_id, evidence, limit):
        rank = super()._candidate_rank(validator_id, evidence, limit)
        failure = evidence.last_failure(limit)
        return rank if rank is not None and failure >= limit - self._window else None


def blame_every_missed_view(parent_view: int, view: int) -> list[int]:
    """Blames the live leader whose block lost its votes to a crashed next leader, too."""
    return list(range(parent_view + 1, view))
