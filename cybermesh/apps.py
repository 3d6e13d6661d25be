from django.apps import AppConfig


class CyberMeshConfig(AppConfig):
    """Project-level app: registers the configuration checks that guard start-up."""

    name = "cybermesh"
    verbose_name = "CyberMesh"

    def ready(self) -> None:
        from cybermesh import checks  # noqa: F401  (registers the checks)
