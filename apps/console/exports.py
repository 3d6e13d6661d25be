"""Exports of a filtered case list: CSV, JSON, and STIX 2.1 bundles of confirmed indicators.

CSV and JSON carry one row per case (:func:`apps.console.queries.case_summary_row`). CSV cells
that a spreadsheet would run as a formula (leading ``= + - @`` or a tab/CR) are prefixed with
``'`` (OWASP "CSV injection"), since offender values and titles come from outside.

The STIX bundle (STIX 2.1, OASIS) holds one ``indicator`` per distinct offender of the
confirmed cases in the list that STIX can express (IP addresses and networks, domain names,
accounts), with a deterministic id (UUIDv5 of the entity), the cases as external references,
ATT&CK tags as ``mitre-attack`` references, and the strictest TLP 2.0 marking of its cases
(the official marking-definition objects are included).
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from apps.console.choices import CaseStatus, TagKind, Tlp
from apps.console.config import console_config
from apps.console.models import Case
from apps.console.queries import case_summary_row

MAX_EXPORT_ROWS = 10_000
CSV_COLUMNS = ["reference", "id", "title", "status", "closure_reason", "severity", "tlp",
               "source", "offender", "assignee", "tags", "height", "first_seen_at",
               "created_at", "closed_at", "age_seconds", "sla_seconds", "overdue",
               "merged_into", "items"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# STIX 2.1 identifiers of this exporter and the TLP 2.0 marking definitions published by
# OASIS (cti-stix-common-objects, extension-definition tlp-2.0).
STIX_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:cybermesh:console:stix")
TLP2_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP2_MARKINGS = {
    Tlp.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    Tlp.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    Tlp.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    Tlp.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    Tlp.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
TLP_ORDER = [Tlp.CLEAR, Tlp.GREEN, Tlp.AMBER, Tlp.AMBER_STRICT, Tlp.RED]


def export_rows(cases: Iterable[Case]) -> list[dict[str, Any]]:
    config = console_config()
    now = timezone.now()
    return [case_summary_row(case, now=now, config=config) for case in cases]


def bounded(queryset: Any) -> Any:
    return (queryset.select_related("assignee", "merged_into")
            .prefetch_related("tags", "items")[:MAX_EXPORT_ROWS])


def _cell(value: Any) -> str:
    text = ";".join(value) if isinstance(value, list) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row[column]) for column in CSV_COLUMNS])
    return buffer.getvalue()


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps({"count": len(rows), "cases": rows}, indent=2, sort_keys=True)


def stix_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision, as STIX 2.1 recommends."""
    value = moment.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def stix_pattern(kind: str, value: str) -> str | None:
    """The STIX pattern matching the entity, or None when STIX has no observable for it."""
    if kind in ("ip", "cidr"):
        try:
            version = (ipaddress.ip_network(value, strict=False).version if kind == "cidr"
                       else ipaddress.ip_address(value).version)
        except ValueError:
            return None
        return f"[ipv{version}-addr:value = {_quote(value)}]"
    if kind == "host":
        return f"[domain-name:value = {_quote(value)}]"
    if kind == "account":
        return f"[user-account:account_login = {_quote(value)}]"
    return None


def _marking(tlp: Tlp) -> dict[str, Any]:
    return {"type": "marking-definition", "spec_version": "2.1", "id": TLP2_MARKINGS[tlp],
            "created": "2022-10-01T00:00:00.000Z", "definition_type": str(tlp.label),
            "name": str(tlp.label),
            "extensions": {TLP2_EXTENSION: {"extension_type": "property-extension",
                                            "tlp_2_0": str(tlp.value).removeprefix("TLP:")
                                            .lower()}}}


def stix_bundle(cases: Iterable[Case]) -> dict[str, Any]:
    """A STIX 2.1 bundle of indicators for the confirmed cases among ``cases``."""
    identity_id = f"identity--{uuid.uuid5(STIX_NAMESPACE, 'cybermesh-console')}"
    identity = {"type": "identity", "spec_version": "2.1", "id": identity_id,
                "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
                "name": "CyberMesh SOC console", "identity_class": "system"}
    grouped: dict[tuple[str, str], list[Case]] = {}
    for case in cases:
        if case.status != CaseStatus.CONFIRMED or not case.offender_kind:
            continue
        grouped.setdefault((case.offender_kind, case.offender_value), []).append(case)
    indicators = []
    used_markings: set[Tlp] = set()
    for (kind, value), group in sorted(grouped.items()):
        pattern = stix_pattern(kind, value)
        if pattern is None:
            continue
        confirmed = [case.closed_at or case.updated_at for case in group]
        tlp = max((Tlp(case.tlp) for case in group), key=TLP_ORDER.index)
        used_markings.add(tlp)
        techniques = sorted({tag.name for case in group for tag in case.tags.all()
                             if tag.kind == TagKind.ATTACK})
        references = [{"source_name": "cybermesh-case", "external_id": case.reference,
                       "description": case.title} for case in group]
        references += [{"source_name": "mitre-attack", "external_id": technique,
                        "url": "https://attack.mitre.org/techniques/"
                               + technique.replace(".", "/") + "/"}
                       for technique in techniques if technique.startswith("T")
                       and not technique.startswith("TA")]
        indicators.append({
            "type": "indicator", "spec_version": "2.1",
            "id": f"indicator--{uuid.uuid5(STIX_NAMESPACE, f'{kind}:{value}')}",
            "created_by_ref": identity_id,
            "created": stix_timestamp(min(confirmed)),
            "modified": stix_timestamp(max(confirmed)),
            "name": f"{kind}:{value}",
            "description": f"Confirmed by {len(group)} CyberMesh case(s): "
                           + ", ".join(case.reference for case in group),
            "indicator_types": ["malicious-activity"],
            "pattern": pattern, "pattern_type": "stix", "pattern_version": "2.1",
            "valid_from": stix_timestamp(min(confirmed)),
            "labels": sorted({tag.name for case in group for tag in case.tags.all()}),
            "external_references": references,
            "object_marking_refs": [TLP2_MARKINGS[tlp]],
        })
        if not indicators[-1]["labels"]:
            del indicators[-1]["labels"]
    markings = [_marking(tlp) for tlp in TLP_ORDER if tlp in used_markings]
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
            "objects": [identity, *markings, *indicators]}
