"""Statement, settlement run, billing export and dispute pages: ``portal_urlpatterns`` under
/portal/ (namespace "portal") and ``console_urlpatterns`` under /console/ (namespace
"console")."""

from django.urls import path

from settlements import statement_views as views

PORTAL = "o/<int:organization_id>/statements/"

portal_urlpatterns = [
    path(PORTAL, views.portal_statement_list, name="statement_list"),
    path(PORTAL + "<int:run_id>/", views.portal_statement, name="statement"),
    path(PORTAL + "<int:run_id>/statement.csv", views.portal_statement_csv, name="statement_csv"),
    path(PORTAL + "<int:run_id>/statement.pdf", views.portal_statement_pdf, name="statement_pdf"),
    path(
        PORTAL + "<int:run_id>/lines/<int:line_id>/dispute/",
        views.portal_dispute_raise,
        name="dispute_raise",
    ),
    path(
        "o/<int:organization_id>/disputes/<int:dispute_id>/comment/",
        views.portal_dispute_comment,
        name="dispute_comment",
    ),
]

console_urlpatterns = [
    path("settlements/", views.console_run_list, name="settlement_runs"),
    path("settlements/runs/new/", views.console_run_create, name="settlement_run_create"),
    path("settlements/runs/<int:run_id>/", views.console_run, name="settlement_run"),
    path(
        "settlements/runs/<int:run_id>/action/",
        views.console_run_action,
        name="settlement_run_action",
    ),
    path(
        "settlements/runs/<int:run_id>/progress.json",
        views.console_run_progress,
        name="settlement_run_progress",
    ),
    path("settlements/exports/", views.console_export_list, name="billing_exports"),
    path(
        "settlements/exports/<int:export_id>/download/",
        views.console_export_download,
        name="billing_export_download",
    ),
    path("settlements/disputes/", views.console_dispute_queue, name="dispute_queue"),
    path("settlements/disputes/<int:dispute_id>/", views.console_dispute, name="dispute"),
]
