"""``manage.py ledger verify|export|import`` on PostgreSQL, including every way it must fail."""

from __future__ import annotations

import dataclasses
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.evidence.models import Evidence
from apps.ledger.archive import ArchiveError, export_archive, import_archive
from apps.ledger.models import Block as BlockRow
from apps.ledger.models import OutboxMessage
from apps.ledger.models import Transaction as TransactionRow
from apps.ledger.payload import compute_tx_root, decode_payload
from apps.ledger.records import BlockExecution
from apps.ledger.services import commit_block
from apps.ledger.verification import VerifyReason, verify_ledger
from apps.state.models import (
    PruneMark,
    StaleNode,
    StateNode,
    StateSnapshot,
    StateValue,
    StateVersion,
)
from apps.state.services import prune_state
from apps.validators.models import Validator
from cybermesh.protocol.consensus.messages import Block, genesis_qc
from cybermesh.protocol.genesis import genesis_document
from cybermesh.protocol.validator_set import ValidatorSet
from tests.ledger.chain import CHAIN_ID, ChainBuilder, executed_chain, replay_into_database

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SEED = 4242
BLOCKS = 16


@pytest.fixture
def genesis_path(tmp_path: Path, settings) -> Path:  # type: ignore[no-untyped-def]
    builder = ChainBuilder()
    document = genesis_document(
        chain_id=CHAIN_ID, genesis_time_ms=1_700_000_000_000,
        validators=[(v.validator_id, v.public_key, v.power, v.address)
                    for v in builder.validator_set.validators])
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(document))
    settings.CLUSTER_TOPOLOGY = str(path)
    return path


@pytest.fixture
def chain(genesis_path: Path) -> dict[int, bytes]:
    return replay_into_database(SEED, BLOCKS, snapshot_interval=5)


