"""Allow/deny rules and the effective decision for an entity.

Rules are identified by ``(entity, scope, action)``; setting one again replaces its reason and
expiry. The effective decision for a target entity in a scope is the first active rule found in
this order, which is the conflict-resolution rule:

1. **More specific entity first.** IPs and networks: the target itself, then every network
   containing it, longest prefix first (``10.1.2.3`` before ``10.1.2.0/24`` before
   ``10.0.0.0/8`` before ``0.0.0.0/0``). Hosts: the name, then each parent domain
   (``a.example.com`` before ``example.com`` before ``com``). Accounts and others: exact match.
2. **At equal entity specificity, the exact scope before ``*``.**
3. **At equal entity and scope specificity, DENY before ALLOW.**

So ``allow 10.1.2.3`` overrides ``deny 10.0.0.0/8``, ``deny 10.1.2.3 ingress`` overrides
``allow 10.1.2.3 *`` for ingress, and ``deny`` wins a tie. An expired rule (``expires_at_ms <=
now``) never matches. With no match there is no decision (the caller's default applies).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from cybermesh.protocol.executor.context import Execution
from cybermesh.protocol.executor.events import IgnoreReason, PolicyChanged, PolicyChangeKind
from cybermesh.protocol.executor.keys import Subject, rule_key, rule_key_of
from cybermesh.protocol.executor.quarantine import impose, lift
from cybermesh.protocol.executor.records import QuarantineReason, Record, RuleRecord
from cybermesh.protocol.txs.entity import Entity, EntityKind
from cybermesh.protocol.txs.policy import (
    ALL_SCOPES,
    PolicyAction,
    PolicyChange,
    PolicyOperation,
)

__all__ = ["Decision", "apply_policy", "effective_decision", "expire_rule", "is_allowlisted"]

_ACTIONS_BY_PRECEDENCE = (PolicyAction.DENY, PolicyAction.ALLOW)


@dataclass(frozen=True, slots=True)
class Decision:
    action: PolicyAction
    rule: RuleRecord


def _ipv4_text(address: int) -> str:
    return f"{address >> 24}.{(address >> 16) & 255}.{(address >> 8) & 255}.{address & 255}"


def _ipv6_text(address: int) -> str:
    return str(ipaddress.IPv6Address(address))


def _covering(target: Entity) -> Iterator[tuple[str, str]]:
    """``(kind, value)`` of ``target`` and of every entity a rule could name to cover it,
    most specific first (canonical text, as :class:`Entity` would normalise it)."""
    network = target.network()
    if network is not None:
        bits = network.max_prefixlen
        address = int(network.network_address)
        to_text = _ipv4_text if bits == 32 else _ipv6_text
        for prefix in range(network.prefixlen, -1, -1):
            masked = address & (((1 << prefix) - 1) << (bits - prefix))
            if prefix == bits:
                yield EntityKind.IP.value, to_text(masked)
            else:
                yield EntityKind.CIDR.value, f"{to_text(masked)}/{prefix}"
    elif target.kind is EntityKind.HOST:
        labels = target.value.split(".")
        for start in range(len(labels)):
            yield EntityKind.HOST.value, ".".join(labels[start:])
    else:
        yield target.kind.value, target.value


def effective_decision(
    read: Callable[[bytes], Record | None], target: Entity, scope: str, now_ms: int
) -> Decision | None:
    """The decision for ``target`` in ``scope`` at ``now_ms`` (``read`` is ``State.get`` or a
    writer's ``get``); None when no active rule applies."""
    scopes = (scope,) if scope == ALL_SCOPES else (scope, ALL_SCOPES)
    for kind, value in _covering(target):
        for candidate_scope in scopes:
            for action in _ACTIONS_BY_PRECEDENCE:
                record = read(rule_key_of(kind, value, candidate_scope, action.value))
                if isinstance(record, RuleRecord) and record.expires_at_ms > now_ms:
                    return Decision(action, record)
    return None


def is_allowlisted(read: Callable[[bytes], Record | None], target: Entity, now_ms: int) -> bool:
    """Whether the effective decision for every scope (``*``) is ALLOW: such an entity still
    loses reputation but is never quarantined automatically."""
    decision = effective_decision(read, target, ALL_SCOPES, now_ms)
    return decision is not None and decision.action is PolicyAction.ALLOW


def apply_policy(run: Execution, tx_id: bytes, index: int, change: PolicyChange) -> None:
    """Apply one policy transaction: set/remove a rule, quarantine or release an entity."""
    operation = change.operation
    expires_at = change.expires_at_ms
    if expires_at is not None and expires_at <= run.now_ms:
        run.ignore(tx_id, index, IgnoreReason.ALREADY_EXPIRED)
        return
    if operation is PolicyOperation.QUARANTINE:
        assert expires_at is not None  # noqa: S101 -- guaranteed by the schema
        run.emit(impose(run, Subject.of(change.entity), expires_at, QuarantineReason.MANUAL,
                        tx_id))
        return
    if operation is PolicyOperation.RELEASE:
        released = lift(run, Subject.of(change.entity), tx_id)
        if released is None:
            run.ignore(tx_id, index, IgnoreReason.NOT_QUARANTINED)
        run.emit(released)
        return
    assert change.scope is not None and change.action is not None  # noqa: S101 -- schema
    key = rule_key(change.entity, change.scope, change.action)
    entity = (change.entity.kind.value, change.entity.value)
    if operation is PolicyOperation.SET_RULE:
        assert expires_at is not None  # noqa: S101 -- guaranteed by the schema
        run.writer.put(key, RuleRecord(change.entity, change.scope, change.action,
                                       change.reason, expires_at, run.height, tx_id))
        run.emit(PolicyChanged(entity, change.scope, change.action.value, PolicyChangeKind.SET,
                               expires_at, tx_id))
        return
    current = run.writer.get_typed(key, RuleRecord)
    if current is None or current.expires_at_ms <= run.now_ms:
        run.ignore(tx_id, index, IgnoreReason.RULE_NOT_FOUND)
        return
    run.writer.delete(key)
    run.emit(PolicyChanged(entity, change.scope, change.action.value, PolicyChangeKind.REMOVED,
                           current.expires_at_ms, tx_id))


def expire_rule(run: Execution, key: bytes, record: RuleRecord) -> PolicyChanged:
    run.writer.delete(key)
    return PolicyChanged((record.entity.kind.value, record.entity.value), record.scope,
                         record.action.value, PolicyChangeKind.EXPIRED, record.expires_at_ms,
                         None)
