"""Pure pieces of the Kafka bridge: client configuration, SDK keys/headers/nonces, how an
admission result is disposed of."""

from __future__ import annotations

import time
from typing import Any

import pytest

from apps.ingest.worker import Disposition, classify
from apps.mempool.admission import AdmissionReason, AdmissionResult, AdmissionStatus
from cybermesh.kafka_config import (
    KafkaConfigError,
    consumer_config,
    dlq_topic,
    producer_config,
    redacted,
)
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.txs import (
    Entity,
    EntityKind,
    PolicyChange,
    PolicyOperation,
    decode_transaction,
    sign_transaction,
)
from cybermesh.sdk import (
    BadKind,
    MonotonicNonce,
    TrafficGenerator,
    event_headers,
    header_map,
    partition_key,
)

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-sasl-password"


@pytest.fixture
def kafka(settings: Any) -> Any:
    settings.KAFKA_BOOTSTRAP_SERVERS = "broker-1:9093,broker-2:9093"
    settings.KAFKA_SECURITY_PROTOCOL = "PLAINTEXT"
    settings.KAFKA_SASL_MECHANISM = ""
    settings.KAFKA_SASL_USERNAME = ""
    settings.KAFKA_SASL_PASSWORD = ""
    settings.KAFKA_SSL_CA_LOCATION = ""
    settings.KAFKA_SSL_CERTIFICATE_LOCATION = ""
    settings.KAFKA_SSL_KEY_LOCATION = ""
    return settings


def test_consumer_commits_only_when_told_and_producer_is_idempotent(kafka: Any) -> None:
    kafka.KAFKA_SESSION_TIMEOUT_MS = 6000
    kafka.KAFKA_MAX_POLL_INTERVAL_MS = 6000
    consumer = consumer_config(group_id="g")
    assert consumer["enable.auto.commit"] is False
    assert consumer["enable.auto.offset.store"] is False
    assert consumer["session.timeout.ms"] == consumer["max.poll.interval.ms"] == 6000
    assert consumer["heartbeat.interval.ms"] == 2000
    producer = producer_config()
    assert producer["enable.idempotence"] is True and producer["acks"] == "all"
    assert dlq_topic("ai.anomalies.v1") == "ai.anomalies.v1.dlq"


def test_sasl_ssl_config_carries_credentials_and_tls_and_redacts_the_password(
        kafka: Any) -> None:
    kafka.KAFKA_SECURITY_PROTOCOL = "SASL_SSL"
    kafka.KAFKA_SASL_MECHANISM = "SCRAM-SHA-512"
    kafka.KAFKA_SASL_USERNAME = "node-1"
    kafka.KAFKA_SASL_PASSWORD = SECRET
    kafka.KAFKA_SSL_CA_LOCATION = "/certs/ca.pem"
    config = producer_config()
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.password"] == SECRET
    assert config["ssl.ca.location"] == "/certs/ca.pem"
    assert config["ssl.endpoint.identification.algorithm"] == "https"
    assert SECRET not in repr(redacted(config))
    assert redacted(config)["sasl.username"] == "node-1"


@pytest.mark.parametrize(("changes", "message"), [
    ({"KAFKA_BOOTSTRAP_SERVERS": ""}, "KAFKA_BOOTSTRAP_SERVERS"),
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI"},
     "KAFKA_SASL_MECHANISM"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN",
      "KAFKA_SASL_USERNAME": "node-1"}, "KAFKA_SASL_PASSWORD"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTIFICATE_LOCATION": "/c.pem"},
     "KAFKA_SSL_KEY_LOCATION"),
])
def test_unusable_kafka_settings_are_refused_naming_the_setting_not_the_secret(
        kafka: Any, changes: dict[str, str], message: str) -> None:
    kafka.KAFKA_SASL_PASSWORD = ""
    for name, value in changes.items():
        setattr(kafka, name, value)
    with pytest.raises(KafkaConfigError, match=message) as raised:
        consumer_config()
    assert SECRET not in str(raised.value)


