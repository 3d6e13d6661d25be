"""The local cluster's stand-in for the AI layer: signed events at a steady rate.

Built on the producer SDK (``cybermesh.sdk``): the realistic mix of ``TrafficGenerator``
(mostly security events about a skewed population of offenders, some evidence, a few policy
changes) stamped with the current time, and a share of events that every validator must refuse
(malformed, forged, unauthorised, replayed, oversized) so the dead-letter path has work too.
Pacing is by the monotonic clock in 100 ms ticks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from cybermesh.keyfiles import load_signing_key
from cybermesh.sdk import BadKind, EventProducer, TrafficGenerator, event_headers
from cybermesh.topology import load_genesis

logger = structlog.get_logger(__name__)
TICK_S = 0.1


def run_traffic(*, key_path: Path, producer_id: str, genesis_path: Path, rate: float,
                bad_ratio: float, seed: int, should_stop: Callable[[], bool],
                max_events: int | None = None) -> dict[str, Any]:
    """Publish until ``should_stop()`` (or ``max_events``); return counts by kind."""
    key = load_signing_key(key_path)
    chain_id = load_genesis(genesis_path).chain_id
    producer = EventProducer.from_settings(key, producer_id=producer_id, chain_id=chain_id)
    generator = TrafficGenerator(key, producer_id=producer_id, chain_id=chain_id, seed=seed)
    counts: dict[str, int] = {}
    published = 0
    started = time.monotonic()
    next_report = started + 60
    while not should_stop() and (max_events is None or published < max_events):
        due = int((time.monotonic() - started) * rate) + 1
        while published < due and (max_events is None or published < max_events):
            now_ms = time.time_ns() // 1_000_000
            if bad_ratio and generator.random.random() < bad_ratio:
                event = generator.bad(generator.random.choice(list(BadKind)), now_ms)
            else:
                event = generator.valid(now_ms)
            producer.publish_raw(event.value, topic_name=producer.topic_for(event.kind),
                                 key=event.key,
                                 headers=[] if event.transaction is None else
                                 event_headers(event.transaction))
            label = event.bad.value if event.bad else event.kind.value
            counts[label] = counts.get(label, 0) + 1
            published += 1
        time.sleep(TICK_S)  # publish_raw serves delivery reports as it goes
        if time.monotonic() >= next_report:
            next_report += 60
            logger.info("traffic", published=published, delivered=producer.report.delivered,
                        failed=producer.report.failed)
    report = producer.report
    try:
        producer.flush(10.0)
    except Exception as error:  # noqa: BLE001 - report, do not hide, a broker that went away
        logger.warning("traffic flush failed", error=str(error))
    return {"seed": seed, "published": published, "delivered": report.delivered,
            "failed": report.failed, "by_kind": counts,
            "seconds": round(time.monotonic() - started, 1)}
