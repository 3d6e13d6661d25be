from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The SOC analyst console: triage cases, dashboards and the live commit feed (admin)."""

    name = "apps.console"
    label = "console"
    verbose_name = "Analyst console"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.console import checks  # noqa: F401  (registers the console's system checks)
