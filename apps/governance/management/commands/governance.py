"""``manage.py governance ...``: propose, approve, submit and follow governance changes.

Changes (each writes a proposal file, approves it with this node's validator key unless
``--no-approve``, and submits it as soon as the approvals hold a quorum of the active power)::

    add-validator --id ID --public-key HEX --power N --address HOST:PORT [--tls-certificate PEM]
    remove-validator --id ID
    set-power --id ID --power N
    rotate-key --id ID (--new-public-key HEX | --next-key-file FILE)
    set-parameter --name NAME --value N

Collecting approvals and following::

    approve PROPOSAL      add this validator's approval (a proposal file or its id)
    submit PROPOSAL       submit a proposal whose approvals hold a quorum
    status ID             a transaction id, or a proposal (file or id)

Policy (signed by the producer key alone, no approvals)::

    propose-policy --op set-rule|remove-rule|quarantine|release --entity KIND:VALUE ...

Submissions go through this node's mempool (the producer key, by default the node key, must be
allowlisted for the kind in MEMPOOL_PRODUCERS_PATH) and are followed to their commit with a
progress bar (``--until active`` follows a governance change to its epoch boundary).
``--json`` prints one JSON object. Any failure exits 1 with one line. See docs/operations.md.
"""

from __future__ import annotations

import getpass
import json
import re
import sys
import time
from argparse import ArgumentParser, Namespace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.governance.errors import GovernanceError, GovernanceProblem
from apps.governance.proposals import (
    Proposal,
    change_summary,
    load_proposal,
    new_change,
    save_proposal,
)
from apps.governance.queries import GovernanceView, governance_view
from apps.governance.services import (
    COMMITTED_STAGES,
    Stage,
    Submitted,
    TxStatus,
    do_approve,
    do_submit_policy,
    do_submit_proposal,
    follow,
    live_submission,
    transaction_status,
)
from apps.governance.validation import tally
from cybermesh.keyfiles import KeyFileError, load_node_keys, load_signing_key
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.txs.entity import Entity
from cybermesh.protocol.txs.errors import TxRejected
from cybermesh.protocol.txs.governance import GovernanceOperation, ParameterName
from cybermesh.protocol.txs.policy import PolicyAction, PolicyChange, PolicyOperation

_HEX_ID = re.compile(r"[0-9a-f]{64}")
_STAGE_STEP = {Stage.UNKNOWN: 0, Stage.MEMPOOL: 1, Stage.COMMITTED: 2, Stage.SCHEDULED: 2,
               Stage.IGNORED: 2, Stage.ACTIVE: 3}
_Op = GovernanceOperation


def _bad(message: str) -> GovernanceError:
    return GovernanceError(GovernanceProblem.BAD_ARGUMENT, message)


def _public_key(text: str, what: str) -> bytes:
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise _bad(f"{what} must be 64 hexadecimal digits (a 32-byte Ed25519 key)")
    return bytes.fromhex(text)


def _signing_key(path: str, what: str) -> SigningKey:
    if not path:
        raise GovernanceError(GovernanceProblem.KEY, f"no {what} key: pass the key file or set "
                              "NODE_KEY_PATH")
    try:
        return load_signing_key(path)
    except KeyFileError as error:
        raise GovernanceError(GovernanceProblem.KEY, str(error)) from None


def _wait(seconds: float) -> None:
    """Between two looks at the transaction (tests replace it to commit blocks meanwhile)."""
    time.sleep(seconds)


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"


