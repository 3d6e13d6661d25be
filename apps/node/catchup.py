"""The stall probe: a validator that hears nothing for a while asks a peer what it missed.

Ledger catch-up normally starts from what the network shows us: a verified QC far above our
tip, or a message of a later epoch (apps/node/runtime.py). A node can also see nothing at all:
restarted while the validators it can reach are not in its epoch any more (a validator that
left the set keeps serving, but no longer takes part in consensus), or while the chain is
stopped. So when neither the committed height nor the count of consensus messages received
has moved for ``stall_s`` seconds, the runtime sends one ledger-sync request to a connected
validator, in turn; a level peer answers with its tip and nothing new, and the answer costs
nobody a penalty. A node that hears consensus traffic never probes: an idle or slow cluster
is left to consensus, because a ledger commit rebuilds the core and drops its certified,
uncommitted chain (probing live clusters stalled one at start).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

STALL_S = 5.0


@dataclass
class StallProbe:
    stall_s: float = STALL_S
    _progress: object = None
    _since: float = 0.0
    _turn: int = 0

    def due(self, *, height: object, now: float, peers: Sequence[str]) -> str | None:
        """The peer to ask now, or None (progress was made, the stall is young, no peer).
        ``height`` is any value that changes with progress (the runtime passes the committed
        height and the count of consensus messages received)."""
        if height != self._progress:
            self._progress, self._since = height, now
            return None
        if now - self._since < self.stall_s or not peers:
            return None
        self._since = now  # at most one probe per stall period
        self._turn += 1
        return peers[self._turn % len(peers)]
