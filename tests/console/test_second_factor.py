"""Two-factor login to the admin: code required for enrolled users, single use, enrollment,
and CONSOLE_REQUIRE_2FA keeping unenrolled staff out until they enroll."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.console import totp
from apps.console.models import TotpDevice
from apps.console.second_factor import SEAL_PURPOSE, device_secret
from apps.keys.models import SealedPayload
from apps.keys.services import seal_payload
from tests.console.conftest import PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SECRET = b"0123456789abcdefghij"
QUEUE = "admin:console_case_changelist"


def log_in(client: Client, user: User, code: str = "") -> Any:
    return client.post(reverse("admin:login"), {"username": user.get_username(),
                                                "password": PASSWORD, "otp_code": code,
                                                "next": reverse(QUEUE)})


@pytest.fixture
def enrolled(analyst: User) -> User:
    sealed = seal_payload(purpose=SEAL_PURPOSE, plaintext=SECRET, context=f"user:{analyst.pk}")
    TotpDevice.objects.create(user=analyst, sealed_secret=sealed, confirmed=True,
                              created_at=timezone.now(), confirmed_at=timezone.now())
    return analyst


def test_enrolled_user_needs_a_current_code_and_a_code_works_once(enrolled: User) -> None:
    code = totp.totp(SECRET, int(time.time()))

    without = log_in(Client(), enrolled)
    wrong = log_in(Client(), enrolled, "000000" if code != "000000" else "111111")
    client = Client()
    good = log_in(client, enrolled, code)
    replay = log_in(Client(), enrolled, code)

    assert without.status_code == 200 and b"authenticator" in without.content
    assert wrong.status_code == 200
    assert good.status_code == 302 and client.get(reverse(QUEUE)).status_code == 200
    assert replay.status_code == 200  # refused: that time step was used
    assert AuditEntry.objects.filter(action="console.2fa.verify", outcome="failure").count() == 3


def test_a_session_without_the_second_factor_is_kept_out(enrolled: User) -> None:
    client = Client()
    client.force_login(enrolled)  # password only, e.g. a session from before enrollment

    assert client.get(reverse(QUEUE)).status_code == 302


def test_required_2fa_sends_unenrolled_staff_to_enroll(analyst: User, settings: Any) -> None:
    settings.CONSOLE_REQUIRE_2FA = True
    client = Client()
    assert log_in(client, analyst).status_code == 302  # password accepted...
    assert client.get(reverse(QUEUE)).status_code == 302  # ...but no admin page yet

    client.post(reverse("admin:console_2fa"), {"step": "start"})
    page = client.get(reverse("admin:console_2fa")).content.decode()
    device = TotpDevice.objects.get(user=analyst)
    secret = device_secret(device)
    assert totp.base32(secret) in page and not device.confirmed
    sealed = SealedPayload.objects.get(id=device.sealed_secret_id)
    assert secret not in bytes(sealed.ciphertext)  # sealed at rest, not stored as it is
    client.post(reverse("admin:console_2fa"), {"step": "confirm", "code": "not-a-code"})
    assert not TotpDevice.objects.get(user=analyst).confirmed
    confirmed = client.post(reverse("admin:console_2fa"), {
        "step": "confirm", "code": totp.totp(secret, int(time.time()))})

    assert confirmed.status_code == 302 and TotpDevice.objects.get(user=analyst).confirmed
    assert client.get(reverse(QUEUE)).status_code == 200
    assert AuditEntry.objects.filter(action="console.2fa.confirm", outcome="success").exists()


def test_a_secret_bound_to_another_user_is_refused(enrolled: User, second_analyst: User) -> None:
    """A device row pointed at someone else's sealed secret opens nothing (the seal names
    its owner), so no code can pass."""
    other = seal_payload(purpose=SEAL_PURPOSE, plaintext=SECRET,
                         context=f"user:{second_analyst.pk}")
    TotpDevice.objects.filter(user=enrolled).update(sealed_secret=other)

    refused = log_in(Client(), enrolled, totp.totp(SECRET, int(time.time())))

    assert refused.status_code == 200
