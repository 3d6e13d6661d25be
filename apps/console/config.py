"""The console's settings, read from Django settings with defaults safe on a laptop.

=================================  ===========================================================
``CONSOLE_SIGNING_KEY_PATH``       producer key file (``manage.py keygen --kind producer``) the
                                   web process signs analysts' policy transactions with; empty:
                                   actions that change shared state are refused
``CONSOLE_PRODUCER_ID``            its producer id; must be allowlisted for ``policy`` in
                                   ``MEMPOOL_PRODUCERS_PATH`` (default ``soc-console``)
``CONSOLE_SLA_HOURS``              hours to close a case, per severity (``critical=4,high=24,
                                   medium=72,low=168``)
``CONSOLE_CASE_MIN_SEVERITY``      events of this severity (1..10) or more open a case (7)
``CONSOLE_QUARANTINE_HOURS``       how long a confirmed case quarantines its offender (24)
``CONSOLE_SYNC_BATCH_BLOCKS``      most blocks one sync step reads (500)
``CONSOLE_SYNC_ON_VIEW``           the queue and dashboard bring the cases up to the tip before
                                   they render (True; off when ``console sync --follow`` runs)
``CONSOLE_LIVE_POLL_MS``           how often the live feed looks for new blocks (1000)
``CONSOLE_REQUIRE_2FA``            staff must sign in with a TOTP code (False; a user with an
                                   enrolled device always needs one)
=================================  ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from apps.console.choices import Severity

DEFAULT_SLA_HOURS = {Severity.CRITICAL: 4, Severity.HIGH: 24, Severity.MEDIUM: 72,
                     Severity.LOW: 168}
MAX_QUARANTINE_HOURS = 366 * 24


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    signing_key_path: str
    producer_id: str
    sla_hours: dict[str, int]
    case_min_severity: int
    quarantine_hours: int
    sync_batch_blocks: int
    sync_on_view: bool
    live_poll_ms: int
    require_2fa: bool

    def sla_seconds(self, severity: str) -> int:
        return self.sla_hours.get(severity, DEFAULT_SLA_HOURS[Severity.MEDIUM]) * 3600

    def problems(self) -> list[str]:
        found = []
        for severity, hours in self.sla_hours.items():
            if severity not in Severity.values:
                found.append(f"CONSOLE_SLA_HOURS: unknown severity {severity!r}")
            elif type(hours) is not int or hours < 1:
                found.append(f"CONSOLE_SLA_HOURS[{severity}] must be a positive integer")
        if not 1 <= self.case_min_severity <= 10:
            found.append("CONSOLE_CASE_MIN_SEVERITY must be within 1..10")
        if not 1 <= self.quarantine_hours <= MAX_QUARANTINE_HOURS:
            found.append(f"CONSOLE_QUARANTINE_HOURS must be within 1..{MAX_QUARANTINE_HOURS}")
        if not 1 <= self.sync_batch_blocks <= 10_000:
            found.append("CONSOLE_SYNC_BATCH_BLOCKS must be within 1..10000")
        if not 100 <= self.live_poll_ms <= 60_000:
            found.append("CONSOLE_LIVE_POLL_MS must be within 100..60000")
        return found


def console_config() -> ConsoleConfig:
    raw_sla = getattr(settings, "CONSOLE_SLA_HOURS", None) or {}
    sla = {str(key): value for key, value in DEFAULT_SLA_HOURS.items()}
    for key, value in dict(raw_sla).items():
        try:
            sla[str(key)] = int(value)
        except (TypeError, ValueError):
            sla[str(key)] = -1  # reported by problems()
    return ConsoleConfig(
        signing_key_path=str(getattr(settings, "CONSOLE_SIGNING_KEY_PATH", "") or ""),
        producer_id=str(getattr(settings, "CONSOLE_PRODUCER_ID", "") or "soc-console"),
        sla_hours=sla,
        case_min_severity=int(getattr(settings, "CONSOLE_CASE_MIN_SEVERITY", 7)),
        quarantine_hours=int(getattr(settings, "CONSOLE_QUARANTINE_HOURS", 24)),
        sync_batch_blocks=int(getattr(settings, "CONSOLE_SYNC_BATCH_BLOCKS", 500)),
        sync_on_view=bool(getattr(settings, "CONSOLE_SYNC_ON_VIEW", True)),
        live_poll_ms=int(getattr(settings, "CONSOLE_LIVE_POLL_MS", 1000)),
        require_2fa=bool(getattr(settings, "CONSOLE_REQUIRE_2FA", False)),
    )
