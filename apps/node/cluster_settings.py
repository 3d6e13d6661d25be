"""Django settings for the processes a local cluster runs (``manage.py cluster``, the cluster
tests and the end-to-end benchmark): the project settings plus

* the ingest app, for ``manage.py ingest`` (added here while the project settings do not list
  it);
* knobs read from the environment that only a loopback cluster needs:
  ``P2P_DIAL_SOURCE_HOST`` (dial peers from this local address: the partition tests give each
  node its own 127.0.0.x so a proxy can tell who is calling), ``KAFKA_SESSION_TIMEOUT_MS`` and
  ``KAFKA_MAX_POLL_INTERVAL_MS`` (the embedded broker holds a consumer-group join for about
  the rebalance timeout: short values let a node's consumer join in seconds);
  ``NODE_VOTE_JOURNAL`` (tests: a file where the worker appends every verified vote it
  receives, to check that no validator signs twice in one view); ``NODE_CATCHUP_LAG``
  (tests: how many blocks behind a node switches to ledger catch-up, default 16).

Everything else is ``cybermesh.settings`` unchanged, so a cluster node is configured like any
other node (docs/configuration.md).
"""

from __future__ import annotations

import os

from cybermesh.settings import *  # noqa: F403
from cybermesh.settings import INSTALLED_APPS

if "apps.ingest" not in INSTALLED_APPS:
    INSTALLED_APPS.append("apps.ingest")

P2P_DIAL_SOURCE_HOST = os.environ.get("P2P_DIAL_SOURCE_HOST", "")
KAFKA_SESSION_TIMEOUT_MS = int(os.environ.get("KAFKA_SESSION_TIMEOUT_MS", "6000"))
KAFKA_MAX_POLL_INTERVAL_MS = int(os.environ.get("KAFKA_MAX_POLL_INTERVAL_MS", "10000"))
NODE_VOTE_JOURNAL = os.environ.get("NODE_VOTE_JOURNAL", "")
NODE_CATCHUP_LAG = int(os.environ.get("NODE_CATCHUP_LAG", "16"))
