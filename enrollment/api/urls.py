"""REST endpoints of the enrollment app; registered on the project router in dr_platform.urls."""

from rest_framework.routers import BaseRouter

from enrollment.api import views


def register(router: BaseRouter) -> None:
    """Register this app's viewsets on the project's API router."""
    router.register("programs", views.ProgramViewSet, basename="program")
    router.register("sites", views.SiteViewSet, basename="site")
    router.register("enrollments", views.EnrollmentViewSet, basename="enrollment")
