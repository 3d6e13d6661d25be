"""Scripted attacks on the timeout and epoch rules: the schedules a missing rule makes unsafe.

n = 4 (f = 1): one faulty validator ``c`` (the coalition of f) leads views 1..8 and owns the
network; ``h1``, ``h2``, ``h3`` are honest cores with the rules under test. Both attacks end
the same way: the coalition holds a timeout certificate for view 2 whose 2f + 1 timeouts all
report the genesis QC, although block B0 (height 1, view 1) is already committed by ``h1``.
Entering view 3 through that TC, the coalition proposes a block at height 1 that ignores B0;
the voting rule lets ``h2`` and ``h3`` vote for it (its QC is as high as any the TC reports),
and two more views later they commit it: two honest nodes commit different blocks at height 1,
which the invariant checker reports as an agreement violation.

The safety argument (docs/consensus.md) says such a TC cannot exist: B0 is committed because
B1 (view 2) is certified, so 2f + 1 validators voted for B1 and hold QC(B0) as their lock; a TC
for view >= 2 contains one of them (quorum intersection) and that one reports >= 1. The two
scripts break exactly the two steps of that argument:

* :func:`timeout_then_vote` - ``h2`` times out in view 2 (reporting genesis), *then* votes for
  B1 in view 2. Only ``TIMEOUT_RAISES_LAST_VOTED_VIEW`` (a timeout raises the last voted view,
  so no vote can follow it in the same view) forbids the vote.
* :func:`restart_below_lock` - ``h2`` votes for B1 (lock = view 1), crashes, restarts with its
  safety data but an empty ledger, so its core's highest QC is genesis again; a TC for view 1
  brings it into view 2 - the view it just voted in - and it times out there reporting genesis.
  Only ``TIMEOUT_QC_AT_LEAST_LOCK`` forbids that timeout (the timeout in the view just voted in
  is otherwise allowed, and must be).

With every rule on, the same scripts run to the end without a violation: the honest nodes
refuse the one signature the attack needs, so the coalition never gets its certificate. The
first view of both scripts also exercises the allowed edge case: ``h2`` votes in view 1 and
then times out in view 1.

:func:`ledger_behind_safety_data` covers ``EPOCH_MATCHES``, which a crash cannot reach (see its
docstring): it needs safety data from a later epoch than the ledger.
"""

from __future__ import annotations

from cybermesh.protocol.consensus.messages import (
    Message,
    Proposal,
    QuorumCert,
    Timeout,
    TimeoutCert,
    Vote,
    genesis_qc,
)
from cybermesh.protocol.consensus.safety import Rule, SafetyData
from cybermesh.protocol.consensus.sim.director import (
    Script,
    ScriptedSimulation,
    ScriptResult,
    run_script,
)
from cybermesh.protocol.consensus.sim.world import Instance


def _votes_for(sim: ScriptedSimulation, proposal: Proposal) -> list[Message]:
    block_id = proposal.block.block_id
    return sim.take(Vote, where=lambda m: isinstance(m, Vote) and m.block_id == block_id)


def _timeouts_for(sim: ScriptedSimulation, view: int) -> list[Message]:
    return sim.take(Timeout, where=lambda m: isinstance(m, Timeout) and m.view == view)


def _senders(messages: list[Message]) -> str:
    names = sorted({getattr(m, "voter", getattr(m, "sender", "?")) for m in messages})
    return ",".join(names) or "nobody"


def _certified_b0(sim: ScriptedSimulation, h1: Instance, h2: Instance,
                  h3: Instance) -> tuple[QuorumCert, QuorumCert, TimeoutCert] | None:
    """View 1: B0 gets a QC from {c, h1, h2}; h2 (after voting) and h3 time out; TC(1)."""
    coalition = sim.coalition
    genesis = genesis_qc(0, sim.genesis.block_id, 0)
    b0 = coalition.propose(1, genesis)
    sim.deliver(h1, b0)
    sim.deliver(h2, b0)
    votes = _votes_for(sim, b0)
    qc0 = coalition.certify(b0.block, votes)
    sim.note(f"view 1: B0 voted by {_senders(votes)}; QC(B0) {'formed' if qc0 else 'missing'}")
    sim.fire_timer(h2)  # a vote and then a timeout in one view: allowed
    sim.fire_timer(h3)
    timeouts = _timeouts_for(sim, 1)
    tc1 = coalition.time_out(1, genesis, timeouts)
    sim.note(f"view 1: timeouts from {_senders(timeouts)}; TC(1) "
             f"{'formed' if tc1 else 'missing'}")
    if qc0 is None or tc1 is None:
        return None
    return genesis, qc0, tc1


def _commit_b0_at(sim: ScriptedSimulation, h1: Instance, qc0: QuorumCert,
                  voters: list[Instance]) -> None:
    """View 2: B1 extends QC(B0); if 2f + 1 vote, QC(B1) makes h1 commit B0 (view 3)."""
    coalition = sim.coalition
    b1 = coalition.propose(2, qc0)
    for inst in voters:
        sim.deliver(inst, b1)
    votes = _votes_for(sim, b1)
    qc1 = coalition.certify(b1.block, votes)
    sim.note(f"view 2: B1 voted by {_senders(votes)}; QC(B1) {'formed' if qc1 else 'missing'}")
    if qc1 is not None:
        sim.deliver(h1, coalition.propose(3, qc1))  # carries QC(B1): h1 commits B0
        sim.note(f"view 3: h1 committed height {h1.ledger.tip.height}")


