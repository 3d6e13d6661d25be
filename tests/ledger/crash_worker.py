"""Subprocess for the crash test: commits block ``height`` of the test chain and, inside the
transaction after every row is written, says so and sleeps until it is SIGKILLed.

Run as ``python -m tests.ledger.crash_worker HEIGHT`` with DATABASE_URL naming the test DB.
"""

from __future__ import annotations

import os
import sys
import time

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cybermesh.settings")
    django.setup()
    from apps.ledger.services import commit_block
    from tests.ledger.chain import ChainBuilder

    height = int(sys.argv[1])
    item = ChainBuilder().build(height + 1)[height]

    def hang() -> None:
        print("WRITTEN", flush=True)
        time.sleep(120)

    commit_block(block=item.block, qc=item.qc, execution=item.execution, on_written=hang)
    print("COMMITTED", flush=True)  # only reached if nobody kills us


if __name__ == "__main__":
    main()
