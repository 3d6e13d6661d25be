"""Determinism: one block sequence, two fresh databases, identical state roots at every height.

The chain is executed by the real executor (security events, policy rules, evidence, expiries)
and committed through the node's path (``commit_genesis`` / ``commit_with_executor``). Database
A is this test's; database B is created from scratch by a separate process with another
``PYTHONHASHSEED``, so a result that depended on set or dict order, on the process, or on
anything but the blocks would differ. Both must also equal the roots the executor's in-memory
tree computed while building the chain (which the next block's header carries).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from apps.ledger.models import Block as BlockRow
from apps.ledger.models import OutboxMessage
from apps.state.execution import LedgerExecutor, commit_with_executor
from apps.validators.models import Validator
from tests.ledger.chain import ChainBuilder, executed_chain, replay_into_database

pytestmark = [
    pytest.mark.integration, pytest.mark.django_db(transaction=True),
]

REPO = Path(__file__).resolve().parents[2]
BLOCKS = 40


def test_two_fresh_databases_reach_identical_state_roots_at_every_height() -> None:
    seed = int(os.environ.get("LEDGER_DETERMINISM_SEED", random.randrange(1 << 30)))
    print(f"determinism seed={seed} (replay with LEDGER_DETERMINISM_SEED={seed})")
    expected = {height: item.state_root
                for height, item in enumerate(executed_chain(ChainBuilder(), BLOCKS, seed=seed))}

    roots_a = replay_into_database(seed, BLOCKS, snapshot_interval=5)

    settings_dict = connection.settings_dict
    url = (f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:"
           f"{settings_dict['PORT']}/{settings_dict['NAME']}")
    env = {**os.environ, "DATABASE_URL": url, "PYTHONHASHSEED": str(seed % 4000 + 1)}
    worker = subprocess.run(
        [sys.executable, "-m", "tests.ledger.determinism_worker", str(seed), str(BLOCKS),
         f"{settings_dict['NAME']}_determinism_b"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert worker.returncode == 0, worker.stderr[-4000:]
    roots_b = {int(height): bytes.fromhex(root)
               for height, root in json.loads(worker.stdout.strip().splitlines()[-1]).items()}

    assert sorted(roots_a) == list(range(BLOCKS))
    assert roots_a == roots_b == expected
    assert len(set(roots_a.values())) > BLOCKS // 2  # the state really changed along the way
    assert BlockRow.objects.count() == BLOCKS
    assert Validator.objects.filter(active=True).count() == 4  # the genesis set
    topics = set(OutboxMessage.objects.values_list("topic", flat=True))
    assert {"control.commits.v1", "control.reputation.v1", "control.policy.v1"} <= topics


def test_replaying_committed_blocks_after_a_restart_changes_nothing() -> None:
    seed = 99
    items = executed_chain(ChainBuilder(), 8, seed=seed)
    roots = replay_into_database(seed, 8, snapshot_interval=5)

    executor = LedgerExecutor.load()  # a restarted node rebuilds its state from the database
    assert executor.state.height == 7
    for item in items:
        outcome = commit_with_executor(executor=executor, block=item.block, qc=item.qc)
        assert outcome.state_root == roots[item.block.height]
    assert BlockRow.objects.count() == 8
