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
