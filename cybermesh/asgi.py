"""ASGI entry point: HTTP (admin, REST API) and the console's WebSocket feeds.

HTTP goes to Django unchanged. WebSocket connections get the Django session user
(``AuthMiddlewareStack``) and must come from an allowed host (``ALLOWED_HOSTS``, checked on
the ``Origin`` header, so another site cannot open a feed with a visitor's cookie).
"""

import os

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cybermesh.settings")
django_asgi_app = get_asgi_application()

from apps.console.routing import websocket_urlpatterns  # noqa: E402  (needs Django set up)

application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(
        URLRouter(websocket_urlpatterns))),
})
