"""TOTP against the RFC test vectors, and the refusals that keep a code single-use."""

from __future__ import annotations

import pytest

from apps.console import totp

pytestmark = pytest.mark.unit

RFC_SECRET = b"12345678901234567890"


@pytest.mark.parametrize(("counter", "code"), [
    (0, "755224"), (1, "287082"), (2, "359152"), (3, "969429"), (4, "338314"),
    (5, "254676"), (6, "287922"), (7, "162583"), (8, "399871"), (9, "520489")])
def test_hotp_matches_rfc_4226_appendix_d(counter: int, code: str) -> None:
    assert totp.hotp(RFC_SECRET, counter) == code


@pytest.mark.parametrize(("unix_seconds", "code"), [
    (59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"),
    (1234567890, "89005924"), (2000000000, "69279037"), (20000000000, "65353130")])
def test_totp_matches_rfc_6238_appendix_b_sha1(unix_seconds: int, code: str) -> None:
    assert totp.totp(RFC_SECRET, unix_seconds, digits=8) == code


def test_a_code_is_accepted_in_its_window_and_only_after_the_last_used_step() -> None:
    now = 1_700_000_000
    code = totp.totp(RFC_SECRET, now)
    counter = totp.counter_at(now)

    assert totp.match(RFC_SECRET, code, now) == counter
    assert totp.match(RFC_SECRET, code, now + 30) == counter  # one step late
    assert totp.match(RFC_SECRET, code, now + 90) is None  # too late
    assert totp.match(RFC_SECRET, code, now, after_counter=counter) is None  # replay
    assert totp.match(RFC_SECRET, "12345", now) is None
    assert totp.match(RFC_SECRET, "abcdef", now) is None


def test_provisioning_uri_names_the_account_and_the_secret() -> None:
    uri = totp.provisioning_uri(RFC_SECRET, account="alice", issuer="CyberMesh")

    assert uri.startswith("otpauth://totp/CyberMesh%3Aalice?")
    assert f"secret={totp.base32(RFC_SECRET)}" in uri and "period=30" in uri
