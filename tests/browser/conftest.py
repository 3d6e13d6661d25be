"""Browser fixtures: the whole ASGI application (HTTP, static files, WebSockets) served by
Daphne in a forked process on the test database, and Debian's Chromium driven by Playwright.

The server process is forked after the test's settings are in place (signing key, mempool
allowlist, chain id), so it runs with exactly the configuration the test set up, against the
same PostgreSQL test database the test commits blocks to.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import (  # noqa: F401  (fixtures shared with the console tests)
    analyst,
    at_rest_key,
    audit_keyring,
    chain,
    console_key,
    mempool,
    operator,
    roles,
)

# Playwright's sync API drives the browser from a greenlet running an event loop in this
# thread; Django would then refuse ORM calls made by the test itself.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(os.environ.get("CONSOLE_SCREENSHOTS",
                                  "/tmp/console-screenshots"))  # noqa: S108 - for people


def _application() -> Any:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    from cybermesh.asgi import application

    return ASGIStaticFilesHandler(application)


@pytest.fixture
def asgi_server(settings: Any, transactional_db: None) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a Daphne process serving ``cybermesh.asgi``."""
    from daphne.testing import DaphneProcess
    from django.db import connections

    settings.CONSOLE_LIVE_POLL_MS = 300
    connections.close_all()  # the child must not share the parent's database sockets
    server = DaphneProcess("127.0.0.1", _application)
    server.start()
    try:
        if not server.ready.wait(timeout=30):
            raise RuntimeError("the ASGI server did not start")
        yield f"http://127.0.0.1:{server.port.value}"
    finally:
        server.terminate()
        server.join(timeout=10)
        if server.is_alive():
            server.kill()
            server.join(timeout=10)
        _wait_for_sessions_to_close(connections["default"])


def _wait_for_sessions_to_close(connection: Any, timeout_s: float = 10.0) -> None:
    """The server's database sessions end shortly after it dies; the test database can only
    be flushed or dropped once they have."""
    import time

    deadline = time.monotonic() + timeout_s
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                           "current_database() AND pid <> pg_backend_pid()")
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.1)


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Any]:
    """A page of a fresh headless Chromium (its own user-data-dir)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver",
                    pytrace=False)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            context.close()
            # Django keys connections by async context: ORM calls the test made while
            # Playwright's loop was current have their own connection; close it here, in that
            # context, or the test database cannot be dropped at the end of the session.
            from django.db import connections

            connections.close_all()
