"""drf-spectacular extensions: how the API's own authentication shows in the OpenAPI document.

Imported by :class:`apps.api.apps.ApiConfig.ready` (spectacular finds extensions by subclass
registration, so the import is what registers them).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "apps.api.tokens.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "cm_<prefix>_<secret>",
                "description": "An API token (manage.py api_token create)."}


class ClientCertificateScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "apps.api.client_certs.ClientCertificateAuthentication"
    name = "clientCertificate"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        # OpenAPI 3.0 has no mutualTLS scheme (3.1 has); the header is what the API reads.
        return {"type": "apiKey", "in": "header", "name": "X-SSL-Client-S-DN",
                "description": "Optional mutual TLS: set by the TLS-terminating proxy from a "
                               "client certificate it verified, and believed only from the "
                               "proxies in API_MTLS_TRUSTED_PROXIES; clients present the "
                               "certificate, never this header (docs/api.md)."}
