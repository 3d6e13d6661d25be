"""Loading the genesis file named by ``CLUSTER_TOPOLOGY`` (the I/O half of protocol.genesis)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from cybermesh.protocol.genesis import MAX_GENESIS_BYTES, Genesis, GenesisError, parse_genesis


def load_genesis(path: str | Path) -> Genesis:
    """Read and validate a genesis file; raise GenesisError with one line per problem."""
    file_path = Path(path)
    try:
        with file_path.open("rb") as handle:
            data = handle.read(MAX_GENESIS_BYTES + 1)
    except FileNotFoundError:
        raise GenesisError([f"genesis file {file_path} does not exist"]) from None
    except OSError as error:
        raise GenesisError([f"genesis file {file_path} cannot be read: {error.strerror}"]
                           ) from None
    try:
        return parse_genesis(data)
    except GenesisError as error:
        raise GenesisError([f"{file_path}: {problem}" for problem in error.problems]) from None


@lru_cache(maxsize=4)
def configured_genesis(path: str) -> Genesis:
    """The genesis of this node, loaded once per process."""
    return load_genesis(path)
