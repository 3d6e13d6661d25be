"""Every list and detail endpoint is served by indexes: its cost does not grow with the table.

Each request's SQL is captured and EXPLAINed on PostgreSQL with sequential scans and sorts
disabled (``enable_seqscan = off``, ``enable_sort = off``): the planner then uses an index
whenever one can serve the query, so a Seq Scan or a Sort left in the plan of a large table
means no index can (the table sizes of a test database do not matter). Filters that still
need an index from the ledger's owner are listed as strict expected failures, so the day the
index lands this test says so.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.api.chain import QUARANTINED_IP
from tests.api.conftest import ClientFor
from tests.ledger.chain import CommittedItem

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

LARGE_TABLES = {"blocks", "transactions", "evidence", "state_kv", "state_nodes",
                "state_versions", "state_stale_nodes", "mempool_transactions",
                "api_idempotency_keys", "audit_entries"}


def _equality_lookup(plan: dict[str, Any]) -> bool:
    """An index probe by equality (e.g. ``tx_id = ...``): a Filter then only sees the few
    rows with that key, not a range that grows with the table."""
    condition = plan.get("Index Cond", "") or plan.get("Recheck Cond", "")
    return " = " in condition and not any(op in condition for op in ("<", ">"))


def scans(plan: dict[str, Any]) -> list[str]:
    """Plan nodes that read a large table without an index, walk an index discarding rows
    (a Filter: the rows read grow with the table, not with the answer), or sort."""
    found = []
    relation = plan.get("Relation Name")
    if plan["Node Type"] == "Seq Scan" and relation in LARGE_TABLES:
        found.append(f"Seq Scan on {relation}")
    elif relation in LARGE_TABLES and "Filter" in plan and not _equality_lookup(plan):
        found.append(f"{plan['Node Type']} on {relation} filtering {plan['Filter']}")
    if plan["Node Type"] in ("Sort", "Incremental Sort"):
        found.append(f"Sort by {plan.get('Sort Key')}")
    for child in plan.get("Plans", []):
        found += scans(child)
    return found


def unindexed(client: Any, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.content[:300])
    problems = []
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_sort = off")
        try:
            for query in captured.captured_queries:
                sql = query["sql"]
                if not sql.startswith("SELECT") or not any(
                        f'"{table}"' in sql for table in LARGE_TABLES):
                    continue
                cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
                plan = cursor.fetchone()[0][0]["Plan"]
                problems += [f"{found} in: {sql[:200]}" for found in scans(plan)]
        finally:
            cursor.execute("RESET enable_seqscan")
            cursor.execute("RESET enable_sort")
    return problems


@pytest.fixture
def chain(policy_chain_items: list[CommittedItem], client_for: ClientFor) -> dict[str, str]:
    client = client_for("analyst")
    page = client.get("/api/v1/transactions/?limit=1").json()
    blocks = client.get("/api/v1/blocks/?limit=1").json()
    policy = client.get("/api/v1/policy/?limit=1").json()
    return {"tx_id": page["results"][0]["tx_id"],
            "policy_cursor": policy["next"].split("cursor=")[1].split("&")[0],
            "tx_cursor": page["next"].split("cursor=")[1].split("&")[0],
            "block_cursor": blocks["next"].split("cursor=")[1].split("&")[0],
            "block_hash": blocks["results"][0]["hash"]}


INDEXED = [
    "/api/v1/blocks/",
    "/api/v1/blocks/?cursor={block_cursor}",
    "/api/v1/blocks/2/",
    "/api/v1/blocks/{block_hash}/",
    "/api/v1/transactions/",
    "/api/v1/transactions/?cursor={tx_cursor}",
    "/api/v1/transactions/?height=1",
    "/api/v1/transactions/?since=2023-11-14T22:13:21Z&until=2023-11-14T22:13:23Z",
    "/api/v1/transactions/{tx_id}/",
    "/api/v1/submissions/{tx_id}/",
    "/api/v1/status/",
    "/api/v1/validators/",
    f"/api/v1/state/proof/?record=quarantine&subject_kind=ip&subject_value={QUARANTINED_IP}",
    f"/api/v1/entities/ip/{QUARANTINED_IP}/",
    f"/api/v1/entities/ip/{QUARANTINED_IP}/history/?record=quarantine",
    "/api/v1/policy/decision/?entity_kind=ip&entity_value=203.0.113.9&scope=ingress",
    "/api/v1/transactions/?kind=policy",
    "/api/v1/transactions/?producer=ai-1",
    f"/api/v1/transactions/?offender=ip:{QUARANTINED_IP}",
    "/api/v1/transactions/?offender=validator-3",
    "/api/v1/transactions/?severity=7",
    # A filter and a time range: one range of the filter's index (height bounds included).
    f"/api/v1/transactions/?offender=ip:{QUARANTINED_IP}"
    "&since=2023-11-14T22:13:21Z&until=2023-11-14T22:13:23Z",
    "/api/v1/transactions/?severity=7&since=2023-11-14T22:13:21Z",
    "/api/v1/evidence/",
    "/api/v1/evidence/?offender=v1",
    # Two record types: one range of the namespace index each, merged by the view.
    "/api/v1/policy/",
    "/api/v1/policy/?limit=1&cursor={policy_cursor}",
    "/api/v1/policy/?type=rule",
    "/api/v1/policy/?type=quarantine&version=2",
]

@pytest.mark.parametrize("template", INDEXED)
def test_the_endpoint_is_served_by_indexes(client_for: ClientFor, chain: dict[str, str],
                                           template: str) -> None:
    url = template.format(**chain)
    assert unindexed(client_for("analyst"), url) == []


def test_the_checker_flags_a_filtered_walk_and_a_sort(client_for: ClientFor,
                                                      chain: dict[str, str]) -> None:
    from apps.ledger.models import Transaction

    def plan_of(queryset: Any) -> dict[str, Any]:
        with CaptureQueriesContext(connection) as captured:
            list(queryset)
        with connection.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")
            cursor.execute("EXPLAIN (FORMAT JSON) " + captured.captured_queries[-1]["sql"])
            plan: dict[str, Any] = cursor.fetchone()[0][0]["Plan"]
            cursor.execute("RESET enable_seqscan")
        return plan

    # public_key has no index of its own: the plan walks the primary key and filters.
    walk = scans(plan_of(Transaction.objects.filter(public_key=b"\x01" * 32)
                         .order_by("-block_height", "-idx")[:5]))
    assert walk and "filtering" in walk[0] and "public_key" in walk[0]
    assert any(found.startswith("Sort") for found in scans(plan_of(
        Transaction.objects.order_by("-created_at")[:5])))
