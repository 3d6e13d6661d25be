"""The genesis file: chain id, the first validator set, and the consensus parameters.

Every node of a cluster must load byte-identical genesis data, so validation is strict and
each problem is reported on its own line: an operator fixing a genesis file by hand should see
every mistake at once, not one per restart. Parsing is pure (JSON text in, ``Genesis`` out);
reading the file is the caller's job.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from cybermesh.protocol.crypto.hashing import sha256
from cybermesh.protocol.crypto.signing import CryptoError, PublicKey
from cybermesh.protocol.validator_set import Validator, ValidatorSet, quorum_math

if TYPE_CHECKING:  # the executor package imports this module (addresses): no cycle at runtime
    from cybermesh.protocol.executor.params import ExecutorParameters

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_CHAIN_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_GENESIS_BYTES = 1 << 20


class GenesisError(ValueError):
    """A genesis file that must not be used. ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True, slots=True)
class ConsensusParameters:
    """Consensus parameters fixed at genesis (integers only: milliseconds, basis points)."""

    base_timeout_ms: int = 1000
    min_timeout_ms: int = 250
    max_timeout_ms: int = 30000
    timeout_increase_bps: int = 15000
    timeout_decrease_ms: int = 50
    heartbeat_interval_ms: int = 500
    max_block_txs: int = 2000
    max_block_bytes: int = 2 * 1024 * 1024
    max_clock_skew_ms: int = 5000
    leader_failure_window: int = 10

    def problems(self) -> list[str]:
        found = []
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                found.append(f"consensus.{name} must be a positive integer, got {value!r}")
        if found:
            return found
        if not self.min_timeout_ms <= self.base_timeout_ms <= self.max_timeout_ms:
            found.append("consensus timeouts must satisfy min_timeout_ms <= base_timeout_ms "
                         "<= max_timeout_ms")
        if self.timeout_increase_bps <= 10000:
            found.append("consensus.timeout_increase_bps must exceed 10000 (a factor above 1)")
        return found


@dataclass(frozen=True, slots=True)
class Genesis:
    chain_id: str
    genesis_time_ms: int
    validator_set: ValidatorSet
    consensus: ConsensusParameters
    min_fault_tolerance: int
    digest: bytes
    # The executor's parameters at height 0 (optional "executor" object; governance changes
    # them later). None = the defaults, so older genesis files keep their chain.
    executor: ExecutorParameters | None = None

    @property
    def quorum_size(self) -> int:
        return self.validator_set.quorum.quorum_power


