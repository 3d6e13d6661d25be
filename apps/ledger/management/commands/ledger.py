"""``manage.py ledger verify|export|import``: check, move and restore the committed chain.

* ``verify [--from H] [--to H] [--json] [--stop-at-first]`` recomputes block ids, tx roots, QC
  signatures and state roots (see ``apps.ledger.verification``); exits 1 naming the first bad
  height.
* ``export --out FILE [--from H] [--to H]`` writes a portable archive (``apps.ledger.archive``).
* ``import FILE`` verifies the whole archive, then commits it through the normal commit path.

The validator set comes from the genesis file (``CLUSTER_TOPOLOGY``, or ``--genesis PATH``);
later epochs from the reconfiguration blocks themselves.
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Max, Min
from tqdm import tqdm

from apps.ledger.archive import ArchiveError, export_archive, import_archive
from apps.ledger.models import Block as BlockRow
from apps.ledger.verification import verify_ledger
from cybermesh.protocol.genesis import Genesis, GenesisError
from cybermesh.topology import configured_genesis, load_genesis


class Command(BaseCommand):
    help = "Verify, export or import the committed ledger."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--genesis", help="genesis file (default: CLUSTER_TOPOLOGY)")
        parser.add_argument("--database", default="default")
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="recompute hashes, roots and signatures")
        verify.add_argument("--from", dest="from_height", type=int)
        verify.add_argument("--to", dest="to_height", type=int)
        verify.add_argument("--json", action="store_true", help="print a JSON report")
        verify.add_argument("--stop-at-first", action="store_true")
        export = sub.add_parser("export", help="write a verifiable archive")
        export.add_argument("--out", required=True)
        export.add_argument("--from", dest="from_height", type=int)
        export.add_argument("--to", dest="to_height", type=int)
        restore = sub.add_parser("import", help="verify an archive, then commit it")
        restore.add_argument("file")

    def _genesis(self, options: dict[str, Any]) -> Genesis:
        try:
            if options.get("genesis"):
                return load_genesis(options["genesis"])
            if not settings.CLUSTER_TOPOLOGY:
                raise CommandError("no genesis: set CLUSTER_TOPOLOGY or pass --genesis PATH")
            return configured_genesis(settings.CLUSTER_TOPOLOGY)
        except GenesisError as error:
            raise CommandError(f"genesis: {error}") from None

    def _bar(self, total: int, what: str, quiet: bool) -> tqdm[Any]:
        return tqdm(total=total, desc=what, unit="block", disable=quiet)

    def handle(self, *args: Any, **options: Any) -> None:
        genesis = self._genesis(options)
        action = options["action"]
        if action == "verify":
            self._verify(genesis, options)
        elif action == "export":
            self._export(genesis, options)
        else:
            self._import(genesis, options)

    def _verify(self, genesis: Genesis, options: dict[str, Any]) -> None:
        using = options["database"]
        rows = BlockRow.objects.using(using)
        if options["from_height"] is not None:
            rows = rows.filter(height__gte=options["from_height"])
        if options["to_height"] is not None:
            rows = rows.filter(height__lte=options["to_height"])
        bounds = rows.aggregate(low=Min("height"), high=Max("height"))
        total = 0 if bounds["low"] is None else bounds["high"] - bounds["low"] + 1
        with self._bar(total, "verify", options["json"]) as bar:
            report = verify_ledger(chain_id=genesis.chain_id, genesis_set=genesis.validator_set,
                                   from_height=options["from_height"],
                                   to_height=options["to_height"], using=using,
                                   progress=bar.update, stop_at_first=options["stop_at_first"])
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), sort_keys=True))
        elif report.ok:
            self.stdout.write(f"ok: {report.checked} blocks ({report.first_height}.."
                              f"{report.last_height}), state recomputed at "
                              f"{report.state_checked}, skipped (pruned) "
                              f"{report.state_skipped}")
        else:
            for problem in report.problems[:20]:
                self.stderr.write(f"height {problem.height}: {problem.reason.value}: "
                                  f"{problem.detail}")
        if not report.ok:
            first = min(report.problems, key=lambda problem: problem.height)
            raise CommandError(f"ledger verify failed: first bad height {first.height} "
                               f"({first.reason.value})")
        if report.checked == 0:
            raise CommandError("ledger verify: no blocks in the requested range")

    def _export(self, genesis: Genesis, options: dict[str, Any]) -> None:
        using = options["database"]
        rows = BlockRow.objects.using(using).aggregate(low=Min("height"), high=Max("height"))
        low = options["from_height"] if options["from_height"] is not None else rows["low"]
        high = options["to_height"] if options["to_height"] is not None else rows["high"]
        total = 0 if low is None or high is None else max(0, high - low + 1)
        try:
            with self._bar(total, "export", False) as bar:
                result = export_archive(path=Path(options["out"]), chain_id=genesis.chain_id,
                                        from_height=options["from_height"],
                                        to_height=options["to_height"], using=using,
                                        progress=bar.update)
        except ArchiveError as error:
            raise CommandError(f"ledger export: {error}") from None
        self.stdout.write(f"exported blocks {result.from_height}..{result.to_height} "
                          f"({result.blocks}) to {result.path}, digest {result.digest.hex()}")

    def _import(self, genesis: Genesis, options: dict[str, Any]) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"ledger import: {path} is not a file")
        try:
            result = import_archive(path=path, chain_id=genesis.chain_id,
                                    genesis_set=genesis.validator_set,
                                    using=options["database"], node_id=settings.NODE_ID)
        except ArchiveError as error:
            raise CommandError(f"ledger import refused, nothing written: {error}") from None
        self.stdout.write(f"imported blocks {result.from_height}..{result.to_height}: "
                          f"{result.committed} committed, {result.already_present} already "
                          "present")
