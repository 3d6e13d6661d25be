"""API metrics, and the Prometheus ``/metrics`` page of the whole process.

The page renders the default ``prometheus_client`` registry, i.e. every metric defined in the
process (ledger commits, database retries, API latencies, ...). It is open to loopback and the
networks in ``settings.METRICS_ALLOWED_NETWORKS`` (a scraper has no login), and otherwise to
users holding ``api.read_metrics``.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

from apps.api.networks import address_in
from apps.api.roles import Capability

REQUEST_SECONDS = Histogram(
    "cybermesh_api_request_duration_seconds",
    "Wall time of API requests, by endpoint (route template), method and status.",
    ["endpoint", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
WRITES = Counter(
    "cybermesh_api_writes",
    "API write requests by action and outcome.",
    ["action", "outcome"],
)
DEFAULT_ALLOWED_NETWORKS = ("127.0.0.0/8", "::1/128")


def _address_allowed(address: str) -> bool:
    return address_in(address, getattr(settings, "METRICS_ALLOWED_NETWORKS",
                                       DEFAULT_ALLOWED_NETWORKS))


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: the Prometheus text exposition of this process."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    user = getattr(request, "user", None)
    allowed = _address_allowed(request.META.get("REMOTE_ADDR", "")) or bool(
        user is not None and user.is_authenticated
        and user.has_perm(Capability.READ_METRICS.permission))
    if not allowed:
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
