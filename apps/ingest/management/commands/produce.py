"""``manage.py produce``: publish signed AI-layer events (the SDK from the command line).

    manage.py produce --key producer.json --producer-id detector-1 --count 1000 --rate 200
    manage.py produce ... --kind policy --count 5
    manage.py produce ... --count 500 --bad-ratio 0.05 --bad forged,malformed --seed 7 --json

Events are signed with the producer key (0600 key file from ``manage.py keygen --kind
producer``), keyed by offender / entity and published with their headers to the ``ai.*`` topic
of their kind. ``--rate`` paces publishing (events per second, 0 = as fast as possible);
``--kind mix`` (the default) is the realistic mix of events, evidence and policy. Bad events
(``--bad-ratio``) exist to exercise the validators' DLQ in demos. Exits non-zero with one line
if any event is not acknowledged.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cybermesh.kafka_config import KafkaConfigError
from cybermesh.keyfiles import KeyFileError, load_signing_key
from cybermesh.protocol.txs import TxKind
from cybermesh.sdk import BadKind, EventProducer, PublishError, TrafficGenerator, event_headers

KINDS = {"mix": None, "security_event": TxKind.SECURITY_EVENT, "evidence": TxKind.EVIDENCE,
         "policy": TxKind.POLICY}
MAX_COUNT = 10_000_000


def _chain_id(option: str | None) -> str:
    if option:
        return option
    topology = getattr(settings, "CLUSTER_TOPOLOGY", "")
    if not topology:
        raise CommandError("--chain-id is required when CLUSTER_TOPOLOGY is not set")
    from cybermesh.topology import configured_genesis

    return configured_genesis(topology).chain_id


def _bad_kinds(option: str) -> tuple[BadKind, ...]:
    try:
        return tuple(BadKind(name.strip()) for name in option.split(",") if name.strip())
    except ValueError:
        raise CommandError(f"--bad takes a comma-separated list of "
                           f"{', '.join(kind.value for kind in BadKind)}") from None


class Command(BaseCommand):
    help = "Sign and publish AI-layer events (demo traffic, tests, operators)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--key", required=True, help="producer key file (0600)")
        parser.add_argument("--producer-id", required=True, help="producer id to sign as")
        parser.add_argument("--chain-id", default=None, help="default: the genesis chain id")
        parser.add_argument("--kind", choices=sorted(KINDS), default="mix")
        parser.add_argument("--count", type=int, default=1)
        parser.add_argument("--rate", type=float, default=0.0,
                            help="events per second (0: as fast as possible)")
        parser.add_argument("--bad-ratio", type=float, default=0.0,
                            help="share of events that are bad on purpose (0..1)")
        parser.add_argument("--bad", default=",".join(kind.value for kind in BadKind),
                            help="which bad kinds to send (comma-separated)")
        parser.add_argument("--seed", type=int, default=None, help="replay a run")
        parser.add_argument("--bootstrap-servers", default=None,
                            help="default: KAFKA_BOOTSTRAP_SERVERS")
        parser.add_argument("--json", action="store_true", help="print one JSON summary")

    def handle(self, *args: Any, **options: Any) -> None:
        count, rate, bad_ratio = options["count"], options["rate"], options["bad_ratio"]
        if not 0 < count <= MAX_COUNT:
            raise CommandError(f"--count must be 1..{MAX_COUNT}")
        if rate < 0 or not 0 <= bad_ratio <= 1:
            raise CommandError("--rate must be >= 0 and --bad-ratio within 0..1")
        seed = options["seed"] if options["seed"] is not None else time.time_ns() % (1 << 32)
        chain_id = _chain_id(options["chain_id"])
        try:
            key = load_signing_key(options["key"])
            producer = EventProducer.from_settings(
                key, producer_id=options["producer_id"], chain_id=chain_id,
                bootstrap_servers=options["bootstrap_servers"])
        except (KeyFileError, KafkaConfigError) as error:
            raise CommandError(str(error)) from None
        generator = TrafficGenerator(key, producer_id=options["producer_id"],
                                     chain_id=chain_id, seed=seed)
        counts: dict[str, int] = {}
        started = time.monotonic()
        stream = generator.stream(time.time_ns() // 1_000_000, count,
                                  kind=KINDS[options["kind"]], bad_ratio=bad_ratio,
                                  bad_kinds=_bad_kinds(options["bad"]))
        for index, event in enumerate(stream):
            if rate:
                delay = started + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            producer.publish_raw(event.value, topic_name=producer.topic_for(event.kind),
                                 key=event.key,
                                 headers=[] if event.transaction is None else
                                 event_headers(event.transaction))
            label = event.bad.value if event.bad else event.kind.value
            counts[label] = counts.get(label, 0) + 1
        try:
            report = producer.flush(60.0)
        except PublishError as error:
            raise CommandError(str(error)) from None
        elapsed = time.monotonic() - started
        summary = {"seed": seed, "published": count, "delivered": report.delivered,
                   "by_kind": counts, "seconds": round(elapsed, 3),
                   "events_per_second": round(count / elapsed, 1) if elapsed else None}
        if options["json"]:
            self.stdout.write(json.dumps(summary, sort_keys=True))
        else:
            self.stdout.write(" ".join(f"{name}={value}" for name, value in summary.items()))
