"""Governance: approved changes wait for the next epoch; the epoch boundary applies them.

A governance transaction takes effect only if, in the block that carries it:

* it names the current epoch (approvals cannot be replayed later);
* every approver is an active validator and its signature over the change verifies (libsodium,
  in the ``governance/approval`` domain of this chain), and the approvers hold a quorum of the
  active voting power (``quorum_math``: n - floor((n - 1) / 3));
* it is not already pending, fewer than :data:`MAX_PENDING` changes are pending, and the change
  is still valid after every change pending before it (no duplicate id or key, no unknown
  validator, the registry never shrinks below ``min_validators``, parameters stay in range).

It is then *pending*. The block that completes an epoch (``epoch_length_blocks`` blocks) applies
every pending change in (height, index) order, and computes the next epoch's active set: the
registered validators minus those quarantined at that moment, unless that would leave fewer
than ``min_validators``, in which case nobody is excluded. The new set and parameters take
effect from the next height (``ValidatorSetChanged``/``ParametersChanged`` events).
"""

from __future__ import annotations

from cybermesh.protocol.crypto.signing import PublicKey, verify_batch
from cybermesh.protocol.executor.context import Execution
from cybermesh.protocol.executor.events import (
    IgnoreReason,
    ParametersChanged,
    ValidatorSetChanged,
)
from cybermesh.protocol.executor.keys import (
    PARAMETERS_KEY,
    PENDING_KEY,
    VALIDATORS_KEY,
    Subject,
    quarantine_key,
)
from cybermesh.protocol.executor.params import ExecutorParameters
from cybermesh.protocol.executor.quarantine import is_quarantined
from cybermesh.protocol.executor.records import (
    ChainRecord,
    ParametersRecord,
    PendingChange,
    PendingRecord,
    QuarantineRecord,
    ValidatorEntry,
    ValidatorsRecord,
)
from cybermesh.protocol.txs.governance import (
    MAX_APPROVALS,
    GovernanceChange,
    GovernanceOperation,
    approval_domain,
)
from cybermesh.protocol.validator_set import quorum_math

__all__ = ["MAX_PENDING", "apply_governance", "close_epoch", "project"]

MAX_PENDING = 64
_Op = GovernanceOperation


class InvalidChange(ValueError):
    """A governance change that cannot apply on top of the registry and earlier changes."""


def _apply_one(registered: dict[str, ValidatorEntry], parameters: ExecutorParameters,
               change: PendingChange) -> ExecutorParameters:
    operation = change.operation
    if operation is _Op.CHANGE_PARAMETER:
        assert change.parameter is not None and change.value is not None  # noqa: S101
        try:
            return parameters.with_value(change.parameter, change.value)
        except ValueError as error:
            raise InvalidChange(str(error)) from None
    validator_id = change.validator_id
    assert validator_id is not None  # noqa: S101 -- every other operation names one
    current = registered.get(validator_id)
    if (current is None) != (operation is _Op.ADD_VALIDATOR):
        raise InvalidChange(f"validator {validator_id!r} is "
                            f"{'already' if current else 'not'} registered")
    if change.public_key is not None and any(
            entry.public_key == change.public_key for entry in registered.values()):
        raise InvalidChange("that public key is already registered")
    if operation is _Op.ADD_VALIDATOR:
        if len(registered) >= MAX_APPROVALS:
            raise InvalidChange(f"at most {MAX_APPROVALS} validators")
        assert change.public_key is not None and change.power is not None  # noqa: S101
        registered[validator_id] = ValidatorEntry(validator_id, change.public_key,
                                                  change.power, change.address or "")
        return parameters
    assert current is not None  # noqa: S101 -- checked above
    if operation is _Op.REMOVE_VALIDATOR:
        if len(registered) <= parameters.min_validators:
            raise InvalidChange(f"the registry cannot shrink below {parameters.min_validators}")
        del registered[validator_id]
    elif operation is _Op.CHANGE_POWER:
        assert change.power is not None  # noqa: S101
        registered[validator_id] = ValidatorEntry(validator_id, current.public_key,
                                                  change.power, current.address)
    else:
        assert change.public_key is not None  # noqa: S101
        registered[validator_id] = ValidatorEntry(validator_id, change.public_key,
                                                  current.power, current.address)
    return parameters


