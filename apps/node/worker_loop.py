"""The event-loop side of a validator's worker: peers, timers, the status row, the stall probe.

:class:`apps.node.runtime.NodeRuntime` owns the consensus core and every database write, on
its single consensus thread. This loop owns everything asynchronous: it takes one event at a
time from a bounded queue (peer messages, timers), runs ``runtime.step`` on the consensus thread
and carries out the :class:`Outbound` it returns on the network. Every send of a step leaves
after the step returned, so the safety data it persisted is durable first. Ledger-sync requests
and responses bypass the queue (served and absorbed on the consensus thread at once), and
block-sync replies are exempt from the peers' flood limits, so an isolated node always catches
up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.db import close_old_connections
from prometheus_client import Counter

from apps.audit.services import record_audit
from apps.node import ledger_sync
from apps.node.catchup import StallProbe
from apps.node.membership import departed_validators
from apps.node.outbound import TOPIC_OF, Outbound
from apps.node.p2p.errors import PenaltyReason
from apps.node.p2p.framing import Topic
from apps.node.p2p.peers import NodeIdentity
from apps.node.p2p.transport import PeerNetwork
from cybermesh.protocol.consensus.errors import MessageError
from cybermesh.protocol.consensus.events import (
    Event,
    MessageReceived,
    ScheduleTimer,
    TimerFired,
)
from cybermesh.protocol.consensus.messages import SyncRequest
from cybermesh.protocol.consensus.wire import decode_message, encode_message

if TYPE_CHECKING:
    from apps.node.runtime import NodeRuntime

DROPPED_EVENTS = Counter("cybermesh_runtime_dropped_events",
                         "Inbound messages dropped because the event queue was full.",
                         ["node_id"])

LEDGER_SYNC_TIMEOUT_S = 3.0
QUEUE_CAPACITY = 20_000


class WorkerLoop:
    """Drives one :class:`NodeRuntime` from the asyncio event loop (module docstring)."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self.runtime = runtime
        self.log = runtime.log
        self.network: PeerNetwork | None = None
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=QUEUE_CAPACITY)
        self._timer: asyncio.TimerHandle | None = None
        self._stopping = False
        self._stall_probe = StallProbe()
        self._dropped = DROPPED_EVENTS.labels(runtime.node_id)

    async def _on_message(self, peer: str, topic: Topic, payload: bytes) -> None:
        runtime, loop = self.runtime, asyncio.get_running_loop()
        if topic is Topic.BLOCKSYNC and payload[:1] == bytes((ledger_sync.LEDGER_SYNC_REQUEST,)):
            reply = await loop.run_in_executor(runtime.pool, runtime.serve_ledger_sync, payload)
            if reply is not None and self.network is not None:
                await self.network.send(peer, Topic.BLOCKSYNC, reply)
            return
        if topic is Topic.BLOCKSYNC and payload[:1] == bytes((ledger_sync.LEDGER_SYNC_RESPONSE,)):
            out, _ = await loop.run_in_executor(runtime.pool, runtime.absorb_ledger_sync, peer,
                                                payload)
            runtime.sync_outstanding_until = 0.0
            await self._deliver(out)
            return
        try:
            message = decode_message(payload)
        except MessageError as error:
            if self.network is not None:
                self.network.penalize(peer, PenaltyReason.MALFORMED)
            self.log.info("undecodable message", peer=peer, error=str(error))
            return
        try:
            self._queue.put_nowait(MessageReceived(peer, message))
        except asyncio.QueueFull:
            self._dropped.inc()

    async def _deliver(self, out: Outbound) -> None:
        network = self.network
        assert network is not None  # noqa: S101
        if out.new_validators is not None:
            network.update_validators(out.new_validators)
        for peer, reason in out.penalize:
            network.penalize(peer, reason)
        for message in out.broadcasts:
            await network.broadcast(TOPIC_OF[type(message)], encode_message(message))
        for peer, message in out.sends:
            await network.send(peer, TOPIC_OF[type(message)], encode_message(message),
                               expect_reply=isinstance(message, SyncRequest))
        if out.timer is not None:
            self._schedule(out.timer)
        runtime = self.runtime
        if out.ledger_sync_from is not None \
                and time.monotonic() > runtime.sync_outstanding_until:
            peer, first = out.ledger_sync_from
            runtime.sync_outstanding_until = time.monotonic() + LEDGER_SYNC_TIMEOUT_S
            request = ledger_sync.encode_request(first, ledger_sync.MAX_BATCH)
            await network.send(peer, Topic.BLOCKSYNC, request, expect_reply=True)

    def _schedule(self, timer: ScheduleTimer) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        event = TimerFired(timer.epoch, timer.view, timer.timer_id)
        self._timer = loop.call_later(timer.duration_ms / 1000, self._enqueue, event)

    def _enqueue(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._dropped.inc()

    async def _status_loop(self) -> None:
        """Status row every ``status_interval_s``; mempool expiry every ``expiry_interval_s``.
        Both run on the consensus thread between steps (the worker is the only writer)."""
        runtime, loop = self.runtime, asyncio.get_running_loop()
        config = runtime.config
        next_expiry = time.monotonic() + config.expiry_interval_s
        while not self._stopping:
            await self._probe_if_stalled()
            peers = [] if self.network is None else self.network.status_rows()
            try:
                await loop.run_in_executor(runtime.pool, runtime.write_status, peers)
                if time.monotonic() >= next_expiry:
                    next_expiry = time.monotonic() + config.expiry_interval_s
                    await loop.run_in_executor(runtime.pool, runtime.expire_mempool)
            except Exception:  # a busy or restarting database: count on the next turn
                self.log.exception("status write or mempool expiry failed")
            await asyncio.sleep(config.status_interval_s)

    async def run(self, stop: asyncio.Event,
                  on_started: Callable[[], None] | None = None) -> None:
        """Run until ``stop`` is set; then finish the step in flight and close the peers."""
        runtime, loop = self.runtime, asyncio.get_running_loop()
        start_out = await loop.run_in_executor(runtime.pool, runtime.start_core)
        core = runtime.core
        assert core is not None  # noqa: S101
        validator_set, config = core.epoch.validator_set, runtime.config
        departed = await loop.run_in_executor(runtime.pool, lambda: departed_validators(
            validator_set.epoch, validator_set.ids, config.genesis))
        self.network = PeerNetwork(
            config.network, NodeIdentity(runtime.node_id, config.signing_key),
            validator_set, self._on_message, observers=config.observers,
            departed=departed, on_quarantine=self._on_quarantine)
        await self.network.start()
        self.log.info("node started", height=core.committed.height, epoch=core.epoch.epoch)
        status = asyncio.create_task(self._status_loop())
        await self._deliver(start_out)
        if on_started is not None:
            on_started()
        stop_wait = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                get = asyncio.create_task(self._queue.get())
                done, _ = await asyncio.wait({get, stop_wait},
                                             return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    break
                out = await loop.run_in_executor(runtime.pool, runtime.step, get.result())
                await self._deliver(out)
        finally:
            self._stopping = True
            status.cancel()
            stop_wait.cancel()
            if self._timer is not None:
                self._timer.cancel()
            await self.network.stop()
            runtime.pool.shutdown(wait=True)  # the step in flight (a commit) finishes first
            self.log.info("node stopped")

    async def _probe_if_stalled(self) -> None:
        """Ask a validator for what we missed when nothing committed for a while
        (apps/node/catchup.py)."""
        core = self.runtime.core
        if self.network is None or core is None:
            return
        network, height = self.network, core.committed.height
        # Progress is a commit or any consensus message: a cluster that is merely idle, or
        # slow, is left to consensus (a ledger commit rebuilds the core and drops its
        # certified, uncommitted chain); only a node that hears nothing probes.
        peer = self._stall_probe.due(
            height=(height, self.runtime.messages_seen), now=time.monotonic(),
            peers=[peer for peer in network.connected_peers() if not network.is_observer(peer)])
        if peer is not None:
            # Not marked outstanding: a probe must not hold back the core's own block fetches
            # (a stalled view may need exactly those to go on).
            await network.send(peer, Topic.BLOCKSYNC, ledger_sync.encode_request(
                height + 1, ledger_sync.MAX_BATCH), expect_reply=True)

    def _on_quarantine(self, peer: str, reason: PenaltyReason) -> None:
        self.log.warning("peer quarantined", peer=peer, reason=reason.value)
        self.runtime.pool.submit(self._audit_quarantine, peer, reason)

    def _audit_quarantine(self, peer: str, reason: PenaltyReason) -> None:
        try:
            close_old_connections()
            record_audit(actor=self.runtime.node_id, action="p2p.quarantine", target=peer,
                         outcome="success", details={"reason": reason.value})
        except Exception:
            self.log.exception("quarantine audit failed", peer=peer)
