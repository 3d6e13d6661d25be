"""TLS 1.3 with mutual authentication, certificates bound to the validator keys.

A node's TLS certificate holds its Ed25519 node key as subject public key and is signed by that
same key, so proving possession of the TLS key in the handshake (CertificateVerify) proves
possession of the node key. Certificates are deterministic (:func:`certificate_for`): the same
key, id and address always give the same bytes, because Ed25519 signatures and DER are
deterministic and every field is derived from the inputs:

* subject = ``CN=<node id>``; issuer = the key's *anchor name* ``O=cybermesh node key,
  CN=<64 hex digits of the public key>`` (see trust, below);
* serial = the first 128 bits (top bit cleared) of SHA-256 over the key, id and address;
* validity 2024-01-01T00:00:00Z .. 9999-12-31T23:59:59Z (RFC 5280 4.1.2.5 "no well-defined
  expiration"): keys rotate by validator-set change, not by certificate expiry;
* SAN = the IP or DNS name of the node's address; basic constraints CA:FALSE; key usage
  digitalSignature; extended key usage serverAuth + clientAuth.

Trust is by *key*, not by certificate bytes. For every key a node trusts (the current validator
set's keys, read from the committed ledger, plus the observer allowlist on validators) it builds
a *key anchor* (:func:`key_anchor`): a CA certificate named by the key's anchor name whose
public key is that key. OpenSSL accepts a peer's certificate only if its issuer name is the
anchor name of a trusted key and its signature verifies with that key — i.e. only if it was
signed with a trusted key. So a validator added or re-keyed by governance is trusted from the
epoch its key enters the set, without anyone distributing its certificate. The anchors are the
only trust anchors of both SSL contexts (``cadata`` + ``VERIFY_X509_PARTIAL_CHAIN``), both sides
require a certificate (``CERT_REQUIRED``), nothing below TLS 1.3 is offered or accepted, and
hostname checks are off because identity is checked after the handshake, by key: the peer
certificate's public key must be the trusted key of the id the certificate names.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from apps.node.p2p.errors import P2PConfigError
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.genesis import parse_address
from cybermesh.protocol.validator_set import ValidatorSet

CERT_NOT_BEFORE = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
CERT_NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)
MAX_COMMON_NAME = 64  # X.520 ub-common-name
_SERIAL_DOMAIN = b"cybermesh/tls-serial/v1"
_ANCHOR_ORGANIZATION = "cybermesh node key"
# The anchors' own signature is never checked (a trust anchor is trusted as configured), so any
# fixed key will do; a fixed one keeps the anchors deterministic.
_ANCHOR_SIGNER = Ed25519PrivateKey.from_private_bytes(
    hashlib.sha256(b"cybermesh/tls-anchor-signer/v1").digest())


@dataclass(frozen=True, slots=True)
class CertificateIdentity:
    """What a certificate claims: the validator id (CN) and the raw Ed25519 public key."""

    validator_id: str
    public_key: bytes


def _length_prefixed(*parts: bytes) -> bytes:
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def certificate_for(signing_key: SigningKey, validator_id: str, address: str) -> bytes:
    """The deterministic PEM certificate of a validator (embed it in genesis as
    ``validators[i].tls_certificate``). ``address`` is ``host:port`` as in genesis."""
    if not validator_id or len(validator_id) > MAX_COMMON_NAME:
        raise P2PConfigError(f"validator id must be 1..{MAX_COMMON_NAME} characters for a "
                             f"certificate, got {len(validator_id)}")
    host, _port = parse_address(address)
    private_key = Ed25519PrivateKey.from_private_bytes(signing_key.seed)
    public_raw = signing_key.public_key.raw
    digest = hashlib.sha256(_SERIAL_DOMAIN + _length_prefixed(
        public_raw, validator_id.encode(), address.encode())).digest()
    serial = (int.from_bytes(digest[:16], "big") >> 1) | 1  # positive, nonzero, <= 16 bytes
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, validator_id)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(_anchor_name(public_raw))
        .public_key(private_key.public_key())
        .serial_number(serial)
        .not_valid_before(CERT_NOT_BEFORE)
        .not_valid_after(CERT_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .sign(private_key, None)
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def _anchor_name(public_key: bytes) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ANCHOR_ORGANIZATION),
                      x509.NameAttribute(NameOID.COMMON_NAME, public_key.hex())])


@functools.lru_cache(maxsize=4096)
def key_anchor(public_key: bytes) -> bytes:
    """The PEM trust anchor that makes a TLS context accept certificates signed with
    ``public_key`` (and issued under its anchor name), whatever id or address they carry."""
    try:
        key = Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as error:
        raise P2PConfigError(f"not an Ed25519 public key: {error}") from None
    name = _anchor_name(public_key)
    anchor = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key)
        .serial_number(1)
        .not_valid_before(CERT_NOT_BEFORE)
        .not_valid_after(CERT_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .sign(_ANCHOR_SIGNER, None)
    )
    return anchor.public_bytes(serialization.Encoding.PEM)


def _identity_of(certificate: x509.Certificate) -> CertificateIdentity:
    public_key = certificate.public_key()
    if not isinstance(public_key, Ed25519PublicKey):
        raise P2PConfigError("certificate key is not Ed25519")
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not isinstance(names[0].value, str):
        raise P2PConfigError("certificate subject must hold exactly one common name")
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return CertificateIdentity(validator_id=names[0].value, public_key=raw)


def identity_from_pem(pem: bytes) -> CertificateIdentity:
    """Parse a PEM certificate and return its claimed id and key; P2PConfigError if unusable."""
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError as error:
        raise P2PConfigError(f"not a PEM certificate: {error}") from None
    return _identity_of(certificate)


def identity_from_der(der: bytes) -> CertificateIdentity:
    """The claimed id and key of a DER certificate (a TLS peer's); P2PConfigError if unusable."""
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError as error:
        raise P2PConfigError(f"not a DER certificate: {error}") from None
    return _identity_of(certificate)


def check_validator_certificates(validator_set: ValidatorSet,
                                 certificates: Mapping[str, bytes]) -> dict[str, bytes]:
    """Pick each validator's certificate and check it names that validator and holds its key.

    Returns ``validator id -> PEM`` for exactly the validators of the set. A validator without
    a certificate, or with one for another id or another key, is a configuration error: the
    node would trust a key the validator set does not vouch for.
    """
    problems: list[str] = []
    chosen: dict[str, bytes] = {}
    for validator in validator_set:
        pem = certificates.get(validator.validator_id)
        if pem is None:
            problems.append(f"validator {validator.validator_id!r} has no TLS certificate")
            continue
        try:
            identity = identity_from_pem(pem)
        except P2PConfigError as error:
            problems.append(f"validator {validator.validator_id!r}: {error}")
            continue
        if identity.validator_id != validator.validator_id:
            problems.append(f"validator {validator.validator_id!r}: certificate names "
                            f"{identity.validator_id!r}")
        elif identity.public_key != validator.public_key:
            problems.append(f"validator {validator.validator_id!r}: certificate key is not the "
                            "validator's key")
        else:
            chosen[validator.validator_id] = pem
    if problems:
        raise P2PConfigError("; ".join(problems))
    return chosen


def _load_identity(context: ssl.SSLContext, signing_key: SigningKey,
                   certificate_pem: bytes) -> None:
    """Load our certificate and key. ``ssl`` only reads keys from files, so the key goes to a
    0600 file in a 0700 temporary directory, encrypted under a one-time random password, and
    the file is deleted as soon as OpenSSL has read it: the plaintext key never touches disk."""
    identity = identity_from_pem(certificate_pem)
    if identity.public_key != signing_key.public_key.raw:
        raise P2PConfigError("our TLS certificate does not hold our signing key")
    password = os.urandom(32).hex().encode()
    private_key = Ed25519PrivateKey.from_private_bytes(signing_key.seed)
    encrypted = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password))
    with tempfile.TemporaryDirectory(prefix="cybermesh-tls-") as directory:
        cert_path = Path(directory) / "cert.pem"
        key_path = Path(directory) / "key.pem"
        for path, data in ((cert_path, certificate_pem), (key_path, encrypted)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
        context.load_cert_chain(cert_path, key_path, password=password)


def _context(purpose: int, signing_key: SigningKey, certificate_pem: bytes,
             trusted_keys: Iterable[bytes]) -> ssl.SSLContext:
    context = ssl.SSLContext(purpose)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False  # identity is checked by key after the handshake
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    anchors = "".join(key_anchor(key).decode("ascii") for key in trusted_keys)
    if not anchors:
        raise P2PConfigError("no trusted peer keys")
    context.load_verify_locations(cadata=anchors)
    _load_identity(context, signing_key, certificate_pem)
    return context


@dataclass(frozen=True, slots=True)
class TlsContexts:
    server: ssl.SSLContext
    client: ssl.SSLContext


def build_contexts(signing_key: SigningKey, certificate_pem: bytes,
                   trusted_keys: Iterable[bytes]) -> TlsContexts:
    """Server and client contexts presenting ``certificate_pem`` and trusting certificates
    signed with one of ``trusted_keys`` (raw Ed25519 public keys) and nothing else."""
    trusted = tuple(sorted(set(trusted_keys)))
    server = _context(ssl.PROTOCOL_TLS_SERVER, signing_key, certificate_pem, trusted)
    server.num_tickets = 0  # no resumption: every connection shows its certificate
    client = _context(ssl.PROTOCOL_TLS_CLIENT, signing_key, certificate_pem, trusted)
    return TlsContexts(server=server, client=client)


MAX_CERTIFICATE_PEM = 4096


def genesis_certificates(document: Mapping[str, object]) -> dict[str, bytes]:
    """``validator id -> PEM`` from a parsed genesis JSON document's
    ``validators[i].tls_certificate`` fields (validators without one are skipped; the
    network then refuses to start, naming them). Checks shape and size only:
    :func:`check_validator_certificates` checks the certificates against the validator set."""
    certificates: dict[str, bytes] = {}
    validators = document.get("validators")
    if not isinstance(validators, list):
        raise P2PConfigError("genesis has no validators list")
    for entry in validators:
        if not isinstance(entry, dict) or "tls_certificate" not in entry:
            continue
        validator_id, pem = entry.get("id"), entry["tls_certificate"]
        if not isinstance(validator_id, str) or not isinstance(pem, str):
            raise P2PConfigError("genesis tls_certificate must be a PEM string per validator id")
        if len(pem) > MAX_CERTIFICATE_PEM or not pem.isascii():
            raise P2PConfigError(f"validator {validator_id!r}: tls_certificate is not a "
                                 f"PEM certificate of at most {MAX_CERTIFICATE_PEM} bytes")
        certificates[validator_id] = pem.encode("ascii")
    return certificates