def _fork(sim: ScriptedSimulation, base: QuorumCert, tc: TimeoutCert | None,
          voters: list[Instance]) -> None:
    """Views 3..5: a chain at height 1 entering through ``tc``, certified by c + ``voters``."""
    if tc is None:
        sim.note("view 2: no TC, the fork cannot start")
        return
    sim.note(f"view 2: TC(2) reports QC views {[qc_view for _, qc_view, _ in tc.signatures]}")
    coalition = sim.coalition
    qc: QuorumCert = base
    certificate: TimeoutCert | None = tc
    for view in (3, 4, 5):
        proposal = coalition.propose(view, qc, certificate, tag=b"fork")
        for inst in voters:
            sim.deliver(inst, proposal)
        votes = _votes_for(sim, proposal)
        certified = coalition.certify(proposal.block, votes)
        sim.note(f"view {view}: fork block voted by {_senders(votes)}")
        if certified is None:
            return
        qc, certificate = certified, None
    sim.note(f"fork committed up to height {max(i.ledger.tip.height for i in voters)}")


def timeout_then_vote(sim: ScriptedSimulation) -> None:
    """h2 times out in view 2 reporting genesis, then votes for B1 in view 2."""
    h1, h2, h3 = sim.honest_instances()
    start = _certified_b0(sim, h1, h2, h3)
    if start is None:
        return
    genesis, qc0, tc1 = start
    sim.deliver(h2, tc1)  # h2 and h3 enter view 2 through TC(1): highest QC still genesis
    sim.deliver(h3, tc1)
    sim.fire_timer(h2)
    sim.fire_timer(h3)
    timeouts = _timeouts_for(sim, 2)
    sim.note(f"view 2: timeouts from {_senders(timeouts)}")
    _commit_b0_at(sim, h1, qc0, [h1, h2])  # h2 already timed out in view 2
    _fork(sim, genesis, sim.coalition.time_out(2, genesis, timeouts), [h2, h3])


def restart_below_lock(sim: ScriptedSimulation) -> None:
    """h2 votes for B1, restarts with an empty ledger, and times out in view 2 below its lock."""
    h1, h2, h3 = sim.honest_instances()
    start = _certified_b0(sim, h1, h2, h3)
    if start is None:
        return
    genesis, qc0, tc1 = start
    _commit_b0_at(sim, h1, qc0, [h1, h2])
    sim.restart(h2)  # keeps last voted view 2 and lock 1; its highest QC is genesis again
    sim.note(f"h2 restarted in view {h2.core.view} with lock "
             f"{h2.core.safety.data.highest_qc_view}")
    sim.deliver(h2, tc1)
    sim.deliver(h3, tc1)
    sim.fire_timer(h2)  # a timeout in the view it just voted in, carrying genesis
    sim.fire_timer(h3)
    timeouts = _timeouts_for(sim, 2)
    sim.note(f"view 2: timeouts from {_senders(timeouts)}")
    _fork(sim, genesis, sim.coalition.time_out(2, genesis, timeouts), [h2, h3])


def ledger_behind_safety_data(sim: ScriptedSimulation) -> None:
    """h1 votes in epoch 0, then restarts with epoch-1 safety data and an epoch-0 ledger.

    Not a crash (a crash keeps the ledger, and the ledger of a commit is written before the
    next epoch's safety data): an operator restored the ledger from a backup taken before the
    epoch change. The runtime then hands the core the later epoch's safety data (it never
    goes back to an older record), whose counters start from zero. Only ``EPOCH_MATCHES``
    stops the core from signing epoch-0 statements against them: an equivocating leader
    re-sends view 1 with another block and h1 would sign a second vote in epoch 0, view 1.
    """
    h1 = sim.honest_instances()[0]
    coalition = sim.coalition
    genesis = genesis_qc(0, sim.genesis.block_id, 0)
    sim.deliver(h1, coalition.propose(1, genesis))
    sim.note(f"epoch 0 view 1: h1 voted {len(sim.take(Vote))} time(s)")
    h1.persisted = SafetyData(epoch=1)  # what start_epoch(1) persisted
    sim.restart(h1)
    sim.deliver(h1, coalition.propose(1, genesis, tag=b"other"))
    sim.note(f"after the restore: h1 voted {len(sim.take(Vote))} time(s) in epoch 0 view 1")


SCENARIOS: dict[str, tuple[Script, Rule]] = {
    "timeout-then-vote": (timeout_then_vote, Rule.TIMEOUT_RAISES_LAST_VOTED_VIEW),
    "restart-below-lock": (restart_below_lock, Rule.TIMEOUT_QC_AT_LEAST_LOCK),
    "ledger-behind-safety-data": (ledger_behind_safety_data, Rule.EPOCH_MATCHES),
}


def run_scenario(name: str, disabled_rules: frozenset[Rule] = frozenset()) -> ScriptResult:
    """Run the named scripted attack (see :data:`SCENARIOS`) with ``disabled_rules`` off."""
    script, _ = SCENARIOS[name]
    return run_script(name, script, disabled_rules=disabled_rules)
