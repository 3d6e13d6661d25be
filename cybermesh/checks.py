"""Start-up configuration checks: refuse to run with an unsafe or contradictory configuration.

Registered with Django's system check framework, so ``manage.py check``, ``migrate``,
``runserver`` and our own long-running commands all run them. Contradictions (a QUORUM_SIZE
that the validator set does not imply, a bad genesis) are errors in every mode; unsafe
conveniences (DEBUG, the development secret key, empty allowlists, key files readable by
others) are errors only in production mode, where they would be dangerous.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.core.checks import Warning as CheckWarning

from cybermesh import failpoints
from cybermesh.protocol.genesis import GenesisError
from cybermesh.topology import configured_genesis

NODE_TYPES = ("validator", "observer")


def _key_file_problem(setting: str, path_text: str) -> str | None:
    if not path_text:
        return f"{setting} is not set"
    path = Path(path_text)
    if not path.is_file():
        return f"{setting}={path} does not exist or is not a file"
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return f"{setting}={path} is accessible by group or others (mode {mode:04o}); chmod 600 it"
    return None


@register("cybermesh")
def check_topology(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    if settings.NODE_TYPE not in NODE_TYPES:
        errors.append(Error(f"NODE_TYPE={settings.NODE_TYPE!r} must be one of "
                            f"{', '.join(NODE_TYPES)}", id="cybermesh.E001"))
    if not settings.CLUSTER_TOPOLOGY:
        if settings.QUORUM_SIZE:
            errors.append(Error("QUORUM_SIZE is set but CLUSTER_TOPOLOGY names no genesis "
                                "file to check it against", id="cybermesh.E002"))
        return errors
    try:
        genesis = configured_genesis(settings.CLUSTER_TOPOLOGY)
    except GenesisError as error:
        return errors + [Error(problem, id="cybermesh.E003") for problem in error.problems]
    if settings.QUORUM_SIZE and genesis.quorum_size != settings.QUORUM_SIZE:
        math = genesis.validator_set.quorum
        errors.append(Error(
            f"QUORUM_SIZE={settings.QUORUM_SIZE} contradicts the validator set: total power "
            f"{math.total_power} tolerates f={math.max_faulty_power}, so the quorum is "
            f"{math.quorum_power}", id="cybermesh.E004"))
    if settings.NODE_TYPE == "validator" and settings.NODE_ID not in genesis.validator_set:
        # A warning, not an error: a validator added by governance is in no genesis, and only
        # run_node, which reads the committed ledger, can tell it from a typo (it refuses one).
        errors.append(CheckWarning(
            f"NODE_ID={settings.NODE_ID!r} is a validator but is not in the genesis validator "
            "set: right for a validator added by governance (run_node checks it against the "
            "committed ledger), a typo otherwise", id="cybermesh.W005"))
    if settings.NODE_TYPE == "observer" and settings.NODE_ID in genesis.validator_set:
        errors.append(Error(f"NODE_ID={settings.NODE_ID!r} is an observer but is a genesis "
                            "validator id; an observer needs an id of its own",
                            id="cybermesh.E006"))
    errors.extend(_observer_allowlist_errors(genesis.validator_set))
    return errors


def _observer_allowlist_errors(validator_set: Any) -> list[CheckMessage]:
    """``P2P_OBSERVERS``: well-formed, and no observer under a validator's id or key."""
    from apps.node.membership import MembershipError, parse_observers

    try:
        observers = parse_observers(getattr(settings, "P2P_OBSERVERS", ()))
    except MembershipError as error:
        return [Error(str(error), id="cybermesh.E007")]
    validator_keys = {validator.public_key for validator in validator_set}
    return [Error(f"P2P_OBSERVERS lists {observer_id!r} with a validator's id or key",
                  id="cybermesh.E007")
            for observer_id, key in sorted(observers.items())
            if observer_id in validator_set or key in validator_keys]


@register("cybermesh")
def check_consensus_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    if not (settings.CONSENSUS_MIN_TIMEOUT_MS <= settings.CONSENSUS_BASE_TIMEOUT_MS
            <= settings.CONSENSUS_MAX_TIMEOUT_MS):
        errors.append(Error("CONSENSUS_MIN_TIMEOUT_MS <= CONSENSUS_BASE_TIMEOUT_MS <= "
                            "CONSENSUS_MAX_TIMEOUT_MS does not hold", id="cybermesh.E010"))
    if settings.CONSENSUS_TIMEOUT_INCREASE_BPS <= 10000:
        errors.append(Error("CONSENSUS_TIMEOUT_INCREASE_BPS must exceed 10000 (a factor "
                            "above 1)", id="cybermesh.E011"))
    if settings.P2P_MAX_MESSAGE_SIZE < 1024:
        errors.append(Error("P2P_MAX_MESSAGE_SIZE must be at least 1024 bytes",
                            id="cybermesh.E012"))
    return errors


def _audit_keyring_problem() -> str | None:
    problem = _key_file_problem("AUDIT_SIGNING_KEY", settings.AUDIT_SIGNING_KEY)
    if problem is not None:
        return problem
    # Only in production: in development this call creates a keyring on first use.
    from apps.audit.keyring import KeyringError, configured_keyring

    try:
        configured_keyring()
    except KeyringError as error:
        return str(error)
    return None


@register("cybermesh")
def check_production_safety(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """In production mode, every unsafe default is an error (one per problem)."""
    if not settings.PRODUCTION:
        return []
    problems: list[tuple[str, str]] = []
    if settings.DEBUG:
        problems.append(("E020", "DEBUG is on in production"))
    if (settings.SECRET_KEY == settings.DEVELOPMENT_SECRET_KEY
            or len(settings.SECRET_KEY) < 50):
        problems.append(("E021", "SECRET_KEY is the development default or shorter than 50 "
                                 "characters"))
    if not settings.ALLOWED_HOSTS:
        problems.append(("E022", "ALLOWED_HOSTS is empty"))
    if not settings.ALLOWED_IPS:
        problems.append(("E023", "ALLOWED_IPS is empty: peers would not be allowlisted"))
    if not settings.CLUSTER_TOPOLOGY:
        problems.append(("E024", "CLUSTER_TOPOLOGY (the genesis file) is not set"))
    # Validators sign with the key; observers need it for their TLS identity.
    if settings.NODE_TYPE in NODE_TYPES:
        node_key_problem = _key_file_problem("NODE_KEY_PATH", settings.NODE_KEY_PATH)
        if node_key_problem:
            problems.append(("E025", node_key_problem))
    audit_key_problem = _audit_keyring_problem()
    if audit_key_problem:
        problems.append(("E026", audit_key_problem))
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        problems.append(("E027", "DATABASE_URL points at SQLite; production needs CockroachDB "
                                 "(cockroachdb://) or PostgreSQL (postgres://)"))
    if settings.KAFKA_SASL_PASSWORD and settings.KAFKA_SECURITY_PROTOCOL != "SASL_SSL":
        problems.append(("E028", "KAFKA_SASL_PASSWORD is set but KAFKA_SECURITY_PROTOCOL is "
                                 "not SASL_SSL: the password would cross the network in clear"))
    if failpoints.armed():
        problems.append(("E029", "CYBERMESH_FAILPOINTS is set: fault injection is for crash "
                                 "tests only"))
    return [Error(message, id=f"cybermesh.{code}") for code, message in problems]
