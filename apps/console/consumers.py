"""The dashboard's live commit feed over WebSocket (see :mod:`apps.console.live` for why it
polls the blocks table and listens for nudges).

Protocol (server -> client, JSON): ``{"type": "blocks", "blocks": [...]}`` with the latest
blocks on connect, then every block committed after them, oldest first, each exactly once per
connection. The client sends nothing. Only staff who may view blocks (``ledger.view_block``)
are accepted; others are closed with code 4403.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db import close_old_connections

from apps.console.live import COMMITS_GROUP, FEED_BACKLOG, MAX_FEED_BATCH, blocks_after

FORBIDDEN = 4403


def _poll_seconds() -> float:
    return max(100, int(getattr(settings, "CONSOLE_LIVE_POLL_MS", 1000))) / 1000


@database_sync_to_async  # type: ignore[untyped-decorator]
def _allowed(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active
                and user.is_staff and user.has_perm("ledger.view_block"))


@database_sync_to_async  # type: ignore[untyped-decorator]
def _blocks_after(height: int | None, limit: int) -> list[dict[str, Any]]:
    close_old_connections()
    return blocks_after(height, limit=limit)


class CommitFeedConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        if not await _allowed(self.scope.get("user")):
            await self.close(code=FORBIDDEN)
            return
        self.last_height: int | None = None
        self.wake = asyncio.Event()
        self.lock = asyncio.Lock()
        await self.accept()
        if self.channel_layer is not None:
            await self.channel_layer.group_add(COMMITS_GROUP, self.channel_name)
        await self.push(FEED_BACKLOG)
        self.poller = asyncio.ensure_future(self.poll())

    async def disconnect(self, code: int) -> None:
        poller = getattr(self, "poller", None)
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        if self.channel_layer is not None and hasattr(self, "wake"):
            await self.channel_layer.group_discard(COMMITS_GROUP, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """The feed is one-way; anything a client sends is ignored."""

    async def commit_notify(self, message: dict[str, Any]) -> None:
        self.wake.set()

    async def push(self, limit: int = MAX_FEED_BATCH) -> None:
        async with self.lock:
            blocks = await _blocks_after(self.last_height, limit)
            if blocks:
                self.last_height = blocks[-1]["height"]
                await self.send_json({"type": "blocks", "blocks": blocks})

    async def poll(self) -> None:
        interval = _poll_seconds()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=interval)
            self.wake.clear()
            await self.push()
