"""Transaction kinds: strict schemas, canonical signed bytes, ids (see docs/transactions.md)."""

from cybermesh.protocol.txs.audit_anchor import AuditAnchor
from cybermesh.protocol.txs.entity import Entity, EntityKind
from cybermesh.protocol.txs.envelope import (
    MAX_TX_BYTES,
    Payload,
    Transaction,
    decode_transaction,
    sign_transaction,
    tx_domain,
)
from cybermesh.protocol.txs.errors import TxRejected, TxRejectReason
from cybermesh.protocol.txs.evidence import (
    Artifact,
    CustodyAction,
    CustodyEntry,
    Equivocation,
    EquivocationType,
    Evidence,
    EvidenceKind,
    SignedStatement,
)
from cybermesh.protocol.txs.governance import (
    Approval,
    GovernanceChange,
    GovernanceOperation,
    ParameterName,
    approval_domain,
)
from cybermesh.protocol.txs.kinds import TX_VERSION, TxKind
from cybermesh.protocol.txs.policy import PolicyAction, PolicyChange, PolicyOperation
from cybermesh.protocol.txs.security_event import Category, SecurityEvent

__all__ = [
    "MAX_TX_BYTES",
    "TX_VERSION",
    "Approval",
    "Artifact",
    "AuditAnchor",
    "Category",
    "CustodyAction",
    "CustodyEntry",
    "Entity",
    "EntityKind",
    "Equivocation",
    "EquivocationType",
    "Evidence",
    "EvidenceKind",
    "GovernanceChange",
    "GovernanceOperation",
    "ParameterName",
    "Payload",
    "PolicyAction",
    "PolicyChange",
    "PolicyOperation",
    "SecurityEvent",
    "SignedStatement",
    "Transaction",
    "TxKind",
    "TxRejectReason",
    "TxRejected",
    "approval_domain",
    "decode_transaction",
    "sign_transaction",
    "tx_domain",
]
