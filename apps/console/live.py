"""The live commit feed: which blocks a dashboard has not seen yet, and the nudge that makes
open feeds look now.

Decision: the WebSocket consumer **polls the blocks table** (primary-key range above the last
height it sent, every ``CONSOLE_LIVE_POLL_MS``), and additionally listens on the channel
layer group :data:`COMMITS_GROUP` so that a process which commits a block can make every open
feed look at once (:func:`notify_commit`). Polling is what makes the feed correct: it works
with any channel layer (in-memory ones do not cross processes), survives a missed or dropped
notification (channel layers deliver at most once), and costs one indexed query per open feed
per interval. The notification only removes the wait.

This module imports only the ledger's models, so the ASGI routing can load it before the
console app is installed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from apps.ledger.models import Block
from cybermesh.logging import get_logger

logger = get_logger(__name__)

COMMITS_GROUP = "console.commits"
FEED_BACKLOG = 10
MAX_FEED_BATCH = 50


def ms_datetime(milliseconds: int) -> datetime:
    """Milliseconds since the Unix epoch (block and transaction times) as an aware datetime,
    exactly (integer arithmetic: no float rounding of the milliseconds)."""
    return datetime.fromtimestamp(milliseconds // 1000, tz=UTC).replace(
        microsecond=(milliseconds % 1000) * 1000)


def block_summary(row: Block) -> dict[str, Any]:
    """What the live feed shows of a block."""
    moment = ms_datetime(row.timestamp_ms)
    return {"height": row.height, "hash": bytes(row.block_hash).hex(),
            "proposer": row.proposer_id, "tx_count": row.tx_count, "view": row.view,
            "epoch": row.epoch, "time": moment.isoformat(),
            "time_text": moment.strftime("%Y-%m-%d %H:%M:%S")}


def blocks_after(height: int | None, *, limit: int = MAX_FEED_BATCH) -> list[dict[str, Any]]:
    """Blocks above ``height``, oldest first, at most ``limit`` (None: the latest ``limit``)."""
    fields = ("height", "block_hash", "proposer_id", "tx_count", "view", "epoch",
              "timestamp_ms")
    if height is None:
        rows = list(Block.objects.order_by("-height").only(*fields)[:limit])[::-1]
    else:
        rows = list(Block.objects.filter(height__gt=height).order_by("height")
                    .only(*fields)[:limit])
    return [block_summary(row) for row in rows]


def notify_commit(height: int) -> None:
    """Tell open feeds a block was committed (best effort; call after the commit). The feeds
    read the block from the database themselves, so a lost message only delays them."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(COMMITS_GROUP, {"type": "commit.notify",
                                                        "height": height})
    except Exception as error:  # noqa: BLE001 - a feed hint must never fail a commit
        logger.warning("console.notify_commit_failed", height=height, error=str(error))
