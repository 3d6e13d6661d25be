"""Transaction signatures this process has already verified: a bounded memory keyed by content.

A node meets most transactions more than once: the leader checks the block it just built, a
proposal that timed out is proposed again in a later view, block sync replays what a proposal
already carried. Verifying an Ed25519 signature is pure, so its result for the same bytes never
changes; what is remembered is the key ``tx_id || signature``, where ``tx_id`` is SHA-256 of the
domain tag and the signed body (which holds the public key). Two transactions with one key
therefore have the same domain, body, public key and signature - the same verification input -
unless SHA-256 collides. Only successes are remembered (a failure costs the sender, not us), at
most ``capacity`` of them, oldest forgotten first: the memory can save work, never admit
anything a fresh check would refuse.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from cybermesh.protocol.crypto.signing import verify_batch
from cybermesh.protocol.txs.envelope import Transaction, public_key_of

DEFAULT_CAPACITY = 65_536  # ~ 10 MB of keys: a few full mempools' worth of transactions


class SignatureMemory:
    """Verify transaction signatures, skipping those verified before (see the module doc)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()  # the API and the consensus worker may share a process

    def __len__(self) -> int:
        return len(self._verified)

    def failed(self, transactions: Sequence[Transaction]) -> list[int]:
        """Indexes of the transactions whose signature does not verify, ascending."""
        keys = [transaction.tx_id + transaction.signature for transaction in transactions]
        with self._lock:
            unknown = [index for index, key in enumerate(keys) if key not in self._verified]
        failed = verify_batch([
            (public_key_of(transactions[index].public_key), transactions[index].domain,
             transactions[index].body, transactions[index].signature) for index in unknown])
        refused = {unknown[position] for position in failed}
        with self._lock:
            for index in unknown:
                if index not in refused:
                    self._verified[keys[index]] = None
            while len(self._verified) > self._capacity:
                self._verified.popitem(last=False)
        return sorted(refused)


SIGNATURES = SignatureMemory()
"""The process-wide memory used by :func:`~cybermesh.protocol.block_builder.validate_payload`."""
