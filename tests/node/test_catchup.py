"""The stall probe asks a peer only after the height stood still for the stall period."""

from __future__ import annotations

import pytest

from apps.node.catchup import StallProbe

pytestmark = pytest.mark.unit


def test_probes_once_per_stall_period_in_turn_and_never_while_committing() -> None:
    probe = StallProbe(stall_s=5.0)
    peers = ["node-1", "node-2"]
    assert probe.due(height=10, now=0.0, peers=peers) is None  # first sight: progress
    assert probe.due(height=10, now=4.9, peers=peers) is None
    first = probe.due(height=10, now=5.0, peers=peers)
    assert first in peers
    assert probe.due(height=10, now=6.0, peers=peers) is None  # once per period
    second = probe.due(height=10, now=10.0, peers=peers)
    assert second in peers and second != first  # in turn
    assert probe.due(height=11, now=20.0, peers=peers) is None  # it committed: reset
    assert probe.due(height=11, now=26.0, peers=[]) is None  # nobody to ask
