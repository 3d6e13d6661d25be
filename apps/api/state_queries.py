"""Reads of the authenticated state for the API: proofs a client can check alone, entities.

**Which block proves a state version.** Execution lags one block: the header of block ``h``
carries the state root after block ``h - 1``. So the answer for state version ``v`` is the
value and Merkle proof at ``v`` *plus* block ``v + 1`` (header and commit QC): whoever trusts
the validator set checks the QC over the header, the header's ``state_root``, and the proof
against that root, and needs to trust nothing this node says (``cybermesh.verify``). The
latest provable version is therefore the committed tip's height minus one.

Every read is a primary-key probe (block, tree nodes along one path of ~log2(n) nodes) or one
index range (a key's history, ``state_kv`` primary key ``(key_hash, version)``).
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import itertools
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet

from apps.api.queries import committed_block
from apps.ledger.models import Block as BlockRow
from apps.ledger.rows import decode_qc
from apps.state.models import StateValue
from apps.state.queries import read_with_proof
from apps.state.services import StateError
from cybermesh.protocol.consensus.messages import Block, QuorumCert
from cybermesh.protocol.executor.keys import Subject, quarantine_key, reputation_key
from cybermesh.protocol.executor.policy import Decision, effective_decision
from cybermesh.protocol.executor.records import Record, RecordType, StateCorrupt, decode_record
from cybermesh.protocol.merkle.errors import MerkleError
from cybermesh.protocol.merkle.sparse_proof import Proof
from cybermesh.protocol.txs.entity import Entity, EntityKind
from cybermesh.protocol.txs.errors import TxRejected


class StateUnavailable(Exception):
    """The asked version is pruned, not written yet, or no committed block carries its
    root yet."""


class SubjectRecord(enum.StrEnum):
    """Per-subject records a client can ask about by subject rather than by tree key."""

    REPUTATION = "reputation"
    QUARANTINE = "quarantine"


_KEY_OF = {SubjectRecord.REPUTATION: reputation_key, SubjectRecord.QUARANTINE: quarantine_key}
VALIDATOR_KIND = "validator"
SUBJECT_KINDS = (*(kind.value for kind in EntityKind), VALIDATOR_KIND)


def subject_of(kind: str, value: str) -> Subject:
    """A subject in canonical form (an entity is normalised as the executor does); raises
    ``ValueError`` when the value is not a valid entity of that kind."""
    if kind == VALIDATOR_KIND:
        if not value or len(value) > 64:
            raise ValueError("A validator id is 1 to 64 characters.")
        return Subject.validator(value)
    try:
        return Subject.of(Entity.of(kind, value))
    except TxRejected as error:
        raise ValueError(error.detail) from None


def subject_key(record: SubjectRecord, subject: Subject) -> bytes:
    return _KEY_OF[record](subject)


@dataclass(frozen=True, slots=True)
class StateProofAnswer:
    key: bytes
    version: int
    value: bytes | None
    proof: Proof
    block: Block
    qc: QuorumCert
    block_row: BlockRow
    subject: Subject | None = None
    record: SubjectRecord | None = None


def latest_provable_version() -> int:
    tip = BlockRow.objects.order_by("-height").values_list("height", flat=True).first()
    if tip is None or tip < 1:
        raise StateUnavailable("No committed block carries a state root yet.")
    return int(tip) - 1


def state_proof(*, key: bytes, version: int | None = None, subject: Subject | None = None,
                record: SubjectRecord | None = None) -> StateProofAnswer:
    """The value of tree key ``key`` at ``version`` (default: the latest provable), its
    proof, and block ``version + 1`` whose header commits to the root."""
    version = latest_provable_version() if version is None else version
    row = BlockRow.objects.filter(height=version + 1).order_by().first()
    if row is None:
        raise StateUnavailable(f"No committed block carries the root of state version "
                               f"{version} yet (that is block {version + 1}).")
    try:
        value, proof = read_with_proof(key, version)
    except (StateError, MerkleError) as error:
        raise StateUnavailable(str(error)) from None
    block, qc = committed_block(row), decode_qc(row.qc)
    return StateProofAnswer(key=key, version=version, value=value, proof=proof, block=block,
                            qc=qc, block_row=row, subject=subject, record=record)


def key_history(key: bytes) -> QuerySet[StateValue]:
    """Every version at which ``key`` changed (``value`` NULL: deleted), for keyset paging
    on ``version`` (newest first)."""
    return StateValue.objects.filter(key_hash=key).only("key_hash", "version", "value")


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Subject | Entity):
        return {"kind": str(getattr(value.kind, "value", value.kind)), "value": value.value}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain(getattr(value, field.name))
                for field in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def record_json(value: bytes | None) -> dict[str, Any] | None:
    """A stored state record as JSON (``type`` and its fields); undecodable bytes are
    reported as such rather than guessed at."""
    if value is None:
        return None
    try:
        record = decode_record(value)
    except StateCorrupt:
        return {"type": "unknown", "fields": {}}
    return {"type": record.TYPE.name.lower(), "fields": _plain(record)}


# --- policy -----------------------------------------------------------------------------------

# A stored record is the canonical CBOR array [type, ...]: its second byte is the type tag
# (the first is the array header), so rules and quarantines can be told from the bytes.
POLICY_TAGS = {"rule": bytes([RecordType.RULE.value]),
               "quarantine": bytes([RecordType.QUARANTINE.value])}


def version_time_ms(version: int) -> int:
    """The block time of block ``version``: what "now" is for the state after it."""
    stamp = (BlockRow.objects.filter(height=version).order_by()
             .values_list("timestamp_ms", flat=True).first())
    if stamp is None:
        raise StateUnavailable(f"No committed block at height {version}.")
    return int(stamp)


def _live_records_of(kind: str, *, version: int, below: bytes | None,
                     count: int) -> list[StateValue]:
    """Up to ``count`` live records of one type at ``version``, tree key descending, keys
    below ``below``.

    One range of the ``(namespace, key_hash, version)`` index per batch: every condition is
    an index condition (namespace, key bound, version bound), and the "no newer version"
    check probes the primary key ``(key_hash, version)``. Deletions (NULL values) are skipped
    here rather than filtered in SQL, where ``value`` (not in the index) would be a per-row
    filter; a batch that is all deletions just reads the next one."""
    newer = StateValue.objects.filter(key_hash=OuterRef("key_hash"),
                                      version__gt=OuterRef("version"), version__lte=version)
    found: list[StateValue] = []
    while len(found) < count:
        rows = StateValue.objects.filter(namespace=kind, version__lte=version)
        if below is not None:
            rows = rows.filter(key_hash__lt=below)
        batch = list(rows.exclude(Exists(newer)).order_by("-key_hash")
                     .only("key_hash", "version", "value")[:count])
        found += [row for row in batch if row.value is not None]
        if len(batch) < count:
            break
        below = bytes(batch[-1].key_hash)
    return found[:count]


def policy_page(*, version: int, kinds: tuple[str, ...], below: bytes | None,
                count: int) -> list[StateValue]:
    """The live rule / quarantine records at ``version`` (the latest row of each key, not a
    deletion), tree key descending below ``below``, at most ``count`` of them.

    ``state_kv`` rows carry their record type as the ``namespace`` label (set at execution).
    Each type is read from its own range of the ``(namespace, key_hash, version)`` index and
    the ranges are merged here: a single query over two namespaces cannot come out of that
    index in key order, so PostgreSQL would walk the whole primary key instead. The cost
    grows with the page and the policy's deletions, not with the state."""
    unknown = set(kinds) - set(POLICY_TAGS)
    if unknown:
        raise ValueError(f"unknown policy record kinds: {sorted(unknown)}")
    ranges = [_live_records_of(kind, version=version, below=below, count=count)
              for kind in kinds]
    merged = heapq.merge(*ranges, key=lambda row: bytes(row.key_hash), reverse=True)
    return list(itertools.islice(merged, count))


