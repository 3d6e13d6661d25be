"""The effective policy as the executor sees it: rules and quarantines in force, and the
decision for an entity by the documented precedence."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.chain import DENIED_CIDR, QUARANTINED_IP
from tests.api.conftest import ClientFor

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_the_snapshot_lists_the_rules_and_quarantines_in_force(
        client_for: ClientFor, policy_chain_items: Any) -> None:
    client = client_for("viewer")
    items: list[dict[str, Any]] = []
    url = "/api/v1/policy/?limit=1"
    while url:
        page = client.get(url).json()
        items += page["results"]
        url = page["next"]
    assert {item["version"] for item in items} == {2}
    by_type: dict[str, list[Any]] = {}
    for item in items:
        by_type.setdefault(item["record"]["type"], []).append(item["record"]["fields"])
        assert item["active"] and item["written_at"] == 1
    assert [q["subject"] for q in by_type["quarantine"]] == [
        {"kind": "ip", "value": QUARANTINED_IP}]
    assert sorted((r["entity"]["value"], r["scope"], r["action"]) for r in by_type["rule"]) \
        == [(DENIED_CIDR, "ingress", "deny"), ("updates.example.org", "egress", "allow")]
    rules = client.get("/api/v1/policy/?type=rule").json()["results"]
    assert {item["record"]["type"] for item in rules} == {"rule"}


def test_the_snapshot_before_the_policy_block_is_empty(client_for: ClientFor,
                                                       policy_chain_items: Any) -> None:
    assert client_for("viewer").get("/api/v1/policy/?version=0").json()["results"] == []


def test_decisions_follow_specificity_and_scope(client_for: ClientFor,
                                                policy_chain_items: Any) -> None:
    client = client_for("viewer")

    def decide(kind: str, value: str, scope: str = "*") -> dict[str, Any]:
        response = client.get(f"/api/v1/policy/decision/?entity_kind={kind}"
                              f"&entity_value={value}&scope={scope}")
        assert response.status_code == 200, response.content
        return response.json()

    inside = decide("ip", "203.0.113.9", "ingress")
    assert inside["decision"] == "deny" and inside["rule"]["fields"]["entity"]["value"] == \
        DENIED_CIDR
    assert decide("ip", "203.0.113.9", "egress")["decision"] is None  # scope differs
    assert decide("ip", "198.18.0.1", "ingress")["decision"] is None
    # Parent domains are covered: a rule on updates.example.org decides for its subdomains.
    assert decide("host", "cdn.updates.example.org", "egress")["decision"] == "allow"
    quarantined = decide("ip", QUARANTINED_IP)
    assert quarantined["quarantine"]["type"] == "quarantine"
    assert quarantined["entity"] == {"kind": "ip", "value": QUARANTINED_IP}


def test_a_bad_decision_query_is_400(client_for: ClientFor) -> None:
    client = client_for("viewer")
    response = client.get("/api/v1/policy/decision/?entity_kind=ip&entity_value=nope")
    assert response.status_code == 400 and set(response.json()["errors"]) == {"entity_value"}
    response = client.get("/api/v1/policy/decision/?entity_kind=ip&entity_value=10.0.0.1"
                          "&scope=Bad%20Scope")
    assert response.status_code == 400 and set(response.json()["errors"]) == {"scope"}


def test_a_policy_page_merges_both_record_types_and_skips_deletions(db: None) -> None:
    """policy_page reads each record type's index range and merges them; whatever the page
    size, paging yields exactly the live records at the version, tree key descending."""
    import random

    from django.utils import timezone

    from apps.api.state_queries import policy_page
    from apps.state.models import StateValue

    seed = random.randrange(1 << 32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    now = timezone.now()
    live: dict[bytes, int] = {}
    rows = []
    for index in range(40):
        key = rng.randbytes(32)
        namespace = rng.choice(["rule", "quarantine", "reputation"])
        rows.append(StateValue(key_hash=key, version=1, namespace=namespace, value=b"v1",
                               created_at=now))
        fate = rng.choice(["kept", "deleted", "deleted later", "rewritten"])
        if fate != "kept":
            version = 5 if fate == "deleted later" else 2
            rows.append(StateValue(key_hash=key, version=version, namespace=namespace,
                                   value=b"v2" if fate == "rewritten" else None,
                                   created_at=now))
        if namespace != "reputation" and fate != "deleted":
            live[key] = index
    StateValue.objects.bulk_create(rows)
    expected = sorted(live, reverse=True)
    for count in (1, 2, 3, 7, 100):
        found: list[bytes] = []
        below = None
        while True:
            page = policy_page(version=3, kinds=("quarantine", "rule"), below=below,
                               count=count)
            found += [bytes(row.key_hash) for row in page]
            if len(page) < count:
                break
            below = found[-1]
        assert found == expected, (seed, count)
