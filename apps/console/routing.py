"""WebSocket routes of the console (mounted by ``cybermesh/asgi.py``)."""

from django.urls import path

from apps.console.consumers import CommitFeedConsumer

websocket_urlpatterns = [
    path("ws/console/commits/", CommitFeedConsumer.as_asgi(), name="console-commits"),
]
