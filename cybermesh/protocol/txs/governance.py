"""Governance: validator-set changes and parameter changes, approved by validators.

Wire form (canonical CBOR map; keys depend on ``op``)::

    add_validator:    {"op", "epoch", "validator_id", "public_key", "power", "address", "approvals"}
    remove_validator: {"op", "epoch", "validator_id", "approvals"}
    change_power:     {"op", "epoch", "validator_id", "power", "approvals"}
    rotate_key:       {"op", "epoch", "validator_id", "public_key", "approvals"}
    change_parameter: {"op", "epoch", "parameter", "value", "approvals"}

    approvals = [[validator_id, signature], ...]   (ascending validator id, no repeats)

Each approval is an Ed25519 signature by a current validator over :meth:`approval_message`
(the change without its approvals) in the domain ``("governance/approval", chain_id, 1)``. The
change names the epoch it was approved in, so approvals cannot be replayed in a later epoch; the
executor checks signatures and quorum power against the validator set in state and schedules
the change for the next epoch.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from cybermesh.protocol.codec import CborValue, encode
from cybermesh.protocol.crypto.errors import CryptoError
from cybermesh.protocol.crypto.signing import Domain, PublicKey
from cybermesh.protocol.genesis import parse_address
from cybermesh.protocol.txs.errors import TxRejected, TxRejectReason
from cybermesh.protocol.txs.kinds import TX_VERSION, TxKind
from cybermesh.protocol.txs.schema import (
    MAX_NONCE,
    TOKEN_PATTERN,
    expect_bytes,
    expect_enum,
    expect_int,
    expect_list,
    expect_map,
    expect_sorted_unique,
    expect_text,
)

__all__ = [
    "APPROVAL_DOMAIN_KIND",
    "MAX_APPROVALS",
    "MAX_POWER",
    "Approval",
    "GovernanceChange",
    "GovernanceOperation",
    "ParameterName",
    "approval_domain",
]

_R = TxRejectReason
APPROVAL_DOMAIN_KIND = "governance/approval"
MAX_APPROVALS = 256
MAX_POWER = (1 << 32) - 1
MAX_VALIDATOR_ID_BYTES = 64
MAX_ADDRESS_BYTES = 255
MAX_PARAMETER_VALUE = (1 << 63) - 1


class GovernanceOperation(enum.StrEnum):
    ADD_VALIDATOR = "add_validator"
    REMOVE_VALIDATOR = "remove_validator"
    CHANGE_POWER = "change_power"
    ROTATE_KEY = "rotate_key"
    CHANGE_PARAMETER = "change_parameter"


class ParameterName(enum.StrEnum):
    """Executor parameters a governance change may set (the fields of
    ``executor.params.ExecutorParameters``; a test keeps the two lists equal)."""

    EVENT_IMPACT_PPM_PER_SEVERITY = "event_impact_ppm_per_severity"
    EVIDENCE_IMPACT_PPM = "evidence_impact_ppm"
    EQUIVOCATION_IMPACT_PPM = "equivocation_impact_ppm"
    REPUTATION_HALF_LIFE_MS = "reputation_half_life_ms"
    QUARANTINE_THRESHOLD_PPM = "quarantine_threshold_ppm"
    QUARANTINE_DURATION_MS = "quarantine_duration_ms"
    VALIDATOR_QUARANTINE_THRESHOLD_PPM = "validator_quarantine_threshold_ppm"
    VALIDATOR_QUARANTINE_DURATION_MS = "validator_quarantine_duration_ms"
    TX_MAX_AGE_MS = "tx_max_age_ms"
    TX_MAX_FUTURE_MS = "tx_max_future_ms"
    EVENT_RETENTION_MS = "event_retention_ms"
    EVIDENCE_RETENTION_MS = "evidence_retention_ms"
    EPOCH_LENGTH_BLOCKS = "epoch_length_blocks"
    MIN_VALIDATORS = "min_validators"


_KEYS: dict[GovernanceOperation, tuple[str, ...]] = {
    GovernanceOperation.ADD_VALIDATOR: ("op", "epoch", "validator_id", "public_key", "power",
                                        "address", "approvals"),
    GovernanceOperation.REMOVE_VALIDATOR: ("op", "epoch", "validator_id", "approvals"),
    GovernanceOperation.CHANGE_POWER: ("op", "epoch", "validator_id", "power", "approvals"),
    GovernanceOperation.ROTATE_KEY: ("op", "epoch", "validator_id", "public_key",
                                     "approvals"),
    GovernanceOperation.CHANGE_PARAMETER: ("op", "epoch", "parameter", "value", "approvals"),
}
_OPTIONAL = ("validator_id", "public_key", "power", "address", "parameter", "value")


def approval_domain(chain_id: str) -> Domain:
    """The signature domain of governance approvals on ``chain_id``."""
    return Domain(APPROVAL_DOMAIN_KIND, chain_id, TX_VERSION)


@dataclass(frozen=True, slots=True)
class Approval:
    """One validator's signature over a change's :meth:`~GovernanceChange.approval_message`."""

    validator_id: str
    signature: bytes

    def __post_init__(self) -> None:
        expect_text(self.validator_id, "approvals.validator_id", MAX_VALIDATOR_ID_BYTES,
                    _R.BAD_APPROVALS, TOKEN_PATTERN)
        expect_bytes(self.signature, "approvals.signature", 64, _R.BAD_APPROVALS)

    def to_cbor(self) -> CborValue:
        return [self.validator_id, self.signature]


def _check_public_key(value: object) -> None:
    expect_bytes(value, "public_key", 32, _R.BAD_PUBLIC_KEY)
    try:
        PublicKey.from_bytes(value)  # type: ignore[arg-type]  # checked above
    except CryptoError as error:
        raise TxRejected(_R.BAD_PUBLIC_KEY, error.reason.value, "public_key") from None


@dataclass(frozen=True, slots=True)
class GovernanceChange:
    """One governance operation with the approvals that authorise it."""

    KIND: ClassVar[TxKind] = TxKind.GOVERNANCE

    operation: GovernanceOperation
    epoch: int
    approvals: tuple[Approval, ...]
    validator_id: str | None = None
    public_key: bytes | None = None
    power: int | None = None
    address: str | None = None
    parameter: ParameterName | None = None
    value: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.operation, GovernanceOperation):
            object.__setattr__(self, "operation", expect_enum(
                self.operation, GovernanceOperation, "op", _R.BAD_OPERATION))
        expect_int(self.epoch, "epoch", 0, MAX_NONCE, _R.BAD_EPOCH)
        keys = _KEYS[self.operation]
        for name in _OPTIONAL:
            if (getattr(self, name) is not None) != (name in keys):
                state = "missing" if name in keys else "not allowed"
                raise TxRejected(_R.BAD_STRUCTURE, f"{name} is {state} for "
                                 f"{self.operation.value}", "payload")
        if self.validator_id is not None:
            expect_text(self.validator_id, "validator_id", MAX_VALIDATOR_ID_BYTES,
                        _R.BAD_VALIDATOR_ID, TOKEN_PATTERN)
        if self.public_key is not None:
            _check_public_key(self.public_key)
        if self.power is not None:
            expect_int(self.power, "power", 1, MAX_POWER, _R.BAD_POWER)
        if self.address is not None:
            expect_text(self.address, "address", MAX_ADDRESS_BYTES, _R.BAD_ADDRESS)
            try:
                parse_address(self.address)
            except ValueError as error:
                raise TxRejected(_R.BAD_ADDRESS, str(error), "address") from None
        if self.parameter is not None and not isinstance(self.parameter, ParameterName):
            object.__setattr__(self, "parameter", expect_enum(
                self.parameter, ParameterName, "parameter", _R.BAD_PARAMETER))
        if self.value is not None:
            expect_int(self.value, "value", 0, MAX_PARAMETER_VALUE, _R.BAD_PARAMETER)
        if type(self.approvals) is not tuple:
            raise TxRejected(_R.WRONG_TYPE, "approvals must be a tuple", "approvals")
        expect_list(list(self.approvals), "approvals", MAX_APPROVALS, 1)
        if any(type(approval) is not Approval for approval in self.approvals):
            raise TxRejected(_R.WRONG_TYPE, "approvals must be Approval items", "approvals")
        expect_sorted_unique([approval.validator_id for approval in self.approvals],
                             "approvals")

    def check_envelope(self, producer_id: str, created_at_ms: int) -> None:
        """Nothing to cross-check: authority comes from the approvals, not the producer."""

    def _body(self) -> dict[CborValue, CborValue]:
        body: dict[CborValue, CborValue] = {"op": self.operation.value, "epoch": self.epoch}
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is not None:
                body[name] = value.value if name == "parameter" else value
        return body

    def approval_message(self) -> bytes:
        """The bytes each approver signs (in :func:`approval_domain`): the change itself."""
        return encode(self._body())

    def to_cbor(self) -> CborValue:
        body = self._body()
        body["approvals"] = [approval.to_cbor() for approval in self.approvals]
        return body

    @classmethod
    def from_cbor(cls, value: object) -> GovernanceChange:
        if type(value) is not dict or "op" not in value:
            raise TxRejected(_R.BAD_STRUCTURE, "expected a map with an op", "payload")
        operation = expect_enum(value["op"], GovernanceOperation, "op", _R.BAD_OPERATION)
        fields = expect_map(value, "payload", _KEYS[operation])
        approvals = []
        for item in expect_list(fields["approvals"], "approvals", MAX_APPROVALS, 1):
            pair = expect_list(item, "approvals", 2, 2)
            approvals.append(Approval(pair[0], pair[1]))  # type: ignore[arg-type]
        parameter = fields.get("parameter")
        return cls(
            operation=operation,
            epoch=fields["epoch"],  # type: ignore[arg-type]  # checked in __post_init__
            approvals=tuple(approvals),
            validator_id=fields.get("validator_id"),  # type: ignore[arg-type]
            public_key=fields.get("public_key"),  # type: ignore[arg-type]
            power=fields.get("power"),  # type: ignore[arg-type]
            address=fields.get("address"),  # type: ignore[arg-type]
            parameter=None if parameter is None else expect_enum(
                parameter, ParameterName, "parameter", _R.BAD_PARAMETER),
            value=fields.get("value"),  # type: ignore[arg-type]
        )
