"""Django settings for the worker processes the Kafka tests start (``manage.py ingest``,
``celery worker``): the project settings plus the ingest and notifications apps and the
test-only knobs the environment passes in (short consumer-group timeouts for the test broker,
short delivery timeouts for the outage tests)."""

from __future__ import annotations

import os

from cybermesh.settings import *  # noqa: F403
from cybermesh.settings import INSTALLED_APPS

for _app in ("apps.ingest", "apps.notifications"):
    if _app not in INSTALLED_APPS:
        INSTALLED_APPS.append(_app)

_INT_KNOBS = (
    "KAFKA_SESSION_TIMEOUT_MS", "KAFKA_MAX_POLL_INTERVAL_MS",
    "INGEST_BATCH_SIZE", "INGEST_POLL_TIMEOUT_MS", "INGEST_PAUSE_MS",
    "NOTIFICATIONS_MESSAGE_TIMEOUT_MS", "NOTIFICATIONS_MAX_RETRIES", "NOTIFICATIONS_BATCH_SIZE",
)
_FLOAT_KNOBS = ("NOTIFICATIONS_RETRY_BASE_S", "NOTIFICATIONS_RETRY_MAX_S",
                "NOTIFICATIONS_SWEEP_INTERVAL_S", "INGEST_RETRY_BASE_S", "INGEST_RETRY_MAX_S")
_TEXT_KNOBS = ("NOTIFICATIONS_QUEUE",)

for _name in _INT_KNOBS:
    if os.environ.get(_name):
        globals()[_name] = int(os.environ[_name])
for _name in _FLOAT_KNOBS:
    if os.environ.get(_name):
        globals()[_name] = float(os.environ[_name])
for _name in _TEXT_KNOBS:
    if os.environ.get(_name):
        globals()[_name] = os.environ[_name]
if os.environ.get("TEST_KAFKA_TOPICS_JSON"):
    import json

    KAFKA_TOPICS = json.loads(os.environ["TEST_KAFKA_TOPICS_JSON"])
