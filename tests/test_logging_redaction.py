"""Secrets never reach the rendered log output (cybermesh/logging.py).

Each test logs through Django's LOGGING configuration (the structlog ProcessorFormatter on the
root handler), captures the rendered JSON lines from that handler's stream, and asserts that
the secret text appears nowhere in the output while the surrounding context survives.
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from django.conf import settings

from cybermesh.logging import REDACTED, get_logger

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-Value-9f8e7d6c"


@pytest.fixture
def log_output() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Route Django's configured root handler into a buffer; return a reader of JSON lines."""
    stream = io.StringIO()
    handler = {**settings.LOGGING["handlers"]["stderr"], "stream": stream}
    logging.config.dictConfig({**settings.LOGGING, "handlers": {"stderr": handler},
                               "root": {"handlers": ["stderr"], "level": "DEBUG"}})

    def read() -> list[dict[str, Any]]:
        text = stream.getvalue()
        assert text, "nothing was logged"
        return [json.loads(line) for line in text.splitlines()]

    yield read
    structlog.contextvars.clear_contextvars()
    logging.config.dictConfig(settings.LOGGING)


def _raw(read: Callable[[], list[dict[str, Any]]]) -> str:
    return json.dumps(read())


@pytest.mark.parametrize("key", [
    "password", "db_password", "passwd", "passphrase", "secret", "client_secret", "token",
    "access_token", "api_key", "apikey", "private_key", "signing_key", "seed", "authorization",
    "Authorization", "cookie", "session_id", "credentials", "sasl_password",
    "KAFKA_SASL_PASSWORD",
])
def test_values_under_secret_key_names_are_redacted(
        log_output: Callable[[], list[dict[str, Any]]], key: str) -> None:
    get_logger("cybermesh.test").info("configured", node_id="node-3", **{key: SECRET})
    [line] = log_output()
    assert line[key] == REDACTED
    assert line["node_id"] == "node-3" and line["event"] == "configured"
    assert SECRET not in _raw(log_output)


def test_secret_keys_are_redacted_inside_nested_structures(
        log_output: Callable[[], list[dict[str, Any]]]) -> None:
    get_logger("cybermesh.test").info(
        "request", headers={"Authorization": f"Bearer {SECRET}", "Accept": "application/json"},
        producers=[{"id": "ai-1", "api_key": SECRET}], request_id="req-42")
    [line] = log_output()
    assert line["headers"] == {"Authorization": REDACTED, "Accept": "application/json"}
    assert line["producers"] == [{"id": "ai-1", "api_key": REDACTED}]
    assert line["request_id"] == "req-42"
    assert SECRET not in _raw(log_output)


def test_context_bound_secrets_are_redacted(
        log_output: Callable[[], list[dict[str, Any]]]) -> None:
    structlog.contextvars.bind_contextvars(request_id="req-7", token=SECRET)
    get_logger("cybermesh.test").warning("denied")
    [line] = log_output()
    assert line["token"] == REDACTED and line["request_id"] == "req-7"
    assert SECRET not in _raw(log_output)


@pytest.mark.parametrize("text", [
    f"Authorization: Bearer {SECRET}",
    f"authorization: basic {SECRET}",
    f"header Token {SECRET} rejected",
    f"GET /api/v1/events?api_key={SECRET}&page=2",
    f"login failed password={SECRET} user=alice",
    f"retry with token={SECRET}",
    f"connecting to postgres://cybermesh:{SECRET}@db.internal:5432/ledger",
    f"broker amqp://celery:{SECRET}@rabbit:5672//",
])
def test_credentials_inside_free_text_are_redacted_from_stdlib_loggers(
        log_output: Callable[[], list[dict[str, Any]]], text: str) -> None:
    logging.getLogger("django.request").warning("%s", text)
    [line] = log_output()
    assert REDACTED in line["event"]
    assert line["logger"] == "django.request"
    assert SECRET not in _raw(log_output)


def test_url_credentials_keep_the_rest_of_the_url(
        log_output: Callable[[], list[dict[str, Any]]]) -> None:
    get_logger("cybermesh.test").info("db", url=f"postgres://cybermesh:{SECRET}@db:5432/ledger")
    [line] = log_output()
    assert line["url"] == f"postgres://cybermesh:{REDACTED}@db:5432/ledger"


