"""An analyst in a real browser: log in, open the triage queue, confirm an evidence item, see
its quarantine transaction pending, then committed by a block, and the offender quarantined;
the dashboard charts render with data; the live feed shows new blocks as they commit.

Screenshots of each step go to ``$CONSOLE_SCREENSHOTS`` (default /tmp/console-screenshots).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from apps.console.models import CaseAction
from tests.browser.conftest import SCREENSHOTS
from tests.console.chain import LiveChain
from tests.console.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OFFENDER = "203.0.113.45"


def log_in(page: Any, server: str, user: User) -> None:
    page.goto(f"{server}/admin/login/?next=/admin/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_analyst_confirms_evidence_and_the_offender_is_quarantined_through_consensus(
        chain: LiveChain, analyst: User, mempool: Any, asgi_server: str,
        browser_page: Any) -> None:
    page = browser_page
    for severity, category in ((6, "brute_force"), (8, "scan"), (3, "malware")):
        event = chain.event(OFFENDER, severity=severity, category=category)
        chain.commit([event.wire, chain.event("198.51.100.9", severity=2).wire])
    chain.commit([chain.evidence([event.tx_id]).wire])

    log_in(page, asgi_server, analyst)
    page.click("#console-nav >> text=Triage queue")
    row = page.locator("#result_list tbody tr", has_text=f"Evidence against ip:{OFFENDER}")
    row.wait_for()
    shot(page, "1-triage-queue")

    row.locator("a.cm-ref").click()
    page.wait_for_selector("#confirm-form")
    assert page.locator("#case-status").inner_text() == "New"
    assert page.locator("#id_quarantine").is_checked()
    page.click("#op-confirm")
    page.wait_for_selector(".messagelist .success")
    assert "until a block commits it" in page.locator(".messagelist").inner_text()
    assert page.locator("#case-status").inner_text() == "Confirmed"
    assert page.locator("#case-transactions .tx-status").inner_text() == "pending"
    shot(page, "2-case-confirmed-pending")

    # A leader puts this node's mempool into a block; consensus commits it.
    (tx_id,) = chain.commit_mempool()
    assert CaseAction.objects.get().tx_id == tx_id.hex()

    page.reload()
    assert page.locator("#case-transactions .tx-status").inner_text() == "committed"
    timeline = page.locator("#case-timeline").inner_text()
    assert f"Quarantine ip:{OFFENDER}: committed in block {chain.height}" in timeline
    shot(page, "3-case-committed")

    page.click("text=Offender page")
    page.wait_for_selector("#quarantine-status")
    assert page.locator("#quarantine-status").text_content() == "quarantined"
    page.wait_for_function("document.body?.dataset.chartsReady === '1'")
    points = page.evaluate("window.cmReputationChart.data.datasets[0].data.length")
    assert points > 2
    assert "manual" in page.locator("#quarantine-history").inner_text()
    shot(page, "4-offender-quarantined")

    # The ledger explorer shows the block that carried the decision, verified from its rows.
    page.click("#console-nav >> text=Ledger")
    page.click(f"#result_list a:text-is('{chain.height}')")
    assert page.locator("#verification-status").text_content() == "verified"
    shot(page, "7-ledger-block")
    page.click(f"a:has-text('{tx_id.hex()}')")
    assert page.locator("#verification-status").text_content() == "verified"
    assert '"operation": "quarantine"' in page.locator("#tx-payload").inner_text()
    shot(page, "8-ledger-transaction")


def test_dashboard_charts_render_and_the_live_feed_shows_new_blocks(
        chain: LiveChain, analyst: User, asgi_server: str, browser_page: Any) -> None:
    page = browser_page
    for index in range(6):
        chain.commit([chain.event(f"198.51.100.{index % 3 + 1}", severity=index + 4,
                                  category=("scan", "phishing", "ddos")[index % 3]).wire])

    log_in(page, asgi_server, analyst)
    page.click("#console-nav >> text=Dashboard")
    page.wait_for_url("**/dashboard/")
    # Null-safe: the predicate may run while the new document has no body yet.
    page.wait_for_function("Number(document.body?.dataset.chartsReady) === 6")
    totals = page.evaluate("""() => Object.fromEntries(Object.entries(window.cmCharts).map(
        ([id, chart]) => [id, chart.data.datasets.reduce(
            (sum, set) => sum + set.data.reduce((a, b) => a + (Number(b) || 0), 0), 0)]))""")
    assert totals["chart-severity"] == 6 and totals["chart-category"] == 6
    assert totals["chart-offenders"] == 6 and totals["chart-sla"] == 3
    assert totals["chart-commit-rate"] >= chain.height
    page.wait_for_selector("#live-state.cm-on")
    shot(page, "5-dashboard")

    for _ in range(2):
        chain.commit([chain.event("192.0.2.200", severity=5).wire])
        page.wait_for_selector(f'#live-feed li[data-height="{chain.height}"]', timeout=10_000)
    assert page.locator("#live-feed li").first.get_attribute("data-height") == str(chain.height)
    assert page.locator("#stat-height").inner_text() == str(chain.height)
    shot(page, "6-dashboard-live-feed")
