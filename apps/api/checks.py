"""System checks for the API's settings (``manage.py check``, and at startup)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from apps.api.networks import parse_networks


@register("api")
def check_client_certificates(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The mutual-TLS settings parse: proxies are networks, clients map subjects to names."""
    found: list[CheckMessage] = []
    proxies = getattr(settings, "API_MTLS_TRUSTED_PROXIES", []) or []
    try:
        parse_networks(tuple(proxies))
    except (TypeError, ValueError) as error:
        found.append(Error(f"API_MTLS_TRUSTED_PROXIES: {error}", id="api.E001"))
    clients = getattr(settings, "API_MTLS_CLIENTS", {}) or {}
    if not isinstance(clients, dict) or not all(
            isinstance(subject, str) and isinstance(username, str) and subject and username
            for subject, username in clients.items()):
        found.append(Error("API_MTLS_CLIENTS must map certificate subjects to usernames "
                           '(JSON, e.g. {"CN=grafana,O=SOC": "grafana"})', id="api.E002"))
    return found