def parse_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) and check both parts; raise ValueError."""
    if address.startswith("["):
        host, sep, port_text = address[1:].partition("]:")
        if not sep:
            raise ValueError(f"malformed address {address!r}: expected [ipv6]:port")
        ipaddress.IPv6Address(host)
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep or not host:
            raise ValueError(f"malformed address {address!r}: expected host:port")
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            if not _HOSTNAME.match(host) or host.replace(".", "").isdigit():
                raise ValueError(f"malformed address {address!r}: bad host") from None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"malformed address {address!r}: port must be 1..65535")
    return host, int(port_text)


def _validator_problems(index: int, entry: Any) -> tuple[list[str], Validator | None]:
    where = f"validators[{index}]"
    if not isinstance(entry, dict):
        return [f"{where} must be an object"], None
    problems = []
    validator_id = entry.get("id")
    if not isinstance(validator_id, str) or not validator_id:
        problems.append(f"{where}.id must be a non-empty string")
    else:
        where = f"validator {validator_id!r}"
    key_hex = entry.get("public_key")
    public_key = b""
    try:
        public_key = bytes.fromhex(key_hex) if isinstance(key_hex, str) else b""
        PublicKey.from_bytes(public_key)
    except (ValueError, CryptoError) as error:
        problems.append(f"{where}: public_key is not a valid Ed25519 key ({error})")
    power = entry.get("power")
    if not isinstance(power, int) or isinstance(power, bool) or power <= 0:
        problems.append(f"{where}: power must be a positive integer, got {power!r}")
    address = entry.get("address")
    try:
        parse_address(address if isinstance(address, str) else "")
    except ValueError as error:
        problems.append(f"{where}: {error}")
    if problems:
        return problems, None
    return [], Validator(validator_id=str(validator_id), public_key=public_key,
                         power=int(str(power)), address=str(address))


def _header(data: dict[str, Any], problems: list[str]) -> tuple[str, int, int]:
    chain_id = data.get("chain_id")
    if not isinstance(chain_id, str) or not _CHAIN_ID.match(chain_id):
        problems.append("chain_id must be 1-64 lowercase letters, digits, '.', '_' or '-'")
        chain_id = ""
    genesis_time_ms = data.get("genesis_time_ms", 0)
    if not isinstance(genesis_time_ms, int) or genesis_time_ms < 0:
        problems.append("genesis_time_ms must be a non-negative integer")
        genesis_time_ms = 0
    min_fault_tolerance = data.get("min_fault_tolerance", 1)
    if not isinstance(min_fault_tolerance, int) or min_fault_tolerance < 0:
        problems.append("min_fault_tolerance must be a non-negative integer")
        min_fault_tolerance = 1
    return chain_id, genesis_time_ms, min_fault_tolerance


def _validators(raw_validators: Any, problems: list[str]) -> list[Validator]:
    if not isinstance(raw_validators, list) or not raw_validators:
        problems.append("validators must be a non-empty list")
        return []
    validators: list[Validator] = []
    for index, entry in enumerate(raw_validators):
        entry_problems, validator = _validator_problems(index, entry)
        problems.extend(entry_problems)
        if validator is not None:
            validators.append(validator)
    seen_ids: set[str] = set()
    seen_keys: dict[bytes, str] = {}
    for validator in validators:
        if validator.validator_id in seen_ids:
            problems.append(f"duplicate validator id {validator.validator_id!r}")
        seen_ids.add(validator.validator_id)
        if validator.public_key in seen_keys:
            problems.append(f"validators {seen_keys[validator.public_key]!r} and "
                            f"{validator.validator_id!r} share one public key")
        seen_keys.setdefault(validator.public_key, validator.validator_id)
    return validators


def _consensus(raw_consensus: Any, problems: list[str]) -> ConsensusParameters:
    if not isinstance(raw_consensus, dict):
        problems.append("consensus must be an object")
        return ConsensusParameters()
    unknown = sorted(set(raw_consensus) - set(ConsensusParameters.__dataclass_fields__))
    if unknown:
        problems.append(f"consensus has unknown parameters: {', '.join(unknown)}")
        return ConsensusParameters()
    consensus = ConsensusParameters(**raw_consensus)
    problems.extend(consensus.problems())
    return consensus


def _executor(raw_executor: Any, problems: list[str]) -> ExecutorParameters | None:
    from cybermesh.protocol.executor.params import ExecutorParameters

    if not isinstance(raw_executor, dict):
        problems.append("executor must be an object")
        return None
    if not raw_executor:
        return None
    known = {item.name for item in fields(ExecutorParameters)}
    unknown = sorted(set(raw_executor) - known)
    if unknown:
        problems.append(f"executor has unknown parameters: {', '.join(unknown)}")
        return None
    executor = ExecutorParameters(**raw_executor)
    problems.extend(executor.problems())
    return executor


def parse_genesis(text: str | bytes) -> Genesis:
    """Parse and validate genesis JSON; raise ``GenesisError`` listing every problem."""
    if len(text) > MAX_GENESIS_BYTES:
        raise GenesisError([f"genesis is larger than {MAX_GENESIS_BYTES} bytes"])
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise GenesisError([f"genesis is not valid JSON: {error}"]) from None
    if not isinstance(data, dict):
        raise GenesisError(["genesis must be a JSON object"])
    problems: list[str] = []
    chain_id, genesis_time_ms, min_fault_tolerance = _header(data, problems)
    validators = _validators(data.get("validators"), problems)
    consensus = _consensus(data.get("consensus", {}), problems)
    executor = _executor(data.get("executor", {}), problems)
    if validators and not problems:
        math = quorum_math(sum(v.power for v in validators))
        if math.max_faulty_power < min_fault_tolerance:
            problems.append(
                f"{len(validators)} validators with total power {math.total_power} tolerate "
                f"f={math.max_faulty_power} faults, below min_fault_tolerance="
                f"{min_fault_tolerance} (f >= 1 needs at least 4 validators of equal power)")
    if problems:
        raise GenesisError(problems)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return Genesis(
        chain_id=chain_id,
        genesis_time_ms=genesis_time_ms,
        validator_set=ValidatorSet(epoch=0, validators=tuple(validators)),
        consensus=consensus,
        min_fault_tolerance=min_fault_tolerance,
        digest=sha256(canonical),
        executor=executor,
    )


def genesis_document(*, chain_id: str, genesis_time_ms: int,
                     validators: list[tuple[str, bytes, int, str]],
                     consensus: ConsensusParameters | None = None,
                     min_fault_tolerance: int = 1) -> dict[str, Any]:
    """Build the JSON document for a genesis (used by ``init_cluster`` and tests)."""
    params = consensus or ConsensusParameters()
    return {
        "chain_id": chain_id,
        "genesis_time_ms": genesis_time_ms,
        "min_fault_tolerance": min_fault_tolerance,
        "validators": [{"id": vid, "public_key": key.hex(), "power": power, "address": address}
                       for vid, key, power, address in validators],
        "consensus": {name: getattr(params, name) for name in params.__dataclass_fields__},
    }
