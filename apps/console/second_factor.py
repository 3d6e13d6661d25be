"""Two-factor login for the admin: a TOTP code after the password.

* A staff user with a confirmed :class:`TotpDevice` must type a current code on the admin
  login form; a session that signed in without one (or before the device was confirmed) is
  not allowed into the admin until it signs in again with a code.
* With ``CONSOLE_REQUIRE_2FA`` every staff user needs a device: without one, the only page
  they can open is the enrollment page (``/admin/console/case/2fa/``), which shows the secret
  (base32 and an ``otpauth://`` URI to type into an authenticator app) and confirms the
  device with a first code.
* Codes are accepted once (compare-and-set on the device's last time step); enrolling,
  confirming, removing and every refused code are audited.

Installed on the default admin site by ``apps.console.admin`` (its login form and its
permission check), so nothing outside this app needs to change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone

from apps.audit.choices import Outcome
from apps.audit.services import record_audit
from apps.console import totp
from apps.console.config import console_config
from apps.console.errors import ConsoleError, ConsoleProblem
from apps.console.models import TotpDevice
from apps.keys.errors import SealedPayloadError
from apps.keys.models import SealedPayload
from apps.keys.services import open_payload, seal_payload
from cybermesh.db import run_serializable
from cybermesh.logging import get_logger

logger = get_logger(__name__)
SESSION_KEY = "console_2fa_verified"
ISSUER = "CyberMesh"
SEAL_PURPOSE = "console-totp"


def _seal_context(user_pk: Any) -> str:
    return f"user:{user_pk}"


def device_secret(device: TotpDevice) -> bytes:
    """The device's secret, opened with the at-rest keyring (purpose and owner checked)."""
    return open_payload(device.sealed_secret, purpose=SEAL_PURPOSE,
                        context=_seal_context(device.user_id))


def _now_s() -> int:
    return int(time.time())


def has_device(user: Any) -> bool:
    return TotpDevice.objects.filter(user_id=user.pk, confirmed=True).exists()


def needs_second_factor(user: Any) -> bool:
    """Whether this staff user may only use the admin in a session verified with a code."""
    return has_device(user) or console_config().require_2fa


def _audit(action: str, user: Any, outcome: str, **details: Any) -> None:
    record_audit(actor=f"user:{user.get_username()}", action=f"console.2fa.{action}",
                 target=f"user:{user.get_username()}", outcome=outcome, details=details)


def do_start_enrollment(*, acting_user: Any) -> TotpDevice:
    """A new (unconfirmed) secret for the user; refused while a confirmed device exists."""

    def run() -> TotpDevice:
        device = TotpDevice.objects.select_for_update().filter(user_id=acting_user.pk).first()
        if device is not None and device.confirmed:
            raise ConsoleError(ConsoleProblem.BAD_TRANSITION,
                               "a device is already confirmed; remove it first")
        sealed = seal_payload(purpose=SEAL_PURPOSE, plaintext=totp.new_secret(),
                              context=_seal_context(acting_user.pk))
        previous = device.sealed_secret_id if device is not None else None
        if device is None:
            device = TotpDevice(user=acting_user, created_at=timezone.now())
        device.sealed_secret, device.last_counter = sealed, -1
        device.created_at = timezone.now()
        device.save()
        if previous is not None:
            SealedPayload.objects.filter(id=previous).delete()
        _audit("enroll", acting_user, Outcome.SUCCESS)
        return device

    return run_serializable(run, operation="console.2fa.enroll")


def verify_code(user: Any, code: str, *, confirming: bool = False,
                now_s: Callable[[], int] = _now_s) -> bool:
    """Accept ``code`` for the user's device once (compare-and-set on the time step); with
    ``confirming``, for the unconfirmed device, which it confirms."""

    def run() -> bool:
        device = (TotpDevice.objects.select_for_update().select_related("sealed_secret")
                  .filter(user_id=user.pk, confirmed=not confirming).first())
        try:
            secret = None if device is None else device_secret(device)
        except SealedPayloadError as error:  # a lost or wrong at-rest key: no code can match
            logger.error("console.2fa.secret_unavailable", problem=error.problem.value)
            secret = None
        counter = None if device is None or secret is None else totp.match(
            secret, code, now_s(), after_counter=device.last_counter)
        if device is None or counter is None:
            _audit("confirm" if confirming else "verify", user, Outcome.FAILURE)
            return False
        changed = (TotpDevice.objects.filter(user_id=user.pk, last_counter__lt=counter)
                   .update(last_counter=counter, confirmed=True,
                           confirmed_at=device.confirmed_at or timezone.now()))
        _audit("confirm" if confirming else "verify", user,
               Outcome.SUCCESS if changed else Outcome.FAILURE)
        return changed == 1

    return run_serializable(run, operation="console.2fa.verify")


def do_remove_device(*, acting_user: Any, code: str) -> None:
    """Remove the user's device; needs a current code from it."""
    if not verify_code(acting_user, code):
        raise ConsoleError(ConsoleProblem.PERMISSION, "the code is not valid")

    def run() -> None:
        device = TotpDevice.objects.filter(user_id=acting_user.pk).first()
        if device is not None:
            sealed = device.sealed_secret_id
            device.delete()
            SealedPayload.objects.filter(id=sealed).delete()
        _audit("remove", acting_user, Outcome.SUCCESS)

    run_serializable(run, operation="console.2fa.remove")


class SecondFactorLoginForm(AdminAuthenticationForm):
    """The admin login form with a code field, required for users with a device."""

    otp_code = forms.CharField(label="Authenticator code", required=False, max_length=10,
                               widget=forms.TextInput(attrs={"autocomplete": "one-time-code",
                                                             "inputmode": "numeric"}),
                               help_text="Six digits from your authenticator app, if you "
                                         "have enrolled one")

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if not has_device(user):
            return
        code = self.cleaned_data.get("otp_code") or ""
        if not verify_code(user, code):
            raise forms.ValidationError("Enter a current code from your authenticator app.",
                                        code="otp_invalid")
        if self.request is not None:
            self.request.console_2fa_verified = True  # type: ignore[attr-defined]


@receiver(user_logged_in)
def _mark_verified(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    # After login() (which may rotate or flush the session), not before it.
    if request is not None and getattr(request, "console_2fa_verified", False):
        request.session[SESSION_KEY] = True


def session_verified(request: HttpRequest) -> bool:
    return bool(request.session.get(SESSION_KEY))


def admin_permission(original: Callable[[HttpRequest], bool]) -> Callable[[HttpRequest], bool]:
    """Wrap ``AdminSite.has_permission``: a user who needs a second factor gets into the admin
    only in a session verified with a code."""

    def has_permission(request: HttpRequest) -> bool:
        if not original(request):
            return False
        return session_verified(request) or not needs_second_factor(request.user)

    return has_permission
