"""The live commit feed consumer: refuses who may not see blocks, pushes the latest blocks on
connect and each new block once, sooner when a commit nudges it."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User

from apps.console.live import notify_commit
from apps.console.routing import websocket_urlpatterns
from tests.console.chain import LiveChain

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PATH = "/ws/console/commits/"


def communicator(user: Any) -> WebsocketCommunicator:
    app = URLRouter(websocket_urlpatterns)
    connection = WebsocketCommunicator(app, PATH)
    connection.scope["user"] = user
    return connection


def test_feed_refuses_anonymous_and_users_without_block_access(viewer: User) -> None:
    async def attempt(user: Any) -> tuple[bool, int | None]:
        connection = communicator(user)
        connected, code = await connection.connect()
        await connection.disconnect()
        return connected, code

    assert async_to_sync(attempt)(AnonymousUser()) == (False, 4403)
    viewer.is_staff = False
    assert async_to_sync(attempt)(viewer) == (False, 4403)


def test_feed_sends_backlog_then_each_new_block_once(chain: LiveChain, viewer: User,
                                                     settings: Any) -> None:
    settings.CONSOLE_LIVE_POLL_MS = 60_000  # only the nudge can deliver within the test
    chain.commit()
    chain.commit()

    async def run() -> tuple[list[int], list[int], bool]:
        connection = communicator(viewer)
        connected, _ = await connection.connect()
        backlog = await connection.receive_json_from(timeout=5)
        from channels.db import database_sync_to_async

        await database_sync_to_async(chain.commit)()
        await database_sync_to_async(notify_commit)(chain.height)
        pushed = await connection.receive_json_from(timeout=5)
        quiet = await connection.receive_nothing(timeout=0.5)
        await connection.disconnect()
        return ([b["height"] for b in backlog["blocks"]],
                [b["height"] for b in pushed["blocks"]], connected and quiet)

    backlog, pushed, ok = async_to_sync(run)()
    assert backlog == [0, 1, 2] and pushed == [3] and ok
