"""Turning a TCP connection into an authenticated peer: TLS 1.3, identity by key, hello.

Order of checks (each failure raises :class:`HandshakeRefused` with the reason that is counted):

1. TLS 1.3 handshake with mutual authentication against the trusted keys: the current
   validator set's and the observers' (:mod:`apps.node.p2p.tls`). A certificate not signed with
   one of them fails here: ``unknown_key``; any other TLS failure (TLS 1.2 client, garbage,
   reset): ``handshake_failed``.
2. Identity by key: the peer certificate's Ed25519 key must belong to a validator of the current
   set or to an observer (``unknown_key``), whose id must be the certificate's CN and, when we
   dialled, the id we meant to reach (``identity_mismatch``); not ourselves (``self``).
3. Quarantine: a quarantined peer is told so and dropped (``quarantined``).
4. Hello, both ways: same protocol version, chain id and topic table (``protocol_mismatch``),
   and the id it claims is the certificate's (``identity_mismatch``). A goodbye instead of a
   hello is the other side's refusal.

TLS 1.3 lets a client finish its handshake before the server has checked the client's
certificate, so a dialler only trusts the link once the server's hello arrives.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from apps.node.p2p.allowlist import Allowlist
from apps.node.p2p.control import PROTOCOL_VERSION, Goodbye, Hello, decode_control, encode_control
from apps.node.p2p.errors import HandshakeRefused, P2PConfigError, RefusalReason
from apps.node.p2p.framing import FrameError, Topic, encode_frame, read_frame
from apps.node.p2p.tls import TlsContexts, identity_from_der
from cybermesh.protocol.genesis import parse_address
from cybermesh.protocol.validator_set import Validator, ValidatorSet

_R = RefusalReason
_CONNECTION_ERRORS = (ConnectionError, OSError, asyncio.IncompleteReadError, EOFError)


@dataclass(frozen=True, slots=True)
class HandshakeSettings:
    own_id: str
    hello: Hello
    caps: Mapping[Topic, int]


async def start_tls(writer: asyncio.StreamWriter, context: ssl.SSLContext) -> None:
    """Upgrade to TLS and insist on 1.3 (the contexts already refuse anything older)."""
    try:
        await writer.start_tls(context)
    except ssl.SSLCertVerificationError as error:
        raise HandshakeRefused(_R.UNKNOWN_KEY, f"certificate refused: {error.verify_message}"
                               ) from None
    except ssl.SSLError as error:
        raise HandshakeRefused(_R.HANDSHAKE_FAILED, error.reason or str(error)) from None
    except _CONNECTION_ERRORS as error:
        raise HandshakeRefused(_R.HANDSHAKE_FAILED, type(error).__name__) from None
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is None or ssl_object.version() != "TLSv1.3":
        raise HandshakeRefused(_R.HANDSHAKE_FAILED, "not TLS 1.3")


def identify(writer: asyncio.StreamWriter, validator_set: ValidatorSet, own_id: str,
             expected_id: str | None, observers: Mapping[str, bytes] | None = None) -> str:
    """The validator id the TLS peer proved it holds the key of (step 2 above)."""
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        raise HandshakeRefused(_R.UNKNOWN_KEY, "no peer certificate")
    try:
        identity = identity_from_der(der)
    except P2PConfigError as error:
        raise HandshakeRefused(_R.UNKNOWN_KEY, str(error)) from None
    validator = validator_set.by_public_key(identity.public_key)
    if validator is None:
        validator = next((Validator(observer_id, key, 0) for observer_id, key
                          in (observers or {}).items() if key == identity.public_key), None)
    if validator is None:
        raise HandshakeRefused(_R.UNKNOWN_KEY, f"key of {identity.validator_id!r} is not in "
                               "the validator set")
    if validator.validator_id != identity.validator_id:
        raise HandshakeRefused(_R.IDENTITY_MISMATCH, f"certificate claims "
                               f"{identity.validator_id!r}, key is {validator.validator_id!r}'s")
    if expected_id is not None and validator.validator_id != expected_id:
        raise HandshakeRefused(_R.IDENTITY_MISMATCH, f"dialled {expected_id!r}, reached "
                               f"{validator.validator_id!r}")
    if validator.validator_id == own_id:
        raise HandshakeRefused(_R.SELF, "connected to ourselves")
    return validator.validator_id


async def exchange_hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         settings: HandshakeSettings, peer_id: str) -> None:
    """Send our hello, read theirs, and check it against ours and the certificate."""
    try:
        writer.write(encode_frame(Topic.CONTROL, encode_control(settings.hello)))
        await writer.drain()
        frame = await read_frame(reader, settings.caps)
    except FrameError as error:
        raise HandshakeRefused(_R.HANDSHAKE_FAILED, f"bad first frame: {error}") from None
    except ssl.SSLError as error:
        raise HandshakeRefused(_R.HANDSHAKE_FAILED, error.reason or str(error)) from None
    except _CONNECTION_ERRORS as error:
        raise HandshakeRefused(_R.HANDSHAKE_FAILED, f"closed before hello "
                               f"({type(error).__name__})") from None
    if frame is None:
        raise HandshakeRefused(_R.HANDSHAKE_FAILED, "closed before hello")
    topic, payload = frame
    if topic is not Topic.CONTROL:
        raise HandshakeRefused(_R.HANDSHAKE_FAILED, "first frame is not a hello")
    try:
        message = decode_control(payload)
    except FrameError as error:
        raise HandshakeRefused(_R.HANDSHAKE_FAILED, f"bad hello: {error}") from None
    if isinstance(message, Goodbye):
        reason = {r.value: r for r in RefusalReason}.get(message.reason, _R.HANDSHAKE_FAILED)
        raise HandshakeRefused(reason, f"refused by {peer_id}: {message.reason}")
    if not isinstance(message, Hello):
        raise HandshakeRefused(_R.HANDSHAKE_FAILED, "first control message is not a hello")
    ours = settings.hello
    if message.version != PROTOCOL_VERSION or message.chain_id != ours.chain_id:
        raise HandshakeRefused(_R.PROTOCOL_MISMATCH, f"peer speaks v{message.version} on chain "
                               f"{message.chain_id!r}")
    if message.topics != ours.topics:
        raise HandshakeRefused(_R.PROTOCOL_MISMATCH, "peer has another topic table (P2P_TOPICS)")
    if message.validator_id != peer_id:
        raise HandshakeRefused(_R.IDENTITY_MISMATCH, f"certificate is {peer_id!r}'s, hello "
                               f"claims {message.validator_id!r}")


def refuse(writer: asyncio.StreamWriter, reason: RefusalReason) -> None:
    """Tell an authenticated peer why it is dropped, then close (best effort)."""
    try:
        writer.write(encode_frame(Topic.CONTROL, encode_control(Goodbye(reason.value))))
    except (*_CONNECTION_ERRORS, ssl.SSLError, RuntimeError):
        pass
    writer.close()



RefusalCounter = Callable[[RefusalReason, str, str], None]


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A connection that passed every check: who it is and the TLS streams."""

    peer_id: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    outbound: bool


