"""Load for ``bench.bench_cluster``: one node's share of an offered load, as ingest would do it.

    python -m bench.cluster_feeder --key K --producer-id P --chain-id C --seed S \
        --start-ms T0 --rate R --count N --out admitted.txt

Every node's feeder gets the same seed, start time and rate, so all four generate the same
signed transactions (created at ``T0 + i / R``) and admit each when its time comes: exactly
what Kafka ingest does (every validator consumes every event). Admission times go to ``--out``
as ``<tx id hex> <ms>`` lines.
"""

from __future__ import annotations

import argparse
import os
import time

import django

TICK_S = 0.02


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--key", "--producer-id", "--chain-id", "--out"):
        parser.add_argument(name, required=True)
    for name in ("--seed", "--start-ms", "--count"):
        parser.add_argument(name, type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.node.cluster_settings")
    django.setup()

    from apps.mempool.admission import AdmissionStatus, admit_batch
    from cybermesh.keyfiles import load_signing_key
    from cybermesh.protocol.txs import TxKind
    from cybermesh.sdk import TrafficGenerator

    generator = TrafficGenerator(load_signing_key(args.key), producer_id=args.producer_id,
                                 chain_id=args.chain_id, seed=args.seed)
    schedule = [(args.start_ms + int(index * 1000 / args.rate),
                 generator.valid(args.start_ms + int(index * 1000 / args.rate),
                                 TxKind.SECURITY_EVENT).value)
                for index in range(args.count)]
    sent = 0
    with open(args.out, "a") as out:
        while sent < len(schedule):
            now_ms = time.time_ns() // 1_000_000
            due = sent
            while due < len(schedule) and schedule[due][0] <= now_ms:
                due += 1
            if due > sent:
                results = admit_batch([raw for _, raw in schedule[sent:due]], now_ms=now_ms,
                                      source="bench")
                done_ms = time.time_ns() // 1_000_000
                out.writelines(f"{result.tx_id.hex()} {done_ms}\n" for result in results
                               if result.status is AdmissionStatus.ADMITTED)
                out.flush()
                sent = due
            time.sleep(TICK_S)


if __name__ == "__main__":
    main()
