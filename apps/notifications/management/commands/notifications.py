"""``manage.py notifications status|drain|replay``: operate the commit-notification outbox.

    manage.py notifications status [--json]        unsent rows, oldest unsent height
    manage.py notifications drain [--json]         publish every unsent row now (no Celery)
    manage.py notifications replay --from H --to H [--json]
                                                   re-publish heights H..H (inclusive), sent
                                                   or not, with their original dedupe ids

Exits non-zero with one line when Kafka does not acknowledge every message.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.ledger.models import OutboxMessage
from apps.notifications.outbox import OutboxPublisher, drain_outbox, replay_outbox, unsent_count
from cybermesh.kafka_config import KafkaConfigError

MAX_REPLAY_HEIGHTS = 1_000_000


class Command(BaseCommand):
    help = "Inspect, drain or replay the notification outbox (control.* Kafka topics)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        status = sub.add_parser("status", help="unsent rows and the oldest unsent height")
        status.add_argument("--json", action="store_true")
        drain = sub.add_parser("drain", help="publish every unsent row now")
        drain.add_argument("--json", action="store_true")
        drain.add_argument("--bootstrap-servers", default=None)
        replay = sub.add_parser("replay", help="re-publish a height range")
        replay.add_argument("--from", dest="from_height", type=int, required=True)
        replay.add_argument("--to", dest="to_height", type=int, required=True)
        replay.add_argument("--json", action="store_true")
        replay.add_argument("--bootstrap-servers", default=None)

    def _emit(self, options: dict[str, Any], result: dict[str, Any]) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(result, sort_keys=True))
        else:
            self.stdout.write(" ".join(f"{name}={value}" for name, value in result.items()))

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "status":
            oldest = (OutboxMessage.objects.filter(sent_at__isnull=True)
                      .order_by("height", "position").values_list("height", flat=True).first())
            self._emit(options, {"unsent": unsent_count(), "oldest_unsent_height": oldest})
            return
        try:
            publisher = OutboxPublisher(bootstrap_servers=options["bootstrap_servers"])
        except KafkaConfigError as error:
            raise CommandError(str(error)) from None
        try:
            if action == "drain":
                sent = 0
                while True:
                    result = drain_outbox(publisher=publisher)
                    sent += result.sent
                    if result.failed:
                        raise CommandError(f"{result.failed} messages not acknowledged "
                                           f"({result.first_error}); {sent} sent")
                    if not result.more:
                        break
                self._emit(options, {"sent": sent, "unsent": unsent_count()})
                return
            from_height, to_height = options["from_height"], options["to_height"]
            if from_height < 0 or from_height > to_height \
                    or to_height - from_height >= MAX_REPLAY_HEIGHTS:
                raise CommandError(f"--from/--to must be 0 <= from <= to and span at most "
                                   f"{MAX_REPLAY_HEIGHTS} heights")
            result = replay_outbox(publisher=publisher, from_height=from_height,
                                   to_height=to_height)
            if result.failed:
                raise CommandError(f"{result.failed} messages not acknowledged "
                                   f"({result.first_error}); {result.sent} re-published")
            self._emit(options, {"republished": result.sent, "from": from_height,
                                 "to": to_height})
        finally:
            publisher.close()
