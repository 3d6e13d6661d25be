"""Check an API answer against a trusted validator set, trusting nothing else.

``python -m cybermesh.verify ANSWER.json GENESIS.json`` exits 0 when the answer is proven and 1
(with the reason) when it is not. This is how a dashboard or an auditor checks what a node
told it without trusting the node: the only trusted input is the genesis file (chain id and
validator set, the same file every validator loads).

What "proven" means, step by step (each step names itself when it fails):

1. **Header.** The block hash is recomputed from the header fields (SHA-256 of the canonical
   CBOR header array, exactly as consensus computes block ids); a header changed in any field
   no longer matches the QC.
2. **Validator set.** The header's epoch is the trusted set's epoch and its validator-set hash
   is the trusted set's digest.
3. **QC.** The commit certificate names this block (hash, height, epoch, view); its signers are
   distinct members holding at least the quorum power (n - f, i.e. 2f + 1 of 3f + 1 by power);
   every signature verifies (Ed25519 through libsodium, under the chain's vote domain).
4. **State** (state proofs only). The header's ``state_root`` is the state after the previous
   block, so the answer's version must be the block height minus one; the Merkle proof shows
   the value (or its absence) under that root; a subject's record key is re-derived from the
   subject, so a proof of some other key cannot be passed off as the subject's.

Accepted answers: ``GET /api/v1/state/proof/`` (a state proof), ``GET /api/v1/entities/...``
(both of its proofs), and ``GET /api/v1/blocks/<id>/`` (the block alone).

This module imports only the framework-free protocol core (no Django, no ``apps``).
Limitation: only blocks of the trusted set's epoch can be proven; a later epoch needs that
epoch's validator set, which this tool does not derive from the chain of epoch changes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cybermesh.protocol.codec import CborValue, encode
from cybermesh.protocol.consensus.messages import block_statement
from cybermesh.protocol.consensus.signatures import Domains
from cybermesh.protocol.crypto.errors import CryptoError
from cybermesh.protocol.crypto.hashing import sha256
from cybermesh.protocol.crypto.signing import PublicKey
from cybermesh.protocol.executor.keys import Subject, quarantine_key, reputation_key
from cybermesh.protocol.genesis import Genesis, GenesisError, parse_genesis
from cybermesh.protocol.merkle.sparse_proof import Proof, ProofLeaf, verify_proof
from cybermesh.protocol.txs.entity import Entity
from cybermesh.protocol.txs.errors import TxRejected

MAX_ANSWER_BYTES = 4 << 20
MAX_INT = (1 << 63) - 1
_SUBJECT_KEYS: dict[str, Callable[[Subject], bytes]] = {
    "reputation": reputation_key, "quarantine": quarantine_key}


class NotProven(Exception):
    """The answer is not proven; the message says which check failed."""


@dataclass(frozen=True, slots=True)
class Verdict:
    proven: bool
    reason: str


# --- strict field readers (the answer is hostile input) -----------------------------------

def _field(data: Any, name: str, where: str) -> Any:
    if not isinstance(data, dict) or name not in data:
        raise NotProven(f"{where}: missing field {name!r}")
    return data[name]


def _int(data: Any, name: str, where: str) -> int:
    value = _field(data, name, where)
    if type(value) is not int or not 0 <= value <= MAX_INT:
        raise NotProven(f"{where}.{name} must be a non-negative integer")
    return value


def _text(data: Any, name: str, where: str, *, max_chars: int = 300) -> str:
    value = _field(data, name, where)
    if not isinstance(value, str) or len(value) > max_chars:
        raise NotProven(f"{where}.{name} must be text of at most {max_chars} characters")
    return value


def _hex(value: Any, what: str, length: int | None = None) -> bytes:
    if not isinstance(value, str) or len(value) > 2 * MAX_ANSWER_BYTES:
        raise NotProven(f"{what} must be a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise NotProven(f"{what} is not valid hex") from None
    if length is not None and len(raw) != length:
        raise NotProven(f"{what} must be {length} bytes")
    return raw


def _hex_field(data: Any, name: str, where: str, length: int | None = None) -> bytes:
    return _hex(_field(data, name, where), f"{where}.{name}", length)


# --- the checks ---------------------------------------------------------------------------

def _next_validators(value: Any) -> CborValue:
    if value is None:
        return None
    if not isinstance(value, list):
        raise NotProven("header.next_validators must be null or a list")
    entries: list[CborValue] = []
    for index, entry in enumerate(value):
        where = f"header.next_validators[{index}]"
        entries.append([_text(entry, "validator_id", where),
                        _hex_field(entry, "public_key", where, 32),
                        _int(entry, "power", where), _text(entry, "address", where)])
    return entries


def header_block_id(header: Any) -> bytes:
    """The block id the header hashes to (consensus ``Block.header()`` order)."""
    where = "header"
    fields: list[CborValue] = [
        _int(header, "epoch", where), _int(header, "view", where),
        _int(header, "height", where), _hex_field(header, "parent_hash", where, 32),
        _text(header, "proposer", where, max_chars=64), _int(header, "timestamp_ms", where),
        _hex_field(header, "payload_hash", where, 32), _hex_field(header, "tx_root", where, 32),
        _hex_field(header, "state_root", where, 32),
        _hex_field(header, "validator_set_hash", where, 32),
        _hex_field(header, "justify_qc_digest", where, 32),
        _next_validators(_field(header, "next_validators", where)),
    ]
    return sha256(encode(fields))


def _check_signatures(signatures: Any, statement: bytes, genesis: Genesis) -> list[str]:
    """Every entry is a distinct member's valid vote signature over ``statement``."""
    validator_set = genesis.validator_set
    if not isinstance(signatures, list) or not signatures:
        raise NotProven("qc: has no signatures (an unsigned root QC proves nothing)")
    if len(signatures) > len(validator_set):
        raise NotProven("qc: more signatures than validators")
    domain = Domains.for_chain(genesis.chain_id).vote
    signers: list[str] = []
    for index, entry in enumerate(signatures):
        where = f"qc.signatures[{index}]"
        signer = _text(entry, "validator_id", where, max_chars=64)
        signature = _hex_field(entry, "signature", where, 64)
        validator = validator_set.get(signer)
        if validator is None:
            raise NotProven(f"qc: signer {signer!r} is not in the trusted validator set")
        if signer in signers:
            raise NotProven(f"qc: signer {signer!r} appears twice")
        try:
            valid = PublicKey.from_bytes(validator.public_key).verify(domain, statement,
                                                                      signature)
        except CryptoError:
            valid = False
        if not valid:
            raise NotProven(f"qc: the signature of {signer!r} does not verify")
        signers.append(signer)
    return signers


