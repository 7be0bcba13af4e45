"""Manager console pages of meter data (mounted under /console/, namespace "console")."""

from django.urls import path

from settlements import views

urlpatterns = [
    path("meterdata/", views.import_list, name="meterdata_imports"),
    path("meterdata/<int:import_id>/", views.import_detail, name="meterdata_import"),
    path(
        "meterdata/<int:import_id>/progress.json",
        views.import_progress,
        name="meterdata_import_progress",
    ),
    path(
        "meterdata/<int:import_id>/errors.csv",
        views.import_error_report,
        name="meterdata_import_errors",
    ),
    path("meterdata/meters/", views.console_meter_list, name="meterdata_meters"),
    path(
        "meterdata/meters/<int:meter_id>/quality/",
        views.console_meter_quality,
        name="meterdata_meter_quality",
    ),
]
