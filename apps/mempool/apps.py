from django.apps import AppConfig


class MempoolConfig(AppConfig):
    name = "apps.mempool"
    label = "mempool"
    verbose_name = "Mempool (admitted, not yet committed transactions)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.mempool import checks  # noqa: F401 -- registers the system checks
