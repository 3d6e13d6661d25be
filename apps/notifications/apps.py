from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "apps.notifications"
    label = "notifications"
    verbose_name = "Notifications (outbox drained to Kafka control.* topics)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The periodic sweep is part of this app's contract (the on-commit trigger is only a
        # fast path), so it is registered here rather than left for each deployment to add.
        # An entry of the same name in CELERY_BEAT_SCHEDULE wins.
        from apps.notifications.tasks import beat_schedule
        from cybermesh.celery import app as celery_app

        schedule = dict(beat_schedule())
        schedule.update(celery_app.conf.beat_schedule or {})
        celery_app.conf.beat_schedule = schedule
