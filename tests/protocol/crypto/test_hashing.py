from __future__ import annotations

import pytest

from cybermesh.protocol.crypto.hashing import ZERO_HASH32, as_hash32, sha256

pytestmark = pytest.mark.unit


def test_sha256_matches_the_fips_180_examples() -> None:
    assert sha256(b"abc").hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    assert sha256(b"").hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def test_as_hash32_accepts_32_bytes_and_refuses_other_shapes() -> None:
    assert as_hash32(ZERO_HASH32) == bytes(32)
    for bad in (bytes(31), bytes(33), bytearray(32), "00" * 16, None):
        with pytest.raises(ValueError, match="32-byte hash"):
            as_hash32(bad)