def verify(*args: str) -> dict[str, object]:
    out = StringIO()
    call_command("ledger", "verify", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def failing_verify(*args: str) -> tuple[str, dict[str, object]]:
    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("ledger", "verify", "--json", *args, stdout=out)
    return str(raised.value), json.loads(out.getvalue())


def reasons_at(report: dict[str, object], height: int) -> set[str]:
    return {p["reason"] for p in report["problems"] if p["height"] == height}  # type: ignore


def test_verify_accepts_the_committed_chain(chain: dict[int, bytes]) -> None:
    report = verify()
    assert report["ok"] is True and report["checked"] == BLOCKS
    assert report["state_checked"] == BLOCKS and report["first_bad_height"] is None
    assert verify("--from", "4", "--to", "9")["checked"] == 6


def test_verify_names_a_block_whose_header_was_changed(chain: dict[int, bytes]) -> None:
    BlockRow.objects.filter(height=5).update(timestamp_ms=1)
    message, report = failing_verify()
    assert "first bad height 5" in message
    assert VerifyReason.BLOCK_HASH.value in reasons_at(report, 5)


def test_verify_names_a_block_whose_transaction_was_changed(chain: dict[int, bytes]) -> None:
    row = TransactionRow.objects.filter(block_height__gte=3).order_by("block_height", "idx")[0]
    TransactionRow.objects.filter(block_height=row.block_height, idx=row.idx).update(
        payload=bytes(row.payload)[:-1] + b"\x00")
    message, report = failing_verify()
    assert f"first bad height {row.block_height}" in message
    assert VerifyReason.BLOCK_HASH.value in reasons_at(report, row.block_height)


def test_verify_names_a_forged_commit_certificate(chain: dict[int, bytes]) -> None:
    from apps.ledger.rows import decode_qc, encode_qc
    qc = decode_qc(BlockRow.objects.get(height=4).qc)
    signer, signature = qc.signatures[0]
    forged = dataclasses.replace(qc, signatures=(
        (signer, bytes([signature[0] ^ 1]) + signature[1:]), *qc.signatures[1:]))
    BlockRow.objects.filter(height=4).update(qc=encode_qc(forged))
    message, report = failing_verify()
    assert "first bad height 4" in message
    assert reasons_at(report, 4) == {VerifyReason.COMMIT_QC.value}


def test_verify_names_a_changed_state_value(chain: dict[int, bytes]) -> None:
    row = StateValue.objects.filter(version=9, value__isnull=False).first()
    assert row is not None
    StateValue.objects.filter(key_hash=row.key_hash, version=9).update(value=b"forged")
    message, report = failing_verify()
    assert "first bad height 9" in message
    assert VerifyReason.STATE_ROOT.value in reasons_at(report, 9)


def test_verify_names_a_changed_result_root(chain: dict[int, bytes]) -> None:
    BlockRow.objects.filter(height=3).update(result_state_root=b"\x07" * 32)
    _, report = failing_verify()
    assert report["first_bad_height"] == 3
    assert VerifyReason.STATE_ROOT.value in reasons_at(report, 3)
    assert VerifyReason.STATE_LINK.value in reasons_at(report, 4)


def test_verify_refuses_a_certificate_without_a_quorum(genesis_path: Path) -> None:
    builder = ChainBuilder()
    items = builder.build(3)
    for item in items[:2]:
        commit_block(block=item.block, qc=item.qc, execution=item.execution)
    weak = builder.sign_qc(items[2].block, signers=[0, 1])  # 2 of 4: below 2f+1 = 3
    commit_block(block=items[2].block, qc=weak, execution=items[2].execution)
    report = verify_ledger(chain_id=CHAIN_ID, genesis_set=builder.validator_set)
    assert report.first_bad_height == 2
    assert [p.reason for p in report.problems] == [VerifyReason.COMMIT_QC]
    assert "power" in report.problems[0].detail


def test_verify_still_passes_after_pruning_and_skips_pruned_state(
        chain: dict[int, bytes]) -> None:
    prune_state(horizon=11)  # snapped to the snapshot at 10
    report = verify()
    assert report["ok"] is True
    assert report["state_skipped"] == 10 and report["state_checked"] == BLOCKS - 10


def test_verify_without_a_genesis_exits_with_one_clear_line(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CLUSTER_TOPOLOGY = ""
    with pytest.raises(CommandError, match="CLUSTER_TOPOLOGY"):
        call_command("ledger", "verify")


def _wipe_ledger() -> None:
    for model in (TransactionRow, BlockRow, OutboxMessage, StateValue, StateNode, StaleNode,
                  StateVersion, StateSnapshot, PruneMark, Evidence, Validator):
        model.objects.all().delete()


def test_export_then_import_into_an_empty_ledger_restores_it(
        chain: dict[int, bytes], tmp_path: Path) -> None:
    archive = tmp_path / "ledger.cbor"
    call_command("ledger", "export", "--out", str(archive), stdout=StringIO())
    _wipe_ledger()

    out = StringIO()
    call_command("ledger", "import", str(archive), stdout=out)

    assert f"{BLOCKS} committed" in out.getvalue()
    assert {v: bytes(r) for v, r in StateVersion.objects.values_list("version", "root_hash")
            } == chain
    assert verify()["ok"] is True
    assert not OutboxMessage.objects.filter(sent_at__isnull=True).exists()
    # Importing again is a no-op.
    again = StringIO()
    call_command("ledger", "import", str(archive), stdout=again)
    assert f"0 committed, {BLOCKS} already present" in again.getvalue()


def test_an_archive_from_a_later_height_carries_its_base_state(
        chain: dict[int, bytes], tmp_path: Path, genesis_path: Path) -> None:
    archive = tmp_path / "tail.cbor"
    builder = ChainBuilder()
    export_archive(path=archive, chain_id=CHAIN_ID, from_height=8)
    _wipe_ledger()
    result = import_archive(path=archive, chain_id=CHAIN_ID, genesis_set=builder.validator_set)
    assert (result.from_height, result.committed) == (8, BLOCKS - 8)
    assert bytes(StateVersion.objects.get(version=BLOCKS - 1).root_hash) == chain[BLOCKS - 1]
    assert verify("--from", "8")["ok"] is True


@pytest.mark.parametrize("damage", ["flip_a_byte", "truncate", "append"])
def test_a_damaged_archive_is_refused_and_nothing_is_written(
        chain: dict[int, bytes], tmp_path: Path, damage: str) -> None:
    archive = tmp_path / "ledger.cbor"
    export_archive(path=archive, chain_id=CHAIN_ID)
    data = bytearray(archive.read_bytes())
    if damage == "flip_a_byte":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        data = data[:-40]
    else:
        data += b"\x00\x00\x00\x01\x80"
    archive.write_bytes(bytes(data))
    _wipe_ledger()
    with pytest.raises(CommandError, match="nothing written"):
        call_command("ledger", "import", str(archive), stdout=StringIO())
    assert not BlockRow.objects.exists() and not StateVersion.objects.exists()


def test_an_archive_of_forged_blocks_with_a_valid_digest_is_refused(
        genesis_path: Path, tmp_path: Path) -> None:
    builder = ChainBuilder()
    items = executed_chain(builder, 4, seed=1)
    for item in items[:3]:
        commit_block(block=item.block, qc=item.qc, execution=item.execution)
    weak = builder.sign_qc(items[3].block, signers=[0])
    commit_block(block=items[3].block, qc=weak, execution=items[3].execution)
    archive = tmp_path / "forged.cbor"
    export_archive(path=archive, chain_id=CHAIN_ID)  # the digest is honest, the QC is not
    _wipe_ledger()
    with pytest.raises(ArchiveError, match="block 3: commit_qc"):
        import_archive(path=archive, chain_id=CHAIN_ID, genesis_set=builder.validator_set)
    assert not BlockRow.objects.exists()


def test_export_refuses_a_range_whose_state_is_pruned(
        chain: dict[int, bytes], tmp_path: Path) -> None:
    prune_state(horizon=10)
    with pytest.raises(ArchiveError, match="pruned"):
        export_archive(path=tmp_path / "x.cbor", chain_id=CHAIN_ID, from_height=5)
    export_archive(path=tmp_path / "y.cbor", chain_id=CHAIN_ID, from_height=11)


def _reconfiguring_chain(builder: ChainBuilder, *, rogue_signers: bool = False) -> list:  # type: ignore[type-arg]
    """Blocks 0..5: block 2 installs epoch 1 = {v0, v1, v2}; blocks 3..5 are epoch 1's."""
    base = builder.build(3)
    reconfig = Block(**{f.name: getattr(base[2].block, f.name) for f in dataclasses.fields(Block)
                        if f.init and f.name != "next_validators"},
                     next_validators=builder.validator_set.validators[:3])
    items = [(base[0].block, base[0].qc, base[0].execution),
             (base[1].block, base[1].qc, base[1].execution),
             (reconfig, builder.sign_qc(reconfig), base[2].execution)]
    new_set = ValidatorSet(1, builder.validator_set.validators[:3])
    parent, justify = reconfig, genesis_qc(1, reconfig.block_id, reconfig.height)
    for height in range(3, 6):
        payload = builder.payload(height, 2)
        block = Block(epoch=1, view=height - 2, height=height, parent_id=parent.block_id,
                      proposer="v0", timestamp_ms=parent.timestamp_ms + 1000, payload=payload,
                      tx_root=compute_tx_root(decode_payload(payload) or ()),
                      state_root=base[2].state_root, validator_set_hash=new_set.digest(),
                      qc=justify)
        signers = [1, 2, 3] if rogue_signers and height == 4 else [0, 1, 2]
        qc = builder.sign_qc(block, signers=signers)
        items.append((block, qc, BlockExecution()))
        parent, justify = block, qc
    return items


@pytest.mark.parametrize("rogue", [False, True])
def test_verify_follows_a_reconfiguration_into_the_next_epoch(rogue: bool) -> None:
    builder = ChainBuilder()
    for block, qc, execution in _reconfiguring_chain(builder, rogue_signers=rogue):
        commit_block(block=block, qc=qc, execution=execution, snapshot_interval=0)
    report = verify_ledger(chain_id=CHAIN_ID, genesis_set=builder.validator_set)
    if not rogue:
        assert report.ok, report.problems
        assert report.checked == 6
    else:  # v3 left the set at block 2: its signature does not count in epoch 1
        assert report.first_bad_height == 4
        assert {p.reason for p in report.problems if p.height == 4} == {
            VerifyReason.COMMIT_QC}
