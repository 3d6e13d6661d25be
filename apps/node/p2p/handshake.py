"""Turning a TCP connection into an authenticated peer: TLS 1.3, identity by key, hello.

Order of checks (each failure raises :class:`HandshakeRefused` with the reason that is counted):

1. TLS 1.3 handshake with mutual authentication against the validator set's certificates
   (:mod:`apps.node.p2p.tls`). A certificate that is not one of them fails here:
   ``unknown_key``; any other TLS failure (TLS 1.2 client, garbage, reset): ``handshake_failed``.
2. Identity by key: the peer certificate's Ed25519 key must belong to a validator of the current
   set (``unknown_key``), whose id must be the certificate's CN and, when we dialled, the id we
   meant to reach (``identity_mismatch``); not ourselves (``self``).
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
from collections.abc import Mapping
from dataclasses import dataclass

from apps.node.p2p.control import PROTOCOL_VERSION, Goodbye, Hello, decode_control, encode_control
from apps.node.p2p.errors import HandshakeRefused, P2PConfigError, RefusalReason
from apps.node.p2p.framing import FrameError, Topic, encode_frame, read_frame
from apps.node.p2p.tls import identity_from_der
from cybermesh.protocol.validator_set import ValidatorSet

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
             expected_id: str | None) -> str:
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

