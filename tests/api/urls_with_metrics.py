"""The project's URLs plus /metrics (until cybermesh/urls.py routes it)."""

from django.urls import path

from apps.api.metrics import metrics_view
from cybermesh.urls import urlpatterns as project_urlpatterns

urlpatterns = [*project_urlpatterns, path("metrics", metrics_view, name="metrics")]