def test_admission_results_map_to_done_dead_letter_or_defer() -> None:
    tx_id = bytes(32)
    assert classify(AdmissionResult(AdmissionStatus.ADMITTED, tx_id)) == Disposition.DONE
    assert classify(AdmissionResult(AdmissionStatus.DUPLICATE, tx_id)) == Disposition.DONE
    for reason in AdmissionReason:
        result = AdmissionResult(AdmissionStatus.REJECTED, tx_id, reason, "detail")
        expected = (Disposition.DEFER if reason is AdmissionReason.POOL_FULL
                    else Disposition.DEAD_LETTER)
        assert classify(result) == expected, reason


def test_events_are_keyed_by_offender_and_policy_entity_with_informational_headers() -> None:
    key = SigningKey.from_seed(bytes(range(32)))
    traffic = TrafficGenerator(key, producer_id="det-1", chain_id="unit-chain", seed=9)
    now_ms = time.time_ns() // 1_000_000
    event = traffic.valid(now_ms).transaction
    assert event is not None
    payload = event.payload
    offender = getattr(payload, "offender", None) or getattr(payload, "entity", None)
    if offender is not None:
        assert partition_key(event) == f"{offender.kind.value}:{offender.value}".encode()
    policy = sign_transaction(key, PolicyChange(
        operation=PolicyOperation.QUARANTINE, entity=Entity.of(EntityKind.IP, "198.51.100.4"),
        reason="r", expires_at_ms=now_ms + 60_000), chain_id="unit-chain", producer_id="det-1",
        nonce=1, created_at_ms=now_ms)
    assert partition_key(policy) == b"ip:198.51.100.4"
    headers = dict(event_headers(policy))
    assert headers["tx-id"] == policy.tx_id.hex().encode()
    assert headers["producer-id"] == b"det-1"
    assert headers["schema-version"] == b"1"


def test_header_map_is_bounded_and_keeps_the_first_occurrence() -> None:
    headers = [("a", b"1"), ("a", b"2"), ("big", b"x" * 5000), ("bad", b"\xff\xfe")]
    headers += [(f"h{i}", b"v") for i in range(100)]
    mapped = header_map(headers)
    assert mapped["a"] == "1"
    assert len(mapped["big"]) == 1024
    assert mapped["bad"] == "\ufffd\ufffd"
    assert len(mapped) <= 32


def test_nonces_strictly_increase_even_when_the_clock_stands_still_or_steps_back() -> None:
    readings = iter([5_000_000, 5_000_000, 4_000_000, 9_000_000])
    nonce = MonotonicNonce(clock_ns=lambda: next(readings))
    values = [nonce() for _ in range(4)]
    assert values == [5000, 5001, 5002, 9000]


def test_bad_traffic_is_refused_by_the_transaction_layer_for_the_intended_reason() -> None:
    key = SigningKey.from_seed(bytes(range(32)))
    traffic = TrafficGenerator(key, producer_id="det-1", chain_id="unit-chain", seed=4)
    now_ms = time.time_ns() // 1_000_000
    expected = {BadKind.MALFORMED: "malformed_encoding", BadKind.OVERSIZED: "too_large",
                BadKind.FORGED: "bad_signature"}
    for bad, reason in expected.items():
        for _ in range(5):
            with pytest.raises(ValueError, match=reason):
                decode_transaction(traffic.bad(bad, now_ms).value)
    # Unauthorized and replayed events are well-formed and correctly signed: only the
    # validator's allowlist and nonce records can refuse them (tests/ingest/test_worker.py).
    stranger = decode_transaction(traffic.bad(BadKind.UNAUTHORIZED, now_ms).value)
    assert stranger.public_key != key.public_key.raw
    replay = decode_transaction(traffic.bad(BadKind.REPLAYED, now_ms).value)
    assert replay.public_key == key.public_key.raw
