"""A stand-in for one node's ingest in the cluster tests: admit signed events at a rate.

    python -m tests.cluster.feeder --key K --producer-id P --chain-id C --rate 20 --seed 7 \
        --out admitted.txt

Runs inside a node's environment (its DATABASE_URL), so each node's mempool gets its own
stream (the leader proposes from its own pool; replicas check payloads without needing the
transactions). Every admitted transaction's id is appended to ``--out`` with the admission time
(``<hex id> <ms>``), flushed per batch, so a test can check that nothing admitted is lost and
measure admission-to-commit latency. Stops on SIGTERM or after ``--count`` events.
"""

from __future__ import annotations

import argparse
import os
import signal
import time

import django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--key", required=True)
    parser.add_argument("--producer-id", required=True)
    parser.add_argument("--chain-id", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--tick", type=float, default=0.1)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.node.cluster_settings")
    django.setup()

    from apps.mempool.admission import AdmissionStatus, admit_batch
    from cybermesh.keyfiles import load_signing_key
    from cybermesh.sdk import TrafficGenerator

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("now", True))
    generator = TrafficGenerator(load_signing_key(args.key), producer_id=args.producer_id,
                                 chain_id=args.chain_id, seed=args.seed)
    started = time.monotonic()
    sent = 0
    with open(args.out, "a") as out:
        while not stop["now"] and (not args.count or sent < args.count):
            due = int((time.monotonic() - started) * args.rate) + 1
            if args.count:
                due = min(due, args.count)
            now_ms = time.time_ns() // 1_000_000
            raws = [generator.valid(now_ms).value for _ in range(max(0, due - sent))]
            sent = max(sent, due)
            if raws:
                results = admit_batch(raws, now_ms=now_ms, source="test:feeder")
                done_ms = time.time_ns() // 1_000_000
                out.writelines(f"{result.tx_id.hex()} {done_ms}\n" for result in results
                               if result.status is AdmissionStatus.ADMITTED)
                out.flush()
            time.sleep(args.tick)


if __name__ == "__main__":
    main()
