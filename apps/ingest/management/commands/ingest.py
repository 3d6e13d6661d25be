"""``manage.py ingest``: run this validator's Kafka consumer until SIGTERM / SIGINT.

    manage.py ingest [--batch-size N] [--metrics-port P] [--max-idle S] [--json]

Consumes the three ``ai.*`` topics in the node's consumer group (``KAFKA_CONSUMER_GROUP``),
admits events into the mempool and dead-letters refused ones (see ``apps/ingest/worker.py``).
On SIGTERM the batch in hand is finished and committed, the consumer leaves its group, and one
summary line is printed (JSON with ``--json``). A kill -9 loses nothing either: uncommitted
events are redelivered and de-duplicated.
"""

from __future__ import annotations

import json
import signal
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.ingest.runner import build_worker
from apps.mempool.admission import default_pipeline
from apps.mempool.producers import AllowlistError


class Command(BaseCommand):
    help = "Consume the ai.* Kafka topics into the mempool (DLQ for refused events)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=None,
                            help="messages per batch (default INGEST_BATCH_SIZE)")
        parser.add_argument("--metrics-port", type=int, default=None,
                            help="serve Prometheus metrics on 127.0.0.1:PORT")
        parser.add_argument("--max-idle", type=float, default=None,
                            help="exit after this many seconds without a message")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            default_pipeline()  # refuse to start without a chain id and a producer allowlist
            worker = build_worker(batch_size=options["batch_size"])
        except (ImproperlyConfigured, AllowlistError) as error:
            raise CommandError(str(error)) from None
        if options["metrics_port"]:
            from prometheus_client import start_http_server

            start_http_server(options["metrics_port"], addr="127.0.0.1")

        def stop(signum: int, _frame: Any) -> None:
            worker.stopping = True

        previous = {signum: signal.signal(signum, stop)
                    for signum in (signal.SIGTERM, signal.SIGINT)}
        try:
            worker.start()
            self.stdout.write(json.dumps({"event": "ingest.ready", "topics": worker.topics})
                              if options["json"] else
                              f"ingest: consuming {', '.join(worker.topics)}")
            self.stdout.flush()
            stats = worker.run(max_idle_s=options["max_idle"])
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        summary = stats.as_dict()
        if options["json"]:
            self.stdout.write(json.dumps({"event": "ingest.stopped", **summary},
                                         sort_keys=True))
        else:
            self.stdout.write(" ".join(f"{name}={value}" for name, value in summary.items()))
