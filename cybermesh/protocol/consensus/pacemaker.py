"""The pacemaker: which view a node is in, and how long it waits there.

Views advance only through certificates: a QC for view v or a TC for view v moves a node to
v + 1 (new view = max(highest QC view, highest TC view) + 1), so a node that sees a higher
certificate jumps straight to it. The wait is AIMD, in integer milliseconds: each view that
ends in a timeout multiplies the duration by ``timeout_increase_bps / 10000``, each view that
ends with a QC subtracts ``timeout_decrease_ms``; both stay within [min, max] from genesis.
Multiplicative increase finds the network's actual delay after GST in O(log) failed views;
additive decrease creeps back down slowly so a brief good spell does not cause a new storm.

A view counts as failed once, however it ended (our own timeout, then the TC that moves us
on). A failure the leader schedule *expected* — the view's leader, or the next view's, which
alone collects its votes, failed recently in the committed chain (``LeaderSchedule.suspect``)
— says nothing about network delay and does not raise the timeout; the core also gives such a
view only ``suspect_timeout_ms``. Without that, one crashed validator, which costs two views
per rotation, ratcheted every timeout to the maximum and slowed the whole chain several-fold.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PacemakerParameters:
    base_timeout_ms: int = 1000
    min_timeout_ms: int = 250
    max_timeout_ms: int = 30000
    timeout_increase_bps: int = 15000
    timeout_decrease_ms: int = 50


class Pacemaker:
    """Current view, the AIMD timeout, and the count of consecutive failed views."""

    __slots__ = ("_failed_view", "_params", "consecutive_failures", "timeout_ms", "view")

    def __init__(self, params: PacemakerParameters, view: int = 0) -> None:
        self._params = params
        self.view = view
        self.timeout_ms = params.base_timeout_ms
        self.consecutive_failures = 0
        self._failed_view = -1

    @property
    def suspect_timeout_ms(self) -> int:
        """The wait in a view whose failure is expected (module docstring): long enough for a
        live leader's normal view, short enough that a dead one costs little."""
        params = self._params
        return max(params.min_timeout_ms, min(self.timeout_ms, params.base_timeout_ms // 2))

    def enter(self, view: int, *, progress: bool, expected_failure: bool = False) -> bool:
        """Move to ``view`` if it is higher; ``progress`` says a QC (not a TC) brought us here,
        ``expected_failure`` that the view we leave without one had a suspect leader.

        Returns whether the view changed.
        """
        if view <= self.view:
            return False
        params = self._params
        if progress:
            self.consecutive_failures = 0
            self.timeout_ms = max(params.min_timeout_ms,
                                  self.timeout_ms - params.timeout_decrease_ms)
        else:
            self.record_failure(expected=expected_failure)
        self.view = view
        return True

    def record_failure(self, *, expected: bool = False) -> None:
        """The current view ends without a QC (local timeout or TC): back off multiplicatively,
        once per view, and not at all for an ``expected`` failure (module docstring)."""
        if self._failed_view == self.view:
            return
        self._failed_view = self.view
        self.consecutive_failures += 1
        if not expected:
            params = self._params
            self.timeout_ms = min(params.max_timeout_ms,
                                  self.timeout_ms * params.timeout_increase_bps // 10000)

    def reset(self, view: int) -> None:
        """A new epoch starts its views again from ``view``; the learned delay is kept."""
        self.view = view
        self.consecutive_failures = 0
