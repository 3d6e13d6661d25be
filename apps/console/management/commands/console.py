"""``manage.py console``: keep the analyst console up to the ledger, and repair its outbox.

* ``console sync [--follow] [--interval 2] [--json]``: read committed blocks into the event
  index and open cases (bounded steps until the tip; with ``--follow``, keep doing it, which
  is how a deployment runs it next to the web process, with ``CONSOLE_SYNC_ON_VIEW=false``);
* ``console resubmit [--json]``: hand ``signed`` actions (a crash between recording an
  analyst's decision and admitting its transaction) to the mempool, then settle actions.
"""

from __future__ import annotations

import json
import signal
import time
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from apps.console.actions import settle_actions, submit_actions
from apps.console.choices import ActionStatus
from apps.console.models import CaseAction
from apps.console.projection import do_sync_to_tip
from cybermesh.db import TransactionRetryExhausted

STALE_SIGNED_SECONDS = 30


class Command(BaseCommand):
    help = "Bring the analyst console up to the committed ledger; resubmit signed actions."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sync = sub.add_parser("sync", help="read new committed blocks into the console")
        sync.add_argument("--follow", action="store_true", help="keep syncing until stopped")
        sync.add_argument("--interval", type=float, default=2.0,
                          help="seconds between steps with --follow (default 2)")
        sync.add_argument("--json", action="store_true", help="one JSON line per step")
        resubmit = sub.add_parser("resubmit", help="admit signed actions, settle the rest")
        resubmit.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "resubmit":
                self._resubmit(as_json=options["json"])
            else:
                self._sync(follow=options["follow"], interval=options["interval"],
                           as_json=options["json"])
        except (DatabaseError, TransactionRetryExhausted) as error:
            raise CommandError(f"console {options['action']} failed: {error}") from None

    def _report(self, payload: dict[str, Any], text: str, *, as_json: bool) -> None:
        self.stdout.write(json.dumps(payload, sort_keys=True) if as_json else text)

    def _sync(self, *, follow: bool, interval: float, as_json: bool) -> None:
        if interval <= 0 or interval > 3600:
            raise CommandError("--interval must be within (0, 3600] seconds")
        stopping = False

        def stop(_signum: int, _frame: Any) -> None:
            nonlocal stopping
            stopping = True

        if follow:
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
        while True:
            close_old_connections()
            for result in do_sync_to_tip():
                if result.to_height is None and not result.settled:
                    continue
                self._report(
                    {"from": result.from_height, "to": result.to_height,
                     "events": result.events, "evidence": result.evidence,
                     "cases": result.cases, "settled": result.settled},
                    f"blocks {result.from_height}-{result.to_height}: {result.events} events, "
                    f"{result.evidence} evidence, {result.cases} new cases, "
                    f"{result.settled} actions settled", as_json=as_json)
            if not follow or stopping:
                return
            self._resubmit_stale(as_json=as_json)
            time.sleep(interval)
            if stopping:
                return

    def _resubmit_stale(self, *, as_json: bool) -> None:
        """Signed actions older than STALE_SIGNED_SECONDS were left by a web process that
        died between recording and admitting them (admission is idempotent, so a slow one
        racing us is harmless: the first compare-and-set wins)."""
        cutoff = timezone.now() - timedelta(seconds=STALE_SIGNED_SECONDS)
        stale = list(CaseAction.objects.filter(status=ActionStatus.SIGNED,
                                               requested_at__lt=cutoff)
                     .order_by("requested_at").values_list("id", flat=True)[:100])
        if stale:
            results = submit_actions(stale)
            self._report({"resubmitted": len(results)},
                         f"resubmitted {len(results)} stale signed action(s)", as_json=as_json)

    def _resubmit(self, *, as_json: bool) -> None:
        signed = list(CaseAction.objects.filter(status=ActionStatus.SIGNED)
                      .order_by("requested_at").values_list("id", flat=True)[:1000])
        results = submit_actions(signed)
        settled = settle_actions()
        counts: dict[str, int] = {}
        for action in results:
            counts[action.status] = counts.get(action.status, 0) + 1
        self._report({"submitted": len(results), "outcomes": counts, "settled": settled},
                     f"submitted {len(results)} signed action(s): "
                     + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none")
                     + f"; {settled} settled", as_json=as_json)
