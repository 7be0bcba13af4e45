"""REST endpoints of the events app; registered on the project router in dr_platform.urls."""

from rest_framework.routers import BaseRouter

from events.api import views


def register(router: BaseRouter) -> None:
    """Register this app's viewsets on the project's API router."""
    router.register("events", views.EventViewSet, basename="event")
    router.register("participations", views.ParticipationViewSet, basename="participation")
