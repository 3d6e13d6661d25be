"""DRF permission classes: a view names the capability it needs (see :mod:`apps.api.roles`).

``requires(Capability.READ_LEDGER)`` is a permission class granting authenticated users that
hold the permission (through a role group, directly, or as superuser). Anonymous callers get
401 (DRF turns a refusal of an unauthenticated request into 401 with ``WWW-Authenticate``),
authenticated callers without the permission 403.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from apps.api.roles import Capability

DEFAULT_PERMISSION_CACHE_SECONDS = 5.0
_MAX_CACHED_USERS = 10_000
_cache: dict[int, tuple[float, frozenset[str]]] = {}
_users: dict[int, tuple[float, Any]] = {}
_cache_lock = threading.Lock()


def _ttl() -> float:
    return float(getattr(settings, "API_PERMISSION_CACHE_SECONDS",
                         DEFAULT_PERMISSION_CACHE_SECONDS))


def cached_user(user_id: int) -> Any | None:
    """The user with this id, cached in this process like its permissions (token
    authentication checks ``is_active`` itself on every request, from the token query)."""
    now = time.monotonic()
    cached = _users.get(user_id)
    if cached is not None and cached[0] > now:
        user = cached[1]
        if user.is_active:
            return user
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is not None:
        with _cache_lock:
            if len(_users) >= _MAX_CACHED_USERS:
                _users.clear()
            _users[user_id] = (now + _ttl(), user)
    return user


def user_permissions(user: Any) -> frozenset[str]:
    """The user's permissions, cached in this process for a few seconds.

    Loading them costs two queries (direct and through groups) on every request otherwise.
    A role change therefore applies within ``API_PERMISSION_CACHE_SECONDS`` (default 5 s);
    deactivating a user or revoking a token applies at once (both are checked per request).
    """
    ttl = _ttl()
    now = time.monotonic()
    cached = _cache.get(user.pk)
    if cached is not None and cached[0] > now:
        return cached[1]
    # Django's backend memoizes permissions on the user object, and cached_user() shares
    # one object between requests: forget the memo so a refresh reads the database.
    for memo in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(memo, None)
    permissions = frozenset(user.get_all_permissions())
    with _cache_lock:
        if len(_cache) >= _MAX_CACHED_USERS:
            _cache.clear()
        _cache[user.pk] = (now + ttl, permissions)
    return permissions


def clear_permission_cache() -> None:
    with _cache_lock:
        _cache.clear()
        _users.clear()


def has_permission_named(user: Any, permission: str) -> bool:
    """``user.has_perm(permission)`` through the per-process cache above."""
    if user.is_superuser:
        return bool(user.is_active)
    return permission in user_permissions(user)


def has_capability(user: Any, capability: Capability) -> bool:
    return has_permission_named(user, capability.permission)


class CapabilityPermission(BasePermission):
    # ``app_label.codename`` strings: API capabilities, or another app's permissions (the
    # console's triage permissions guard the case endpoints).
    permissions: tuple[str, ...] = ()
    message = "Your role does not allow this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user is None or not user.is_authenticated or not user.is_active:
            return False
        return all(has_permission_named(user, name) for name in self.permissions)


_CLASSES: dict[tuple[str, ...], type[CapabilityPermission]] = {}


def requires_permissions(*permissions: str) -> type[CapabilityPermission]:
    """The permission class requiring all of ``permissions`` (``app_label.codename``; one
    class per combination)."""
    key = tuple(permissions)
    if key not in _CLASSES:
        name = "Requires" + "".join(
            part.title().replace("_", "") for permission in key
            for part in permission.split("."))
        _CLASSES[key] = type(name, (CapabilityPermission,), {"permissions": key})
    return _CLASSES[key]


def requires(*capabilities: Capability) -> type[CapabilityPermission]:
    """The permission class requiring all of ``capabilities``."""
    return requires_permissions(*(capability.permission for capability in capabilities))


class AnyCapabilityPermission(CapabilityPermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user is None or not user.is_authenticated or not user.is_active:
            return False
        return any(has_permission_named(user, name) for name in self.permissions)


def requires_any(*capabilities: Capability) -> type[CapabilityPermission]:
    """The permission class requiring at least one of ``capabilities`` (the view then checks
    the one its input needs)."""
    name = "RequiresAnyOf" + "".join(c.value.title().replace("_", "") for c in capabilities)
    return type(name, (AnyCapabilityPermission,),
                {"permissions": tuple(c.permission for c in capabilities)})
