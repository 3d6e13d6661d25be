"""Producer SDK for the AI layer: sign events, publish them to the ``ai.*`` topics."""

from cybermesh.sdk.headers import (
    CONTENT_TYPE,
    HEADER_CONTENT_TYPE,
    HEADER_PRODUCER_ID,
    HEADER_SCHEMA_VERSION,
    HEADER_TX_ID,
    HEADER_TX_KIND,
    event_headers,
    header_map,
    partition_key,
)
from cybermesh.sdk.producer import DeliveryReport, EventProducer, MonotonicNonce, PublishError
from cybermesh.sdk.traffic import BadKind, Event, TrafficGenerator

__all__ = [
    "CONTENT_TYPE",
    "HEADER_CONTENT_TYPE",
    "HEADER_PRODUCER_ID",
    "HEADER_SCHEMA_VERSION",
    "HEADER_TX_ID",
    "HEADER_TX_KIND",
    "BadKind",
    "DeliveryReport",
    "Event",
    "EventProducer",
    "MonotonicNonce",
    "PublishError",
    "TrafficGenerator",
    "event_headers",
    "header_map",
    "partition_key",
]