class Handshaker:
    """Accepts and dials connections and runs the checks above, within a time bound.

    ``count_refused(reason, who, detail)`` is told of every refusal; ``is_quarantined``
    answers for the peer's id. ``trust`` replaces the validator set and contexts on an epoch
    change; a handshake in progress finishes against the set it started with, and
    registration checks membership again.
    """

    def __init__(self, *, settings: HandshakeSettings, allowlist: Allowlist, timeout: float,
                 max_pending: int, dial_source_host: str | None,
                 count_refused: RefusalCounter, is_quarantined: Callable[[str], bool]) -> None:
        self._settings = settings
        self._allowlist = allowlist
        self._timeout = timeout
        self._max_pending = max_pending
        self._source_host = dial_source_host
        self._count_refused = count_refused
        self._is_quarantined = is_quarantined
        self._pending = 0
        self._validator_set: ValidatorSet | None = None
        self._contexts: TlsContexts | None = None
        self._observers: Mapping[str, bytes] = {}

    def trust(self, validator_set: ValidatorSet, contexts: TlsContexts,
              observers: Mapping[str, bytes]) -> None:
        self._validator_set = validator_set
        self._contexts = contexts
        self._observers = observers

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                     ) -> Authenticated | None:
        peername = writer.get_extra_info("peername")
        source = str(peername[0]) if peername else "?"
        if not self._allowlist.allows(source):
            self._count_refused(_R.NOT_ALLOWLISTED, source, "inbound source")
            writer.transport.abort()
            return None
        if self._pending >= self._max_pending:
            self._count_refused(_R.BUSY, source, "too many handshakes in progress")
            writer.transport.abort()
            return None
        return await self._secure(reader, writer, outbound=False, expected_id=None, who=source)

    async def dial(self, address: str, expected_id: str | None) -> Authenticated | None:
        """Connect to ``address``; ``expected_id`` None accepts any validator (bootstrap)."""
        who = expected_id or address
        host, port = parse_address(address)
        source = self._source_host
        try:
            async with asyncio.timeout(self._timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(source, 0) if source else None)
        except (OSError, TimeoutError) as error:
            self._count_refused(_R.CONNECT_FAILED, who, type(error).__name__)
            return None
        peername = writer.get_extra_info("peername")
        if not peername or not self._allowlist.allows(str(peername[0])):
            self._count_refused(_R.NOT_ALLOWLISTED, who, f"destination {peername}")
            writer.transport.abort()
            return None
        return await self._secure(reader, writer, outbound=True, expected_id=expected_id,
                                  who=who)

    async def _secure(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                      outbound: bool, expected_id: str | None, who: str) -> Authenticated | None:
        self._pending += 1
        try:
            async with asyncio.timeout(self._timeout):
                peer_id = await self._authenticate(reader, writer, outbound, expected_id)
        except HandshakeRefused as refusal:
            self._count_refused(refusal.reason, who, refusal.detail)
            if not writer.is_closing():  # else a goodbye is on its way out: let it go
                writer.transport.abort()
            return None
        except TimeoutError:
            self._count_refused(_R.HANDSHAKE_TIMEOUT, who, "")
            writer.transport.abort()
            return None
        finally:
            self._pending -= 1
        return Authenticated(peer_id=peer_id, reader=reader, writer=writer, outbound=outbound)

    async def _authenticate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            outbound: bool, expected_id: str | None) -> str:
        validator_set, contexts = self._validator_set, self._contexts
        if validator_set is None or contexts is None:
            raise HandshakeRefused(_R.HANDSHAKE_FAILED, "no trust configured")
        await start_tls(writer, contexts.client if outbound else contexts.server)
        peer_id = identify(writer, validator_set, self._settings.own_id, expected_id,
                           self._observers)
        if self._is_quarantined(peer_id):
            refuse(writer, _R.QUARANTINED)
            raise HandshakeRefused(_R.QUARANTINED, "")
        await exchange_hello(reader, writer, self._settings, peer_id)
        return peer_id