PEM_BLOCKS = [
    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI" + SECRET + "\n-----END PRIVATE KEY-----",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEow" + SECRET + "\nAAAA\n-----END RSA PRIVATE KEY-----",
    "-----BEGIN EC PRIVATE KEY-----\nMHcCAQ" + SECRET + "\n-----END EC PRIVATE KEY-----",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn" + SECRET + "\n-----END OPENSSH PRIVATE KEY-----",
]


@pytest.mark.parametrize("pem", PEM_BLOCKS)
def test_private_key_pem_blocks_are_redacted_wherever_they_appear(
        log_output: Callable[[], list[dict[str, Any]]], pem: str) -> None:
    get_logger("cybermesh.test").error("loaded key material", path="/etc/node.key", blob=pem)
    logging.getLogger("cybermesh.keys").error("bad key file contents: %s", pem)
    structlog_line, stdlib_line = log_output()
    assert structlog_line["blob"] == REDACTED
    assert structlog_line["path"] == "/etc/node.key"
    assert stdlib_line["event"] == f"bad key file contents: {REDACTED}"
    assert SECRET not in _raw(log_output)
    assert "PRIVATE KEY" not in _raw(log_output)


def test_a_public_certificate_is_not_mistaken_for_a_private_key(
        log_output: Callable[[], list[dict[str, Any]]]) -> None:
    certificate = "-----BEGIN CERTIFICATE-----\nMIIBszCCAV\n-----END CERTIFICATE-----"
    get_logger("cybermesh.test").info("peer certificate", certificate=certificate)
    [line] = log_output()
    assert line["certificate"] == certificate


def test_secrets_in_exception_tracebacks_are_redacted(
        log_output: Callable[[], list[dict[str, Any]]]) -> None:
    def connect() -> None:
        raise ConnectionError(f"could not connect to postgres://node:{SECRET}@db/ledger")

    try:
        connect()
    except ConnectionError:
        logging.getLogger("celery.worker").exception("task failed")
        get_logger("cybermesh.test").exception("commit failed", height=12)
    stdlib_line, structlog_line = log_output()
    for line in (stdlib_line, structlog_line):
        assert "ConnectionError" in line["exception"]
        assert "postgres://node:" + REDACTED + "@db/ledger" in line["exception"]
    assert structlog_line["height"] == 12
    assert SECRET not in _raw(log_output)


def test_long_raw_bytes_are_redacted_and_short_ones_kept(
        log_output: Callable[[], list[dict[str, Any]]]) -> None:
    get_logger("cybermesh.test").info("keys", key_bytes=bytes(range(32)), nonce_tag=b"ab")
    [line] = log_output()
    assert line["key_bytes"] == REDACTED
    assert line["nonce_tag"] != REDACTED


def test_ordinary_context_is_not_redacted(
        log_output: Callable[[], list[dict[str, Any]]]) -> None:
    get_logger("cybermesh.consensus").info(
        "committed", node_id="node-1", height=42, view=7, request_id="req-1",
        password_set=True, token_count=3, block_hash="ab" * 32)
    [line] = log_output()
    assert line == {**line, "node_id": "node-1", "height": 42, "view": 7, "request_id": "req-1",
                    "password_set": True, "block_hash": "ab" * 32, "level": "info",
                    "logger": "cybermesh.consensus", "event": "committed"}
    # A key-name match redacts whatever is under it, even a harmless count.
    assert line["token_count"] == REDACTED


@pytest.mark.parametrize("text", [
    f'request body {{"password": "{SECRET}"}}',
    f"password: {SECRET}",
])
def test_colon_and_json_style_secrets_in_free_text_are_redacted(
        log_output: Callable[[], list[dict[str, Any]]], text: str) -> None:
    logging.getLogger("django.request").warning("%s", text)
    assert SECRET not in _raw(log_output)


def test_url_credentials_with_an_empty_user_name_are_redacted(
        log_output: Callable[[], list[dict[str, Any]]]) -> None:
    logging.getLogger("celery").error("broker redis://:%s@127.0.0.1:6379/0 is down", SECRET)
    assert SECRET not in _raw(log_output)
