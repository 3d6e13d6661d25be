from django.urls import path, re_path

from apps.api import case_views, ledger_views, policy_views, state_views, submit_views, views

app_name = "api"
urlpatterns = [
    path("health/", views.HealthView.as_view(), name="health"),
    path("ready/", views.ReadyView.as_view(), name="ready"),
    path("status/", views.StatusView.as_view(), name="status"),
    path("validators/", ledger_views.ValidatorListView.as_view(), name="validator-list"),
    path("blocks/", ledger_views.BlockListView.as_view(), name="block-list"),
    path("blocks/<str:block_id>/", ledger_views.BlockDetailView.as_view(), name="block-detail"),
    path("transactions/", ledger_views.TransactionListView.as_view(), name="transaction-list"),
    path("transactions/<str:tx_id>/", ledger_views.TransactionDetailView.as_view(),
         name="transaction-detail"),
    path("evidence/", ledger_views.EvidenceListView.as_view(), name="evidence-list"),
    path("evidence/<str:evidence_id>/", ledger_views.EvidenceDetailView.as_view(),
         name="evidence-detail"),
    path("submissions/", submit_views.SubmissionView.as_view(), name="submission-create"),
    path("submissions/<str:tx_id>/", submit_views.SubmissionStatusView.as_view(),
         name="submission-detail"),
    path("cases/", case_views.CaseListView.as_view(), name="case-list"),
    path("cases/<str:case_id>/", case_views.CaseView.as_view(), name="case-detail"),
    path("cases/<str:case_id>/triage/", case_views.TriageView.as_view(), name="case-triage"),
    path("cases/<str:case_id>/confirm/", case_views.ConfirmView.as_view(), name="case-confirm"),
    path("cases/<str:case_id>/dismiss/", case_views.DismissView.as_view(), name="case-dismiss"),
    path("cases/<str:case_id>/reopen/", case_views.ReopenView.as_view(), name="case-reopen"),
    path("cases/<str:case_id>/assign/", case_views.AssignView.as_view(), name="case-assign"),
    path("cases/<str:case_id>/notes/", case_views.NoteView.as_view(), name="case-notes"),
    path("policy/", policy_views.PolicyListView.as_view(), name="policy-list"),
    path("policy/decision/", policy_views.PolicyDecisionView.as_view(), name="policy-decision"),
    path("state/proof/", state_views.StateProofView.as_view(), name="state-proof"),
    # An entity value may hold a "/" (a CIDR), so the value is everything up to the last part.
    re_path(r"^entities/(?P<kind>[^/]+)/(?P<value>.*)/history/\Z",
            state_views.EntityHistoryView.as_view(), name="entity-history"),
    re_path(r"^entities/(?P<kind>[^/]+)/(?P<value>.+)/\Z", state_views.EntityView.as_view(),
            name="entity-detail"),
    re_path(r"^[\s\S]*\Z", views.UnknownEndpointView.as_view(), name="unknown"),
]
