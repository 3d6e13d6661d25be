"""Byzantine behaviours: a faulty node runs the honest core and rewrites what it sends.

Each behaviour is a function of (the node, the actions its core returned) to the messages it
actually sends. Faulty nodes sign with their own key only; they never hold another's secret.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from cybermesh.protocol.consensus.events import Action, Broadcast, Send
from cybermesh.protocol.consensus.messages import (
    Block,
    Message,
    Proposal,
    QuorumCert,
    Timeout,
    Vote,
)
from cybermesh.protocol.consensus.wire import encode_message

if TYPE_CHECKING:
    from cybermesh.protocol.consensus.sim.world import Instance, Simulation


class Fault(enum.Enum):
    SILENT = "silent"                # sends nothing at all
    EQUIVOCATE = "equivocate"        # two proposals per view, later re-sent crosswise
    DOUBLE_VOTE = "double_vote"      # a second vote per view, for a block nobody proposed
    FORGE = "forge"                  # corrupted signatures, votes in others' names
    GARBAGE = "garbage"              # random and mangled bytes
    STALE_FORK = "stale_fork"        # as leader, extends the oldest QC the rules might allow


@dataclass(frozen=True, slots=True)
class RawSend:
    """A faulty node's bytes to one validator id (bypasses encoding)."""

    to: str
    data: bytes


Outgoing = Action | RawSend


def _others(sim: Simulation, instance: Instance) -> list[str]:
    return [vid for vid in sim.validator_ids if vid != instance.validator_id]


def _resign(instance: Instance, block: Block, proposal: Proposal) -> Proposal:
    core = instance.core
    signature = core.signer.sign(core.domains.proposal, block.statement())
    return Proposal(block=block, tc=proposal.tc, signature=signature)


def _stale_block(instance: Instance, proposal: Proposal) -> Block | None:
    block = proposal.block
    tc = proposal.tc
    floor = tc.highest_qc_view if tc is not None else 0
    candidates = [qc for qc in instance.seen_qcs if qc.view < block.qc.view]
    if tc is None:
        candidates = [qc for qc in candidates if qc.view < block.qc.view - 1]
    if not candidates:
        return None
    lowest_allowed = [qc for qc in candidates if qc.view >= floor]
    chosen: QuorumCert = min(lowest_allowed or candidates, key=lambda qc: qc.view)
    return replace(block, parent_id=chosen.block_id, height=chosen.height + 1, qc=chosen)


def rewrite(  # noqa: PLR0912, PLR0915 -- one branch per fault kind
        sim: Simulation, instance: Instance, actions: list[Action]) -> list[Outgoing]:
    """What the faulty ``instance`` sends instead of ``actions``."""
    fault = instance.fault
    rng = instance.rng
    if fault is Fault.SILENT:
        return [a for a in actions if not isinstance(a, Send | Broadcast)]
    out: list[Outgoing] = []
    for action in actions:
        message: Message | None = action.message if isinstance(action, Send | Broadcast) \
            else None
        if fault is Fault.EQUIVOCATE and isinstance(action, Broadcast) \
                and isinstance(message, Proposal):
            other = replace(message.block, payload=message.block.payload + b"/equivocation")
            twin = _resign(instance, other, message)
            targets = _others(sim, instance)
            rng.shuffle(targets)
            half = len(targets) // 2
            out.extend(Send(t, message) for t in targets[:half])
            out.extend(Send(t, twin) for t in targets[half:])
            crosswise: list[Action] = [Send(t, twin) for t in targets[:half]]
            crosswise += [Send(t, message) for t in targets[half:]]
            for factor in (3, 20, 60):  # again later, to reach nodes that restarted meanwhile
                sim.later(instance, factor * sim.config.delay_max_ms, crosswise)
            continue
        if fault is Fault.STALE_FORK and isinstance(action, Broadcast) \
                and isinstance(message, Proposal):
            stale = _stale_block(instance, message)
            if stale is not None:
                # First hand everyone the real QC (as a timeout's sync information) so they
                # enter the view, then the fork that ignores it.
                core = instance.core
                sync = Timeout(epoch=message.epoch, view=message.view - 1,
                               high_qc=message.block.qc, sender=instance.validator_id,
                               signature=b"")
                sync = replace(sync, signature=core.signer.sign(core.domains.timeout,
                                                                sync.statement()))
                out.append(Broadcast(sync))
                sim.later(instance, sim.config.delay_max_ms + 1,
                          [Broadcast(_resign(instance, stale, message))])
                continue
        if fault is Fault.DOUBLE_VOTE and isinstance(action, Send) and isinstance(message, Vote):
            core = instance.core
            fake = replace(message, block_id=rng.bytes(32))
            statement = fake.statement()
            fake = replace(fake, signature=core.signer.sign(core.domains.vote, statement))
            out.append(Send(action.to, fake))
        if fault is Fault.FORGE and message is not None:
            data = bytearray(encode_message(message))
            data[-1 - rng.below(min(64, len(data)))] ^= 0x01  # flip a bit near the end
            for vid in _others(sim, instance):
                out.append(RawSend(vid, bytes(data)))
            if isinstance(message, Vote):
                victim = rng.choice(sim.validator_ids)
                forged = replace(message, voter=victim, signature=rng.bytes(64))
                out.append(Send(action.to, forged))  # type: ignore[union-attr]
        if fault is Fault.GARBAGE and message is not None:
            encoded = encode_message(message)
            for vid in _others(sim, instance):
                choice = rng.below(3)
                if choice == 0:
                    junk = rng.bytes(rng.between(0, 300))
                elif choice == 1:
                    junk = encoded[: rng.below(len(encoded))]
                else:
                    junk = bytes((rng.between(1, 8),)) + rng.bytes(rng.between(0, 80))
                out.append(RawSend(vid, junk))
        out.append(action)
    return out
