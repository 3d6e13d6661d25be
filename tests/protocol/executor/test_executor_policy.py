"""Policy rules: conflict resolution order, expiry, removal, and the allowlist."""

from __future__ import annotations

import pytest

from cybermesh.protocol.executor import effective_decision
from cybermesh.protocol.executor.events import IgnoreReason as Ig
from cybermesh.protocol.executor.events import PolicyChanged, PolicyChangeKind, Quarantined
from cybermesh.protocol.txs import Entity, PolicyAction, PolicyOperation
from tests.protocol.executor.executor_chain import Chain, event_tx, ignored, of_type
from tests.protocol.txs.tx_builders import policy, signed

pytestmark = pytest.mark.unit

DAY = 86_400_000
ALLOW, DENY = PolicyAction.ALLOW, PolicyAction.DENY


def _rule(chain: Chain, kind: str, value: str, action: PolicyAction, scope: str = "*", *,
          lifetime_ms: int = DAY, nonce: int = 1) -> object:
    created = chain.now_ms
    return signed(policy(entity=Entity.of(kind, value), scope=scope, action=action,
                         expires_at_ms=created + lifetime_ms),
                  nonce=nonce, created_at_ms=created)


def _decide(chain: Chain, kind: str, value: str, scope: str = "ingress") -> PolicyAction | None:
    decision = effective_decision(chain.state.get, Entity.of(kind, value), scope, chain.now_ms)
    return None if decision is None else decision.action


def _chain_with(*rules: tuple[str, str, PolicyAction, str]) -> Chain:
    chain = Chain()
    txs = [_rule(chain, kind, value, action, scope, nonce=index)
           for index, (kind, value, action, scope) in enumerate(rules)]
    step = chain.block(txs)
    assert len(of_type(step.events, PolicyChanged)) == len(rules)
    return chain


def test_more_specific_allow_beats_a_broader_deny() -> None:
    chain = _chain_with(("cidr", "10.0.0.0/8", DENY, "*"), ("ip", "10.1.2.3", ALLOW, "*"))
    assert _decide(chain, "ip", "10.1.2.3") is ALLOW
    assert _decide(chain, "ip", "10.1.2.4") is DENY
    assert _decide(chain, "cidr", "10.1.0.0/16") is DENY
    assert _decide(chain, "ip", "11.0.0.1") is None


def test_longest_prefix_wins_between_networks() -> None:
    chain = _chain_with(("cidr", "10.0.0.0/8", ALLOW, "*"), ("cidr", "10.1.0.0/16", DENY, "*"),
                        ("cidr", "10.1.2.0/24", ALLOW, "*"))
    assert _decide(chain, "ip", "10.1.2.9") is ALLOW
    assert _decide(chain, "ip", "10.1.3.9") is DENY
    assert _decide(chain, "ip", "10.2.0.1") is ALLOW


def test_deny_beats_allow_at_equal_specificity() -> None:
    chain = _chain_with(("ip", "192.0.2.1", ALLOW, "*"), ("ip", "192.0.2.1", DENY, "*"))
    assert _decide(chain, "ip", "192.0.2.1") is DENY


def test_exact_scope_beats_wildcard_at_equal_entity_specificity() -> None:
    chain = _chain_with(("ip", "192.0.2.1", DENY, "*"), ("ip", "192.0.2.1", ALLOW, "egress"))
    assert _decide(chain, "ip", "192.0.2.1", "egress") is ALLOW
    assert _decide(chain, "ip", "192.0.2.1", "ingress") is DENY
    assert _decide(chain, "ip", "192.0.2.1", "*") is DENY


def test_entity_specificity_outranks_scope_specificity() -> None:
    chain = _chain_with(("cidr", "192.0.2.0/24", DENY, "ingress"), ("ip", "192.0.2.1", ALLOW, "*"))
    assert _decide(chain, "ip", "192.0.2.1", "ingress") is ALLOW


