"""What each role (the API's groups: viewer, analyst, operator, admin) may do in the console.

Each role includes the one below it. The admin checks model permissions, never group names,
so other roles can be composed from the same permissions.

=========  ==============================================================================
viewer     read the ledger explorer: blocks, outbox, state versions, validators, mempool
analyst    + evidence, audit entries; the triage queue, dashboard and offender pages; triage
           cases (status, notes, tags, assignee, merge); confirm a case (its quarantine goes
           through consensus); release a quarantined offender; export
operator   + reopen closed cases; submit policy rule changes (through consensus)
admin      everything above
=========  ==============================================================================
"""

from __future__ import annotations

from typing import Any

_LEDGER_VIEW = [
    ("ledger", "view_block"), ("ledger", "view_outboxmessage"),
    ("state", "view_stateversion"), ("state", "view_statesnapshot"),
    ("state", "view_prunemark"), ("validators", "view_validator"),
    ("mempool", "view_mempooltransaction"), ("mempool", "view_poolstats"),
    ("mempool", "view_ratebucket"),
]
_ANALYST = [
    *_LEDGER_VIEW,
    ("evidence", "view_evidence"), ("audit", "view_auditentry"), ("audit", "view_audithead"),
    ("console", "view_case"), ("console", "triage_case"), ("console", "confirm_case"),
    ("console", "release_offender"), ("console", "export_case"), ("console", "view_tag"),
]
_OPERATOR = [*_ANALYST, ("console", "reopen_case"), ("console", "change_policy")]

ROLE_PERMISSIONS: dict[str, list[tuple[str, str]]] = {
    "viewer": _LEDGER_VIEW,
    "analyst": _ANALYST,
    "operator": _OPERATOR,
    "admin": _OPERATOR,
}


def grant_console_permissions(apps: Any) -> None:
    """Add (never remove) the console's permissions to the role groups, creating the groups
    and permissions if needed. ``apps`` is a migration's registry or ``django.apps.apps``."""
    from django.contrib.auth.management import create_permissions

    labels = {label for permissions in ROLE_PERMISSIONS.values() for label, _ in permissions}
    for label in sorted(labels):
        config = apps.get_app_config(label)
        config.models_module = getattr(config, "models_module", None) or True
        create_permissions(config, apps=apps, verbosity=0)
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role, wanted in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=role)
        for label, codename in wanted:
            permission = permission_model.objects.filter(
                content_type__app_label=label, codename=codename).first()
            if permission is not None:
                group.permissions.add(permission)
