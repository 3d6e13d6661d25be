"""Start-up checks of the mempool configuration (Django system checks).

In every mode: the TTL must exceed the replay window, and an allowlist file that is named must
load. In production: an allowlist must be named (without one, every producer is refused).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from apps.mempool.admission import (
    DEFAULT_REPLAY_WINDOW_MS,
    DEFAULT_TTL_MS,
)
from apps.mempool.producers import AllowlistError, load_allowlist


@register("cybermesh")
def check_mempool(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    ttl_ms = getattr(settings, "MEMPOOL_TTL_MS", DEFAULT_TTL_MS)
    window_ms = getattr(settings, "MEMPOOL_REPLAY_WINDOW_MS",
                        getattr(settings, "CONSENSUS_REPLAY_WINDOW_MS", DEFAULT_REPLAY_WINDOW_MS))
    if not isinstance(ttl_ms, int) or not isinstance(window_ms, int) or ttl_ms <= window_ms:
        errors.append(Error(f"MEMPOOL_TTL_MS={ttl_ms!r} must be an integer above the replay "
                            f"window ({window_ms!r} ms)", id="mempool.E001"))
    path = getattr(settings, "MEMPOOL_PRODUCERS_PATH", "")
    if path:
        try:
            load_allowlist(path)
        except AllowlistError as error:
            errors.extend(Error(problem, id="mempool.E002") for problem in error.problems)
    elif getattr(settings, "PRODUCTION", False):
        errors.append(Error("MEMPOOL_PRODUCERS_PATH is not set: the mempool would refuse every "
                            "producer", id="mempool.E003"))
    return errors