def check_certified(header: Any, claimed_hash: Any, qc: Any, genesis: Genesis) -> str:
    """Steps 1-3: the header hashes to what the QC certifies, and the QC is a valid quorum of
    the trusted set. Returns a one-line summary."""
    block_id = header_block_id(header)
    if claimed_hash is not None and _hex(claimed_hash, "block.hash", 32) != block_id:
        raise NotProven("header: the block hash does not match the header fields")
    epoch, view, height = header["epoch"], header["view"], header["height"]
    validator_set = genesis.validator_set
    if epoch != validator_set.epoch:
        raise NotProven(f"validator set: the block is in epoch {epoch}, the trusted set is "
                        f"epoch {validator_set.epoch}")
    if _hex_field(header, "validator_set_hash", "header", 32) != validator_set.digest():
        raise NotProven("validator set: the header names another validator set")
    if _hex_field(qc, "block_hash", "qc", 32) != block_id:
        raise NotProven("qc: certifies another block than this header")
    if (_int(qc, "epoch", "qc"), _int(qc, "view", "qc"), _int(qc, "height", "qc")) != (
            epoch, view, height):
        raise NotProven("qc: epoch, view or height differ from the header's")
    statement = block_statement(epoch, view, block_id, height)
    signers = _check_signatures(_field(qc, "signatures", "qc"), statement, genesis)
    quorum = validator_set.quorum
    power = validator_set.power_of(signers)
    if power < quorum.quorum_power:
        raise NotProven(f"qc: signers hold {power} of {quorum.total_power} power, below the "
                        f"quorum of {quorum.quorum_power}")
    return (f"block {height} {block_id.hex()[:16]} certified by {len(signers)} validators "
            f"({power}/{quorum.total_power} power, quorum {quorum.quorum_power})")


def _proof(data: Any) -> Proof:
    siblings = _field(data, "siblings", "proof")
    if not isinstance(siblings, list) or len(siblings) > 256:
        raise NotProven("proof.siblings must be a list of at most 256 hashes")
    leaf_data = _field(data, "leaf", "proof")
    leaf = None if leaf_data is None else ProofLeaf(
        _hex_field(leaf_data, "key", "proof.leaf", 32),
        _hex_field(leaf_data, "value_hash", "proof.leaf", 32))
    return Proof(tuple(_hex(item, "proof.siblings[]", 32) for item in siblings), leaf)