def read_records_at(keys: list[bytes], version: int) -> dict[bytes, bytes | None]:
    """The value of each key at ``version`` in one query (primary-key probes)."""
    values: dict[bytes, bytes | None] = dict.fromkeys(keys)
    newest: dict[bytes, int] = {}
    # Versions are filtered here, not in SQL, so the only usable index is the primary key
    # (key_hash, version); the rows read are the few versions of these keys.
    rows = (StateValue.objects.filter(key_hash__in=keys).order_by()
            .values_list("key_hash", "version", "value"))
    for raw_key, row_version, raw_value in rows:
        key = bytes(raw_key)
        if row_version <= version and row_version > newest.get(key, -1):
            newest[key] = row_version
            values[key] = None if raw_value is None else bytes(raw_value)
    return values


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    version: int
    as_of_ms: int
    entity: Entity
    scope: str
    decision: Decision | None
    quarantine: bytes | None


def policy_decision(*, entity: Entity, scope: str,
                    version: int | None = None) -> PolicyDecision:
    """The effective allow/deny decision for ``entity`` in ``scope`` at ``version``, by the
    executor's own conflict rules, and the entity's quarantine record."""
    version = latest_provable_version() if version is None else version
    as_of = version_time_ms(version)
    asked: list[bytes] = []

    def record_key(key: bytes) -> Record | None:
        asked.append(key)
        return None

    effective_decision(record_key, entity, scope, as_of)  # which keys the rules may sit at
    quarantine = quarantine_key(Subject.of(entity))
    values = read_records_at([*asked, quarantine], version)

    def read(key: bytes) -> Record | None:
        value = values.get(key)
        return None if value is None else decode_record(value)

    return PolicyDecision(version=version, as_of_ms=as_of, entity=entity, scope=scope,
                          decision=effective_decision(read, entity, scope, as_of),
                          quarantine=values[quarantine])
