from django.apps import AppConfig


class StateConfig(AppConfig):
    name = "apps.state"
    label = "state"
    verbose_name = "Authenticated state"
    default_auto_field = "django.db.models.BigAutoField"
