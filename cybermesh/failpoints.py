"""Named fault-injection points for crash tests (in the manner of etcd's gofail or TiKV's fail-rs).

A crash test must kill a process at one exact place (say, after a batch is durable and before
its offsets are committed); racing a timer against a busy process lands there only some of the
time. The code marks such places with :func:`hit`, and a test arms one through the environment::

    CYBERMESH_FAILPOINTS="ingest.before_offset_commit=pause@3"

Points: ``ingest.before_offset_commit`` (a batch is durable, its offsets not committed) and
``ingest.before_eviction_dead_letter`` (an eviction is committed in the database, its dead
letter not yet sent to the DLQ).

``pause@N`` parks the process at the N-th time the point is reached (N defaults to 1): it
prints ``failpoint <name> paused`` on stderr and sleeps until killed. Unset, :func:`hit` is one
dictionary lookup. Production mode refuses a non-empty ``CYBERMESH_FAILPOINTS``
(``cybermesh.E029``).
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter

__all__ = ["FailpointSpecError", "armed", "hit", "parse"]

ENV_VAR = "CYBERMESH_FAILPOINTS"
ACTIONS = frozenset({"pause"})


class FailpointSpecError(ValueError):
    """``CYBERMESH_FAILPOINTS`` is malformed."""


def parse(spec: str) -> dict[str, tuple[str, int]]:
    """``"a=pause@2,b=pause"`` -> ``{"a": ("pause", 2), "b": ("pause", 1)}``."""
    points: dict[str, tuple[str, int]] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, action = item.partition("=")
        action, _, nth_text = action.partition("@")
        if not sep or not name or action not in ACTIONS:
            raise FailpointSpecError(f"{ENV_VAR}: {item!r} is not <name>=pause[@N]")
        try:
            nth = int(nth_text) if nth_text else 1
        except ValueError:
            raise FailpointSpecError(f"{ENV_VAR}: {item!r}: N must be an integer") from None
        if nth < 1:
            raise FailpointSpecError(f"{ENV_VAR}: {item!r}: N must be at least 1")
        points[name] = (action, nth)
    return points


_ARMED = parse(os.environ.get(ENV_VAR, ""))
_hits: Counter[str] = Counter()


def armed() -> dict[str, tuple[str, int]]:
    return dict(_ARMED)


def hit(name: str) -> None:
    """Mark a place a crash test may stop the process at."""
    point = _ARMED.get(name)
    if point is None:
        return
    _hits[name] += 1
    if _hits[name] != point[1]:
        return
    print(f"failpoint {name} paused", file=sys.stderr, flush=True)
    while True:  # until the test kills the process
        time.sleep(3600)
