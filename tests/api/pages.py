"""Following the API's keyset pagination to the end."""

from __future__ import annotations

from typing import Any


def walk(client: Any, url: str) -> list[dict[str, Any]]:
    """Every item of a paged list, following ``next`` from ``url``."""
    items: list[dict[str, Any]] = []
    while url:
        page = client.get(url).json()
        items += page["results"]
        url = page["next"]
    return items
