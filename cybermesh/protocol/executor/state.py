"""The application state: an immutable map of 32-byte keys to typed records.

:class:`State` is a value: applying a block never changes it, it returns a new one that shares
almost everything with the old (:class:`PersistentMap`: an overlay of recent changes over a
shared base dict, so a read costs at most two dict lookups and a block amortised O(changes)
copying). That is what lets the determinism tests
apply the same block to the same state twice, and the node keep the last committed state while
it executes a proposal.

The authenticated content is exactly ``{key: encode_record(record)}`` (:meth:`State.entries`);
its root is computed by the sparse Merkle tree (:mod:`.root`). The expiry index (which records
fall due when) is derived from the records and rebuilt by :meth:`State.from_entries`.

Expiry is processed in 1-second buckets: a record expiring at ``t`` is removed by the first block
whose timestamp reaches the end of ``t``'s bucket; readers treat it as expired from ``t`` on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from cybermesh.protocol.executor.keys import (
    CHAIN_KEY,
    PARAMETERS_KEY,
    PENDING_KEY,
    VALIDATORS_KEY,
)
from cybermesh.protocol.executor.params import ExecutorParameters
from cybermesh.protocol.executor.records import (
    ChainRecord,
    PendingRecord,
    Record,
    StateCorrupt,
    ValidatorsRecord,
    decode_record,
    encode_record,
)

__all__ = ["EXPIRY_BUCKET_MS", "MIN_FOLD", "PersistentMap", "State", "StateWriter"]

K = TypeVar("K")
R = TypeVar("R")
V = TypeVar("V")
MIN_FOLD = 4096
EXPIRY_BUCKET_MS = 1000


class _Deleted:
    __slots__ = ()


_DELETED = _Deleted()


class PersistentMap(Generic[K, V]):
    """An immutable dict: ``updated`` returns a new map and leaves this one as it was.

    A map is a shared, never-mutated ``base`` plus an ``overlay`` of changes since (deletions
    marked). ``updated`` copies only the overlay; once the overlay outgrows a quarter of the
    base (and :data:`MIN_FOLD` entries) it is folded into a fresh base. A read is at most two
    dict lookups; the copying is amortised O(changes).
    """

    __slots__ = ("_base", "_overlay")

    def __init__(self, base: dict[K, V] | None = None,
                 overlay: dict[K, V | _Deleted] | None = None) -> None:
        self._base: dict[K, V] = {} if base is None else base
        self._overlay: dict[K, V | _Deleted] = {} if overlay is None else overlay

    def get(self, key: K) -> V | None:
        value = self._overlay.get(key)
        if value is None:
            return self._base.get(key)
        return None if value is _DELETED else value  # type: ignore[return-value]

    def updated(self, changes: Mapping[K, V | None]) -> PersistentMap[K, V]:
        """A new map with ``changes`` applied (a ``None`` value deletes the key)."""
        if not changes:
            return self
        overlay = dict(self._overlay)
        for key, value in changes.items():
            overlay[key] = _DELETED if value is None else value
        if len(overlay) < max(MIN_FOLD, len(self._base) // 4):
            return PersistentMap(self._base, overlay)
        return PersistentMap(self._fold(overlay), None)

    def _fold(self, overlay: dict[K, V | _Deleted]) -> dict[K, V]:
        base = dict(self._base)
        for key, value in overlay.items():
            if value is _DELETED:
                base.pop(key, None)
            else:
                base[key] = value  # type: ignore[assignment]
        return base

    def items(self) -> Iterator[tuple[K, V]]:
        """Every (key, value), in no particular order (sort when order matters)."""
        return iter(self._fold(self._overlay).items())

    def __len__(self) -> int:
        return len(self._fold(self._overlay))


# Walking every second between two blocks is cheap after a short gap and ruinous after a long
# one (a chain idle for a day is 86,400 buckets; a genesis time of 0 is 1.7 billion). Past this
# many seconds, walk the (few) buckets that exist instead. Both walks yield the same list.
_BUCKET_WALK_LIMIT = 4096


def _buckets_between(buckets: PersistentMap[int, tuple[tuple[bytes, ...], ...]],
                     start: int, end: int) -> list[int]:
    """Bucket numbers in ``[start, end)`` that hold keys, ascending."""
    if end - start <= _BUCKET_WALK_LIMIT:
        return [bucket for bucket in range(start, end) if buckets.get(bucket) is not None]
    return sorted(bucket for bucket, _ in buckets.items() if start <= bucket < end)


class _ExpiryIndex:
    """Bucket number -> chunks of keys that may expire in that second (stale entries are
    skipped when the bucket is processed). ``next_bucket``: every earlier bucket is done."""

    __slots__ = ("buckets", "next_bucket")

    def __init__(self, buckets: PersistentMap[int, tuple[tuple[bytes, ...], ...]],
                 next_bucket: int) -> None:
        self.buckets = buckets
        self.next_bucket = next_bucket


class State:
    """One height's application state. Build with :meth:`from_records`/:meth:`from_entries`
    (genesis helpers are in :mod:`.genesis`), advance with ``apply_block``."""

    __slots__ = ("_expiry", "_records")

    def __init__(self, records: PersistentMap[bytes, Record], expiry: _ExpiryIndex) -> None:
        self._records = records
        self._expiry = expiry

    @classmethod
    def from_records(cls, records: Mapping[bytes, Record]) -> State:
        """A state holding exactly ``records``; it must contain the chain, parameters,
        validators and pending-governance records."""
        base = dict(records)
        for key in (CHAIN_KEY, PARAMETERS_KEY, VALIDATORS_KEY, PENDING_KEY):
            if key not in base:
                raise StateCorrupt("state lacks one of the chain, parameters, validators or "
                                   "pending-governance records")
        chain = base[CHAIN_KEY]
        if not isinstance(chain, ChainRecord):
            raise StateCorrupt("the chain key does not hold the chain record")
        buckets: dict[int, list[bytes]] = {}
        for key, record in base.items():
            expires_at = record.expires_at_ms
            if expires_at is not None:
                buckets.setdefault(expires_at // EXPIRY_BUCKET_MS, []).append(key)
        index: dict[int, tuple[tuple[bytes, ...], ...]] = {
            bucket: (tuple(keys),) for bucket, keys in buckets.items()}
        return cls(PersistentMap(base),
                   _ExpiryIndex(PersistentMap(index), chain.timestamp_ms // EXPIRY_BUCKET_MS))

    @classmethod
    def from_entries(cls, entries: Mapping[bytes, bytes]) -> State:
        """Rebuild a state from its authenticated ``key -> bytes`` content (e.g. from the DB)."""
        return cls.from_records({key: decode_record(value) for key, value in entries.items()})

    def get(self, key: bytes) -> Record | None:
        return self._records.get(key)

    def entries(self) -> dict[bytes, bytes]:
        """The authenticated content, ``{key: canonical record bytes}``, sorted by key."""
        return {key: encode_record(record) for key, record in sorted(self._records.items())}

    def _singleton(self, key: bytes) -> Record:
        record = self._records.get(key)
        if record is None:  # pragma: no cover - from_records guarantees it
            raise StateCorrupt("a singleton record is missing")
        return record

    @property
    def chain(self) -> ChainRecord:
        return self._singleton(CHAIN_KEY)  # type: ignore[return-value]

    @property
    def parameters(self) -> ExecutorParameters:
        return self._singleton(PARAMETERS_KEY).parameters  # type: ignore[union-attr]

    @property
    def validators(self) -> ValidatorsRecord:
        return self._singleton(VALIDATORS_KEY)  # type: ignore[return-value]

    @property
    def pending(self) -> PendingRecord:
        return self._singleton(PENDING_KEY)  # type: ignore[return-value]

    @property
    def height(self) -> int:
        return self.chain.height

    def due_keys(self, now_ms: int) -> list[bytes]:
        """Keys in every bucket that has ended by ``now_ms`` (candidates; may be stale)."""
        end = now_ms // EXPIRY_BUCKET_MS
        found: list[bytes] = []
        buckets = self._expiry.buckets
        for bucket in _buckets_between(buckets, self._expiry.next_bucket, end):
            for chunk in buckets.get(bucket) or ():
                found.extend(chunk)
        return found

    def _advanced(self, changes: dict[bytes, Record | None], now_ms: int) -> State:
        end = now_ms // EXPIRY_BUCKET_MS
        old = self._expiry
        bucket_changes: dict[int, tuple[tuple[bytes, ...], ...] | None] = dict.fromkeys(
            _buckets_between(old.buckets, old.next_bucket, end))
        added: dict[int, list[bytes]] = {}
        for key, record in changes.items():
            expires_at = None if record is None else record.expires_at_ms
            if expires_at is not None:
                if expires_at // EXPIRY_BUCKET_MS < end:
                    raise StateCorrupt("a record written by a block must expire after it")
                added.setdefault(expires_at // EXPIRY_BUCKET_MS, []).append(key)
        for bucket, keys in added.items():
            bucket_changes[bucket] = (*(old.buckets.get(bucket) or ()), tuple(keys))
        expiry = _ExpiryIndex(old.buckets.updated(bucket_changes), max(old.next_bucket, end))
        return State(self._records.updated(changes), expiry)


class StateWriter:
    """The block-local view: reads see this block's writes, writes stay here until
    :meth:`finish` turns them into the next :class:`State` and the state updates."""

    __slots__ = ("base", "writes")

    def __init__(self, base: State) -> None:
        self.base = base
        self.writes: dict[bytes, Record | None] = {}

    def get(self, key: bytes) -> Record | None:
        if key in self.writes:
            return self.writes[key]
        return self.base.get(key)

    def get_typed(self, key: bytes, record_type: type[R]) -> R | None:
        """The record at ``key`` if any; it must be a ``record_type``."""
        record = self.get(key)
        if record is not None and type(record) is not record_type:
            raise StateCorrupt(f"expected a {record_type.__name__} at a key of its namespace")
        return record

    def put(self, key: bytes, record: Record) -> None:
        self.writes[key] = record

    def delete(self, key: bytes) -> None:
        self.writes[key] = None

    def finish(self, now_ms: int) -> tuple[State, dict[bytes, bytes | None]]:
        """The next state and its updates ``{key: bytes or None (deleted)}``, sorted by key;
        writes that leave a key as it was are dropped."""
        changes: dict[bytes, Record | None] = {}
        updates: dict[bytes, bytes | None] = {}
        base_get = self.base.get
        for key in sorted(self.writes):
            record = self.writes[key]
            before = base_get(key)
            if record == before:
                continue
            changes[key] = record
            updates[key] = None if record is None else encode_record(record)
        return self.base._advanced(changes, now_ms), updates
