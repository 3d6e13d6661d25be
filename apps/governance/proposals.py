"""Governance proposals: a change, and the validator approvals collected for it, as a file.

A governance transaction is authorised by the *validators*, not by whoever submits it: each
approver signs the change (``GovernanceChange.approval_message()``, in the
``governance/approval`` domain of the chain), and the transaction carries the signatures of
validators holding a quorum of the active power. Validators sit on different machines with
their own databases, so the change travels between their operators as a *proposal file*::

    {"format": "cybermesh-governance-proposal/v1",
     "proposal_id": "<64 hex: SHA-256(approval domain tag || change)>",
     "chain_id": "...",
     "change": "<hex: the canonical CBOR every approver signs>",
     "summary": {"op": ..., "epoch": ..., ...},      # the change, readable; checked on load
     "tls_certificate": "<PEM>" | null,              # add_validator: the new node's certificate
     "approvals": [{"validator_id": ..., "signature": "<128 hex>"}, ...],
     "submitted": ["<tx id hex>", ...]}               # transactions built from it so far

The file holds no secret. Loading is strict: the change must decode to exactly a governance
change in canonical form, the proposal id and the summary must match it (an edited summary
cannot show an approver something other than what they sign), approvals are ascending by
validator id. Whether an approval's signature verifies, and whose key it must be, is checked
against the chain's state by :mod:`apps.governance.validation`.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from apps.governance.errors import GovernanceError, GovernanceProblem
from cybermesh.protocol.codec import CodecError, DecodeLimits, decode
from cybermesh.protocol.crypto.errors import CryptoError
from cybermesh.protocol.crypto.hashing import sha256
from cybermesh.protocol.txs.errors import TxRejected
from cybermesh.protocol.txs.governance import (
    Approval,
    GovernanceChange,
    GovernanceOperation,
    ParameterName,
    approval_domain,
)

__all__ = [
    "FORMAT",
    "MAX_PROPOSAL_BYTES",
    "Proposal",
    "change_summary",
    "load_proposal",
    "new_change",
    "save_proposal",
]

FORMAT = "cybermesh-governance-proposal/v1"
MAX_PROPOSAL_BYTES = 256 * 1024
MAX_CERTIFICATE_BYTES = 4096
MAX_SUBMISSIONS = 64
# GovernanceChange needs at least one approval to exist; the template that holds a change
# before anyone approved it carries this one, which never reaches a transaction.
_PLACEHOLDER = (Approval("placeholder", bytes(64)),)
_CHANGE_LIMITS = DecodeLimits(max_bytes=4096, max_depth=2, max_items=16)
_KEYS = {"format", "proposal_id", "chain_id", "change", "summary", "tls_certificate",
         "approvals", "submitted"}


def _bad(message: str) -> GovernanceError:
    return GovernanceError(GovernanceProblem.BAD_PROPOSAL, message)


def new_change(operation: GovernanceOperation, *, epoch: int, validator_id: str | None = None,
               public_key: bytes | None = None, power: int | None = None,
               address: str | None = None, parameter: ParameterName | None = None,
               value: int | None = None) -> GovernanceChange:
    """A change without approvals yet (schema-checked; ``GovernanceError`` when invalid)."""
    try:
        return GovernanceChange(operation=operation, epoch=epoch, approvals=_PLACEHOLDER,
                                validator_id=validator_id, public_key=public_key, power=power,
                                address=address, parameter=parameter, value=value)
    except TxRejected as error:
        raise GovernanceError(GovernanceProblem.BAD_ARGUMENT,
                              f"invalid {operation.value}: {error}") from None


def change_summary(change: GovernanceChange) -> dict[str, Any]:
    """The change as readable JSON (what an approver is asked to sign)."""
    summary: dict[str, Any] = {"op": change.operation.value, "epoch": change.epoch}
    if change.validator_id is not None:
        summary["validator_id"] = change.validator_id
    if change.public_key is not None:
        summary["public_key"] = change.public_key.hex()
    if change.power is not None:
        summary["power"] = change.power
    if change.address is not None:
        summary["address"] = change.address
    if change.parameter is not None:
        summary["parameter"] = change.parameter.value
    if change.value is not None:
        summary["value"] = change.value
    return summary


def _parse_change(message: bytes) -> GovernanceChange:
    try:
        body = decode(message, _CHANGE_LIMITS)
    except CodecError as error:
        raise _bad(f"the change is not canonical CBOR ({error})") from None
    if type(body) is not dict or "approvals" in body:
        raise _bad("the change must be a governance change without approvals")
    try:
        change = GovernanceChange.from_cbor(
            {**body, "approvals": [approval.to_cbor() for approval in _PLACEHOLDER]})
    except TxRejected as error:
        raise _bad(f"the change is not a valid governance change: {error}") from None
    if change.approval_message() != message:
        raise _bad("the change is not in canonical form")
    return change


@dataclass(frozen=True, slots=True)
class Proposal:
    """A governance change for ``chain_id`` and the approvals gathered so far."""

    chain_id: str
    message: bytes
    approvals: tuple[Approval, ...] = ()
    tls_certificate: str | None = None
    submitted: tuple[bytes, ...] = ()
    change: GovernanceChange = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            approval_domain(self.chain_id)
        except CryptoError:
            raise _bad(f"chain id {self.chain_id!r} is not usable") from None
        object.__setattr__(self, "change", _parse_change(self.message))
        ids = [approval.validator_id for approval in self.approvals]
        if ids != sorted(set(ids)):
            raise _bad("approvals must be ascending by validator id, one per validator")
        if self.tls_certificate is not None and (
                len(self.tls_certificate.encode()) > MAX_CERTIFICATE_BYTES
                or self.change.operation is not GovernanceOperation.ADD_VALIDATOR):
            raise _bad("a TLS certificate (at most 4096 bytes) belongs only to add_validator")
        if len(self.submitted) > MAX_SUBMISSIONS:
            raise _bad(f"at most {MAX_SUBMISSIONS} submissions are recorded")

    @classmethod
    def of(cls, change: GovernanceChange, *, chain_id: str,
           tls_certificate: str | None = None) -> Proposal:
        return cls(chain_id=chain_id, message=change.approval_message(),
                   tls_certificate=tls_certificate)

    @property
    def proposal_id(self) -> bytes:
        """Names the change on its chain: equal changes have equal ids."""
        return sha256(approval_domain(self.chain_id).tag() + self.message)

    def with_approval(self, approval: Approval) -> Proposal:
        """This proposal with ``approval`` added (replacing that validator's earlier one)."""
        others = [item for item in self.approvals if item.validator_id != approval.validator_id]
        return replace(self, approvals=tuple(sorted(
            [*others, approval], key=lambda item: item.validator_id)))

    def with_submission(self, tx_id: bytes) -> Proposal:
        if tx_id in self.submitted:
            return self
        return replace(self, submitted=(*self.submitted, tx_id)[-MAX_SUBMISSIONS:])

    def signed_change(self) -> GovernanceChange:
        """The change with its approvals: the payload of the governance transaction."""
        if not self.approvals:
            raise GovernanceError(GovernanceProblem.NO_QUORUM, "the proposal has no approvals")
        return replace(self.change, approvals=self.approvals)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "proposal_id": self.proposal_id.hex(), "chain_id": self.chain_id,
            "change": self.message.hex(), "summary": change_summary(self.change),
            "tls_certificate": self.tls_certificate,
            "approvals": [{"validator_id": approval.validator_id,
                           "signature": approval.signature.hex()}
                          for approval in self.approvals],
            "submitted": [tx_id.hex() for tx_id in self.submitted],
        }

    @classmethod
    def from_json(cls, document: object) -> Proposal:
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise _bad(f"not a {FORMAT} document")
        if set(document) != _KEYS:
            raise _bad("expected exactly the fields " + ", ".join(sorted(_KEYS)))
        chain_id, change, certificate = (document["chain_id"], document["change"],
                                         document["tls_certificate"])
        if not isinstance(chain_id, str) or not isinstance(change, str):
            raise _bad("chain_id and change must be text")
        if certificate is not None and not isinstance(certificate, str):
            raise _bad("tls_certificate must be text or null")
        approvals = []
        items = document["approvals"]
        if not isinstance(items, list):
            raise _bad("approvals must be a list")
        for item in items:
            if not isinstance(item, dict) or set(item) != {"validator_id", "signature"}:
                raise _bad("each approval is {validator_id, signature}")
            try:
                approvals.append(Approval(item["validator_id"], _hex(item["signature"])))
            except TxRejected as error:
                raise _bad(f"bad approval: {error}") from None
        submitted = document["submitted"]
        if not isinstance(submitted, list) or any(
                len(_hex(tx_id)) != 32 for tx_id in submitted):
            raise _bad("submitted must be a list of transaction ids")
        proposal = cls(chain_id=chain_id, message=_hex(change), approvals=tuple(approvals),
                       tls_certificate=certificate,
                       submitted=tuple(_hex(tx_id) for tx_id in submitted))
        if document["proposal_id"] != proposal.proposal_id.hex():
            raise _bad("proposal_id does not match the change")
        if document["summary"] != change_summary(proposal.change):
            raise _bad("summary does not match the change (the file was edited)")
        return proposal


