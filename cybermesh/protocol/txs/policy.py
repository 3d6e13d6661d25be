"""Policy: allow/deny rules, manual quarantine and release of an entity.

Wire form (canonical CBOR map; which keys are present depends on ``op``)::

    set_rule:    {"op", "entity", "scope", "action", "reason", "expires_at_ms"}
    remove_rule: {"op", "entity", "scope", "action", "reason"}
    quarantine:  {"op", "entity", "reason", "expires_at_ms"}
    release:     {"op", "entity", "reason"}

A rule is identified by ``(entity, scope, action)``: setting it again replaces its reason and
expiry. ``scope`` is a lowercase token (``ingress``, ``egress``, ``auth``...) or ``*`` for every
scope. Every rule and quarantine expires: ``expires_at_ms`` lies after the transaction's
creation time and at most :data:`MAX_POLICY_HORIZON_MS` after it, so no forgotten rule lives
forever. How rules combine is the executor's business (``executor/policy.py``).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import ClassVar

from cybermesh.protocol.codec import CborValue
from cybermesh.protocol.txs.entity import Entity
from cybermesh.protocol.txs.errors import TxRejected, TxRejectReason
from cybermesh.protocol.txs.kinds import TxKind
from cybermesh.protocol.txs.schema import (
    expect_enum,
    expect_map,
    expect_text,
    expect_time_ms,
)

__all__ = [
    "ALL_SCOPES",
    "MAX_POLICY_HORIZON_MS",
    "PolicyAction",
    "PolicyChange",
    "PolicyOperation",
]

_R = TxRejectReason
ALL_SCOPES = "*"
MAX_SCOPE_BYTES = 32
MAX_REASON_BYTES = 256
MAX_POLICY_HORIZON_MS = 366 * 24 * 3600 * 1000
_SCOPE = re.compile(r"\*|[a-z][a-z0-9_.-]{0,31}")


class PolicyOperation(enum.StrEnum):
    SET_RULE = "set_rule"
    REMOVE_RULE = "remove_rule"
    QUARANTINE = "quarantine"
    RELEASE = "release"


class PolicyAction(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


_RULE_OPS = (PolicyOperation.SET_RULE, PolicyOperation.REMOVE_RULE)
_EXPIRING_OPS = (PolicyOperation.SET_RULE, PolicyOperation.QUARANTINE)
_KEYS: dict[PolicyOperation, tuple[str, ...]] = {
    PolicyOperation.SET_RULE: ("op", "entity", "scope", "action", "reason", "expires_at_ms"),
    PolicyOperation.REMOVE_RULE: ("op", "entity", "scope", "action", "reason"),
    PolicyOperation.QUARANTINE: ("op", "entity", "reason", "expires_at_ms"),
    PolicyOperation.RELEASE: ("op", "entity", "reason"),
}


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """One policy operation; ``scope``/``action`` only for rules, expiry only where it lasts."""

    KIND: ClassVar[TxKind] = TxKind.POLICY

    operation: PolicyOperation
    entity: Entity
    reason: str
    scope: str | None = None
    action: PolicyAction | None = None
    expires_at_ms: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.operation, PolicyOperation):
            object.__setattr__(self, "operation", expect_enum(
                self.operation, PolicyOperation, "op", _R.BAD_OPERATION))
        if type(self.entity) is not Entity:
            raise TxRejected(_R.WRONG_TYPE, "entity must be an Entity", "entity")
        expect_text(self.reason, "reason", MAX_REASON_BYTES)
        is_rule = self.operation in _RULE_OPS
        if is_rule:
            expect_text(self.scope, "scope", MAX_SCOPE_BYTES, _R.BAD_SCOPE, _SCOPE)
            if not isinstance(self.action, PolicyAction):
                object.__setattr__(self, "action", expect_enum(
                    self.action, PolicyAction, "action", _R.BAD_ACTION))
        elif self.scope is not None or self.action is not None:
            raise TxRejected(_R.BAD_STRUCTURE, f"{self.operation.value} takes no scope or "
                             "action", "payload")
        if self.operation in _EXPIRING_OPS:
            expect_time_ms(self.expires_at_ms, "expires_at_ms", _R.BAD_EXPIRY)
        elif self.expires_at_ms is not None:
            raise TxRejected(_R.BAD_STRUCTURE, f"{self.operation.value} takes no expiry",
                             "payload")

    def check_envelope(self, producer_id: str, created_at_ms: int) -> None:
        """An expiry lies after creation and within the policy horizon."""
        if self.expires_at_ms is None:
            return
        if not created_at_ms < self.expires_at_ms <= created_at_ms + MAX_POLICY_HORIZON_MS:
            raise TxRejected(_R.BAD_EXPIRY, "expiry must be after creation and within "
                             f"{MAX_POLICY_HORIZON_MS} ms of it", "expires_at_ms")

    def to_cbor(self) -> CborValue:
        body: dict[CborValue, CborValue] = {
            "op": self.operation.value,
            "entity": self.entity.to_cbor(),
            "reason": self.reason,
        }
        if self.scope is not None:
            body["scope"] = self.scope
        if self.action is not None:
            body["action"] = self.action.value
        if self.expires_at_ms is not None:
            body["expires_at_ms"] = self.expires_at_ms
        return body

    @classmethod
    def from_cbor(cls, value: object) -> PolicyChange:
        if type(value) is not dict or "op" not in value:
            raise TxRejected(_R.BAD_STRUCTURE, "expected a map with an op", "payload")
        operation = expect_enum(value["op"], PolicyOperation, "op", _R.BAD_OPERATION)
        fields = expect_map(value, "payload", _KEYS[operation])
        action = fields.get("action")
        return cls(
            operation=operation,
            entity=Entity.from_cbor(fields["entity"], "entity"),
            reason=fields["reason"],  # type: ignore[arg-type]  # checked in __post_init__
            scope=fields.get("scope"),  # type: ignore[arg-type]
            action=None if action is None else expect_enum(action, PolicyAction, "action",
                                                           _R.BAD_ACTION),
            expires_at_ms=fields.get("expires_at_ms"),  # type: ignore[arg-type]
        )
