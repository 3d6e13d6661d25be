"""CyberMesh control plane (Django project package)."""

from cybermesh.celery import app as celery_app

__all__ = ["celery_app"]
