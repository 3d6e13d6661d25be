"""`manage.py init_cluster --validators N --out DIR`: keys and a genesis for a local cluster.

Writes, under DIR:
  genesis.json               the chain id, validators (id, public key, power 1, loopback
                             address 127.0.0.1:<p2p base + i>) and consensus parameters
  node-<i>/node.key          each validator's Ed25519 key file, mode 0600 (its TLS
                             certificate, bound to that key, is embedded in genesis)
  node-<i>/node.env          the environment a node needs (NODE_ID, NODE_KEY_PATH, ports,
                             MEMPOOL_PRODUCERS_PATH, ...)
  producers.json             the mempool's producer allowlist (docs/mempool.md): every
                             validator may submit equivocation evidence signed with its own
                             validator key (producer id = validator id, kind evidence only);
                             unless --no-demo-producers, also
  producers/ai-demo.key      a demo AI-layer producer (security_event, evidence, policy)
  producers/operator.key     an operator producer for governance transactions
Refuses to overwrite an existing cluster directory, so keys are never silently replaced.
"""

from __future__ import annotations

import json
import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.node.p2p.tls import certificate_for
from cybermesh.keyfiles import KeyFileError, generate_signing_key
from cybermesh.protocol.genesis import GenesisError, genesis_document, parse_genesis

DEFAULT_CHAIN_ID = "cybermesh-local"
DEMO_PRODUCER_ID = "ai-demo"
OPERATOR_PRODUCER_ID = "operator"
# Generous for a demo or a benchmark on one machine; production lists its real producers.
DEMO_RATE = {"rate_per_second": 20_000, "burst": 40_000, "max_pending": 100_000}
# A validator submits evidence only when it catches another validator equivocating.
VALIDATOR_EVIDENCE_RATE = {"rate_per_second": 10, "burst": 100, "max_pending": 1_000}


def producer_entry(producer_id: str, public_key: bytes, kinds: list[str],
                   limits: dict[str, int]) -> dict[str, Any]:
    return {"producer_id": producer_id, "keys": [{"public_key": public_key.hex()}],
            "kinds": kinds, **limits}


class Command(BaseCommand):
    help = "Generate validator keys and a genesis file for a local cluster."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--validators", type=int, required=True,
                            help="number of validators (4 or more tolerates one fault)")
        parser.add_argument("--out", required=True, help="directory to create")
        parser.add_argument("--chain-id", default=DEFAULT_CHAIN_ID)
        parser.add_argument("--p2p-base-port", type=int, default=7000)
        parser.add_argument("--http-base-port", type=int, default=8000)
        parser.add_argument("--address-template", default="127.0.0.1:{port}",
                            help="peer address of validator i; {i} and {port} are filled in "
                                 "(e.g. 'node-{i}-p2p:7000' for docker-compose)")
        parser.add_argument("--genesis-time-ms", type=int, default=None,
                            help="agreed genesis timestamp (unix ms); default: now")
        parser.add_argument("--allow-no-fault-tolerance", action="store_true",
                            help="permit fewer than 4 validators (development only)")
        parser.add_argument("--no-demo-producers", action="store_true",
                            help="allowlist only the validators (evidence); no demo keys")

    def handle(self, *args: Any, **options: Any) -> None:
        count: int = options["validators"]
        out = Path(options["out"])
        if count < 1:
            raise CommandError("--validators must be at least 1")
        if count < 4 and not options["allow_no_fault_tolerance"]:
            raise CommandError(f"{count} validators cannot tolerate a fault (f >= 1 needs 4); "
                               "pass --allow-no-fault-tolerance for a development cluster")
        if (out / "genesis.json").exists():
            raise CommandError(f"{out} already holds a cluster; refusing to overwrite its keys")
        out.mkdir(parents=True, exist_ok=True)

        validators = []
        certificates = {}
        producers = []
        producers_path = (out / "producers.json").resolve()
        for index in range(count):
            node_id = f"node-{index}"
            node_dir = out / node_id
            node_dir.mkdir(exist_ok=True)
            try:
                key = generate_signing_key(node_dir / "node.key")
            except KeyFileError as error:
                raise CommandError(str(error)) from None
            p2p_port = options["p2p_base_port"] + index
            address = options["address_template"].format(i=index, port=p2p_port)
            validators.append((node_id, key.public_key.raw, 1, address))
            # The TLS certificate peers pin: self-signed by, and bound to, the validator key.
            certificates[node_id] = certificate_for(key, node_id, address).decode()
            # Equivocation evidence is signed with the validator key itself: the transaction
            # domain (tx/evidence) never overlaps the consensus domains, and no second secret
            # has to be provisioned per node.
            producers.append(producer_entry(node_id, key.public_key.raw, ["evidence"],
                                            VALIDATOR_EVIDENCE_RATE))
            env_lines = {
                "NODE_ID": node_id,
                "NODE_TYPE": "validator",
                "NODE_KEY_PATH": str((node_dir / "node.key").resolve()),
                "CLUSTER_TOPOLOGY": str((out / "genesis.json").resolve()),
                "P2P_LISTEN_PORT": str(p2p_port),
                "HTTP_PORT": str(options["http_base_port"] + index),
                "CYBERMESH_DATA_DIR": str(node_dir.resolve()),
                "MEMPOOL_PRODUCERS_PATH": str(producers_path),
            }
            (node_dir / "node.env").write_text(
                "".join(f"{key_name}={value}\n" for key_name, value in env_lines.items()))

        genesis_time_ms = options["genesis_time_ms"]
        if genesis_time_ms is None:
            # Block timestamps start here; the executor's expiry clock counts from it.
            genesis_time_ms = time.time_ns() // 1_000_000
        document = genesis_document(
            chain_id=options["chain_id"], genesis_time_ms=genesis_time_ms,
            validators=validators, min_fault_tolerance=0 if count < 4 else 1)
        for entry in document["validators"]:
            entry["tls_certificate"] = certificates[entry["id"]]
        text = json.dumps(document, indent=2, sort_keys=True) + "\n"
        try:
            genesis = parse_genesis(text)
        except GenesisError as error:  # a bug here, but never write a genesis nodes refuse
            raise CommandError("; ".join(error.problems)) from None
        if not options["no_demo_producers"]:
            producers += self._demo_producers(out / "producers")
        (out / "producers.json").write_text(
            json.dumps({"producers": producers}, indent=2, sort_keys=True) + "\n")
        (out / "genesis.json").write_text(text)
        math = genesis.validator_set.quorum
        self.stdout.write(self.style.SUCCESS(
            f"cluster {genesis.chain_id}: {count} validators in {out} "
            f"(n={math.total_power}, f={math.max_faulty_power}, quorum={math.quorum_power})"))

    @staticmethod
    def _demo_producers(directory: Path) -> list[dict[str, Any]]:
        directory.mkdir(exist_ok=True)
        entries = []
        for producer_id, kinds in ((DEMO_PRODUCER_ID, ["security_event", "evidence", "policy"]),
                                   (OPERATOR_PRODUCER_ID, ["governance", "policy"])):
            try:
                key = generate_signing_key(directory / f"{producer_id}.key", kind="producer")
            except KeyFileError as error:
                raise CommandError(str(error)) from None
            entries.append(producer_entry(producer_id, key.public_key.raw, kinds, DEMO_RATE))
        return entries
