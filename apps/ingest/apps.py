from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "apps.ingest"
    label = "ingest"
    verbose_name = "Ingest (Kafka ai.* topics into the mempool, DLQ)"
    default_auto_field = "django.db.models.BigAutoField"
