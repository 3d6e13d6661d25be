"""Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP, HMAC-SHA1, 30 s, 6 digits) for
the admin's second factor, as authenticator apps implement them. Pure functions: the time comes
in as an argument.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from urllib.parse import quote, urlencode

STEP_SECONDS = 30
DIGITS = 6
SECRET_BYTES = 20  # 160 bits, RFC 4226's recommendation for HMAC-SHA1
# Codes from one step before or after are accepted: clocks drift and people type slowly.
WINDOW = 1


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def base32(secret: bytes) -> str:
    """The secret as authenticator apps take it (base32, no padding)."""
    return base64.b32encode(secret).decode().rstrip("=")


def hotp(secret: bytes, counter: int, *, digits: int = DIGITS) -> str:
    """RFC 4226 section 5.3: dynamic truncation of HMAC-SHA1(secret, counter)."""
    digest = hmac.new(secret, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10 ** digits).zfill(digits)


def counter_at(unix_seconds: int) -> int:
    return unix_seconds // STEP_SECONDS


def totp(secret: bytes, unix_seconds: int, *, digits: int = DIGITS) -> str:
    return hotp(secret, counter_at(unix_seconds), digits=digits)


def match(secret: bytes, code: str, unix_seconds: int, *, after_counter: int = -1,
          digits: int = DIGITS) -> int | None:
    """The counter ``code`` is valid for (within WINDOW steps of now and strictly after
    ``after_counter``, so a code is accepted once), or None. Compared in constant time."""
    text = code.strip().replace(" ", "")
    if len(text) != digits or not text.isdigit():
        return None
    now = counter_at(unix_seconds)
    found = None
    for counter in range(now - WINDOW, now + WINDOW + 1):
        if counter > after_counter and hmac.compare_digest(hotp(secret, counter,
                                                                digits=digits), text):
            found = counter
    return found


def provisioning_uri(secret: bytes, *, account: str, issuer: str) -> str:
    """``otpauth://totp/...`` (Key Uri Format) for authenticator apps."""
    label = quote(f"{issuer}:{account}")
    query = urlencode({"secret": base32(secret), "issuer": issuer, "algorithm": "SHA1",
                       "digits": DIGITS, "period": STEP_SECONDS})
    return f"otpauth://totp/{label}?{query}"