def project(
    registered: tuple[ValidatorEntry, ...],
    parameters: ExecutorParameters,
    changes: tuple[PendingChange, ...],
) -> tuple[tuple[ValidatorEntry, ...], ExecutorParameters]:
    """The registry and parameters after ``changes`` in order; raise :class:`InvalidChange`."""
    by_id = {entry.validator_id: entry for entry in registered}
    for change in changes:
        parameters = _apply_one(by_id, parameters, change)
    return tuple(by_id[validator_id] for validator_id in sorted(by_id)), parameters


def _approved(run: Execution, change: GovernanceChange) -> IgnoreReason | None:
    validators = run.writer.base.validators
    active = {entry.validator_id: entry for entry in validators.active_entries()}
    domain = approval_domain(run.chain.chain_id)
    message = change.approval_message()
    items = []
    for approval in change.approvals:
        entry = active.get(approval.validator_id)
        if entry is None:
            return IgnoreReason.BAD_APPROVAL
        items.append((PublicKey.from_bytes(entry.public_key), domain, message,
                      approval.signature))
    if verify_batch(items):
        return IgnoreReason.BAD_APPROVAL
    power = sum(active[approval.validator_id].power for approval in change.approvals)
    if power < quorum_math(sum(entry.power for entry in active.values())).quorum_power:
        return IgnoreReason.NO_QUORUM
    return None


def apply_governance(run: Execution, tx_id: bytes, index: int,
                     change: GovernanceChange) -> None:
    if change.epoch != run.chain.epoch:
        run.ignore(tx_id, index, IgnoreReason.WRONG_EPOCH)
        return
    refused = _approved(run, change)
    if refused is not None:
        run.ignore(tx_id, index, refused)
        return
    pending = run.writer.get_typed(PENDING_KEY, PendingRecord)
    assert pending is not None  # noqa: S101 -- a state always has one
    new = PendingChange(run.height, index, change.operation, change.validator_id,
                        change.public_key, change.power, change.address, change.parameter,
                        change.value)
    content = new.to_cbor()[2:]  # type: ignore[index]
    if any(old.to_cbor()[2:] == content for old in pending.changes):  # type: ignore[index]
        run.ignore(tx_id, index, IgnoreReason.DUPLICATE_CHANGE)
        return
    if len(pending.changes) >= MAX_PENDING:
        run.ignore(tx_id, index, IgnoreReason.TOO_MANY_PENDING)
        return
    changes = (*pending.changes, new)
    try:
        project(run.writer.base.validators.registered, run.parameters, changes)
    except InvalidChange:
        run.ignore(tx_id, index, IgnoreReason.INVALID_CHANGE)
        return
    run.writer.put(PENDING_KEY, PendingRecord(changes))


def close_epoch(run: Execution) -> ChainRecord:
    """At the end of a block: if it completes the epoch, apply pending changes and compute
    the next active set. Returns the chain record to store for this block."""
    chain = run.chain
    if run.height - chain.epoch_start_height + 1 < run.parameters.epoch_length_blocks:
        return ChainRecord(chain.chain_id, run.height, run.now_ms, chain.epoch,
                           chain.epoch_start_height)
    old = run.writer.base.validators
    pending = run.writer.get_typed(PENDING_KEY, PendingRecord)
    assert pending is not None  # noqa: S101 -- a state always has one
    # Every pending change was checked against those before it when it was accepted.
    registered, parameters = project(old.registered, run.parameters, pending.changes)
    next_epoch = chain.epoch + 1
    active = tuple(entry.validator_id for entry in registered
                   if not is_quarantined(run.writer.get_typed(
                       quarantine_key(Subject.validator(entry.validator_id)), QuarantineRecord),
                       run.now_ms))
    if len(active) < parameters.min_validators:
        active = tuple(entry.validator_id for entry in registered)
    new = ValidatorsRecord(next_epoch, registered, active)
    run.writer.put(VALIDATORS_KEY, new)
    if pending.changes:
        run.writer.put(PENDING_KEY, PendingRecord(()))
    if parameters != run.parameters:
        run.writer.put(PARAMETERS_KEY, ParametersRecord(parameters))
        run.emit(ParametersChanged(next_epoch, tuple(
            (change.parameter.value, change.value) for change in pending.changes
            if change.parameter is not None and change.value is not None)))
    if new.active_entries() != old.active_entries():
        run.emit(ValidatorSetChanged(next_epoch, run.height + 1, tuple(
            (entry.validator_id, entry.public_key, entry.power)
            for entry in new.active_entries())))
    return ChainRecord(chain.chain_id, run.height, run.now_ms, next_epoch, run.height + 1)
