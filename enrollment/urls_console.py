"""Manager console pages of the enrollment app (mounted under /console/, namespace "console")."""

from django.urls import path

from enrollment import console_views

urlpatterns = [
    path("enrollments/", console_views.enrollment_list, name="enrollment_list"),
    path("enrollments/export.csv", console_views.enrollment_export, name="enrollment_export"),
    path("enrollments/review/", console_views.review_queue, name="review_queue"),
    path(
        "enrollments/<int:enrollment_id>/",
        console_views.enrollment_detail,
        name="enrollment_detail",
    ),
    path(
        "enrollments/<int:enrollment_id>/decision/",
        console_views.enrollment_decide,
        name="enrollment_decide",
    ),
    path(
        "enrollments/<int:enrollment_id>/firm-level/",
        console_views.enrollment_firm_level,
        name="enrollment_firm_level",
    ),
    path("capacity/", console_views.capacity_summary, name="capacity_summary"),
]
