"""Locate the public test vectors: tests/vectors in the repository (a verbatim copy of the
team's shared/vectors, checked by SHA256SUMS), or $CYBERMESH_VECTORS_DIR."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


def vectors_dir() -> Path:
    override = os.environ.get("CYBERMESH_VECTORS_DIR")
    candidates = [Path(override)] if override else []
    candidates += [REPO_ROOT / "tests" / "vectors", REPO_ROOT.parent / "shared" / "vectors"]
    for candidate in candidates:
        if (candidate / "SHA256SUMS").is_file():
            return candidate
    pytest.fail("test vectors not found; looked in " + ", ".join(map(str, candidates))
                + " (set CYBERMESH_VECTORS_DIR)")


def load_vectors(name: str) -> object:
    return json.loads((vectors_dir() / name).read_text())
