"""The producer allowlist: which keys may submit which transaction kinds, and how fast.

Loaded from a JSON file (``MEMPOOL_PRODUCERS_PATH``)::

    {"producers": [
      {"producer_id": "ai-detector-1",
       "keys": [{"key_id": "3d4017c3e843895a", "public_key": "<64 hex digits>"}],
       "kinds": ["security_event", "evidence"],
       "rate_per_second": 200, "burst": 400, "max_pending": 20000}
    ]}

* ``keys``: the producer's Ed25519 public keys (several during a rotation). ``key_id`` is
  optional; when given it must equal the key's id (first 16 hex digits of its SHA-256), which
  catches a pasted wrong key. Keys are validated like validator keys: small-order, mixed-order
  and non-canonical keys are refused at load time.
* ``kinds``: transaction kinds this producer may submit (anything else is refused as
  ``KIND_NOT_PERMITTED``).
* ``rate_per_second`` / ``burst``: a token bucket per producer, enforced in the database.
* ``max_pending``: most transactions this producer may have waiting in the mempool.

Input is hostile until checked: the file is bounded in size, unknown fields are refused, and
every problem is reported (one line each) in :class:`AllowlistError`. A key may belong to one
producer only. :class:`AllowlistFile` reloads the file when it changes on disk, keeping the
last good list if the new one is invalid (and saying so in the log).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cybermesh.logging import get_logger
from cybermesh.protocol.crypto.errors import CryptoError
from cybermesh.protocol.crypto.signing import PublicKey
from cybermesh.protocol.txs.kinds import TxKind
from cybermesh.protocol.txs.schema import TOKEN_PATTERN

__all__ = [
    "MAX_ALLOWLIST_BYTES",
    "AllowlistError",
    "AllowlistFile",
    "Producer",
    "ProducerAllowlist",
    "parse_allowlist",
]

logger = get_logger(__name__)

MAX_ALLOWLIST_BYTES = 1 << 20
MAX_PRODUCERS = 10_000
MAX_KEYS_PER_PRODUCER = 8
MAX_RATE_PER_SECOND = 1_000_000
_PRODUCER_FIELDS = {"producer_id", "keys", "kinds", "rate_per_second", "burst", "max_pending"}
_KEY_FIELDS = {"key_id", "public_key"}


class AllowlistError(ValueError):
    """The allowlist file is unusable; ``problems`` has one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True, slots=True)
class Producer:
    """One allowlisted producer."""

    producer_id: str
    keys: tuple[PublicKey, ...]
    kinds: frozenset[TxKind]
    rate_per_second: int
    burst: int
    max_pending: int

    def may_submit(self, kind: TxKind) -> bool:
        return kind in self.kinds


@dataclass(frozen=True, slots=True)
class ProducerAllowlist:
    """Producers by id, and the producer owning each raw public key."""

    producers: Mapping[str, Producer]

    @classmethod
    def of(cls, producers: Iterable[Producer]) -> ProducerAllowlist:
        listed = list(producers)
        by_id = {producer.producer_id: producer for producer in listed}
        if len(by_id) != len(listed):
            raise AllowlistError(["a producer id is listed twice"])
        return cls(by_id)

    def lookup(self, producer_id: str, raw_public_key: bytes) -> tuple[Producer, PublicKey] | None:
        """The producer and its validated key if ``raw_public_key`` is one of its keys."""
        producer = self.producers.get(producer_id)
        if producer is None:
            return None
        for key in producer.keys:
            if key.raw == raw_public_key:
                return producer, key
        return None

    def __len__(self) -> int:
        return len(self.producers)


def _positive_int(entry: Mapping[str, object], name: str, where: str, problems: list[str],
                  *, maximum: int) -> int:
    value = entry.get(name)
    if type(value) is not int or not 1 <= value <= maximum:
        problems.append(f"{where}: {name} must be an integer in 1..{maximum}")
        return 1
    return value


def _parse_key(raw_key: object, where: str, problems: list[str]) -> PublicKey | None:
    if not isinstance(raw_key, dict) or not set(raw_key) <= _KEY_FIELDS \
            or "public_key" not in raw_key:
        problems.append(f"{where}: a key is an object with public_key (and optional key_id)")
        return None
    hex_key = raw_key["public_key"]
    try:
        if not isinstance(hex_key, str) or len(hex_key) != 64:
            raise ValueError
        key = PublicKey.from_bytes(bytes.fromhex(hex_key))
    except ValueError:
        problems.append(f"{where}: public_key must be 64 hex digits")
        return None
    except CryptoError as error:
        problems.append(f"{where}: public_key refused ({error.reason.value})")
        return None
    key_id = raw_key.get("key_id")
    if key_id is not None and key_id != key.key_id:
        problems.append(f"{where}: key_id {str(key_id)[:32]!r} does not match the key "
                        f"(its id is {key.key_id})")
        return None
    return key


