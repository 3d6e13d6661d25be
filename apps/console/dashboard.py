"""The dashboard's numbers, shaped for charts, and the live feed's block summaries.

Costs are bounded by construction, whatever the table sizes: the commit rate reads the last
:data:`RATE_WINDOW_BLOCKS` blocks by primary key; event charts read one day of the event
index by its time index (a day of *block* time, ending at the tip, so a quiet or replayed
chain still shows its last day); the SLA chart reads at most :data:`MAX_OPEN_CASES` open
cases; the mempool depth is one row (``mempool_stats``); the DLQ depth is the Kafka DLQ
topics' watermarks, asked at most every :data:`DLQ_CACHE_SECONDS`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Max
from django.db.models.functions import TruncHour
from django.utils import timezone

from apps.console.choices import OPEN_STATUSES, Severity, severity_for_score
from apps.console.config import console_config
from apps.console.live import blocks_after, ms_datetime
from apps.console.models import Case, IndexedEvent
from apps.console.projection import sync_lag
from apps.console.queries import sla_state
from apps.ledger.models import Block
from apps.mempool.admission import POOL_STATS_NAME
from apps.mempool.models import PoolStats
from cybermesh.logging import get_logger

logger = get_logger(__name__)

RATE_WINDOW_BLOCKS = 600
RATE_BUCKETS = 30
EVENT_WINDOW = timedelta(hours=24)
TOP_OFFENDERS = 10
MAX_OPEN_CASES = 5000
DLQ_CACHE_SECONDS = 30
SEVERITY_ORDER = [Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


def latest_height() -> int | None:
    tip = Block.objects.aggregate(tip=Max("height"))["tip"]
    return None if tip is None else int(tip)


def commit_rate() -> dict[str, Any]:
    """Blocks and transactions per bucket over the last RATE_WINDOW_BLOCKS blocks."""
    rows = list(Block.objects.order_by("-height")
                .values_list("timestamp_ms", "tx_count")[:RATE_WINDOW_BLOCKS])
    if len(rows) < 2:
        return {"labels": [], "blocks": [], "transactions": [], "blocks_per_minute": 0,
                "bucket_seconds": 0}
    newest, oldest = rows[0][0], rows[-1][0]
    span = max(1, newest - oldest)
    bucket_ms = max(1000, -(-span // RATE_BUCKETS))
    blocks = [0] * RATE_BUCKETS
    transactions = [0] * RATE_BUCKETS
    for stamp, count in rows:
        index = min(RATE_BUCKETS - 1, (stamp - oldest) // bucket_ms)
        blocks[index] += 1
        transactions[index] += count
    labels = [ms_datetime(oldest + index * bucket_ms).strftime("%H:%M:%S")
              for index in range(RATE_BUCKETS)]
    return {"labels": labels, "blocks": blocks, "transactions": transactions,
            "blocks_per_minute": round(len(rows) * 60_000 / span, 2),
            "bucket_seconds": bucket_ms // 1000}


def _window_end() -> datetime | None:
    tip = Block.objects.order_by("-height").values_list("timestamp_ms", flat=True).first()
    return ms_datetime(tip) if tip is not None else None


def events_over_time(end: datetime) -> dict[str, Any]:
    since = end - EVENT_WINDOW
    window = IndexedEvent.objects.filter(block_time__gt=since, block_time__lte=end)
    hours = [since.replace(minute=0, second=0, microsecond=0) + timedelta(hours=index + 1)
             for index in range(24)]
    position = {hour: index for index, hour in enumerate(hours)}
    by_severity = {severity: [0] * len(hours) for severity in SEVERITY_ORDER}
    by_category: dict[str, list[int]] = defaultdict(lambda: [0] * len(hours))
    rows = (window.annotate(hour=TruncHour("block_time")).order_by()
            .values_list("hour", "severity", "category").annotate(count=Count("tx_id")))
    for hour, score, category, count in rows:
        index = position.get(hour)
        if index is None:
            continue
        by_severity[severity_for_score(score)][index] += count
        by_category[category][index] += count
    return {"labels": [hour.strftime("%m-%d %H:00") for hour in hours],
            "by_severity": {str(key): value for key, value in by_severity.items()},
            "by_category": dict(sorted(by_category.items())),
            "total": sum(sum(values) for values in by_severity.values())}


def top_offenders(end: datetime) -> list[dict[str, Any]]:
    rows = (IndexedEvent.objects.filter(block_time__gt=end - EVENT_WINDOW, block_time__lte=end)
            .order_by().values("offender_kind", "offender_value")
            .annotate(events=Count("tx_id"), worst=Max("severity"))
            .order_by("-events", "offender_kind", "offender_value")[:TOP_OFFENDERS])
    return [{"kind": row["offender_kind"], "value": row["offender_value"],
             "events": row["events"], "worst_severity": row["worst"]} for row in rows]


def open_cases_by_sla(now: datetime) -> dict[str, Any]:
    config = console_config()
    buckets: dict[str, Counter[str]] = {name: Counter() for name in ("ok", "due", "overdue")}
    cases = (Case.objects.filter(status__in=list(OPEN_STATUSES))
             .only("severity", "created_at", "closed_at").order_by("created_at")
             [:MAX_OPEN_CASES])
    total = 0
    for case in cases:
        buckets[sla_state(case, now=now, config=config).bucket][case.severity] += 1
        total += 1
    return {"labels": [str(severity.label) for severity in SEVERITY_ORDER],
            "severities": [str(severity) for severity in SEVERITY_ORDER],
            "ok": [buckets["ok"][severity] for severity in SEVERITY_ORDER],
            "due": [buckets["due"][severity] for severity in SEVERITY_ORDER],
            "overdue": [buckets["overdue"][severity] for severity in SEVERITY_ORDER],
            "total": total, "capped": total >= MAX_OPEN_CASES}


def mempool_depth() -> dict[str, int]:
    row = PoolStats.objects.filter(name=POOL_STATS_NAME).values_list(
        "tx_count", "total_bytes").first()
    return {"transactions": int(row[0]) if row else 0, "bytes": int(row[1]) if row else 0}


def _read_dlq_depth(timeout_s: float) -> dict[str, Any]:
    from django.conf import settings

    if not getattr(settings, "KAFKA_BOOTSTRAP_SERVERS", ""):
        return {"available": False, "reason": "Kafka is not configured", "topics": {}}
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from apps.ingest.dlq import dlq_topics_for
    from cybermesh.kafka_config import consumer_config

    sources = [settings.KAFKA_TOPICS[name] for name in ("anomalies", "evidence", "policy")]
    depths: dict[str, int] = {}
    consumer = Consumer(consumer_config(group_id="cybermesh-console-dlq-depth"))
    try:
        metadata = consumer.list_topics(timeout=timeout_s)
        for topic in dlq_topics_for(sources):
            described = metadata.topics.get(topic)
            if described is None or described.error is not None:
                depths[topic] = 0
                continue
            total = 0
            for partition in described.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                           timeout=timeout_s)
                total += max(0, high - low)
            depths[topic] = total
    except KafkaException as error:
        logger.warning("console.dlq_depth_unavailable", error=str(error))
        return {"available": False, "reason": "Kafka did not answer", "topics": {}}
    finally:
        consumer.close()
    return {"available": True, "reason": "", "topics": depths}


def dlq_depth(*, timeout_s: float = 2.0) -> dict[str, Any]:
    """Messages held in each DLQ topic (high minus low watermark), cached briefly."""
    cached = cache.get("console:dlq_depth")
    if cached is None:
        cached = _read_dlq_depth(timeout_s)
        cache.set("console:dlq_depth", cached, DLQ_CACHE_SECONDS)
    return dict(cached)


def dashboard_data(*, now: datetime | None = None, include_dlq: bool = True) -> dict[str, Any]:
    """Everything the dashboard charts, as JSON-ready values."""
    moment = now or timezone.now()
    end = _window_end()
    dlq: dict[str, Any] = (dlq_depth() if include_dlq else
                           {"available": False, "reason": "not asked", "topics": {}})
    topics: dict[str, int] = dlq["topics"]
    empty_events = {"labels": [], "by_severity": {}, "by_category": {}, "total": 0}
    return {
        "generated_at": moment.isoformat(),
        "tip_height": latest_height(),
        "sync_lag_blocks": sync_lag(),
        "commit_rate": commit_rate(),
        "events": events_over_time(end) if end else empty_events,
        "top_offenders": top_offenders(end) if end else [],
        "open_cases": open_cases_by_sla(moment),
        "mempool": mempool_depth(),
        "dlq": dlq,
        "dlq_total": sum(topics.values()),
        "recent_blocks": blocks_after(None, limit=10)[::-1],
    }
