from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "apps.keys"
    label = "keys"
    verbose_name = "Key files and payloads sealed at rest"

    def ready(self) -> None:
        from apps.keys import checks  # noqa: F401 -- registers the system checks
