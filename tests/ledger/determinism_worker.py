"""Subprocess for the determinism test: builds a fresh database, commits the executed test
chain through the node's commit path, prints ``{height: state root hex}`` as JSON, and drops
the database. Run as ``python -m tests.ledger.determinism_worker SEED BLOCKS DBNAME``.
"""

from __future__ import annotations

import json
import os
import sys

import django


def main() -> None:
    seed, blocks, db_name = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cybermesh.settings")
    from django.conf import settings
    # A brand-new database built from the models, as pytest-django builds the test database.
    settings.DATABASES["default"]["TEST"] = {"NAME": db_name,
                                             "MIGRATE": os.environ.get("MIGRATE") == "1"}
    django.setup()
    from django.db import connection

    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        from tests.ledger.chain import replay_into_database
        roots = replay_into_database(seed, blocks, snapshot_interval=7)
        print(json.dumps({str(height): root.hex() for height, root in roots.items()}))
    finally:
        connection.creation.destroy_test_db(db_name, verbosity=0)


if __name__ == "__main__":
    main()
