"""API fixtures: a real signed chain committed through the ledger, users in each role with
API tokens, and an audit keyring (every write is audited)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from rest_framework.test import APIClient

from apps.api.permissions import clear_permission_cache
from apps.api.roles import Role, sync_roles
from apps.api.tokens import issue_token
from apps.audit.keyring import create_keyring_file
from apps.console.roles import grant_console_permissions
from apps.ledger.services import commit_block
from tests.ledger.chain import ChainBuilder, CommittedItem

ClientFor = Callable[[str | None], APIClient]


@pytest.fixture(autouse=True)
def audit_keyring(settings: Any, tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "audit-keyring.json"
    create_keyring_file(path)
    settings.AUDIT_SIGNING_KEY = str(path)
    settings.AUDIT_LOG_PATH = ""
    settings.AUDIT_HEAD_INTERVAL = 0
    return path


@pytest.fixture(autouse=True)
def fresh_throttle_counters() -> None:
    cache.clear()
    clear_permission_cache()


@pytest.fixture
def roles(db: None) -> None:
    sync_roles(django_apps)
    grant_console_permissions(django_apps)  # the triage endpoints check the console's


@pytest.fixture
def tokens(roles: None) -> dict[str, str]:
    """role name (and "none": a user without a role, "superuser") -> API token."""
    result: dict[str, str] = {}
    for role in Role:
        user = User.objects.create_user(f"{role.value}-user", password=None)
        user.groups.add(Group.objects.get(name=role.value))
        result[role.value] = issue_token(user=user, name="test", acting_user="test").token
    nobody = User.objects.create_user("no-role-user", password=None)
    result["none"] = issue_token(user=nobody, name="test", acting_user="test").token
    root = User.objects.create_superuser("root", password=None)
    result["superuser"] = issue_token(user=root, name="test", acting_user="test").token
    return result


@pytest.fixture
def client_for(tokens: dict[str, str]) -> ClientFor:
    """``client_for("analyst")`` -> a client sending that role's token; None: anonymous."""

    def make(role: str | None) -> APIClient:
        client = APIClient()
        if role is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens[role]}")
        return client

    return make


@pytest.fixture
def chain_builder() -> ChainBuilder:
    return ChainBuilder()


@pytest.fixture
def committed_chain(db: None, chain_builder: ChainBuilder) -> list[CommittedItem]:
    """Six signed blocks of three transactions, committed through ``commit_block``."""
    items = chain_builder.build(6)
    for item in items:
        commit_block(block=item.block, qc=item.qc, execution=item.execution)
    return items


@pytest.fixture
def executed_chain_items(db: None, chain_builder: ChainBuilder) -> list[CommittedItem]:
    """Ten blocks run by the real executor (events, policy rules, evidence; reputations fall
    and quarantines trigger), committed through ``commit_block``."""
    from tests.ledger.chain import executed_chain

    items = executed_chain(chain_builder, 10, seed=7)
    for item in items:
        commit_block(block=item.block, qc=item.qc, execution=item.execution)
    return items


@pytest.fixture
def genesis_file(tmp_path: Path, chain_builder: ChainBuilder) -> Path:
    """The trusted genesis of the test chain (what an auditor would hold)."""
    import json

    from cybermesh.protocol.genesis import genesis_document

    document = genesis_document(
        chain_id=chain_builder.chain_id, genesis_time_ms=1_700_000_000_000,
        validators=[(v.validator_id, v.public_key, v.power, v.address)
                    for v in chain_builder.validator_set])
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def policy_chain_items(db: None, chain_builder: ChainBuilder) -> list[CommittedItem]:
    """Four executed blocks; block 1 quarantines an IP and sets a deny and an allow rule."""
    from tests.api.chain import policy_chain

    items = policy_chain(chain_builder)
    for item in items:
        commit_block(block=item.block, qc=item.qc, execution=item.execution)
    register_validators(chain_builder)
    return items


def register_validators(chain_builder: ChainBuilder) -> None:
    """The genesis validator set in the validators table (the node's bootstrap does this)."""
    from django.db import transaction

    from apps.validators.services import apply_validator_set

    with transaction.atomic():
        apply_validator_set(validator_set=chain_builder.validator_set, height=0)
