"""Reads for governance: the chain's registry, parameters and pending changes at a version, and
where a submitted transaction is (mempool, ledger)."""

from __future__ import annotations

from dataclasses import dataclass

from apps.governance.errors import GovernanceError, GovernanceProblem
from apps.ledger.models import Transaction as LedgerTransaction
from apps.mempool.models import MempoolTransaction
from apps.state.queries import read_value
from apps.state.services import StateError, latest_version
from cybermesh.protocol.executor.keys import (
    CHAIN_KEY,
    PARAMETERS_KEY,
    PENDING_KEY,
    VALIDATORS_KEY,
)
from cybermesh.protocol.executor.params import ExecutorParameters
from cybermesh.protocol.executor.records import (
    ChainRecord,
    ParametersRecord,
    PendingRecord,
    Record,
    StateCorrupt,
    ValidatorsRecord,
    decode_record,
)

__all__ = ["CommittedTx", "GovernanceView", "committed_transaction", "governance_view",
           "in_mempool"]


@dataclass(frozen=True, slots=True)
class GovernanceView:
    """What a governance change is checked against: the state after block ``height``."""

    version: int
    chain: ChainRecord
    parameters: ExecutorParameters
    validators: ValidatorsRecord
    pending: PendingRecord

    @property
    def epoch_end_height(self) -> int:
        """The last block of the current epoch: its commit applies the pending changes."""
        return self.chain.epoch_start_height + self.parameters.epoch_length_blocks - 1


def _record(key: bytes, version: int, record_type: type[Record], using: str) -> Record:
    value = read_value(key, version, using=using)
    if value is None:
        raise GovernanceError(GovernanceProblem.NO_STATE,
                              f"state version {version} has no {record_type.__name__}")
    try:
        record = decode_record(value)
    except StateCorrupt as error:
        raise GovernanceError(GovernanceProblem.NO_STATE,
                              f"state version {version} is unreadable: {error}") from None
    if not isinstance(record, record_type):
        raise GovernanceError(GovernanceProblem.NO_STATE,
                              f"state version {version} holds no {record_type.__name__}")
    return record


def governance_view(version: int | None = None, *, using: str = "default") -> GovernanceView:
    """The governance records at ``version`` (default: the latest committed state)."""
    if version is None:
        version = latest_version(using=using)
        if version is None:
            raise GovernanceError(GovernanceProblem.NO_STATE, "this node has no committed "
                                  "state yet (has it committed the genesis block?)")
    try:
        chain = _record(CHAIN_KEY, version, ChainRecord, using)
        parameters = _record(PARAMETERS_KEY, version, ParametersRecord, using)
        validators = _record(VALIDATORS_KEY, version, ValidatorsRecord, using)
        pending = _record(PENDING_KEY, version, PendingRecord, using)
    except StateError as error:
        raise GovernanceError(GovernanceProblem.NO_STATE, str(error)) from None
    assert isinstance(chain, ChainRecord) and isinstance(parameters, ParametersRecord)  # noqa: S101
    assert isinstance(validators, ValidatorsRecord)  # noqa: S101
    assert isinstance(pending, PendingRecord)  # noqa: S101
    return GovernanceView(version=version, chain=chain, parameters=parameters.parameters,
                          validators=validators, pending=pending)


@dataclass(frozen=True, slots=True)
class CommittedTx:
    height: int
    index: int
    wire: bytes


def committed_transaction(tx_id: bytes, *, using: str = "default") -> CommittedTx | None:
    """Where a block committed ``tx_id`` first (replays are not its commit), or None."""
    row = (LedgerTransaction.objects.using(using).filter(tx_id=tx_id, is_replay=False)
           .order_by().values_list("block_height", "idx", "payload").first())
    if row is None:
        return None
    return CommittedTx(height=int(row[0]), index=int(row[1]), wire=bytes(row[2]))


def in_mempool(tx_id: bytes, *, using: str = "default") -> bool:
    return MempoolTransaction.objects.using(using).filter(tx_id=tx_id).exists()