def _check_subject(answer: dict[str, Any], key: bytes) -> str:
    if "subject" not in answer:
        return ""
    kind = _text(answer["subject"], "kind", "subject", max_chars=16)
    value = _text(answer["subject"], "value", "subject")
    record_kind = _text(answer, "record_kind", "answer", max_chars=16)
    if record_kind not in _SUBJECT_KEYS:
        raise NotProven(f"answer.record_kind {record_kind!r} is not a subject record")
    try:
        subject = (Subject.validator(value) if kind == "validator"
                   else Subject.of(Entity.of(kind, value)))
    except TxRejected as error:
        raise NotProven(f"subject: {error.detail}") from None
    if (subject.kind, subject.value) != (kind, value):
        raise NotProven("subject: not in canonical form")
    if _SUBJECT_KEYS[record_kind](subject) != key:
        raise NotProven(f"state: the key is not the {record_kind} key of {kind}:{value}")
    return f"{record_kind} of {kind}:{value}: "


def check_state_proof(answer: Any, genesis: Genesis) -> str:
    block = _field(answer, "block", "answer")
    header = _field(block, "header", "block")
    summary = check_certified(header, block.get("hash"), _field(answer, "qc", "answer"),
                              genesis)
    version = _int(answer, "version", "answer")
    if version + 1 != header["height"]:
        raise NotProven(f"state: version {version} is not proven by block {header['height']} "
                        f"(its header carries the root after block {header['height'] - 1})")
    key = _hex_field(answer, "key", "answer", 32)
    raw_value = _field(answer, "value", "answer")
    value = None if raw_value is None else _hex(raw_value, "answer.value")
    if "included" in answer and answer["included"] is not (value is not None):
        raise NotProven("answer.included contradicts answer.value")
    subject_text = _check_subject(answer, key)
    root = _hex_field(header, "state_root", "header", 32)
    if not verify_proof(root, key, value, _proof(_field(answer, "proof", "answer"))):
        what = "the value" if value is not None else "the absence of the key"
        raise NotProven(f"state: the Merkle proof does not show {what} under the header's "
                        f"state root")
    shown = f"= {value.hex()[:64]}" if value is not None else "is absent"
    return f"{subject_text}key {key.hex()[:16]} {shown} at version {version}; {summary}"


def verify_answer(answer: Any, genesis: Genesis) -> Verdict:
    """Decide whether ``answer`` (parsed JSON) is proven against ``genesis``."""
    try:
        if isinstance(answer, dict) and "reputation_proof" in answer:
            lines = [check_state_proof(answer[name], genesis)
                     for name in ("reputation_proof", "quarantine_proof")]
            return Verdict(True, "; ".join(lines))
        if isinstance(answer, dict) and "proof" in answer:
            return Verdict(True, check_state_proof(answer, genesis))
        if isinstance(answer, dict) and "header" in answer:
            return Verdict(True, check_certified(answer["header"], answer.get("hash"),
                                                 _field(answer, "qc", "answer"), genesis))
        raise NotProven("answer: not a state proof, entity or block answer")
    except NotProven as error:
        return Verdict(False, str(error))


def _load_json(path: Path, what: str) -> Any:
    data = path.read_bytes()
    if len(data) > MAX_ANSWER_BYTES:
        raise NotProven(f"{what} is larger than {MAX_ANSWER_BYTES} bytes")
    try:
        return json.loads(data)
    except ValueError as error:
        raise NotProven(f"{what} is not JSON: {error}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cybermesh.verify",
        description="Check an API answer against a trusted genesis (validator set). "
                    "Exit 0: proven; 1: not proven.")
    parser.add_argument("answer", type=Path, help="the API answer (JSON file, - for stdin)")
    parser.add_argument("genesis", type=Path, help="the trusted genesis file (JSON)")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    args = parser.parse_args(argv)
    try:
        genesis = parse_genesis(args.genesis.read_bytes())
        answer = (json.loads(sys.stdin.read(MAX_ANSWER_BYTES + 1)) if str(args.answer) == "-"
                  else _load_json(args.answer, "answer"))
        verdict = verify_answer(answer, genesis)
    except GenesisError as error:
        verdict = Verdict(False, f"genesis: {error}")
    except (OSError, NotProven, ValueError) as error:
        verdict = Verdict(False, str(error))
    if args.json:
        print(json.dumps({"proven": verdict.proven, "reason": verdict.reason}))
    else:
        print(("proven: " if verdict.proven else "not proven: ") + verdict.reason)
    return 0 if verdict.proven else 1


if __name__ == "__main__":
    sys.exit(main())
