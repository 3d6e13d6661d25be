"""``manage.py keygen --out PATH [--kind node|producer|aead] [--label L] [--json]``.

Creates a key file with mode 0600 (never overwriting one) and prints the key id and, for
signing keys, the public key to register in genesis or the producer allowlist. The secret is
never printed.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cybermesh.keyfiles import KeyFileError, KeyKind, generate_aead_key, generate_signing_key


class Command(BaseCommand):
    help = "Create a new key file (0600, never overwritten) and print its public identity."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, help="path of the key file to create")
        parser.add_argument("--kind", choices=[kind.value for kind in KeyKind],
                            default=KeyKind.NODE.value, help="node (default), producer or aead")
        parser.add_argument("--label", default=None,
                            help="operator label; for aead keys it becomes the key id")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        kind = KeyKind(options["kind"])
        try:
            if kind is KeyKind.AEAD:
                aead_key = generate_aead_key(options["out"], key_id_label=options["label"])
                result = {"kind": kind.value, "key_id": aead_key.key_id, "path": options["out"]}
            else:
                signing_key = generate_signing_key(options["out"], kind=kind,
                                                   key_id_label=options["label"])
                result = {"kind": kind.value, "key_id": signing_key.key_id,
                          "public_key": signing_key.public_key.raw.hex(),
                          "path": options["out"]}
        except (KeyFileError, OSError) as error:
            raise CommandError(str(error)) from None
        if options["json"]:
            self.stdout.write(json.dumps(result, sort_keys=True))
        else:
            self.stdout.write(" ".join(f"{name}={value}" for name, value in result.items()))
