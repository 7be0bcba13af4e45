"""Participant portal pages of the events app (mounted under /portal/, namespace "portal")."""

from django.urls import path

from events import portal_views

EVENTS = "o/<int:organization_id>/events/"

urlpatterns = [
    path(EVENTS, portal_views.events, name="events"),
    path(EVENTS + "<int:event_id>/", portal_views.event_detail, name="event_detail"),
    path(
        EVENTS + "participations/<int:participation_id>/acknowledge/",
        portal_views.participation_acknowledge,
        name="participation_acknowledge",
    ),
    path(
        EVENTS + "participations/<int:participation_id>/opt-out/",
        portal_views.participation_opt_out,
        name="participation_opt_out",
    ),
    path(EVENTS + "unavailability/", portal_views.unavailability, name="unavailability"),
]
