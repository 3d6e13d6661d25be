"""System checks for the console's settings (``manage.py check``; ``--deploy`` adds the key)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register

from apps.console.config import console_config
from apps.console.signing import SignerUnavailable, configured_signer


@register("console")
def check_console_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return [Error(problem, id="console.E001") for problem in console_config().problems()]


@register("console", deploy=True)
def check_console_signer(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """In production the console should be able to sign (else confirming a case cannot
    quarantine anything); an unusable key file is an error in every mode it is set."""
    config = console_config()
    if not config.signing_key_path:
        return [Warning("CONSOLE_SIGNING_KEY_PATH is not set: analysts cannot quarantine, "
                        "release or change policy from the console", id="console.W001")]
    try:
        configured_signer()
    except SignerUnavailable as error:
        return [Error(f"console signer: {error}", id="console.E002")]
    return []
