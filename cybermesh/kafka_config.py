"""confluent-kafka client configurations built from settings (TLS, SASL, timeouts).

One place turns ``KAFKA_*`` settings into librdkafka property dicts, so the ingest consumer,
the DLQ producer, the outbox producer, the SDK and the admin commands all speak to the brokers
the same way. Secrets (the SASL password, an SSL key password) go into the dict handed to the
client and nowhere else: :func:`redacted` is what may be logged, and :class:`KafkaConfigError`
messages name settings, never values.

Settings read here beyond the lead-owned ``KAFKA_*`` connection keys (all optional, read with
defaults so a node without them still starts; documented in docs/kafka.md):

``KAFKA_SESSION_TIMEOUT_MS`` (45000), ``KAFKA_MAX_POLL_INTERVAL_MS`` (300000)
    Consumer-group liveness. The test broker holds a JoinGroup for about the rebalance timeout,
    so tests set both to ~6000 to join in 2-3 s instead of ~25 s.
``KAFKA_CLIENT_ID`` (``cybermesh-<NODE_ID>``)
``KAFKA_SSL_KEY_PASSWORD`` (empty), ``KAFKA_SSL_ENDPOINT_IDENTIFICATION`` (``https``)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "SECRET_PROPERTIES",
    "KafkaConfigError",
    "admin_config",
    "common_config",
    "consumer_config",
    "dlq_topic",
    "ingest_topics",
    "producer_config",
    "redacted",
    "setting",
    "topic",
]

KafkaConfig = dict[str, Any]
SECURITY_PROTOCOLS = frozenset({"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"})
SASL_MECHANISMS = frozenset({"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"})
# librdkafka properties whose values are secrets: never logged, never in an exception.
SECRET_PROPERTIES = frozenset({"sasl.password", "ssl.key.password", "ssl.key.pem",
                               "sasl.oauthbearer.client.secret"})
DLQ_SUFFIX = ".dlq"
INGEST_TOPIC_NAMES = ("anomalies", "evidence", "policy")

_DEFAULTS: dict[str, Any] = {
    "KAFKA_SESSION_TIMEOUT_MS": 45_000,
    "KAFKA_MAX_POLL_INTERVAL_MS": 300_000,
    "KAFKA_SSL_KEY_PASSWORD": "",
    "KAFKA_SSL_ENDPOINT_IDENTIFICATION": "https",
    "KAFKA_CLIENT_ID": "",
}


class KafkaConfigError(ImproperlyConfigured):
    """The Kafka settings cannot make a client configuration (names the setting only)."""


def setting(name: str, default: Any = None) -> Any:
    """A setting that may not exist yet in cybermesh/settings.py: ours default here."""
    if default is None:
        default = _DEFAULTS.get(name)
    return getattr(settings, name, default)


def topic(name: str) -> str:
    """The configured topic for a logical name of ``KAFKA_TOPICS`` (``anomalies``, ...)."""
    topics: Mapping[str, str] = setting("KAFKA_TOPICS", {})
    try:
        return topics[name]
    except KeyError:
        raise KafkaConfigError(f"KAFKA_TOPICS has no {name!r} entry") from None


def ingest_topics() -> list[str]:
    """The three ``ai.*`` topics every validator consumes."""
    return [topic(name) for name in INGEST_TOPIC_NAMES]


def dlq_topic(source_topic: str) -> str:
    """Where permanently refused events of ``source_topic`` go: ``<topic>.dlq``."""
    return source_topic + DLQ_SUFFIX


def common_config(*, bootstrap_servers: str | None = None) -> KafkaConfig:
    """Connection and security properties shared by every client."""
    servers = bootstrap_servers or setting("KAFKA_BOOTSTRAP_SERVERS", "")
    if not servers:
        raise KafkaConfigError("KAFKA_BOOTSTRAP_SERVERS is empty: Kafka is not configured")
    protocol = str(setting("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")).upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise KafkaConfigError(f"KAFKA_SECURITY_PROTOCOL must be one of "
                               f"{', '.join(sorted(SECURITY_PROTOCOLS))}")
    client_id = setting("KAFKA_CLIENT_ID") or f"cybermesh-{setting('NODE_ID', 'node')}"
    config: KafkaConfig = {"bootstrap.servers": servers, "security.protocol": protocol,
                           "client.id": client_id}
    if protocol.startswith("SASL"):
        mechanism = str(setting("KAFKA_SASL_MECHANISM", "")).upper()
        if mechanism not in SASL_MECHANISMS:
            raise KafkaConfigError(f"KAFKA_SASL_MECHANISM must be one of "
                                   f"{', '.join(sorted(SASL_MECHANISMS))} with {protocol}")
        username = setting("KAFKA_SASL_USERNAME", "")
        password = setting("KAFKA_SASL_PASSWORD", "")
        if not username or not password:
            raise KafkaConfigError(f"KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required "
                                   f"with {protocol}")
        config.update({"sasl.mechanism": mechanism, "sasl.username": username,
                       "sasl.password": password})
    if protocol.endswith("SSL"):
        for name, prop in (("KAFKA_SSL_CA_LOCATION", "ssl.ca.location"),
                           ("KAFKA_SSL_CERTIFICATE_LOCATION", "ssl.certificate.location"),
                           ("KAFKA_SSL_KEY_LOCATION", "ssl.key.location"),
                           ("KAFKA_SSL_KEY_PASSWORD", "ssl.key.password")):
            value = setting(name, "")
            if value:
                config[prop] = value
        if ("ssl.certificate.location" in config) != ("ssl.key.location" in config):
            raise KafkaConfigError("KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION "
                                   "go together (mutual TLS)")
        config["ssl.endpoint.identification.algorithm"] = setting(
            "KAFKA_SSL_ENDPOINT_IDENTIFICATION")
    return config


def consumer_config(*, group_id: str | None = None, bootstrap_servers: str | None = None,
                    overrides: Mapping[str, Any] | None = None) -> KafkaConfig:
    """A consumer that commits offsets only when told (after admission or dead-lettering)."""
    session_timeout_ms = int(setting("KAFKA_SESSION_TIMEOUT_MS"))
    config = common_config(bootstrap_servers=bootstrap_servers)
    config.update({
        "group.id": group_id or setting("KAFKA_CONSUMER_GROUP", "cybermesh"),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": session_timeout_ms,
        "heartbeat.interval.ms": max(100, min(3000, session_timeout_ms // 3)),
        "max.poll.interval.ms": int(setting("KAFKA_MAX_POLL_INTERVAL_MS")),
        # Bounded prefetch: librdkafka's local queue is the only buffer below the loop.
        "queued.max.messages.kbytes": 16 * 1024,
        "isolation.level": "read_uncommitted",
    })
    config.update(overrides or {})
    return config


def producer_config(*, bootstrap_servers: str | None = None,
                    overrides: Mapping[str, Any] | None = None) -> KafkaConfig:
    """An idempotent producer: acks=all, idempotence on, so a retry never writes twice."""
    config = common_config(bootstrap_servers=bootstrap_servers)
    config.update({
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 30_000,
        "compression.type": "none",
    })
    config.update(overrides or {})
    return config


def admin_config(*, bootstrap_servers: str | None = None) -> KafkaConfig:
    return common_config(bootstrap_servers=bootstrap_servers)


def redacted(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` fit for a log line or an error: secret properties replaced."""
    return {key: ("[REDACTED]" if key in SECRET_PROPERTIES else value)
            for key, value in config.items()}
