"""A portable, verifiable archive of the ledger: ``manage.py ledger export`` / ``import``.

Format (version 1): the 8 magic bytes ``CMLEDGR1``, then records, each a 4-byte big-endian
length and that many bytes of canonical CBOR (RFC 8949 core deterministic encoding):

* ``["header", {"format": 1, "chain_id": str, "from": int, "to": int, "base_version": int|null}]``
* ``["base", [[key, value], ...]]`` (zero or more): the full state at ``base_version``
  (``from - 1``), when the archive does not start at the first block;
* ``["block", block, commit_qc, result_state_root, [[key, value|null], ...]]`` per height in
  order: the block and QC as the consensus encodes them, the state root after it and its state
  deltas (tree keys; null deletes);
* ``["end", block_count, digest]``: ``digest`` is the SHA-256 of every byte before this record.

Import reads the whole file twice. The first pass checks the digest, every block (ids, links,
tx roots, QC signatures against the genesis set and later epochs, see
:class:`~apps.ledger.verification.BlockChecker`) and every state root, by replaying the deltas
on an in-memory tree from the base state; nothing is written unless it all holds. The second
pass writes through the node's own commit path, re-executing every block with the executor and
refusing the archive if the executor's state updates differ from the archived ones.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.db.models import Max, Min
from django.utils import timezone

from apps.audit.choices import Outcome
from apps.audit.services import record_audit
from apps.ledger.models import Block as BlockRow
from apps.ledger.models import OutboxMessage
from apps.ledger.records import BlockExecution, CommitStatus, StateUpdate
from apps.ledger.rows import load_block
from apps.ledger.verification import BlockChecker
from apps.state.execution import execute_block
from apps.state.models import StateValue, StateVersion
from apps.state.queries import iter_state
from apps.state.services import initialize_state, latest_version, min_retained_version
from cybermesh.protocol.codec import CborValue, CodecError, DecodeLimits, decode, encode
from cybermesh.protocol.consensus.errors import MessageError
from cybermesh.protocol.consensus.messages import Block, QuorumCert
from cybermesh.protocol.consensus.wire import DEFAULT_WIRE_LIMITS, parse_block, parse_qc
from cybermesh.protocol.executor import State
from cybermesh.protocol.merkle.errors import MerkleError
from cybermesh.protocol.merkle.nodestore import InMemoryNodeStore
from cybermesh.protocol.merkle.sparse import SparseMerkleTree
from cybermesh.protocol.validator_set import ValidatorSet

MAGIC = b"CMLEDGR1"
FORMAT_VERSION = 1
MAX_RECORD_BYTES = 64 << 20
RECORD_LIMITS = DecodeLimits(max_bytes=MAX_RECORD_BYTES, max_depth=8, max_items=1 << 22)
BASE_CHUNK = 5000


class ArchiveError(Exception):
    """An archive that must not be imported (or a range that cannot be exported)."""


# --- export ---------------------------------------------------------------------------------

def _record(value: CborValue) -> bytes:
    body = encode(value)
    return struct.pack(">I", len(body)) + body


def _deltas(version: int, using: str) -> list[CborValue]:
    return [[bytes(key), None if value is None else bytes(value)] for key, value in
            StateValue.objects.using(using).filter(version=version)
            .order_by("key_hash").values_list("key_hash", "value")]


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    from_height: int
    to_height: int
    blocks: int
    digest: bytes


def export_archive(*, path: Path, chain_id: str, from_height: int | None = None,
                   to_height: int | None = None, using: str = "default",
                   progress: Callable[[int], object] | None = None) -> ExportResult:
    """Write blocks ``from_height..to_height`` (default: all) and their state to ``path``."""
    bounds = BlockRow.objects.using(using).aggregate(low=Min("height"), high=Max("height"))
    if bounds["low"] is None:
        raise ArchiveError("the ledger is empty; nothing to export")
    start = bounds["low"] if from_height is None else from_height
    end = bounds["high"] if to_height is None else to_height
    if not bounds["low"] <= start <= end <= bounds["high"]:
        raise ArchiveError(f"range {start}..{end} is outside the stored blocks "
                           f"{bounds['low']}..{bounds['high']}")
    horizon = min_retained_version(using=using)
    has_base = StateVersion.objects.using(using).filter(version__lt=start).exists()
    base_version = start - 1 if has_base or start > bounds["low"] else None
    if base_version is not None and base_version < horizon:
        raise ArchiveError(f"state before height {start} is pruned (horizon {horizon}); "
                           f"export from {horizon + 1} or later")
    hasher = hashlib.sha256()
    count = 0
    with path.open("wb") as handle:
        def write(data: bytes) -> None:
            hasher.update(data)
            handle.write(data)

        write(MAGIC)
        write(_record(["header", {"format": FORMAT_VERSION, "chain_id": chain_id,
                                  "from": start, "to": end, "base_version": base_version}]))
        if base_version is not None:
            chunk: list[CborValue] = []
            for key, value in iter_state(base_version, using=using):
                chunk.append([key, value])
                if len(chunk) >= BASE_CHUNK:
                    write(_record(["base", chunk]))
                    chunk = []
            if chunk:
                write(_record(["base", chunk]))
        for height in range(start, end + 1):
            loaded = load_block(height, using=using)
            if loaded is None:
                raise ArchiveError(f"block {height} is missing")
            block, qc = loaded
            result = (BlockRow.objects.using(using).filter(height=height)
                      .values_list("result_state_root", flat=True).get())
            write(_record(["block", block.to_cbor(), qc.to_cbor(), bytes(result),
                           _deltas(height, using)]))
            count += 1
            if progress is not None:
                progress(1)
        digest = hasher.digest()
        handle.write(_record(["end", count, digest]))
    return ExportResult(path=path, from_height=start, to_height=end, blocks=count,
                        digest=digest)


# --- reading --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ArchivedBlock:
    block: Block
    qc: QuorumCert
    result_root: bytes
    deltas: dict[bytes, bytes | None]


@dataclass(frozen=True, slots=True)
class ArchiveHeader:
    chain_id: str
    from_height: int
    to_height: int
    base_version: int | None


def _read_exact(handle: IO[bytes], size: int) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise ArchiveError("the archive is truncated")
    return data


def _records(handle: IO[bytes]) -> Iterator[tuple[list[Any], bytes]]:
    """(record, digest of every byte before it), for each record."""
    hasher = hashlib.sha256()
    magic = _read_exact(handle, len(MAGIC))
    if magic != MAGIC:
        raise ArchiveError("not a CyberMesh ledger archive (bad magic)")
    hasher.update(magic)
    while True:
        head = handle.read(4)
        if not head:
            return
        if len(head) != 4:
            raise ArchiveError("the archive is truncated")
        (size,) = struct.unpack(">I", head)
        if size > MAX_RECORD_BYTES:
            raise ArchiveError(f"a record of {size} bytes exceeds {MAX_RECORD_BYTES}")
        body = _read_exact(handle, size)
        try:
            value = decode(body, RECORD_LIMITS)
        except CodecError as error:
            raise ArchiveError(f"a record is not canonical CBOR: {error}") from None
        if type(value) is not list or not value or type(value[0]) is not str:
            raise ArchiveError("a record is not a [kind, ...] array")
        yield value, hasher.digest()
        hasher.update(head + body)


def _pairs(value: Any, what: str, *, allow_null: bool) -> dict[bytes, bytes | None]:
    if type(value) is not list:
        raise ArchiveError(f"{what} must be an array of [key, value] pairs")
    pairs: dict[bytes, bytes | None] = {}
    for entry in value:
        if (type(entry) is not list or len(entry) != 2 or type(entry[0]) is not bytes
                or len(entry[0]) != 32 or not (type(entry[1]) is bytes
                                               or (allow_null and entry[1] is None))):
            raise ArchiveError(f"{what}: malformed [key, value] pair")
        if entry[0] in pairs:
            raise ArchiveError(f"{what}: key repeated")
        pairs[entry[0]] = entry[1]
    return pairs


def _header(value: list[Any]) -> ArchiveHeader:
    fields = value[1] if len(value) == 2 else None
    if type(fields) is not dict or fields.get("format") != FORMAT_VERSION:
        raise ArchiveError(f"unsupported archive format (this code reads {FORMAT_VERSION})")
    chain_id, start, end, base = (fields.get("chain_id"), fields.get("from"), fields.get("to"),
                                  fields.get("base_version"))
    if type(chain_id) is not str or type(start) is not int or type(end) is not int \
            or not 0 <= start <= end or not (base is None or base == start - 1):
        raise ArchiveError("malformed archive header")
    return ArchiveHeader(chain_id, start, end, base)


def _block(value: list[Any]) -> ArchivedBlock:
    if len(value) != 5 or type(value[3]) is not bytes or len(value[3]) != 32:
        raise ArchiveError("malformed block record")
    try:
        block = parse_block(value[1], DEFAULT_WIRE_LIMITS)
        qc = parse_qc(value[2])
    except (MessageError, TypeError, ValueError) as error:
        raise ArchiveError(f"malformed block record: {error}") from None
    return ArchivedBlock(block, qc, value[3], _pairs(value[4], f"deltas of {block.height}",
                                                     allow_null=True))


def read_archive(path: Path) -> Iterator[ArchiveHeader | dict[bytes, bytes | None]
                                         | ArchivedBlock]:
    """Yield the header, base chunks and blocks; check the end record and its digest."""
    ended = False
    count = 0
    with path.open("rb") as handle:
        for index, (value, digest_before) in enumerate(_records(handle)):
            kind = value[0]
            if ended:
                raise ArchiveError("data after the end record")
            if index == 0:
                if kind != "header":
                    raise ArchiveError("the archive does not start with a header")
                yield _header(value)
            elif kind == "base" and len(value) == 2 and count == 0:
                yield _pairs(value[1], "base state", allow_null=False)
            elif kind == "block":
                count += 1
                yield _block(value)
            elif kind == "end":
                if len(value) != 3 or value[1] != count or value[2] != digest_before:
                    raise ArchiveError("the end record does not match the archive (digest or "
                                       "block count): the file was changed or cut")
                ended = True
            else:
                raise ArchiveError(f"unexpected {kind!r} record")
    if not ended:
        raise ArchiveError("the archive has no end record (truncated)")


# --- import ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ImportResult:
    from_height: int
    to_height: int
    committed: int
    already_present: int


def verify_archive(*, path: Path, chain_id: str, genesis_set: ValidatorSet,
                   progress: Callable[[int], object] | None = None) -> ArchiveHeader:
    """First pass: raise :class:`ArchiveError` unless the whole archive checks out."""
    header: ArchiveHeader | None = None
    base: dict[bytes, bytes | None] = {}
    checker = BlockChecker(chain_id=chain_id, genesis_set=genesis_set)
    store = InMemoryNodeStore()
    tree = SparseMerkleTree(store)
    version: int | None = None
    previous: ArchivedBlock | None = None
    for item in read_archive(path):
        if isinstance(item, ArchiveHeader):
            header = item
            if header.chain_id != chain_id:
                raise ArchiveError(f"the archive is of chain {header.chain_id!r}, this node "
                                   f"runs {chain_id!r}")
            continue
        assert header is not None  # noqa: S101 - read_archive yields the header first
        if isinstance(item, dict):
            base.update(item)
            continue
        if version is None and header.base_version is not None:
            root, batch = tree.apply(None, base, header.base_version)
            store.write_batch(batch)
            version = header.base_version
            if item.block.state_root != root:
                raise ArchiveError(f"the base state does not have the root block "
                                   f"{item.block.height} builds on")
        _check_archived(item, previous, header, checker)
        try:
            root, batch = tree.apply(version, item.deltas, item.block.height)
        except MerkleError as error:
            raise ArchiveError(f"block {item.block.height}: state deltas do not apply: "
                               f"{error}") from None
        store.write_batch(batch)
        if root != item.result_root:
            raise ArchiveError(f"block {item.block.height}: state root does not match its "
                               "deltas")
        if version is not None:
            store.prune(version)  # keep memory bounded by the state, not the chain length
        version, previous = item.block.height, item
        if progress is not None:
            progress(1)
    if header is None or previous is None or previous.block.height != header.to_height:
        raise ArchiveError("the archive does not hold the blocks its header announces")
    return header


def _check_archived(item: ArchivedBlock, previous: ArchivedBlock | None,
                    header: ArchiveHeader, checker: BlockChecker) -> None:
    block = item.block
    expected = header.from_height if previous is None else previous.block.height + 1
    if block.height != expected:
        raise ArchiveError(f"expected block {expected}, found {block.height}")
    if previous is not None and block.state_root != previous.result_root:
        raise ArchiveError(f"block {block.height}: header state root is not the parent's")
    problems = checker.check(block, item.qc, previous.block if previous else None)
    if problems:
        first = problems[0]
        raise ArchiveError(f"block {first.height}: {first.reason.value}: {first.detail}")


def import_archive(*, path: Path, chain_id: str, genesis_set: ValidatorSet,
                   using: str = "default", node_id: str = "",
                   progress: Callable[[int], object] | None = None) -> ImportResult:
    """Verify ``path`` completely, then commit its blocks (see the module docstring)."""
    from apps.ledger.services import commit_block  # the commit path imports this app's models

    header = verify_archive(path=path, chain_id=chain_id, genesis_set=genesis_set)
    tip = latest_version(using=using)
    if tip is not None and header.from_height > tip + 1:
        raise ArchiveError(f"the archive starts at {header.from_height}, the ledger ends at "
                           f"{tip}: a gap")
    state: State | None = None
    base: dict[bytes, bytes] = {}
    committed = present = 0
    for item in read_archive(path):
        if isinstance(item, ArchiveHeader):
            continue
        if isinstance(item, dict):
            base.update({key: value for key, value in item.items() if value is not None})
            continue
        block = item.block
        if tip is not None and block.height <= tip:
            outcome = commit_block(block=block, qc=item.qc, using=using,
                                   node_id=node_id or None)
        else:
            if state is None and tip is not None:
                state = State.from_entries(dict(iter_state(tip, using=using)))
            elif state is None and header.base_version is not None:
                initialize_state(version=header.base_version,
                                 updates=[StateUpdate(k, v) for k, v in sorted(base.items())],
                                 using=using)
                state = State.from_entries(base)
            execution, state = _execution_for(item, state)
            outcome = commit_block(block=block, qc=item.qc, execution=execution, using=using,
                                   node_id=node_id or None)
        if outcome.status is CommitStatus.COMMITTED:
            committed += 1
        else:
            present += 1
        if progress is not None:
            progress(1)
    # The origin node published these notifications when it committed the blocks.
    OutboxMessage.objects.using(using).filter(
        height__gte=header.from_height, height__lte=header.to_height,
        sent_at__isnull=True).update(sent_at=timezone.now())
    record_audit(actor=f"node:{node_id}" if node_id else "ledger-import",
                 action="ledger.import", target=f"blocks:{header.from_height}-"
                 f"{header.to_height}", outcome=Outcome.SUCCESS,
                 details={"archive": path.name, "committed": committed,
                          "already_present": present})
    return ImportResult(header.from_height, header.to_height, committed, present)


def _execution_for(item: ArchivedBlock, state: State | None) -> tuple[BlockExecution,
                                                                       State | None]:
    """The execution to commit: the executor's, checked against the archived deltas. The
    very first block of a chain (its genesis state) has no prior state to execute on."""
    archived = [StateUpdate(key, value) for key, value in sorted(item.deltas.items())]
    if state is None:
        entries = {key: value for key, value in item.deltas.items() if value is not None}
        return BlockExecution(state_updates=tuple(archived)), State.from_entries(entries)
    executed = execute_block(state, item.block)
    if {u.key: u.value for u in executed.execution.state_updates} != item.deltas:
        raise ArchiveError(f"block {item.block.height}: this node's executor computes other "
                           "state updates than the archive holds (a different version?)")
    return executed.execution, executed.state
