"""Certificates bound to validator keys, and the trust they configure."""

from __future__ import annotations

import hashlib
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

from apps.node.p2p.errors import P2PConfigError
from apps.node.p2p.tls import (
    CERT_NOT_AFTER,
    build_contexts,
    certificate_for,
    check_validator_certificates,
    identity_from_pem,
    key_anchor,
)
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.validator_set import Validator, ValidatorSet

pytestmark = pytest.mark.unit


def key(index: int) -> SigningKey:
    return SigningKey.from_seed(hashlib.sha256(f"tls-test-{index}".encode()).digest())


def test_certificate_is_deterministic_for_the_same_key_id_and_address():
    first = certificate_for(key(1), "node-1", "127.0.0.1:7001")
    assert first == certificate_for(key(1), "node-1", "127.0.0.1:7001")
    assert first != certificate_for(key(2), "node-1", "127.0.0.1:7001")
    assert first != certificate_for(key(1), "node-2", "127.0.0.1:7001")


def test_certificate_subject_key_is_the_validator_key_and_fields_are_as_documented():
    signing_key = key(1)
    certificate = x509.load_pem_x509_certificate(
        certificate_for(signing_key, "node-1", "10.0.0.7:7001"))
    public_key = certificate.public_key()
    assert isinstance(public_key, Ed25519PublicKey)
    assert public_key.public_bytes_raw() == signing_key.public_key.raw
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "node-1"
    # Issued under the key's anchor name: trusted wherever the key is (see key_anchor).
    assert certificate.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
        signing_key.public_key.raw.hex()
    assert certificate.not_valid_after_utc == CERT_NOT_AFTER
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.7")]
    assert certificate.serial_number > 0
    public_key.verify(certificate.signature, certificate.tbs_certificate_bytes)


def test_dns_address_goes_into_a_dns_subject_alternative_name():
    certificate = x509.load_pem_x509_certificate(
        certificate_for(key(1), "node-1", "validator-1.example:7001"))
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["validator-1.example"]


def test_identity_from_pem_reads_claimed_id_and_key():
    identity = identity_from_pem(certificate_for(key(3), "node-3", "127.0.0.1:7003"))
    assert identity.validator_id == "node-3"
    assert identity.public_key == key(3).public_key.raw


def test_identity_from_pem_refuses_garbage():
    with pytest.raises(P2PConfigError):
        identity_from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


def test_overlong_validator_id_is_refused():
    with pytest.raises(P2PConfigError):
        certificate_for(key(1), "n" * 65, "127.0.0.1:7001")


def _set(*indexes: int) -> ValidatorSet:
    return ValidatorSet(epoch=0, validators=tuple(
        Validator(f"node-{i}", key(i).public_key.raw, 1, f"127.0.0.1:{7000 + i}")
        for i in indexes))


def test_check_validator_certificates_accepts_matching_certificates():
    certificates = {f"node-{i}": certificate_for(key(i), f"node-{i}", f"127.0.0.1:{7000 + i}")
                    for i in (0, 1, 2, 3)}
    certificates["outsider"] = certificate_for(key(9), "outsider", "127.0.0.1:7009")
    chosen = check_validator_certificates(_set(0, 1, 2, 3), certificates)
    assert sorted(chosen) == ["node-0", "node-1", "node-2", "node-3"]


@pytest.mark.parametrize(("certificate_key", "certificate_id", "message"), [
    (1, "node-2", "names 'node-2'"),
    (9, "node-1", "not the validator's key"),
])
def test_check_validator_certificates_refuses_a_certificate_of_another_id_or_key(
        certificate_key, certificate_id, message):
    certificates = {f"node-{i}": certificate_for(key(i), f"node-{i}", f"127.0.0.1:{7000 + i}")
                    for i in (0, 2)}
    certificates["node-1"] = certificate_for(key(certificate_key), certificate_id,
                                             "127.0.0.1:7001")
    with pytest.raises(P2PConfigError, match=message):
        check_validator_certificates(_set(0, 1, 2), certificates)


def test_check_validator_certificates_refuses_a_missing_certificate():
    with pytest.raises(P2PConfigError, match="no TLS certificate"):
        check_validator_certificates(_set(0, 1), {
            "node-0": certificate_for(key(0), "node-0", "127.0.0.1:7000")})


def test_contexts_require_tls13_and_client_certificates():
    own = certificate_for(key(0), "node-0", "127.0.0.1:7000")
    contexts = build_contexts(key(0), own, [key(0).public_key.raw])
    for context in (contexts.server, contexts.client):
        assert context.minimum_version is ssl.TLSVersion.TLSv1_3
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert not context.check_hostname


def test_contexts_refuse_a_certificate_that_is_not_ours():
    with pytest.raises(P2PConfigError, match="does not hold our signing key"):
        other = certificate_for(key(1), "node-1", "127.0.0.1:7001")
        build_contexts(key(0), other, [key(1).public_key.raw])


def test_genesis_certificates_round_trip_through_a_genesis_document():
    from apps.node.p2p.tls import genesis_certificates
    from cybermesh.protocol.genesis import genesis_document
    validators = [(f"node-{i}", key(i).public_key.raw, 1, f"127.0.0.1:{7000 + i}")
                  for i in range(4)]
    document = genesis_document(chain_id="c", genesis_time_ms=0, validators=validators)
    for entry, (validator_id, _key, _power, address) in zip(
            document["validators"], validators, strict=True):
        entry["tls_certificate"] = certificate_for(
            key(int(validator_id[-1])), validator_id, address).decode("ascii")
    certificates = genesis_certificates(document)
    validator_set = ValidatorSet(epoch=0, validators=tuple(
        Validator(v, k, p, a) for v, k, p, a in validators))
    assert sorted(check_validator_certificates(validator_set, certificates)) == [
        "node-0", "node-1", "node-2", "node-3"]
    document["validators"][0]["tls_certificate"] = "x" * 5000
    with pytest.raises(P2PConfigError, match="at most"):
        genesis_certificates(document)


def test_a_key_anchor_trusts_certificates_signed_with_that_key_and_no_other():
    """The anchor is what makes trust follow the validator set's keys: a certificate issued
    under a key's anchor name verifies against the anchor only if that key signed it."""
    anchor = x509.load_pem_x509_certificate(key_anchor(key(1).public_key.raw))
    assert anchor.public_key().public_bytes_raw() == key(1).public_key.raw
    good = x509.load_pem_x509_certificate(certificate_for(key(1), "node-1", "127.0.0.1:7001"))
    good.verify_directly_issued_by(anchor)
    forged = x509.load_pem_x509_certificate(certificate_for(key(2), "node-1", "127.0.0.1:7001"))
    with pytest.raises((ValueError, InvalidSignature)):
        forged.verify_directly_issued_by(anchor)
