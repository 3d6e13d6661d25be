"""The observer: a node that follows the chain through block sync and never votes.

An observer (``NODE_TYPE=observer``) runs the same ledger, executor and API as a validator but
no consensus core. It holds a node key only for its TLS identity; that key is in no validator
set, so nothing it could sign would count, and it signs nothing: it never proposes, votes,
times out or sends heartbeats. The validators accept it for the block-sync topic alone
(``P2P_OBSERVERS``, see apps/node/p2p/transport.py).

Following. Every ``poll_interval_s`` (and at once after a response that brought blocks) it
asks one connected validator, round robin, for the committed blocks after its tip (the ledger
sync request of apps/node/ledger_sync.py). It trusts nothing the server says: a response is
accepted only as far as :func:`ledger_sync.provably_committed` proves it — hash links to our
tip and a QC verified against the validator set of the blocks' epoch, with the 2-chain commit
rule applied here. Blocks are then executed and committed through the ledger exactly as a
validator commits them, so the state root at every height is the validators'. A block that
ends an epoch switches the verifier to the next epoch's set (read from the state the block
produced) and the peer links to that set. A response that fails verification is refused, the
server scored down (``bad_block``: twice quarantines it), and the next validator asked.

Synced means: the last response came within ``synced_window_s`` and showed no block above our
tip beyond the server's own unproven tail (a server answers a request at its tip with the tip
and the certified chain above it, so even an idle chain confirms we are level).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from django.db import close_old_connections
from prometheus_client import Counter

from apps.node import ledger_sync
from apps.node.application import Application
from apps.node.bootstrap import load_or_create_tip
from apps.node.models import NodeStatus
from apps.node.p2p.errors import PenaltyReason
from apps.node.p2p.framing import Topic
from apps.node.p2p.peers import NodeIdentity
from apps.node.p2p.transport import PeerNetwork
from cybermesh.db import run_serializable
from cybermesh.protocol.block_builder import BlockLimits
from cybermesh.protocol.consensus.quorum import CertificateVerifier, EpochState
from cybermesh.protocol.consensus.signatures import Domains, Ed25519Verifier
from cybermesh.protocol.consensus.wire import DEFAULT_WIRE_LIMITS
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.executor.params import ExecutorParameters
from cybermesh.protocol.genesis import Genesis
from cybermesh.protocol.validator_set import ValidatorSet

logger = structlog.get_logger(__name__)

OBSERVED_BLOCKS = Counter("cybermesh_observer_blocks",
                          "Blocks an observer verified and committed from block sync.",
                          ["node_id"])
REFUSED_RESPONSES = Counter("cybermesh_observer_refused_responses",
                            "Block-sync responses an observer refused, by reason.",
                            ["node_id", "reason"])

# Blocks a server may hold above what it can prove to us (its certified, uncommitted tail).
UNPROVEN_TAIL = 3


@dataclass
class ObserverConfig:
    node_id: str
    genesis: Genesis
    signing_key: SigningKey  # its TLS identity only: in no validator set, signs nothing
    network: Any  # apps.node.p2p.config.NetworkConfig
    executor_parameters: ExecutorParameters = field(default_factory=ExecutorParameters)
    poll_interval_s: float = 0.5
    request_timeout_s: float = 3.0
    status_interval_s: float = 1.0
    synced_window_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Absorbed:
    committed: int  # blocks committed from this response
    new_validators: ValidatorSet | None  # the next epoch's set, when an epoch ended
    level: bool  # the response showed nothing above our tip beyond its unproven tail


class ChainFollower:
    """Verifies and commits block-sync responses onto the local ledger (one thread only)."""

    def __init__(self, config: ObserverConfig) -> None:
        self.config = config
        self._limits = BlockLimits.from_parameters(config.genesis.consensus,
                                                   config.executor_parameters)
        self._certificates = CertificateVerifier(
            verifier=Ed25519Verifier(), domains=Domains.for_chain(config.genesis.chain_id))
        self.epoch: EpochState | None = None
        self.app: Application | None = None

    def load(self) -> EpochState:
        """(Re)load the committed tip and its epoch from the ledger."""
        close_old_connections()
        tip = load_or_create_tip(self.config.genesis, node_id=self.config.node_id)
        self.epoch = tip.epoch
        self.app = Application(
            chain_id=self.config.genesis.chain_id, node_id=self.config.node_id,
            limits=self._limits, executor=tip.executor, committed=tip.block,
            committed_root=tip.state_root, lookup=lambda _block_id: None)
        return tip.epoch

    @property
    def height(self) -> int:
        return 0 if self.app is None else self.app.committed.height

    def absorb(self, payload: bytes) -> Absorbed:
        """Commit what ``payload`` proves committed; raise LedgerSyncError if it lies."""
        assert self.app is not None and self.epoch is not None  # noqa: S101 -- load() first
        close_old_connections()
        epoch = self.epoch
        response = ledger_sync.parse_response(payload, DEFAULT_WIRE_LIMITS)
        chosen = ledger_sync.provably_committed(
            self.app.committed, response, epoch=epoch.epoch,
            verify_qc=lambda qc: self._certificates.verify_qc(qc, epoch))
        ledger_sync.commit_chosen(self.app, chosen)
        new_validators = None
        if chosen and chosen[-1][0].next_validators is not None:
            new_validators = self.load().validator_set
        level = response.blocks[-1].height <= self.height + UNPROVEN_TAIL
        return Absorbed(committed=len(chosen), new_validators=new_validators, level=level)

    def request(self) -> bytes:
        return ledger_sync.encode_request(self.height + 1, ledger_sync.MAX_BATCH)


class ObserverRuntime:
    """Follow the chain from the validators; write the status row the API serves."""

    def __init__(self, config: ObserverConfig) -> None:
        self.config = config
        self.node_id = config.node_id
        self.log = logger.bind(node_id=self.node_id, node_type="observer")
        self.follower = ChainFollower(config)
        self.network: PeerNetwork | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._turn = 0
        self._outstanding: tuple[str, float] | None = None  # (peer, deadline)
        self._level_at = 0.0  # monotonic time of the last response that showed us level
        self._lock = asyncio.Lock()  # one follower step at a time (the DB thread is shared)

    # ------------------------------------------------------------------ network side

    async def _on_message(self, peer: str, topic: Topic, payload: bytes) -> None:
        if topic is not Topic.BLOCKSYNC or \
                payload[:1] != bytes((ledger_sync.LEDGER_SYNC_RESPONSE,)):
            return  # validators send observers nothing else; a request we do not serve
        if self._outstanding is None or self._outstanding[0] != peer:
            return  # unsolicited, or answered after we gave up on it
        self._outstanding = None
        async with self._lock:
            try:
                absorbed = await asyncio.to_thread(self.follower.absorb, payload)
            except ledger_sync.LedgerSyncError as error:
                REFUSED_RESPONSES.labels(self.node_id, error.reason.value).inc()
                self.log.warning("refused block-sync response", peer=peer, error=str(error))
                if self.network is not None:
                    self.network.penalize(peer, PenaltyReason.BAD_BLOCK)
                self._wake.set()
                return
        if absorbed.new_validators is not None and self.network is not None:
            self.network.update_validators(absorbed.new_validators)
            self.log.info("entered epoch", epoch=absorbed.new_validators.epoch)
        if absorbed.committed:
            OBSERVED_BLOCKS.labels(self.node_id).inc(absorbed.committed)
            self.log.info("followed", blocks=absorbed.committed, height=self.follower.height)
            self._wake.set()  # more may be waiting: ask again at once
        if absorbed.level:
            self._level_at = time.monotonic()

    def _next_peer(self) -> str | None:
        assert self.network is not None  # noqa: S101
        peers = self.network.connected_peers()
        if not peers:
            return None
        self._turn += 1
        return peers[self._turn % len(peers)]

    async def _follow_loop(self, stop: asyncio.Event) -> None:
        assert self.network is not None  # noqa: S101
        while not stop.is_set():
            now = time.monotonic()
            if self._outstanding is not None and now > self._outstanding[1]:
                self._outstanding = None  # no answer: ask the next validator
            if self._outstanding is None and not self._lock.locked():
                peer = self._next_peer()
                if peer is not None:
                    self._outstanding = (peer, now + self.config.request_timeout_s)
                    if not await self.network.send(peer, Topic.BLOCKSYNC,
                                                   self.follower.request(), expect_reply=True):
                        self._outstanding = None
            self._wake.clear()
            await _wait(self._wake, self.config.poll_interval_s)

    # ------------------------------------------------------------------ status

    def synced(self) -> bool:
        return time.monotonic() - self._level_at <= self.config.synced_window_s

    def write_status(self, peers: list[dict[str, Any]]) -> None:
        close_old_connections()
        app, epoch = self.follower.app, self.follower.epoch
        if app is None or epoch is None:
            return
        synced = self.synced()
        run_serializable(lambda: NodeStatus.objects.update_or_create(
            node_id=self.node_id, defaults={
                "node_type": "observer", "epoch": epoch.epoch, "height": app.committed.height,
                "view": app.committed.view, "state_root": app.committed_root.hex(),
                "synced": synced, "voting": False, "peers": peers}),
            operation="node_status")

    async def _status_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            peers = [] if self.network is None else self.network.status_rows()
            try:
                async with self._lock:
                    await asyncio.to_thread(self.write_status, peers)
            except Exception:  # a busy or restarting database: write again next turn
                self.log.exception("status write failed")
            await _wait(stop, self.config.status_interval_s)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event,
                  on_started: Callable[[], None] | None = None) -> None:
        epoch = await asyncio.to_thread(self.follower.load)
        self.network = PeerNetwork(
            self.config.network, NodeIdentity(self.node_id, self.config.signing_key),
            epoch.validator_set, self._on_message)
        await self.network.start()
        self.log.info("observer started", height=self.follower.height, epoch=epoch.epoch)
        tasks = [asyncio.create_task(self._follow_loop(stop)),
                 asyncio.create_task(self._status_loop(stop))]
        if on_started is not None:
            on_started()
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            async with self._lock:  # the commit in flight finishes first
                await self.network.stop()
            self.log.info("observer stopped")


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
