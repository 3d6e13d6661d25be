"""Roles: Django groups named viewer, analyst, operator, admin, each a set of API permissions.

Each role includes the one below it. What a role may do is decided only by these permissions
(a view asks for a capability, never for a group name), so an operator can build other roles
in the admin from the same permissions. Superusers hold every permission.

=========  =========================================================================
viewer     dashboards: status, validators, blocks, transactions, policy, state proofs
analyst    + evidence, entity reputation and history
operator   + submit signed policy transactions; Prometheus metrics
admin      + submit signed governance transactions
=========  =========================================================================
"""

from __future__ import annotations

import enum
from typing import Any


class Capability(enum.StrEnum):
    """API permissions (codenames of :class:`apps.api.models.ApiCapability`)."""

    READ_LEDGER = "read_ledger"
    READ_INVESTIGATIONS = "read_investigations"
    SUBMIT_POLICY = "submit_policy"
    SUBMIT_GOVERNANCE = "submit_governance"
    READ_METRICS = "read_metrics"

    @property
    def permission(self) -> str:
        """The ``app_label.codename`` string ``User.has_perm`` takes."""
        return f"api.{self.value}"


class Role(enum.StrEnum):
    VIEWER = "viewer"
    ANALYST = "analyst"
    OPERATOR = "operator"
    ADMIN = "admin"


_VIEWER = (Capability.READ_LEDGER,)
_ANALYST = (*_VIEWER, Capability.READ_INVESTIGATIONS)
_OPERATOR = (*_ANALYST, Capability.SUBMIT_POLICY, Capability.READ_METRICS)
_ADMIN = (*_OPERATOR, Capability.SUBMIT_GOVERNANCE)

ROLE_CAPABILITIES: dict[Role, tuple[Capability, ...]] = {
    Role.VIEWER: _VIEWER,
    Role.ANALYST: _ANALYST,
    Role.OPERATOR: _OPERATOR,
    Role.ADMIN: _ADMIN,
}


def sync_roles(apps: Any) -> None:
    """Create or update the four groups with exactly their capabilities.

    ``apps`` is a model registry: the historical one inside a migration, ``django.apps.apps``
    elsewhere. The permissions are created first (Django only creates them after
    ``migrate`` otherwise, too late for a data migration).
    """
    from django.contrib.auth.management import create_permissions

    api_config = apps.get_app_config("api")
    api_config.models_module = getattr(api_config, "models_module", None) or True
    create_permissions(api_config, apps=apps, verbosity=0)
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    content_type_model = apps.get_model("contenttypes", "ContentType")
    content_type = content_type_model.objects.get(app_label="api", model="apicapability")
    for role, capabilities in ROLE_CAPABILITIES.items():
        group, _ = group_model.objects.get_or_create(name=role.value)
        permissions = permission_model.objects.filter(
            content_type=content_type, codename__in=[c.value for c in capabilities])
        # add, never set: other apps (the console) grant their own permissions to these groups.
        group.permissions.add(*permissions)