class Command(BaseCommand):
    help = "Propose, approve, submit and follow governance changes (and policy changes)."

    # --- arguments ------------------------------------------------------------------------

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        add = self._change_parser(sub, "add-validator", "register a new validator")
        add.add_argument("--id", required=True, dest="validator_id")
        add.add_argument("--public-key", required=True)
        add.add_argument("--power", required=True, type=int)
        add.add_argument("--address", required=True, help="host:port of its peer listener")
        add.add_argument("--tls-certificate", help="the new validator's PEM certificate "
                         "(checked against --id and --public-key, carried in the proposal)")
        remove = self._change_parser(sub, "remove-validator", "deregister a validator")
        remove.add_argument("--id", required=True, dest="validator_id")
        power = self._change_parser(sub, "set-power", "change a validator's voting power")
        power.add_argument("--id", required=True, dest="validator_id")
        power.add_argument("--power", required=True, type=int)
        rotate = self._change_parser(sub, "rotate-key", "replace a validator's key")
        rotate.add_argument("--id", required=True, dest="validator_id")
        source = rotate.add_mutually_exclusive_group()
        source.add_argument("--new-public-key")
        source.add_argument("--next-key-file", help="the validator's next key file (default "
                            "for this node: the .next sibling of NODE_KEY_PATH)")
        parameter = self._change_parser(sub, "set-parameter", "change an executor parameter")
        parameter.add_argument("--name", required=True,
                               choices=[name.value for name in ParameterName])
        parameter.add_argument("--value", required=True, type=int)
        approve = sub.add_parser("approve", help="add this validator's approval to a proposal")
        approve.add_argument("proposal", help="proposal file, or proposal id")
        self._approver_options(approve)
        self._submit_options(approve)
        submit = sub.add_parser("submit", help="submit a proposal that has a quorum")
        submit.add_argument("proposal", help="proposal file, or proposal id")
        self._submit_options(submit)
        status = sub.add_parser("status", help="where a transaction or proposal is")
        status.add_argument("id", help="transaction id, proposal id or proposal file")
        status.add_argument("--json", action="store_true")
        policy = sub.add_parser("propose-policy", help="submit a signed policy change")
        policy.add_argument("--op", required=True,
                            choices=[op.value.replace("_", "-") for op in PolicyOperation])
        policy.add_argument("--entity", required=True, help="KIND:VALUE, e.g. ip:192.0.2.7")
        policy.add_argument("--reason", required=True)
        policy.add_argument("--scope", help="rules: * or a scope name")
        policy.add_argument("--action", dest="rule_action",
                            choices=[action.value for action in PolicyAction])
        policy.add_argument("--expires-in", type=int, metavar="SECONDS",
                            help="set-rule and quarantine: lifetime")
        self._submit_options(policy)

    def _change_parser(self, sub: Any, name: str, text: str) -> ArgumentParser:
        parser: ArgumentParser = sub.add_parser(name, help=text)
        parser.add_argument("--epoch", type=int, help="default: the chain's current epoch")
        parser.add_argument("--out", help="proposal file (default: "
                            "<CYBERMESH_DATA_DIR>/governance/<proposal id>.json)")
        parser.add_argument("--no-approve", action="store_true",
                            help="do not approve with this node's validator key")
        self._approver_options(parser)
        self._submit_options(parser)
        return parser

    @staticmethod
    def _approver_options(parser: ArgumentParser) -> None:
        parser.add_argument("--key", default=None, help="validator key file (default: "
                            "NODE_KEY_PATH)")
        parser.add_argument("--validator-id", dest="approver_id", default=None,
                            help="approving validator (default: NODE_ID)")

    @staticmethod
    def _submit_options(parser: ArgumentParser) -> None:
        parser.add_argument("--producer-key", default=None,
                            help="key that signs the transaction (default: NODE_KEY_PATH)")
        parser.add_argument("--producer-id", default=None, help="default: NODE_ID")
        parser.add_argument("--no-submit", action="store_true",
                            help="only write the proposal, even with a quorum")
        parser.add_argument("--no-follow", action="store_true",
                            help="return once the mempool holds the transaction")
        parser.add_argument("--until", choices=["commit", "active"], default="commit",
                            help="follow to the commit (default) or to the epoch boundary")
        parser.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS")
        parser.add_argument("--poll-interval", type=float, default=0.5, metavar="SECONDS")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    # --- dispatch -------------------------------------------------------------------------

    def handle(self, *args: Any, **options: Any) -> None:
        opts = Namespace(**options)
        try:
            result = self._run(opts)
        except GovernanceError as error:
            raise CommandError(str(error)) from None
        if opts.json:
            self.stdout.write(json.dumps(result, sort_keys=True))

    def _run(self, opts: Namespace) -> dict[str, Any]:
        action = opts.subcommand
        if action == "status":
            return self._status(opts)
        if action == "propose-policy":
            return self._policy(opts)
        if action in ("approve", "submit"):
            path = self._proposal_path(opts.proposal)
            proposal = load_proposal(path)
            if action == "approve":
                proposal = self._approve(proposal, opts)
                save_proposal(proposal, path)
            return self._maybe_submit(proposal, path, opts, required=action == "submit")
        change_proposal = self._new_proposal(opts)
        path = Path(opts.out) if opts.out else self._default_path(change_proposal)
        if not opts.no_approve:
            change_proposal = self._approve(change_proposal, opts)
        save_proposal(change_proposal, path)
        return self._maybe_submit(change_proposal, path, opts, required=False)

    # --- proposals ------------------------------------------------------------------------

    @staticmethod
    def _proposals_dir() -> Path:
        return Path(settings.DATA_DIR) / "governance"

    def _default_path(self, proposal: Proposal) -> Path:
        return self._proposals_dir() / f"{proposal.proposal_id.hex()}.json"

    def _proposal_path(self, reference: str) -> Path:
        path = Path(reference)
        if path.is_file():
            return path
        if _HEX_ID.fullmatch(reference):
            stored = self._proposals_dir() / f"{reference}.json"
            if stored.is_file():
                return stored
        raise GovernanceError(GovernanceProblem.BAD_PROPOSAL, f"no proposal file {reference!r} "
                              f"(nor a proposal with that id in {self._proposals_dir()})")

    def _new_proposal(self, opts: Namespace) -> Proposal:
        view = governance_view()
        epoch = view.chain.epoch if opts.epoch is None else opts.epoch
        certificate = None
        action = opts.subcommand
        if action == "add-validator":
            public_key = _public_key(opts.public_key, "--public-key")
            change = new_change(_Op.ADD_VALIDATOR, epoch=epoch, validator_id=opts.validator_id,
                                public_key=public_key, power=opts.power, address=opts.address)
            if opts.tls_certificate:
                certificate = self._certificate(opts.tls_certificate, opts.validator_id,
                                                public_key)
        elif action == "remove-validator":
            change = new_change(_Op.REMOVE_VALIDATOR, epoch=epoch,
                                validator_id=opts.validator_id)
        elif action == "set-power":
            change = new_change(_Op.CHANGE_POWER, epoch=epoch, validator_id=opts.validator_id,
                                power=opts.power)
        elif action == "rotate-key":
            change = new_change(_Op.ROTATE_KEY, epoch=epoch, validator_id=opts.validator_id,
                                public_key=self._next_public_key(opts))
        else:
            change = new_change(_Op.CHANGE_PARAMETER, epoch=epoch,
                                parameter=ParameterName(opts.name), value=opts.value)
        return Proposal.of(change, chain_id=view.chain.chain_id, tls_certificate=certificate)

    @staticmethod
    def _certificate(path: str, validator_id: str, public_key: bytes) -> str:
        from apps.node.p2p.errors import P2PConfigError
        from apps.node.p2p.tls import identity_from_pem

        try:
            pem = Path(path).read_bytes()[:8192]
            identity = identity_from_pem(pem)
        except OSError as error:
            raise GovernanceError(GovernanceProblem.BAD_CERTIFICATE,
                                  f"{path}: cannot be read ({error.strerror})") from None
        except P2PConfigError as error:
            raise GovernanceError(GovernanceProblem.BAD_CERTIFICATE, f"{path}: {error}") from None
        if identity.validator_id != validator_id or identity.public_key != public_key:
            raise GovernanceError(GovernanceProblem.BAD_CERTIFICATE, f"{path} is the certificate "
                                  f"of {identity.validator_id!r} with another key, not of "
                                  f"{validator_id!r} with --public-key")
        return pem.decode("ascii")

    @staticmethod
    def _next_public_key(opts: Namespace) -> bytes:
        if opts.new_public_key:
            return _public_key(opts.new_public_key, "--new-public-key")
        try:
            if opts.next_key_file:
                return load_signing_key(opts.next_key_file).public_key.raw
            if opts.validator_id == settings.NODE_ID and settings.NODE_KEY_PATH:
                upcoming = load_node_keys(settings.NODE_KEY_PATH).next
                if upcoming is not None:
                    return upcoming.public_key.raw
        except KeyFileError as error:
            raise GovernanceError(GovernanceProblem.KEY, str(error)) from None
        raise _bad("name the new key: --new-public-key HEX or --next-key-file FILE (this node: "
                   "create it with manage.py keygen --out <NODE_KEY_PATH stem>.next.json)")

    def _approve(self, proposal: Proposal, opts: Namespace) -> Proposal:
        key = _signing_key(opts.key or settings.NODE_KEY_PATH, "validator")
        approver = opts.approver_id or settings.NODE_ID
        approved = do_approve(proposal, view=governance_view(), signing_key=key,
                              validator_id=approver, actor=_actor())
        if not opts.json:
            self.stdout.write(f"approved proposal {proposal.proposal_id.hex()} as {approver}")
        return approved

    # --- submission -----------------------------------------------------------------------

    def _maybe_submit(self, proposal: Proposal, path: Path, opts: Namespace, *,
                      required: bool) -> dict[str, Any]:
        view = governance_view()
        counted = tally(view, proposal)
        result: dict[str, Any] = {
            "proposal_id": proposal.proposal_id.hex(), "proposal_file": str(path),
            "change": change_summary(proposal.change),
            "approvals": list(counted.approvers), "approved_power": counted.power,
            "quorum_power": counted.quorum_power, "missing": list(counted.missing),
            "chain": self._chain(view), "submitted": False}
        if not opts.json:
            self.stdout.write(f"proposal {path}: {json.dumps(result['change'], sort_keys=True)}")
            self.stdout.write(f"chain at block {view.version}, epoch {view.chain.epoch} ends "
                              f"after block {view.epoch_end_height} (approvals expire then)")
            self.stdout.write(f"approvals: {', '.join(counted.approvers) or 'none'} (power "
                              f"{counted.power} of {counted.quorum_power} needed)")
        if opts.no_submit or (not counted.has_quorum and not required):
            if not opts.json and not counted.has_quorum:
                self.stdout.write(f"waiting for approvals from: {', '.join(counted.missing)}; "
                                  f"each runs: manage.py governance approve {path.name}")
            return result
        earlier = live_submission(proposal)
        if earlier is not None:
            if not opts.json:
                self.stdout.write(f"already submitted as {earlier.tx_id.hex()}: "
                                  f"{self._describe(earlier)}")
            return {**result, **self._follow(earlier.tx_id, "existing", opts)}
        producer_key = _signing_key(opts.producer_key or settings.NODE_KEY_PATH, "producer")
        submitted = do_submit_proposal(
            proposal, view=view, producer_key=producer_key,
            producer_id=opts.producer_id or settings.NODE_ID, actor=_actor(),
            now_ms=time.time_ns() // 1_000_000, nonce=time.time_ns())
        assert submitted.proposal is not None  # noqa: S101 -- set for proposals
        save_proposal(submitted.proposal, path)
        return {**result, **self._submitted(submitted, opts)}

    def _policy(self, opts: Namespace) -> dict[str, Any]:
        kind, _, value = opts.entity.partition(":")
        now_ms = time.time_ns() // 1_000_000
        try:
            change = PolicyChange(
                PolicyOperation(opts.op.replace("-", "_")), Entity.of(kind, value), opts.reason,
                scope=opts.scope,
                action=PolicyAction(opts.rule_action) if opts.rule_action else None,
                expires_at_ms=(now_ms + opts.expires_in * 1000
                               if opts.expires_in is not None else None))
        except TxRejected as error:
            raise _bad(f"invalid policy change: {error}") from None
        producer_key = _signing_key(opts.producer_key or settings.NODE_KEY_PATH, "producer")
        submitted = do_submit_policy(
            change, chain_id=governance_view().chain.chain_id, producer_key=producer_key,
            producer_id=opts.producer_id or settings.NODE_ID, actor=_actor(), now_ms=now_ms,
            nonce=time.time_ns())
        return self._submitted(submitted, opts)

    def _submitted(self, submitted: Submitted, opts: Namespace) -> dict[str, Any]:
        if not opts.json:
            self.stdout.write(f"submitted transaction {submitted.tx_id.hex()} "
                              f"({submitted.admission})")
        return self._follow(submitted.tx_id, submitted.admission, opts)

    def _follow(self, raw_id: bytes, admission: str, opts: Namespace) -> dict[str, Any]:
        tx_id = raw_id.hex()
        result: dict[str, Any] = {"submitted": True, "tx_id": tx_id, "admission": admission}
        if opts.no_follow:
            return result
        until = frozenset({Stage.ACTIVE}) if opts.until == "active" else COMMITTED_STAGES
        total = 3 if opts.until == "active" else 2
        with tqdm(total=total, desc=f"tx {tx_id[:12]}", unit="stage", file=sys.stderr,
                  disable=opts.json, bar_format="{desc}: {n}/{total} {postfix}") as bar:

            def progress(status: TxStatus) -> None:
                bar.n = min(total, _STAGE_STEP[status.stage])
                bar.set_postfix_str(self._describe(status))

            status = follow(raw_id, until=until, timeout_s=opts.timeout,
                            poll_interval_s=opts.poll_interval, on_change=progress,
                            sleep=_wait)
        if not opts.json:
            self.stdout.write(self._describe(status))
        if status.stage is Stage.IGNORED:
            raise GovernanceError(GovernanceProblem.INVALID_CHANGE, self._describe(status))
        return {**result, "status": status.to_json()}

    # --- status ---------------------------------------------------------------------------

    @staticmethod
    def _chain(view: GovernanceView) -> dict[str, int]:
        return {"height": view.version, "epoch": view.chain.epoch,
                "epoch_ends_after_height": view.epoch_end_height}

    @staticmethod
    def _describe(status: TxStatus) -> str:
        where = f" in block {status.height}" if status.height is not None else ""
        text = {
            Stage.UNKNOWN: "not known to this node",
            Stage.MEMPOOL: "waiting in the mempool",
            Stage.COMMITTED: f"committed{where}",
            Stage.SCHEDULED: f"committed{where}; applies at the end of epoch {status.epoch} "
                             f"(after block {status.applies_after_height})",
            Stage.ACTIVE: f"committed{where}; active since epoch "
                          f"{(status.epoch or 0) + 1}",
            Stage.IGNORED: f"committed{where} but ignored by the executor: {status.reason}",
        }[status.stage]
        return f"{status.stage.value}: {text}"

    def _status(self, opts: Namespace) -> dict[str, Any]:
        reference = opts.id
        proposal_file = None
        if not _HEX_ID.fullmatch(reference) or (
                self._proposals_dir() / f"{reference}.json").is_file():
            proposal_file = self._proposal_path(reference)
        if proposal_file is None:
            status = transaction_status(bytes.fromhex(reference))
            if not opts.json:
                self.stdout.write(self._describe(status))
            if status.stage is Stage.UNKNOWN:
                raise GovernanceError(GovernanceProblem.UNKNOWN_TRANSACTION,
                                      f"transaction {reference} is not known to this node")
            return status.to_json()
        proposal = load_proposal(proposal_file)
        result: dict[str, Any] = {"proposal_id": proposal.proposal_id.hex(),
                                  "proposal_file": str(proposal_file),
                                  "change": change_summary(proposal.change)}
        try:
            view = governance_view()
            result["chain"] = self._chain(view)
            counted = tally(view, proposal)
            result.update(approvals=list(counted.approvers), approved_power=counted.power,
                          quorum_power=counted.quorum_power, missing=list(counted.missing))
        except GovernanceError as error:
            result["approvals_problem"] = str(error)
        result["transactions"] = [transaction_status(tx_id).to_json()
                                  for tx_id in proposal.submitted]
        if not opts.json:
            self.stdout.write(f"proposal {proposal_file}: "
                              f"{json.dumps(result['change'], sort_keys=True)}")
            if "approvals_problem" in result:
                self.stdout.write(f"approvals: {result['approvals_problem']}")
            else:
                self.stdout.write(f"approvals: {', '.join(result['approvals']) or 'none'} "
                                  f"(power {result['approved_power']} of "
                                  f"{result['quorum_power']} needed)")
            for tx_id in proposal.submitted:
                self.stdout.write(f"{tx_id.hex()}: "
                                  f"{self._describe(transaction_status(tx_id))}")
        return result
