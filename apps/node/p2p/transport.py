"""PeerNetwork: the full mesh of authenticated links between validators.

One listener accepts peers; one dialler task per peer keeps a link to it, re-dialling with
jittered exponential backoff. Both sides dial, and a pair keeps ONE link: the one dialled by
the lower validator id (by string order). When a second authenticated link to the same peer
appears, both ends apply the same rule, so they agree without talking: a link dialled by the
lower id replaces one dialled by the higher id, a link from the same direction replaces the
old one (the peer reconnected, so the old one is stale), and anything else is refused as
``duplicate``. To make duplicates rare, the higher id of a pair waits ``higher_id_dial_delay``
after each loss of the link before it dials, giving the lower id a head start; frames queued on
a link that dedup then closes are lost (consensus tolerates loss).

Received frames pass the frame checks (:mod:`framing`), the per-topic rate limit
(:mod:`ratelimit`) and are handed, in order per peer, to ``on_message(peer_id, topic,
payload)``. The runtime reports what it finds wrong with a payload through :meth:`penalize`
and good payloads through :meth:`reward` (:mod:`scoring`). The injected ``clock`` drives
scores, quarantines and rate limits; link liveness (pings, idle timeout, backoff) uses the
event loop's own clock.

Observers. ``observers`` (id -> public key, ``P2P_OBSERVERS``) are nodes that follow the chain
through block sync and never take part in consensus. A validator accepts their inbound links
(they are never dialled: an observer dials the validators), answers their block-sync requests,
and nothing else: :meth:`broadcast` never reaches them, :meth:`send` to them carries block sync
only, and any other topic they send is dropped and penalised (``forbidden_topic``).

Departed validators. A validator that an epoch change removed from the set is treated the same
way for one epoch (``departed``, refreshed at every :meth:`update_validators`): it may have
stopped one block short of the reconfiguration block (the certificate that commits it is formed
by the new epoch's first leader and never sent to it), and it must stay able to fetch that
proof, since it keeps serving the epoch change to nodes still syncing through it. Its consensus
frames are dropped uncounted against it (it does not know yet that it left); its block-sync
requests are answered. It is not dialled: it dials us.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping

import structlog

from apps.node.p2p import metrics
from apps.node.p2p.config import NetworkConfig
from apps.node.p2p.control import (
    PROTOCOL_VERSION,
    Goodbye,
    Hello,
    Ping,
    Pong,
    decode_control,
    encode_control,
    topics_digest,
)
from apps.node.p2p.errors import P2PConfigError, PenaltyReason, RefusalReason
from apps.node.p2p.framing import FrameError, Topic, encode_frame, read_frame
from apps.node.p2p.handshake import Authenticated, Handshaker, HandshakeSettings, refuse
from apps.node.p2p.link import Link
from apps.node.p2p.peers import (
    NetworkStats,
    NodeIdentity,
    PeerRecord,
    PeerStatus,
    keep_new_link,
)
from apps.node.p2p.ratelimit import Admission, RateLimiter
from apps.node.p2p.scoring import PeerScores
from apps.node.p2p.tls import build_contexts, certificate_for
from cybermesh.protocol.validator_set import Validator, ValidatorSet

logger = structlog.get_logger(__name__)
_R = RefusalReason
_CLOSE_TIMEOUT = 1.0
_READ_ERRORS = (ConnectionError, OSError, asyncio.IncompleteReadError, EOFError)

MessageHandler = Callable[[str, Topic, bytes], Awaitable[None]]
QuarantineHandler = Callable[[str, PenaltyReason], None]


class PeerNetwork:
    """Authenticated, encrypted full mesh to the validators of the current set."""

    def __init__(self, config: NetworkConfig, identity: NodeIdentity,
                 validator_set: ValidatorSet, on_message: MessageHandler, *,
                 observers: Mapping[str, bytes] | None = None,
                 departed: Mapping[str, bytes] | None = None,
                 on_quarantine: QuarantineHandler | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self._config = config
        self._identity = identity
        self._own_id = identity.validator_id
        self._on_message = on_message
        self._on_quarantine = on_quarantine
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 -- backoff jitter, not a secret
        self._caps = config.caps()
        self._names = config.names()
        # Labelled children resolved once: .labels() costs more than the rest of a frame.
        self._frames_sent = {t: metrics.FRAMES_SENT.labels(self._own_id, self._names[t])
                             for t in Topic}
        self._frames_received = {t: metrics.FRAMES_RECEIVED.labels(self._own_id, self._names[t])
                                 for t in Topic}
        self._bytes_received = {t: metrics.BYTES_RECEIVED.labels(self._own_id, self._names[t])
                                for t in Topic}
        hello = Hello(version=PROTOCOL_VERSION, chain_id=config.chain_id,
                      validator_id=self._own_id, topics=topics_digest(self._names))
        self._scores = PeerScores(config.scoring, clock)
        self._limiter = RateLimiter(config.limits(), clock, max_credits=config.max_reply_credits)
        self.stats = NetworkStats()
        self._peers: dict[str, PeerRecord] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._running = False
        self._configured_observers = dict(observers or {})
        self._own_certificate = self._certificate(validator_set)
        self._log = logger.bind(node_id=self._own_id)
        self._handshaker = Handshaker(
            settings=HandshakeSettings(own_id=self._own_id, hello=hello, caps=self._caps),
            allowlist=config.allowlist(), timeout=config.handshake_timeout,
            max_pending=config.max_pending_handshakes,
            dial_source_host=config.dial_source_host, count_refused=self._count_refused,
            is_quarantined=self._scores.is_quarantined)
        # Sets the trusted validator set, the departed validators and ``_observers``: every
        # block-sync-only follower (the configured observers and the departed).
        self._adopt(validator_set, departed or {})
        for observer_id, public_key in self._configured_observers.items():
            if observer_id in validator_set or observer_id == self._own_id:
                raise P2PConfigError(f"observer {observer_id!r} is also a validator id or "
                                     "our own id")
            self._peers[observer_id] = PeerRecord(Validator(observer_id, public_key, 0))
        self._install_departed()
        self._install_peers()

    # ----- configuration ------------------------------------------------------------------

    def _certificate(self, validator_set: ValidatorSet) -> bytes:
        """Our certificate: made from our key, so it is valid in every epoch our key is."""
        own = validator_set.get(self._own_id)
        address = own.address if own is not None and own.address else \
            f"{self._config.listen_host}:{self._config.listen_port or 1}"
        return certificate_for(self._identity.signing_key, self._own_id, address)

    def _adopt(self, validator_set: ValidatorSet, departed: Mapping[str, bytes]) -> None:
        """Trust exactly the set's keys, the observers' and the departed validators' (raises
        before changing anything)."""
        departed = {peer_id: key for peer_id, key in departed.items()
                    if peer_id != self._own_id and peer_id not in validator_set
                    and peer_id not in self._configured_observers}
        observers = {**self._configured_observers, **departed}
        trusted = [validator.public_key for validator in validator_set]
        trusted += observers.values()
        contexts = build_contexts(self._identity.signing_key, self._own_certificate, trusted)
        self._handshaker.trust(validator_set, contexts, observers)
        self._validator_set, self._departed, self._observers = validator_set, departed, observers

    def is_observer(self, peer_id: str) -> bool:
        """True for a block-sync-only follower: an observer or a departed validator."""
        return peer_id in self._observers

    def _install_departed(self) -> None:
        """Departed validators become block-sync-only followers: a link they hold stays up,
        but we no longer dial them."""
        for peer_id, key in self._departed.items():
            follower = Validator(peer_id, key, 0)  # no address: never dialled
            peer = self._peers.get(peer_id)
            if peer is None:
                self._peers[peer_id] = PeerRecord(follower)
                continue
            if peer.dialler is not None:
                peer.dialler.cancel()
                peer.dialler = None
            peer.validator = follower

    def _install_peers(self) -> None:
        for validator in self._validator_set:
            if validator.validator_id == self._own_id:
                continue
            peer = self._peers.get(validator.validator_id)
            if peer is None:
                self._peers[validator.validator_id] = PeerRecord(validator)
            else:
                peer.validator = validator

    @property
    def listen_port(self) -> int:
        """The bound port (useful when the configuration asked for port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("network is not started")
        return int(self._server.sockets[0].getsockname()[1])

    # ----- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen and start dialling. P2PConfigError (one line) if the port cannot be bound."""
        host, port = self._config.listen_host, self._config.listen_port
        try:
            self._server = await asyncio.start_server(self._accept, host, port)
        except OSError as error:
            raise P2PConfigError(f"cannot listen for peers on {host}:{port}: "
                                 f"{error.strerror or error}") from None
        self._running = True
        for peer in self._peers.values():
            self._start_dialler(peer)
        for address in self._config.bootstrap_addresses:
            self._spawn(self._bootstrap_loop(address), f"p2p-bootstrap-{address}")
        self._spawn(self._maintain(), "p2p-maintain")
        self._log.info("p2p.started", port=self.listen_port, peers=len(self._peers))

    async def stop(self) -> None:
        """Graceful: stop accepting and dialling, flush queued frames, say goodbye, close."""
        self._running = False
        if self._server is not None:
            self._server.close()
        links = [peer.link for peer in self._peers.values() if peer.link is not None]
        await asyncio.gather(*(link.flush(_CLOSE_TIMEOUT) for link in links))
        for link in links:
            link.close(goodbye="shutdown")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(link.wait_closed(_CLOSE_TIMEOUT) for link in links))
        if self._server is not None:
            await self._server.wait_closed()
        metrics.PEERS_CONNECTED.labels(self._own_id).set(0)
        self._log.info("p2p.stopped")

    def update_validators(self, validator_set: ValidatorSet) -> None:
        """Epoch change: trust exactly the new set; drop peers that left, dial new ones.

        Links to peers still in the set with the same key stay up (their TLS handshake proved
        that key). Validators of the old set that are not in the new one become departed
        followers for this epoch (module docstring); those of earlier epochs are dropped. If
        our own id left the set we keep our certificate, so we can still serve block sync to
        those who ask (they decide whether to trust us).
        """
        departed = {validator.validator_id: validator.public_key
                    for validator in self._validator_set if validator.validator_id
                    not in validator_set}
        self._adopt(validator_set, departed)
        self._install_departed()
        for peer_id, peer in list(self._peers.items()):
            if peer_id in self._observers:
                continue
            validator = validator_set.get(peer_id)
            if validator is None or validator.public_key != peer.validator.public_key:
                self._drop_peer(peer_id)
        self._install_peers()
        for peer in self._peers.values():
            self._start_dialler(peer)

    def _drop_peer(self, peer_id: str) -> None:
        peer = self._peers.pop(peer_id)
        if peer.dialler is not None:
            peer.dialler.cancel()
        if peer.link is not None:
            self._count_refused(_R.REMOVED, peer_id, "left the validator set")
            peer.link.close(goodbye=_R.REMOVED.value)
        self._scores.forget(peer_id)
        self._limiter.forget(peer_id)
        with contextlib.suppress(KeyError):
            metrics.PEER_SCORE.remove(self._own_id, peer_id)

    def _spawn(self, coroutine: Awaitable[None], name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _start_dialler(self, peer: PeerRecord) -> None:
        if self._running and peer.validator.address and (
                peer.dialler is None or peer.dialler.done()):
            peer.dialler = self._spawn(self._dial_loop(peer),
                                       f"p2p-dial-{peer.validator.validator_id}")

    # ----- sending --------------------------------------------------------------------------

    async def send(self, peer_id: str, topic: Topic, payload: bytes, *,
                   expect_reply: bool = False) -> bool:
        """Queue ``payload`` for ``peer_id``; False if not connected or its queue is full.

        ``expect_reply=True`` marks a request (block sync): one frame the peer sends back on
        ``topic`` is exempt from our flood limit (see :mod:`ratelimit`).
        """
        if topic is Topic.CONTROL:
            raise ValueError("the CONTROL topic belongs to the link")
        if len(payload) > self._caps[topic]:
            raise ValueError(f"{topic.kind} payload of {len(payload)} bytes exceeds the cap "
                             f"{self._caps[topic]}")
        if topic is not Topic.BLOCKSYNC and peer_id in self._observers:
            raise ValueError(f"observers get block sync only, not {topic.kind}")
        peer = self._peers.get(peer_id)
        link = peer.link if peer is not None else None
        if link is None or not link.enqueue(encode_frame(topic, payload)):
            self.stats.send_dropped[topic] += 1
            cause = "not_connected" if link is None else "send_queue_full"
            metrics.FRAMES_DROPPED.labels(self._own_id, self._names[topic], cause).inc()
            return False
        if expect_reply:
            self._limiter.expect_reply(peer_id, topic)
        self.stats.frames_sent[topic] += 1
        self._frames_sent[topic].inc()
        return True

    async def broadcast(self, topic: Topic, payload: bytes) -> int:
        """Send to every connected validator (never to observers); return how many frames
        were queued."""
        sent = 0
        for peer_id in list(self._peers):
            if self._peers[peer_id].link is not None and peer_id not in self._observers:
                sent += await self.send(peer_id, topic, payload)
        return sent

    # ----- scoring ------------------------------------------------------------------------

    def penalize(self, peer_id: str, reason: PenaltyReason) -> None:
        """Lower a peer's score; at the threshold it is quarantined and disconnected."""
        if peer_id not in self._peers:
            return
        self.stats.penalties[reason] += 1
        metrics.PENALTIES.labels(self._own_id, reason.value).inc()
        quarantine = self._scores.penalize(peer_id, reason)
        metrics.PEER_SCORE.labels(self._own_id, peer_id).set(self._scores.score(peer_id))
        log = self._log.debug if reason is PenaltyReason.FLOOD else self._log.info
        log("p2p.penalty", peer=peer_id, reason=reason.value,
            score=round(self._scores.score(peer_id), 2))
        if quarantine is None:
            return
        self.stats.quarantines[reason] += 1
        metrics.QUARANTINES.labels(self._own_id, reason.value).inc()
        self._log.warning("p2p.quarantine", peer=peer_id, reason=reason.value,
                          seconds=round(quarantine.until - self._clock(), 1))
        link = self._peers[peer_id].link
        if link is not None:
            link.close(goodbye=_R.QUARANTINED.value)
        if self._on_quarantine is not None:
            try:
                self._on_quarantine(peer_id, reason)
            except Exception:  # noqa: BLE001 -- an audit bug must not undo the quarantine
                self.stats.callback_errors += 1
                self._log.exception("p2p.on_quarantine_failed", peer=peer_id)

    def reward(self, peer_id: str) -> None:
        if peer_id in self._peers:
            self._scores.reward(peer_id)

    def peers(self) -> list[PeerStatus]:
        statuses = []
        for peer_id in sorted(self._peers):
            peer = self._peers[peer_id]
            statuses.append(PeerStatus(
                peer_id=peer_id, address=peer.validator.address,
                connected=peer.link is not None, score=self._scores.score(peer_id),
                quarantined_until=self._scores.quarantined_until(peer_id),
                outbound=None if peer.link is None else peer.link.outbound,
                observer=peer_id in self._observers))
        return statuses

    def status_rows(self) -> list[dict[str, object]]:
        """``peers()`` as the JSON rows of the node status (API, ``cluster status``)."""
        return [{"id": p.peer_id, "connected": p.connected, "score": round(p.score, 2),
                 "address": p.address, "observer": p.observer} for p in self.peers()]

    def connected_peers(self) -> list[str]:
        return sorted(peer_id for peer_id, peer in self._peers.items() if peer.link is not None)

    # ----- connections --------------------------------------------------------------------

    def _count_refused(self, reason: RefusalReason, peer: str, detail: str) -> None:
        self.stats.refused[reason] += 1
        metrics.REFUSED_CONNECTIONS.labels(self._own_id, reason.value).inc()
        # A peer that is down is re-dialled with backoff: that is routine, not news.
        log = self._log.debug if reason is _R.CONNECT_FAILED else self._log.info
        log("p2p.refused", reason=reason.value, peer=peer, detail=detail)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Our own task, not the server's: stop() cancels it, and Python 3.11's stream server
        # logs an error for every cancelled client_connected_cb task.
        self._spawn(self._inbound(reader, writer), "p2p-inbound")

    async def _inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = self._link_for(await self._handshaker.accept(reader, writer))
        if link is not None:
            await self._run_link(link)

    def _link_for(self, authenticated: Authenticated | None) -> Link | None:
        """Wrap an authenticated connection in a Link and register it (or refuse it)."""
        if authenticated is None:
            return None
        peer_id = authenticated.peer_id
        link = Link(peer_id=peer_id, dialer=self._own_id if authenticated.outbound else peer_id,
                    outbound=authenticated.outbound, reader=authenticated.reader,
                    writer=authenticated.writer, queue_size=self._config.send_queue_frames,
                    queue_bytes=self._config.send_queue_bytes,
                    now=asyncio.get_running_loop().time())
        return link if self._register(link) else None

    def _register(self, link: Link) -> bool:
        """Install ``link`` as the peer's link if the dedup rule prefers it (module doc)."""
        peer = self._peers.get(link.peer_id)
        if peer is None or not self._running:  # left the set, or we stop, during the handshake
            self._count_refused(_R.REMOVED, link.peer_id, "not a current peer")
            refuse(link.writer, _R.REMOVED)
            return False
        if self._scores.is_quarantined(link.peer_id):
            self._count_refused(_R.QUARANTINED, link.peer_id, "")
            refuse(link.writer, _R.QUARANTINED)
            return False
        existing = peer.link
        if existing is not None:
            if not keep_new_link(self._own_id, link.peer_id, existing.dialer, link.dialer):
                self._count_refused(_R.DUPLICATE, link.peer_id, "kept the lower id's link")
                refuse(link.writer, _R.DUPLICATE)
                return False
            existing.close(goodbye=_R.DUPLICATE.value)
        peer.link = link
        peer.attempts = 0
        peer.wake.set()
        link.start()
        metrics.PEERS_CONNECTED.labels(self._own_id).set(len(self.connected_peers()))
        self._log.info("p2p.connected", peer=link.peer_id, outbound=link.outbound)
        return True

    def _unregister(self, link: Link) -> None:
        peer = self._peers.get(link.peer_id)
        if peer is not None and peer.link is link:
            peer.link = None
            peer.wake.set()
            metrics.PEERS_CONNECTED.labels(self._own_id).set(len(self.connected_peers()))
            self._log.info("p2p.disconnected", peer=link.peer_id)

    async def _run_link(self, link: Link) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not link.closed.is_set():
                frame = await read_frame(link.reader, self._caps)
                if frame is None:
                    break
                link.last_activity = loop.time()
                await self._on_frame(link, *frame)
                if link.in_callback:  # the handler ran: its time is not the peer's silence
                    link.in_callback = False
                    link.last_activity = loop.time()
        except FrameError as error:
            self._log.info("p2p.bad_frame", peer=link.peer_id, detail=error.detail)
            self.penalize(link.peer_id, error.reason)
        except _READ_ERRORS:  # the peer went away (ssl.SSLError is an OSError)
            pass
        except Exception:  # noqa: BLE001 -- a bug: end this link loudly, keep the others
            self._log.exception("p2p.link_failed", peer=link.peer_id)
        finally:
            link.close()
            self._unregister(link)
            await link.wait_closed(_CLOSE_TIMEOUT)

    async def _on_frame(self, link: Link, topic: Topic, payload: bytes) -> None:
        peer_id = link.peer_id
        admission = self._limiter.admit(peer_id, topic)
        if admission is Admission.LIMITED:
            self.stats.rate_limited[topic] += 1
            metrics.FRAMES_DROPPED.labels(self._own_id, self._names[topic], "rate_limited").inc()
            self.penalize(peer_id, PenaltyReason.FLOOD)
            return
        if admission is Admission.REPLY:
            self.stats.replies_exempted[topic] += 1
        if topic is Topic.CONTROL:
            self._on_control(link, payload)
            return
        if topic is not Topic.BLOCKSYNC and peer_id in self._departed:
            # It has not learnt yet that it left: dropped, but no fault of its own (it gets the
            # proof of the change through block sync, module docstring).
            metrics.FRAMES_DROPPED.labels(self._own_id, self._names[topic], "departed").inc()
            return
        if topic is not Topic.BLOCKSYNC and peer_id in self._observers:
            # An observer never takes part in consensus: whatever it sends there is refused
            # before any decoding, and counts against it.
            self.stats.forbidden[topic] += 1
            metrics.FRAMES_DROPPED.labels(self._own_id, self._names[topic], "observer").inc()
            self.penalize(peer_id, PenaltyReason.FORBIDDEN_TOPIC)
            return
        self.stats.frames_received[topic] += 1
        self._frames_received[topic].inc()
        self._bytes_received[topic].inc(len(payload))
        link.in_callback = True  # cleared by _run_link, which also resets the idle clock
        try:
            await self._on_message(peer_id, topic, payload)
        except Exception:  # noqa: BLE001 -- a runtime bug on one message must not drop the link
            self.stats.callback_errors += 1
            self._log.exception("p2p.on_message_failed", peer=peer_id, topic=topic.kind)

    def _on_control(self, link: Link, payload: bytes) -> None:
        message = decode_control(payload)  # FrameError -> penalised by _run_link
        if isinstance(message, Ping):
            link.enqueue(encode_frame(Topic.CONTROL, encode_control(Pong(message.nonce))))
        elif isinstance(message, Goodbye):
            self._log.info("p2p.goodbye", peer=link.peer_id, reason=message.reason)
            link.close()
        elif isinstance(message, Hello):
            raise FrameError(PenaltyReason.MALFORMED, "hello on an established link")

    # ----- dialling and upkeep --------------------------------------------------------------

    async def _wait(self, peer: PeerRecord, seconds: float) -> None:
        """Sleep up to ``seconds``; return early when something about the peer changed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(peer.wake.wait(), seconds)
        peer.wake.clear()

    async def _dial_loop(self, peer: PeerRecord) -> None:
        peer_id = peer.validator.validator_id
        # The lower id dials at once; the higher id gives it a head start after every loss of
        # the link, so simultaneous dials (and frames lost on the link dedup then closes) are
        # rare. If the lower id cannot reach us, we still dial it after the head start.
        yields = self._own_id > peer_id and self._own_id in self._validator_set
        await self._wait(peer, self._rng.uniform(0, self._config.backoff.initial))
        head_start_given = False
        while self._running and self._peers.get(peer_id) is peer:
            if peer.link is not None:
                head_start_given = False
                await self._wait(peer, self._config.idle_timeout)
                continue
            if self._scores.is_quarantined(peer_id):
                await self._wait(peer, self._config.tick_interval)
                continue
            if yields and not head_start_given:
                head_start_given = True
                await self._wait(peer, self._config.higher_id_dial_delay
                                 * self._rng.uniform(1.0, 1.5))
                continue
            await self._dial(peer)
            if peer.link is None:
                delay = self._config.backoff.delay(peer.attempts, self._rng)
                peer.attempts += 1
                await self._wait(peer, delay)

    async def _dial(self, peer: PeerRecord) -> None:
        peer_id = peer.validator.validator_id
        link = self._link_for(await self._handshaker.dial(peer.validator.address, peer_id))
        if link is not None:
            self._spawn(self._run_link(link), f"p2p-link-{peer_id}")

    async def _bootstrap_loop(self, address: str) -> None:
        """Keep a link through a bootstrap address. Who answers there is learned from the
        first handshake; after that it is dialled only while that validator has no link."""
        known: str | None = None
        attempts = 0
        while self._running:
            if known is not None and known in self._peers and (
                    self._peers[known].link is not None or self._scores.is_quarantined(known)):
                await asyncio.sleep(self._config.ping_interval)
                continue
            authenticated = await self._handshaker.dial(address, known)
            if authenticated is not None:
                known = authenticated.peer_id
                peer = self._peers.get(known)
                if peer is not None and peer.link is not None:  # linked meanwhile: keep that
                    refuse(authenticated.writer, _R.DUPLICATE)
                    continue
                link = self._link_for(authenticated)
                if link is not None:
                    attempts = 0
                    await self._run_link(link)
                    continue
            await asyncio.sleep(self._config.backoff.delay(attempts, self._rng))
            attempts += 1

    async def _maintain(self) -> None:
        """Pings, idle timeouts and the score gauges, every ``tick_interval``."""
        loop = asyncio.get_running_loop()
        last_ping = loop.time()
        while self._running:
            await asyncio.sleep(self._config.tick_interval)
            now = loop.time()
            send_ping = now - last_ping >= self._config.ping_interval
            if send_ping:
                last_ping = now
            for peer_id, peer in list(self._peers.items()):
                metrics.PEER_SCORE.labels(self._own_id, peer_id).set(self._scores.score(peer_id))
                link = peer.link
                if link is None:
                    continue
                if (not link.in_callback
                        and now - link.last_activity > self._config.idle_timeout):
                    self._log.info("p2p.idle_timeout", peer=peer_id)
                    self.penalize(peer_id, PenaltyReason.TIMEOUT)
                    link.close(goodbye="timeout")
                elif send_ping:
                    link.enqueue(encode_frame(Topic.CONTROL,
                                              encode_control(Ping(os.urandom(8)))))
