"""Known answers: roots, stored batches and proofs pinned from the implementation as it was
before the apply fast path (commit 2033108), so any later speed-up is checked to write exactly
the same nodes, under exactly the same node keys, and to stale exactly the same ones.

The digests cover everything a backend persists: for every version, the root, each new node
(``NodeKey.encode()`` and canonical CBOR of ``node_to_wire``) and each stale node key; and the
canonical CBOR of proofs for present and absent keys. If one of these changes, databases
written before and after the change would disagree: that is a format change, not a speed-up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from cybermesh.protocol import codec
from cybermesh.protocol.merkle.nodestore import InMemoryNodeStore, NodeBatch, node_to_wire
from cybermesh.protocol.merkle.sparse import SparseMerkleTree

pytestmark = pytest.mark.unit

Updates = dict[bytes, bytes | None]


def key_of(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(8, "big")).digest()


def clustered(n: int, shared_bits: int) -> bytes:
    """Keys sharing their first ``shared_bits`` bits with ``key_of(0)``: deep chains."""
    base = int.from_bytes(key_of(0), "big")
    low_mask = (1 << (256 - shared_bits)) - 1
    tail = int.from_bytes(key_of(10**6 + n), "big")
    return ((base & ~low_mask) | (tail & low_mask)).to_bytes(32, "big")


def random_history() -> Iterator[Updates]:
    """Genesis of 1,000 keys, then updates, inserts and deletes mixed, then draining."""
    yield {key_of(i): i.to_bytes(4, "big") for i in range(1000)}
    yield ({key_of(i): b"updated" for i in range(0, 600, 2)}
           | dict.fromkeys((key_of(i) for i in range(1, 400, 4)), None)
           | {key_of(i): b"inserted" for i in range(1000, 1200)})
    yield {key_of(0): b"updated", key_of(1): None, key_of(5000): None}  # no-ops only
    yield dict.fromkeys((key_of(i) for i in range(3, 1200) if i % 7), None)  # collapses
    yield {key_of(i): None for i in range(1200)} | {key_of(7): b"last"}  # a one-leaf tree
    yield {key_of(7): None}  # the empty tree
    yield {key_of(i): bytes(i % 5) for i in range(40)}  # from empty again, empty values


def deep_history() -> Iterator[Updates]:
    """Keys sharing 0 to 255 bits: leaves at depth 256, long single-child chains."""
    keys = [clustered(n, shared) for n, shared in enumerate(
        (0, 1, 8, 30, 31, 64, 200, 254, 255, 255, 128, 129, 3))]
    yield {key: bytes([n]) for n, key in enumerate(keys)}
    yield {keys[8]: None, keys[3]: b"x", clustered(99, 250): b"new"}
    yield {keys[7]: None, keys[6]: None}
    yield dict.fromkeys(keys[:6]) | {keys[9]: b"kept"}
    yield {keys[12]: b"z", clustered(99, 250): None}


def small_history() -> Iterator[Updates]:
    yield {}
    yield {key_of(1): b"one"}
    yield {key_of(2): b"two"}
    yield {key_of(1): None}
    yield {key_of(2): b"two"}


def batch_digest(batch: NodeBatch) -> str:
    nodes = sorted([key.encode(), codec.encode(node_to_wire(node))] for key, node in batch.nodes)
    stale = sorted(key.encode() for key in batch.stale)
    assert len(nodes) == len(batch.nodes) and len(set(stale)) == len(stale)
    return hashlib.sha256(codec.encode(
        [batch.version, batch.root_hash, nodes, stale])).hexdigest()  # type: ignore[list-item]


def run(history: Iterator[Updates], probes: list[bytes]) -> list[tuple[str, str, str]]:
    """Per version: (root, batch digest, digest of the proofs of ``probes``)."""
    store = InMemoryNodeStore()
    tree = SparseMerkleTree(store)
    out = []
    for version, updates in enumerate(history):
        root, batch = tree.apply(version - 1 if version else None, updates, version)
        store.write_batch(batch)
        proofs = [[key, value, codec.encode(proof.to_wire())]
                  for key in probes for value, proof in [tree.get_with_proof(version, key)]]
        out.append((root.hex()[:16], batch_digest(batch)[:16],
                    hashlib.sha256(codec.encode(proofs)).hexdigest()[:16]))  # type: ignore[arg-type]
    return out


PROBES = [key_of(i) for i in (0, 1, 2, 3, 7, 999, 1000, 1199, 5000)]
DEEP_PROBES = [clustered(n, shared) for n, shared in
               ((0, 0), (6, 200), (8, 255), (9, 255), (99, 250), (12, 3), (77, 254))]

PINNED = {
    "random": (random_history, PROBES, [
        ('62bbcc0fa6308483', 'ee7432649b46d74d', 'cfc5fc6b49f6bcc5'),
        ('3c2759391ee02617', 'cabe93c8ad522c9b', 'dc7baa27758b4973'),
        ('3c2759391ee02617', 'b4de8e799c0b132c', 'dc7baa27758b4973'),
        ('5eb277f38beb0925', '85cb63cf29150d94', 'ba7f946afb338b47'),
        ('92411f9f3cdbb3f3', 'abaa077b5ef75ac5', '9650c5433b3af8ec'),
        ('f299791cddd3d666', 'b8bba2393707b61e', '17350d7c418ab8bc'),
        ('7fc99967d9e14c2d', 'c2b24e0a4e9f332f', '4897539b57ecd6e2'),
    ]),
    "deep": (deep_history, DEEP_PROBES, [
        ('475c86e8da31382d', '15f3a5c4f3d71994', '9ccd3fd165f75155'),
        ('4a6cdf076d55efef', '80f23b91207ffa87', '12d81bc2a852a523'),
        ('20f1ebeea7c5d3a5', 'bfd6d72d169a4933', '1b70c6d80f9b4b52'),
        ('2172a64b76e1bf70', 'cac5d2ab552c0bf0', '258612559be13e2f'),
        ('95cde5a6886e8fa3', '8a2b3df94f997e69', '2343192f62eaae25'),
    ]),
    "small": (small_history, PROBES, [
        ('f299791cddd3d666', '41f44e24fc203379', '17350d7c418ab8bc'),
        ('ef987675dd9226a1', '3d4e9e089b811586', '8c07f435e5ce2389'),
        ('eb54b6af65b53730', '1e2b2c87c72852e8', 'b77e54a6683d00a4'),
        ('c227e8a9d1f56e9b', 'bb25d5809ea4575c', '8d393de1bc783672'),
        ('c227e8a9d1f56e9b', 'cd3cb0e84a070c92', '8d393de1bc783672'),
    ]),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_roots_batches_and_proofs_match_the_pinned_known_answers(name: str) -> None:
    history, probes, expected = PINNED[name]
    assert run(history(), probes) == expected


if __name__ == "__main__":  # regenerate (only ever for a deliberate format change)
    for name, (history, probes, _) in sorted(PINNED.items()):
        print(name)
        for row in run(history(), probes):
            print(f"        {row!r},")
