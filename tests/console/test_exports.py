"""Exports: STIX 2.1 bundles that are valid STIX (structure, ids, timestamps, patterns,
markings that resolve), CSV cells that cannot run as spreadsheet formulas."""

from __future__ import annotations

import csv
import io
import re
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User

from apps.console.choices import Tlp
from apps.console.exports import export_rows, stix_bundle, stix_pattern, to_csv
from apps.console.models import Case
from apps.console.projection import do_sync_ledger
from apps.console.services import do_classify, do_confirm, do_update_tags
from tests.console.chain import LiveChain

STIX_ID = re.compile(r"^[a-z][a-z0-9-]+--[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}"
                     r"-[0-9a-f]{12}$")
STIX_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
PATTERN = re.compile(r"^\[(ipv4-addr|ipv6-addr|domain-name):value = '([^'\\]|\\.)*'\]$"
                     r"|^\[user-account:account_login = '([^'\\]|\\.)*'\]$")
REQUIRED = {"indicator": {"type", "spec_version", "id", "created", "modified", "pattern",
                          "pattern_type", "valid_from"},
            "identity": {"type", "spec_version", "id", "created", "modified", "name"},
            "marking-definition": {"type", "spec_version", "id", "created"}}


def check_stix_bundle(bundle: dict[str, Any]) -> None:
    """The STIX 2.1 rules an export must satisfy (section 8 bundles, 3.2 ids, 3.3 timestamps,
    2.7 markings, 9 patterns for the observables we emit)."""
    assert bundle["type"] == "bundle" and STIX_ID.match(bundle["id"])
    assert bundle["id"].startswith("bundle--") and "spec_version" not in bundle
    ids = [item["id"] for item in bundle["objects"]]
    assert len(ids) == len(set(ids))
    for item in bundle["objects"]:
        assert REQUIRED[item["type"]] <= set(item), item["type"]
        assert item["spec_version"] == "2.1" and STIX_ID.match(item["id"])
        assert item["id"].startswith(item["type"] + "--")
        for name in ("created", "modified", "valid_from"):
            if name in item:
                assert STIX_TIME.match(item[name]), (name, item[name])
        for reference in [*item.get("object_marking_refs", []), item.get("created_by_ref")]:
            assert reference is None or reference in ids, reference
        if item["type"] == "indicator":
            assert PATTERN.match(item["pattern"]), item["pattern"]
            assert item["pattern_type"] == "stix" and item["modified"] >= item["created"]


@pytest.mark.unit
@pytest.mark.parametrize(("kind", "value", "pattern"), [
    ("ip", "203.0.113.5", "[ipv4-addr:value = '203.0.113.5']"),
    ("ip", "2001:db8::1", "[ipv6-addr:value = '2001:db8::1']"),
    ("cidr", "10.0.0.0/8", "[ipv4-addr:value = '10.0.0.0/8']"),
    ("host", "c2.example.org", "[domain-name:value = 'c2.example.org']"),
    ("account", "o'brien\\x", "[user-account:account_login = 'o\\'brien\\\\x']"),
    ("other", "asset:42", None),
    ("validator", "v1", None),
])
def test_stix_patterns_quote_values(kind: str, value: str, pattern: str | None) -> None:
    assert stix_pattern(kind, value) == pattern


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_stix_bundle_of_confirmed_cases_is_valid_and_marked(chain: LiveChain,
                                                            analyst: User) -> None:
    chain.commit([chain.event("203.0.113.5", severity=9).wire,
                  chain.event("203.0.113.5", severity=8, category="scan").wire,
                  chain.event("c2.example.org", kind="host", severity=9).wire,
                  chain.event("198.51.100.3", severity=9).wire])
    do_sync_ledger()
    cases = {case.offender_value + str(case.pk): case for case in Case.objects.all()}
    for case in cases.values():
        if case.offender_value != "198.51.100.3":  # stays open: not an indicator
            do_confirm(case_id=case.pk, acting_user=analyst, quarantine=False)
    red = Case.objects.filter(offender_value="203.0.113.5").first()
    assert red is not None
    do_classify(case_id=red.pk, acting_user=analyst, severity="critical", tlp=Tlp.RED)
    do_update_tags(case_id=red.pk, acting_user=analyst, add=["T1110.001", "ssh"])

    bundle = stix_bundle(Case.objects.prefetch_related("tags"))

    check_stix_bundle(bundle)
    indicators = {item["name"]: item for item in bundle["objects"]
                  if item["type"] == "indicator"}
    assert set(indicators) == {"ip:203.0.113.5", "host:c2.example.org"}
    ip = indicators["ip:203.0.113.5"]
    assert ip["object_marking_refs"] == ["marking-definition--e828b379-4e03-4974-9ac4-"
                                         "e53a884c97c1"]  # the stricter TLP of its cases
    assert {"source_name": "mitre-attack", "external_id": "T1110.001",
            "url": "https://attack.mitre.org/techniques/T1110/001/"} in ip["external_references"]
    again = {item["name"]: item["id"] for item in stix_bundle(Case.objects.all())["objects"]
             if item["type"] == "indicator"}
    assert again["ip:203.0.113.5"] == ip["id"]  # one id per entity, export after export
    assert uuid.UUID(ip["id"].split("--")[1]).version == 5


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_csv_cells_cannot_become_formulas(chain: LiveChain, analyst: User) -> None:
    chain.commit([chain.event("198.51.100.3", severity=9).wire])
    do_sync_ledger()
    Case.objects.update(title="=HYPERLINK(\"http://evil\")")  # titles come from outside

    rows = list(csv.DictReader(io.StringIO(to_csv(export_rows(Case.objects.all())))))

    assert rows[0]["title"].startswith("'=")
