"""The Celery application: drains the notification outbox and runs periodic maintenance.

Tasks are enqueued with ``transaction.on_commit`` and take ids, never objects; they are
idempotent because ``acks_late`` can redeliver after a worker dies.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cybermesh.settings")

app = Celery("cybermesh")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
