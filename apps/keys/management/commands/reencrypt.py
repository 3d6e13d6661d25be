"""``manage.py reencrypt [--batch-size N] [--json] [--dry-run] [--actor NAME]``.

Moves every sealed payload to the current at-rest key (the first file in ``AT_REST_KEYS``),
so the older key files can then be dropped. Safe to interrupt and to run twice at once. With
``--dry-run`` it only opens every row not yet under the current key. Exits 1 with one line on
failure (a row under a key id the keyring lacks, a row that fails authentication, unusable key
files); the line names the row and key id, never key material.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.keys.errors import SealedPayloadError
from apps.keys.services import MAX_BATCH_SIZE, ReencryptResult, reencrypt_all
from cybermesh.db import TransactionRetryExhausted


class Command(BaseCommand):
    help = "Re-seal every at-rest payload that is not under the current key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=100,
                            help=f"rows per transaction (1..{MAX_BATCH_SIZE}, default 100)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--dry-run", action="store_true",
                            help="open every row that would be re-sealed; change nothing")
        parser.add_argument("--actor", default="cli:reencrypt", help="who runs it (audited)")

    def handle(self, *args: Any, **options: Any) -> None:
        as_json = options["json"]
        with tqdm(desc="reencrypt", unit="row", file=sys.stderr, leave=False,
                  disable=as_json or None) as bar:

            def progress(handled: int, total: int) -> None:
                if bar.total != total:
                    bar.total = total
                    bar.refresh()
                bar.update(handled)

            try:
                result = reencrypt_all(batch_size=options["batch_size"], progress=progress,
                                       dry_run=options["dry_run"], actor=options["actor"])
            except (SealedPayloadError, TransactionRetryExhausted) as error:
                raise CommandError(str(error)) from None
        if as_json:
            self.stdout.write(json.dumps(result.as_dict(), sort_keys=True))
        else:
            self.stdout.write(_describe(result))


def _by_key(counts: dict[str, int]) -> str:
    return ", ".join(f"{key_id}: {rows}" for key_id, rows in sorted(counts.items())) or "none"


def _describe(result: ReencryptResult) -> str:
    if result.dry_run:
        return (f"dry run: {result.examined} rows would move to key {result.current_key_id} "
                f"(by key: {_by_key(result.stale_before)}); all of them open")
    line = (f"resealed {result.resealed} rows to key {result.current_key_id} in "
            f"{result.batches} batches (from: {_by_key(result.stale_before)})")
    if result.skipped:
        line += f"; {result.skipped} changed concurrently and were skipped"
    if result.remaining:
        line += (f"; still under older keys: {_by_key(result.remaining)} (written during the "
                 "run; run again)")
    else:
        line += "; no rows remain under older keys"
    return line
