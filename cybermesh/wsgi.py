"""WSGI entry point (the admin and API also run under ASGI; see asgi.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cybermesh.settings")
application = get_wsgi_application()
