"""DRF permission classes: a view names the capability it needs (see :mod:`apps.api.roles`).

``requires(Capability.READ_LEDGER)`` is a permission class granting authenticated users that
hold the permission (through a role group, directly, or as superuser). Anonymous callers get
401 (DRF turns a refusal of an unauthenticated request into 401 with ``WWW-Authenticate``),
authenticated callers without the permission 403.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from apps.api.roles import Capability


class CapabilityPermission(BasePermission):
    capabilities: tuple[Capability, ...] = ()
    message = "Your role does not allow this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user is None or not user.is_authenticated or not user.is_active:
            return False
        return all(user.has_perm(capability.permission) for capability in self.capabilities)


_CLASSES: dict[tuple[Capability, ...], type[CapabilityPermission]] = {}


def requires(*capabilities: Capability) -> type[CapabilityPermission]:
    """The permission class requiring all of ``capabilities`` (one class per combination)."""
    key = tuple(capabilities)
    if key not in _CLASSES:
        name = "Requires" + "".join(c.value.title().replace("_", "") for c in key)
        _CLASSES[key] = type(name, (CapabilityPermission,), {"capabilities": key})
    return _CLASSES[key]


class AnyCapabilityPermission(CapabilityPermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user is None or not user.is_authenticated or not user.is_active:
            return False
        return any(user.has_perm(capability.permission) for capability in self.capabilities)


def requires_any(*capabilities: Capability) -> type[CapabilityPermission]:
    """The permission class requiring at least one of ``capabilities`` (the view then checks
    the one its input needs)."""
    name = "RequiresAnyOf" + "".join(c.value.title().replace("_", "") for c in capabilities)
    return type(name, (AnyCapabilityPermission,), {"capabilities": tuple(capabilities)})
