from django.apps import AppConfig


class CyberMeshConfig(AppConfig):
    """Project-level app: registers the configuration checks that guard start-up."""

    name = "cybermesh"
    verbose_name = "CyberMesh"

    def ready(self) -> None:
        from cybermesh import checks  # noqa: F401  (registers the checks)

        # Configure the Celery app before any task is enqueued from this process.
        from cybermesh.celery import app  # noqa: F401
