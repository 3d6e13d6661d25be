"""The scratch PostgreSQL databases the database-backed benchmarks create and drop."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import psycopg


def server_admin_connection(url: str) -> psycopg.Connection[Any]:
    """An autocommit connection to the ``postgres`` database of ``url``'s server (to create or
    drop the benchmark's own database, which cannot be done from inside it)."""
    parsed = urlparse(url)
    return psycopg.connect(dbname="postgres", user=parsed.username or "postgres",
                           password=parsed.password, host=parsed.hostname or "127.0.0.1",
                           port=parsed.port or 5432, autocommit=True)


def database_name(url: str) -> str:
    return urlparse(url).path.lstrip("/")
