"""Who this node is in the chain: validator of the current set, validator-to-be, or observer.

The genesis file names the *first* validator set. Governance adds, removes and re-keys
validators later (apps/governance), and the committed ledger is where the current set lives
(the ``validators`` projection, written in the same transaction as the block that changed it).
So ``run_node`` checks its key against the committed ledger when there is one, and against
genesis only on an empty database:

* a validator of the current set must hold that set's key for its id; a key this id held in
  an *earlier* epoch (genesis, or a reconfiguration block of its ledger) is refused — the
  rotation replaced it. A key the ledger never saw for this id may be the new key of a
  rotation the ledger has not reached yet (a node stopped before the boundary): it starts
  joining, like a new validator, and signs nothing until an epoch holds its id and key;
* a validator id the node does not find in the set it knows starts *joining*: it follows the
  chain by block sync (ledger catch-up from genesis) and votes from the first epoch whose set
  holds its id and key. The peers accept its TLS key from that epoch on (apps/node/p2p/tls.py:
  trust is by the current set's keys);
* an observer must not use a validator id, and holds a key only for its TLS identity.

``P2P_OBSERVERS`` (``id:<64 hex public key>`` entries) is parsed here too: the validators
accept those keys on the block-sync topic only.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import DatabaseError

from apps.ledger.models import Block as BlockRow
from apps.ledger.rows import load_block
from apps.node.bootstrap import BootstrapError, epoch_root
from apps.validators.models import Validator as ValidatorRow
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.genesis import Genesis

_OBSERVER_ENTRY = re.compile(r"(?P<id>[^:\s]{1,64}):(?P<key>[0-9a-fA-F]{64})")


class MembershipError(ValueError):
    """This node's id, key or role contradicts the chain (one line, for the operator)."""


class Role(enum.StrEnum):
    VALIDATOR = "validator"  # in the set this node knows, with this key
    JOINING = "joining"  # not in the set it knows yet: follows until an epoch includes it
    OBSERVER = "observer"


@dataclass(frozen=True, slots=True)
class KnownSet:
    """The validator set this node knows before it starts: ``id -> public key``."""

    members: dict[str, bytes]
    source: str  # "the committed ledger" | "genesis"


def parse_observers(entries: Iterable[str]) -> dict[str, bytes]:
    """``P2P_OBSERVERS`` entries to ``id -> public key``; MembershipError naming a bad one."""
    observers: dict[str, bytes] = {}
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        match = _OBSERVER_ENTRY.fullmatch(text)
        if match is None:
            raise MembershipError(f"P2P_OBSERVERS entry {text[:80]!r} is not "
                                  "'id:<64 hex digits of its public key>'")
        if match["id"] in observers:
            raise MembershipError(f"P2P_OBSERVERS names {match['id']!r} twice")
        observers[match["id"]] = bytes.fromhex(match["key"])
    return observers


def known_set(genesis: Genesis) -> KnownSet:
    """The active set of the committed ledger, or genesis's on an empty database (or one not
    readable yet: the worker reports a database problem itself, with its own message)."""
    try:
        if BlockRow.objects.exists():
            rows = ValidatorRow.objects.filter(active=True).values_list("validator_id",
                                                                        "public_key")
            members = {validator_id: bytes(key) for validator_id, key in rows}
            if members:
                return KnownSet(members, "the committed ledger")
    except DatabaseError:
        pass
    return KnownSet({v.validator_id: v.public_key for v in genesis.validator_set}, "genesis")


def role_of(*, node_type: str, node_id: str, key: SigningKey, genesis: Genesis,
            observers: dict[str, bytes]) -> Role:
    """This node's role; MembershipError when its id or key contradicts what the chain says."""
    known = known_set(genesis)
    if node_type == Role.OBSERVER:
        if node_id in known.members or node_id in genesis.validator_set:
            raise MembershipError(f"NODE_ID={node_id!r} is a validator id; an observer needs "
                                  "an id of its own")
        if key.public_key.raw in known.members.values():
            raise MembershipError("NODE_KEY_PATH holds a validator's key; an observer needs a "
                                  "key of its own")
        return Role.OBSERVER
    if node_id in observers:
        raise MembershipError(f"NODE_ID={node_id!r} is listed in P2P_OBSERVERS; a validator "
                              "is not an observer")
    registered = known.members.get(node_id)
    if registered == key.public_key.raw:
        return Role.VALIDATOR
    if registered is not None:
        taken = key.public_key.raw in known.members.values()
        if taken or key.public_key.raw in former_keys(node_id, genesis):
            why = "" if taken else " (governance rotated it away)"
            raise MembershipError(f"NODE_KEY_PATH holds a key that is not {node_id}'s "
                                  f"validator key in {known.source}{why}")
        return Role.JOINING  # a new key the ledger has not reached yet
    if key.public_key.raw in known.members.values():
        raise MembershipError(f"NODE_KEY_PATH holds another validator's key in "
                              f"{known.source}, not one for {node_id!r}")
    return Role.JOINING


def former_keys(node_id: str, genesis: Genesis) -> set[bytes]:
    """Every key ``node_id`` held in an epoch this node's ledger has seen (genesis and the
    sets of the reconfiguration blocks)."""
    keys = set()
    first = genesis.validator_set.get(node_id)
    if first is not None:
        keys.add(first.public_key)
    try:
        heights = list(BlockRow.objects.filter(next_validators__isnull=False)
                       .values_list("height", flat=True))
        for height in heights:
            loaded = load_block(height)
            for validator in (loaded[0].next_validators or ()) if loaded else ():
                if validator.validator_id == node_id:
                    keys.add(validator.public_key)
    except DatabaseError:
        pass  # no readable ledger: genesis is all this node knows
    return keys


def departed_validators(epoch: int, current: Iterable[str], genesis: Genesis) -> dict[str, bytes]:
    """``id -> key`` of the validators of epoch ``epoch - 1`` that epoch ``epoch`` does not
    hold (its set's ids are ``current``): the peers accept them on block sync only, for one
    epoch (apps/node/p2p/transport.py), so a removed validator can still fetch the proof of
    the change it left by. Read from the ledger on start; the network keeps it up to date."""
    if epoch < 1:
        return {}
    try:
        # Epoch e-1's set: genesis's, or the one its root (reconfiguration) block installed.
        previous = genesis.validator_set.validators if epoch == 1 else \
            epoch_root(epoch - 1)[0].next_validators or ()
    except (BootstrapError, DatabaseError):
        return {}  # no readable ledger: no departures known, none trusted
    members = set(current)
    return {v.validator_id: v.public_key for v in previous if v.validator_id not in members}
