from django.db import models


class Outcome(models.TextChoices):
    """How the audited action ended."""

    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"
    DENIED = "denied", "Denied"
