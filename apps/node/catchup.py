"""The stall probe: a validator that commits nothing for a while asks a peer what it missed.

Ledger catch-up normally starts from what the network shows us: a verified QC far above our
tip, or a message of a later epoch (apps/node/runtime.py). A node can also see nothing at all:
restarted while the validators it can reach are not in its epoch any more (a validator that
left the set keeps serving, but no longer takes part in consensus), or while the chain is
stopped. So when the committed height has not moved for ``stall_s`` seconds, the runtime sends
one ledger-sync request to a connected validator, in turn; a level peer answers with its tip
and nothing new, and the answer costs nobody a penalty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

STALL_S = 5.0


@dataclass
class StallProbe:
    stall_s: float = STALL_S
    _height: int = -1
    _since: float = 0.0
    _turn: int = 0

    def due(self, *, height: int, now: float, peers: Sequence[str]) -> str | None:
        """The peer to ask now, or None (progress was made, the stall is young, no peer)."""
        if height != self._height:
            self._height, self._since = height, now
            return None
        if now - self._since < self.stall_s or not peers:
            return None
        self._since = now  # at most one probe per stall period
        self._turn += 1
        return peers[self._turn % len(peers)]
