"""The console's producer identity: the key the web process signs analysts' decisions with.

An analyst's decision that changes shared state (quarantine, release, a policy rule) is not a
database edit: it is a ``policy`` transaction signed with this key, admitted by the mempool
like any producer's (so the producer must be allowlisted for ``policy`` in
``MEMPOOL_PRODUCERS_PATH``), ordered by consensus and applied by every validator's executor.
The key file is loaded with the same strict loader as node keys (0600, kind ``producer`` or
``node``), once per file version; its secret never leaves :class:`ConsoleSigner`.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from apps.console.config import console_config
from cybermesh.keyfiles import KeyFileError, load_signing_key
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.txs.envelope import Transaction, sign_transaction
from cybermesh.protocol.txs.policy import PolicyChange

NONCE_BITS = 63


class SignerUnavailable(Exception):
    """The console cannot sign: no key configured, an unusable key file, or no chain id."""


@dataclass(frozen=True, slots=True)
class ConsoleSigner:
    producer_id: str
    chain_id: str
    key: SigningKey = field(repr=False)

    @property
    def public_key_hex(self) -> str:
        return self.key.public_key.raw.hex()

    def sign(self, change: PolicyChange, *, now_ms: int, nonce: int | None = None) -> Transaction:
        """Sign ``change``. The nonce is random (63 bits): several web processes sign with one
        key and share no counter, and a collision inside the replay window is refused by
        admission (``nonce_reused``), never applied twice."""
        return sign_transaction(
            self.key, change, chain_id=self.chain_id, producer_id=self.producer_id,
            nonce=secrets.randbits(NONCE_BITS) if nonce is None else nonce,
            created_at_ms=now_ms)


_cache: dict[tuple[str, int, int], SigningKey] = {}
_lock = threading.Lock()


def _chain_id() -> str:
    chain_id = str(getattr(settings, "MEMPOOL_CHAIN_ID", "") or "")
    if chain_id:
        return chain_id
    topology = str(getattr(settings, "CLUSTER_TOPOLOGY", "") or "")
    if topology:
        from cybermesh.protocol.genesis import GenesisError
        from cybermesh.topology import configured_genesis

        try:
            return configured_genesis(topology).chain_id
        except GenesisError as error:
            raise SignerUnavailable(f"the genesis file is unusable: {error}") from None
    raise SignerUnavailable("no chain id: set MEMPOOL_CHAIN_ID or CLUSTER_TOPOLOGY")


def configured_signer() -> ConsoleSigner:
    """The signer from ``CONSOLE_SIGNING_KEY_PATH`` / ``CONSOLE_PRODUCER_ID``; raises
    :class:`SignerUnavailable` with one line naming the problem (never the secret)."""
    config = console_config()
    if not config.signing_key_path:
        raise SignerUnavailable("CONSOLE_SIGNING_KEY_PATH is not set: this console cannot sign "
                                "transactions")
    path = Path(config.signing_key_path)
    try:
        status = os.stat(path)
    except OSError:
        raise SignerUnavailable(f"CONSOLE_SIGNING_KEY_PATH={path} does not exist") from None
    cache_key = (str(path), status.st_mtime_ns, status.st_size)
    with _lock:
        key = _cache.get(cache_key)
        if key is None:
            try:
                key = load_signing_key(path)
            except KeyFileError as error:
                raise SignerUnavailable(str(error)) from None
            _cache.clear()
            _cache[cache_key] = key
    return ConsoleSigner(producer_id=config.producer_id, chain_id=_chain_id(), key=key)
