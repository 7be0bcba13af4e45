"""Performance and baseline pages: ``portal_urlpatterns`` under /portal/ (namespace
"portal") and ``console_urlpatterns`` under /console/ (namespace "console")."""

from django.urls import path

from settlements import performance_views as views

PORTAL = "o/<int:organization_id>/performance/"

portal_urlpatterns = [
    path(PORTAL, views.portal_performance_list, name="performance_list"),
    path(PORTAL + "<int:participation_id>/", views.portal_performance, name="performance"),
]

console_urlpatterns = [
    path("performance/", views.console_event_list, name="performance_events"),
    path(
        "performance/events/<int:event_id>/",
        views.console_event_summary,
        name="performance_event",
    ),
    path(
        "performance/events/<int:event_id>/recompute/",
        views.console_event_recompute,
        name="performance_recompute",
    ),
    path(
        "performance/participations/<int:participation_id>/",
        views.console_performance,
        name="performance",
    ),
    path("performance/accuracy/", views.console_accuracy, name="performance_accuracy"),
    path(
        "performance/accuracy/enrollments/<int:enrollment_id>/",
        views.console_site_accuracy,
        name="performance_site_accuracy",
    ),
]