def test_host_rules_cover_subdomains_most_specific_first() -> None:
    chain = _chain_with(("host", "example.com", DENY, "*"), ("host", "ok.example.com", ALLOW, "*"))
    assert _decide(chain, "host", "a.ok.example.com") is ALLOW
    assert _decide(chain, "host", "bad.example.com") is DENY
    assert _decide(chain, "host", "example.org") is None


def test_ipv6_networks_resolve_like_ipv4() -> None:
    chain = _chain_with(("cidr", "2001:db8::/32", DENY, "*"), ("ip", "2001:db8::7", ALLOW, "*"))
    assert _decide(chain, "ip", "2001:db8::7") is ALLOW
    assert _decide(chain, "ip", "2001:db8::8") is DENY


def test_accounts_match_exactly() -> None:
    chain = _chain_with(("account", "svc-backup", DENY, "auth"))
    assert _decide(chain, "account", "svc-backup", "auth") is DENY
    assert _decide(chain, "account", "svc-backup2", "auth") is None


def test_rule_expires_and_is_reported() -> None:
    chain = Chain()
    chain.block([_rule(chain, "ip", "192.0.2.1", DENY, lifetime_ms=5000)])
    assert _decide(chain, "ip", "192.0.2.1") is DENY
    step = chain.block(advance_ms=10_000)
    assert _decide(chain, "ip", "192.0.2.1") is None
    [expired] = of_type(step.events, PolicyChanged)
    assert expired.change is PolicyChangeKind.EXPIRED and expired.cause is None


def test_setting_a_rule_again_replaces_its_expiry() -> None:
    chain = Chain()
    chain.block([_rule(chain, "ip", "192.0.2.1", DENY, lifetime_ms=5000)])
    chain.block([_rule(chain, "ip", "192.0.2.1", DENY, lifetime_ms=DAY, nonce=2)])
    chain.block(advance_ms=10_000)
    assert _decide(chain, "ip", "192.0.2.1") is DENY  # the old expiry entry was stale


def test_remove_rule_and_its_refusals() -> None:
    chain = Chain()
    chain.block([_rule(chain, "ip", "192.0.2.1", DENY)])
    remove = signed(policy(operation=PolicyOperation.REMOVE_RULE,
                           entity=Entity.of("ip", "192.0.2.1"), scope="*", action=DENY,
                           expires_at_ms=None),
                    nonce=5, created_at_ms=chain.now_ms)
    step = chain.block([remove])
    [removed] = of_type(step.events, PolicyChanged)
    assert removed.change is PolicyChangeKind.REMOVED
    assert _decide(chain, "ip", "192.0.2.1") is None
    again = signed(remove.payload, nonce=6, created_at_ms=chain.now_ms)
    assert ignored(chain.block([again]).events) == [Ig.RULE_NOT_FOUND]


def test_rule_already_expired_when_applied_is_ignored() -> None:
    chain = Chain()
    late = _rule(chain, "ip", "192.0.2.1", DENY, lifetime_ms=500)
    assert ignored(chain.block([late], advance_ms=2000).events) == [Ig.ALREADY_EXPIRED]
    assert _decide(chain, "ip", "192.0.2.1") is None


def test_allowlisted_entity_loses_reputation_but_is_not_quarantined() -> None:
    chain = _chain_with(("cidr", "192.0.2.0/24", ALLOW, "*"))
    events = chain.block([event_tx("192.0.2.5", nonce=n, created_at_ms=chain.now_ms)
                          for n in range(8)]).events
    assert not of_type(events, Quarantined)
    other = chain.block([event_tx("198.51.100.5", nonce=n, created_at_ms=chain.now_ms)
                         for n in range(8)]).events
    assert len(of_type(other, Quarantined)) == 1


def test_an_allow_for_one_scope_does_not_allowlist() -> None:
    chain = _chain_with(("ip", "192.0.2.5", ALLOW, "egress"))
    events = chain.block([event_tx("192.0.2.5", nonce=n, created_at_ms=chain.now_ms)
                          for n in range(5)]).events
    assert len(of_type(events, Quarantined)) == 1
