"""``manage.py dlq list|show|redrive``: inspect and re-drive dead-lettered events.

    manage.py dlq list [--reason R] [--node N] [--topic ai.anomalies.v1] [--limit 100] [--json]
    manage.py dlq show TOPIC:PARTITION:OFFSET [--json]
    manage.py dlq redrive (--ref T:P:O ... | --reason R | --retryable) [--node N]
                          [--topic T] [--limit N] [--dry-run] [--json]

``list`` prints one line per dead letter (reference, reason, detail, tx id, source, node).
``show`` prints every header and what the value decodes to (without trusting it: the
signature is not checked, a value that does not decode is shown as hex). ``redrive`` publishes
the selected dead letters back to their source topics; the validators admit them again (the
mempool de-duplicates). Selection is required for ``redrive``, so nothing is re-driven by
accident; ``--dry-run`` prints what would go.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.ingest.dlq import DeadLetter, dlq_topics_for, read_dead_letters, redrive
from cybermesh.kafka_config import KafkaConfigError, ingest_topics, producer_config
from cybermesh.protocol.txs import TxRejected, decode_transaction

DEFAULT_LIMIT = 100
MAX_LIMIT = 1_000_000


def _parse_ref(ref: str) -> tuple[str, int, int]:
    topic, _, rest = ref.rpartition(":")
    topic, _, partition = topic.rpartition(":")
    try:
        return topic, int(partition), int(rest)
    except ValueError:
        raise CommandError(f"{ref[:100]!r} is not TOPIC:PARTITION:OFFSET") from None


def describe_value(value: bytes) -> dict[str, Any]:
    """What a dead letter's value claims to be (not verified)."""
    try:
        transaction = decode_transaction(value, verify=False)
    except TxRejected as error:
        return {"decodes": False, "error": str(error)[:300], "size_bytes": len(value),
                "hex_prefix": value[:64].hex()}
    return {"decodes": True, "kind": transaction.kind.value, "chain_id": transaction.chain_id,
            "producer_id": transaction.producer_id, "nonce": transaction.nonce,
            "created_at_ms": transaction.created_at_ms, "tx_id": transaction.tx_id.hex(),
            "size_bytes": len(value)}


class Command(BaseCommand):
    help = "List, show and re-drive dead-lettered Kafka events."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        for name in ("list", "redrive"):
            action = sub.add_parser(name)
            action.add_argument("--reason", default=None, help="only this dlq-reason")
            action.add_argument("--node", default=None, help="only dead-lettered by this node")
            action.add_argument("--topic", action="append", default=None,
                                help="source topic (repeatable; default the three ai.*)")
            action.add_argument("--limit", type=int, default=None)
            action.add_argument("--json", action="store_true")
            action.add_argument("--bootstrap-servers", default=None)
            action.add_argument("--timeout", type=float, default=10.0,
                                help="seconds to wait for the brokers")
        redrive_parser = sub.choices["redrive"]
        redrive_parser.add_argument("--ref", action="append", default=None,
                                    help="TOPIC:PARTITION:OFFSET of a dead letter (repeatable)")
        redrive_parser.add_argument("--retryable", action="store_true",
                                    help="every dead letter marked retryable (rate limits)")
        redrive_parser.add_argument("--dry-run", action="store_true")
        show = sub.add_parser("show")
        show.add_argument("ref", help="TOPIC:PARTITION:OFFSET")
        show.add_argument("--json", action="store_true")
        show.add_argument("--bootstrap-servers", default=None)
        show.add_argument("--timeout", type=float, default=10.0)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "show":
                self._show(options)
            elif options["action"] == "list":
                self._list(options)
            else:
                self._redrive(options)
        except KafkaConfigError as error:
            raise CommandError(str(error)) from None

    def _write(self, options: dict[str, Any], document: Any, text: str) -> None:
        self.stdout.write(json.dumps(document, sort_keys=True) if options["json"] else text)

    def _select(self, options: dict[str, Any]) -> list[DeadLetter]:
        limit = options["limit"] if options["limit"] is not None else (
            DEFAULT_LIMIT if options["action"] == "list" else MAX_LIMIT)
        if not 0 < limit <= MAX_LIMIT:
            raise CommandError(f"--limit must be 1..{MAX_LIMIT}")
        refs = {_parse_ref(ref) for ref in options.get("ref") or []}
        checks: list[Callable[[DeadLetter], bool]] = []
        if options["reason"]:
            checks.append(lambda letter: letter.reason == options["reason"])
        if options["node"]:
            checks.append(lambda letter: letter.node_id == options["node"])
        if options.get("retryable"):
            checks.append(lambda letter: letter.retryable)
        if refs:
            checks.append(lambda letter: (letter.topic, letter.partition, letter.offset) in refs)
        topics = options["topic"] or ingest_topics()
        return list(read_dead_letters(
            dlq_topics_for(topics), bootstrap_servers=options["bootstrap_servers"],
            limit=limit, timeout_s=options["timeout"],
            predicate=lambda letter: all(check(letter) for check in checks)))

    def _list(self, options: dict[str, Any]) -> None:
        letters = self._select(options)
        if options["json"]:
            self.stdout.write(json.dumps([letter.summary() for letter in letters],
                                         sort_keys=True))
            return
        for letter in letters:
            summary = letter.summary()
            self.stdout.write(f"{summary['ref']}  {summary['reason']:<18} "
                              f"node={summary['node_id']} source={summary['source']} "
                              f"tx={str(summary['tx_id'] or '-')[:16]}  {summary['detail']}")
        self.stdout.write(f"{len(letters)} dead letter(s)")

    def _show(self, options: dict[str, Any]) -> None:
        topic, partition, offset = _parse_ref(options["ref"])
        found = list(read_dead_letters(
            [topic], bootstrap_servers=options["bootstrap_servers"], limit=1,
            timeout_s=options["timeout"],
            predicate=lambda letter: (letter.partition, letter.offset) == (partition, offset)))
        if not found:
            raise CommandError(f"no dead letter at {options['ref']}")
        letter = found[0]
        document = {**letter.summary(), "key": (letter.key or b"").decode("utf-8", "replace"),
                    "headers": letter.headers, "value": describe_value(letter.value)}
        self._write(options, document, json.dumps(document, indent=2, sort_keys=True))

    def _redrive(self, options: dict[str, Any]) -> None:
        if not (options["ref"] or options["reason"] or options["retryable"]):
            raise CommandError("redrive needs a selection: --ref, --reason or --retryable")
        letters = self._select(options)
        if options["dry_run"]:
            self._write(options, {"would_redrive": [letter.ref for letter in letters]},
                        "\n".join([*(letter.ref for letter in letters),
                                   f"{len(letters)} dead letter(s) would be re-driven"]))
            return
        producer = Producer(producer_config(bootstrap_servers=options["bootstrap_servers"]))
        acknowledged, failed = redrive(letters, producer=producer)
        if failed:
            raise CommandError(f"{failed} dead letter(s) not re-driven; {acknowledged} were")
        self._write(options, {"redriven": acknowledged},
                    f"{acknowledged} dead letter(s) re-driven")
