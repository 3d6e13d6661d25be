from django.apps import AppConfig


class ValidatorsConfig(AppConfig):
    name = "apps.validators"
    label = "validators"
    verbose_name = "Validators"
    default_auto_field = "django.db.models.BigAutoField"