def _hex(value: object) -> bytes:
    if not isinstance(value, str) or value != value.lower():
        raise _bad("expected lowercase hexadecimal text")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise _bad("expected lowercase hexadecimal text") from None


def load_proposal(path: str | os.PathLike[str]) -> Proposal:
    """Read a proposal file; ``GovernanceError(BAD_PROPOSAL)`` with one line on any problem."""
    file_path = Path(path)
    try:
        with file_path.open("rb") as handle:
            content = handle.read(MAX_PROPOSAL_BYTES + 1)
    except OSError as error:
        raise _bad(f"{file_path}: cannot be read ({error.strerror})") from None
    if len(content) > MAX_PROPOSAL_BYTES:
        raise _bad(f"{file_path}: larger than {MAX_PROPOSAL_BYTES} bytes")
    try:
        document = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _bad(f"{file_path}: not valid JSON") from None
    try:
        return Proposal.from_json(document)
    except GovernanceError as error:
        raise _bad(f"{file_path}: {error}") from None


def save_proposal(proposal: Proposal, path: str | os.PathLike[str]) -> Path:
    """Write ``proposal`` atomically (temporary file in the same directory, then rename)."""
    file_path = Path(path)
    file_path.parent.mkdir(parents=True, exist_ok=True)
    content = (json.dumps(proposal.to_json(), indent=2, sort_keys=True) + "\n").encode()
    descriptor, temporary = tempfile.mkstemp(dir=file_path.parent, prefix=".proposal-")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)  # no secret inside: other operators may read it
        os.replace(temporary, file_path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return file_path
