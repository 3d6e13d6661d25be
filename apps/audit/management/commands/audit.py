"""``manage.py audit verify|head|rotate-key``: thin renderings of apps.audit services."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.audit.keyring import KeyringError, configured_keyring
from apps.audit.services import rotate_signing_key, sign_head
from apps.audit.verify import DEFAULT_PAGE_SIZE, VerifyResult, chain_end, verify_chain


class Command(BaseCommand):
    help = "Verify the tamper-evident audit chain, sign its head, or rotate the HMAC key."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="subcommand", required=True,
                                         metavar="{verify,head,rotate-key}")
        verify = commands.add_parser(
            "verify", help="walk the chain; name the first broken link and exit 1 if any")
        verify.add_argument("--json", action="store_true", help="print the result as JSON")
        verify.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE,
                            help="entries read per query (memory stays constant)")
        head = commands.add_parser(
            "head", help="sign the current last entry as a head (checkpoint) and print it")
        head.add_argument("--json", action="store_true", help="print the head as JSON")
        rotate = commands.add_parser(
            "rotate-key", help="add a new current HMAC key to the keyring (old keys stay)")
        rotate.add_argument("--json", action="store_true", help="print the result as JSON")
        rotate.add_argument("--actor", default="cli", help="who is rotating (audited)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["subcommand"] == "verify":
                self._verify(as_json=options["json"], page_size=options["page_size"])
            elif options["subcommand"] == "head":
                self._head(as_json=options["json"])
            else:
                self._rotate(as_json=options["json"], actor=options["actor"])
        except KeyringError as error:
            raise CommandError(str(error)) from None

    def _verify(self, *, as_json: bool, page_size: int) -> None:
        if page_size < 1:
            raise CommandError("--page-size must be at least 1")
        keyring = configured_keyring()
        with tqdm(desc="audit verify", unit="entry", file=sys.stderr, leave=False,
                  total=chain_end(), disable=as_json or None) as bar:
            result = verify_chain(keyring=keyring, page_size=page_size, progress=bar.update)
        if as_json:
            self.stdout.write(json.dumps(result.as_dict(), sort_keys=True))
        else:
            self.stdout.write(_describe(result))
        if result.problem:
            problem = result.problem
            raise CommandError(f"audit chain broken at #{problem.seq}: "
                               f"{problem.reason.value}: {problem.detail}")

    def _head(self, *, as_json: bool) -> None:
        head = sign_head(keyring=configured_keyring())
        if head is None:
            raise CommandError("the audit chain is empty; there is no head to sign")
        if as_json:
            self.stdout.write(json.dumps(head.as_record(), sort_keys=True))
        else:
            self.stdout.write(f"head #{head.seq} {head.entry_hash} signed with key "
                              f"{head.key_id} at {head.signed_at.isoformat()}")

    def _rotate(self, *, as_json: bool, actor: str) -> None:
        result = rotate_signing_key(actor=actor)
        rotation = result.rotation
        record = {"previous_key_id": rotation.previous_key_id,
                  "current_key_id": rotation.current_key_id, "key_ids": list(rotation.key_ids),
                  "head_seq": result.head.seq if result.head else None}
        if as_json:
            self.stdout.write(json.dumps(record, sort_keys=True))
        else:
            self.stdout.write(f"current audit key is now {rotation.current_key_id} (was "
                              f"{rotation.previous_key_id}); {len(rotation.key_ids)} keys kept "
                              f"for verification; head signed at #{record['head_seq']}")


def _describe(result: VerifyResult) -> str:
    if result.problem is None:
        keys = ", ".join(f"{key_id}: {count}" for key_id, count
                         in sorted(result.entries_by_key.items())) or "none"
        head = (f"signed head #{result.head_seq} matches" if result.head_seq is not None
                else "no signed head yet")
        return (f"OK: {result.entries_checked} entries verified (#1..#{result.last_seq}), "
                f"{head}; entries by key: {keys}")
    problem = result.problem
    return (f"BROKEN at #{problem.seq}: {problem.reason.value}: {problem.detail} "
            f"({result.entries_checked} entries before it verified)")