def _parse_keys(raw_keys: object, where: str, problems: list[str]) -> list[PublicKey]:
    if not isinstance(raw_keys, list) or not 1 <= len(raw_keys) <= MAX_KEYS_PER_PRODUCER:
        problems.append(f"{where}: keys must be a list of 1..{MAX_KEYS_PER_PRODUCER} keys")
        return []
    keys = [_parse_key(raw_key, where, problems) for raw_key in raw_keys]
    return [key for key in keys if key is not None]


def _parse_kinds(raw_kinds: object, where: str, problems: list[str]) -> set[TxKind]:
    if not isinstance(raw_kinds, list) or not raw_kinds:
        problems.append(f"{where}: kinds must be a non-empty list")
        return set()
    kinds: set[TxKind] = set()
    for raw_kind in raw_kinds:
        try:
            kinds.add(TxKind(raw_kind))
        except ValueError:
            problems.append(f"{where}: unknown kind {str(raw_kind)[:40]!r} (one of "
                            f"{', '.join(kind.value for kind in TxKind)})")
    return kinds


def _parse_producer(entry: object, index: int, problems: list[str]) -> Producer | None:
    where = f"producers[{index}]"
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be an object")
        return None
    unknown = set(entry) - _PRODUCER_FIELDS
    if unknown:
        problems.append(f"{where}: unknown field(s) {sorted(unknown)[:5]}")
    before = len(problems)
    producer_id = entry.get("producer_id")
    if not isinstance(producer_id, str) or len(producer_id) > 64 \
            or TOKEN_PATTERN.fullmatch(producer_id) is None:
        problems.append(f"{where}: producer_id must be a token of at most 64 characters")
        producer_id = ""
    else:
        where = f"producer {producer_id}"
    keys = _parse_keys(entry.get("keys"), where, problems)
    kinds = _parse_kinds(entry.get("kinds"), where, problems)
    rate = _positive_int(entry, "rate_per_second", where, problems,
                         maximum=MAX_RATE_PER_SECOND)
    burst = _positive_int(entry, "burst", where, problems, maximum=100 * MAX_RATE_PER_SECOND)
    max_pending = _positive_int(entry, "max_pending", where, problems, maximum=10_000_000)
    if len(problems) > before:
        return None
    return Producer(producer_id=producer_id, keys=tuple(keys), kinds=frozenset(kinds),
                    rate_per_second=rate, burst=burst, max_pending=max_pending)


def parse_allowlist(data: bytes | str) -> ProducerAllowlist:
    """Parse and validate an allowlist document; raise :class:`AllowlistError`."""
    if len(data) > MAX_ALLOWLIST_BYTES:
        raise AllowlistError([f"allowlist is larger than {MAX_ALLOWLIST_BYTES} bytes"])
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise AllowlistError([f"allowlist is not valid JSON ({error})"]) from None
    if not isinstance(document, dict) or set(document) != {"producers"} \
            or not isinstance(document["producers"], list):
        raise AllowlistError(['allowlist must be an object {"producers": [...]}'])
    entries = document["producers"]
    if len(entries) > MAX_PRODUCERS:
        raise AllowlistError([f"more than {MAX_PRODUCERS} producers"])
    problems: list[str] = []
    producers: list[Producer] = []
    key_owner: dict[bytes, str] = {}
    for index, entry in enumerate(entries):
        producer = _parse_producer(entry, index, problems)
        if producer is None:
            continue
        if any(existing.producer_id == producer.producer_id for existing in producers):
            problems.append(f"producer {producer.producer_id} is listed twice")
            continue
        for key in producer.keys:
            owner = key_owner.setdefault(key.raw, producer.producer_id)
            if owner != producer.producer_id:
                problems.append(f"key {key.key_id} belongs to both {owner} and "
                                f"{producer.producer_id}")
        producers.append(producer)
    if problems:
        raise AllowlistError(problems)
    return ProducerAllowlist.of(producers)


def load_allowlist(path: str | Path) -> ProducerAllowlist:
    """Read and parse an allowlist file; raise :class:`AllowlistError`."""
    file_path = Path(path)
    try:
        with file_path.open("rb") as handle:
            data = handle.read(MAX_ALLOWLIST_BYTES + 1)
    except OSError as error:
        raise AllowlistError([f"allowlist {file_path} cannot be read: {error.strerror}"]
                             ) from None
    try:
        return parse_allowlist(data)
    except AllowlistError as error:
        raise AllowlistError([f"{file_path}: {problem}" for problem in error.problems]
                             ) from None


class AllowlistFile:
    """An allowlist file, re-read when its modification time or size changes.

    The first load must succeed (a node must not start without knowing its producers); a
    later invalid edit is logged and the last good list stays in force.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._allowlist = load_allowlist(self.path)

    def _stat(self) -> tuple[int, int] | None:
        try:
            status = os.stat(self.path)
        except OSError:
            return None
        return (status.st_mtime_ns, status.st_size)

    def current(self) -> ProducerAllowlist:
        stamp = self._stat()
        if stamp == self._stamp:
            return self._allowlist
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._allowlist = load_allowlist(self.path)
                except AllowlistError as error:
                    logger.error("mempool.allowlist_reload_failed", path=str(self.path),
                                 problems=error.problems)
                self._stamp = stamp
        return self._allowlist
