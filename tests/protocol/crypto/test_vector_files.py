"""The public vector files are the published ones, byte for byte (shared/vectors/SHA256SUMS)."""

from __future__ import annotations

import hashlib

import pytest
from crypto_vectors import vectors_dir

pytestmark = pytest.mark.unit

EXPECTED_FILES = {
    "cctv_ed25519vectors.json",
    "rfc8032_ed25519.json",
    "wycheproof_aes_gcm_test.json",
    "wycheproof_ed25519_test.json",
}


def test_every_vector_file_matches_its_recorded_sha256() -> None:
    directory = vectors_dir()
    recorded: dict[str, str] = {}
    for line in (directory / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        recorded[name.lstrip("*")] = digest
    assert set(recorded) == EXPECTED_FILES
    for name, digest in recorded.items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == digest, name
