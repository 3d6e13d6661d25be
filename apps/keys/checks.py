"""Start-up checks of the at-rest keys (Django system checks).

In every mode: key files named in ``AT_REST_KEYS`` must load (present, 0600, well formed, no
key id claimed by two different keys). In production: ``AT_REST_KEYS`` must be set; the
development fallback (a key created under ``DATA_DIR``) is for laptops only.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from apps.keys.keyring import configured_keyring
from cybermesh.keyfiles import KeyFileError


@register("cybermesh")
def check_at_rest_keys(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not getattr(settings, "AT_REST_KEYS", None):
        if getattr(settings, "PRODUCTION", False):
            return [Error("AT_REST_KEYS is not set: production needs the at-rest key file(s), "
                          "current first (see docs/at-rest-encryption.md)", id="keys.E001")]
        return []  # development: a key is created under DATA_DIR on first use
    try:
        configured_keyring()
    except KeyFileError as error:
        return [Error(f"AT_REST_KEYS: {error}", id="keys.E002")]
    return []
