"""Manager console pages of the events app (mounted under /console/, namespace "console")."""

from django.urls import path

from events import console_views

urlpatterns = [
    path("events/", console_views.event_list, name="event_list"),
    path("events/calendar/", console_views.event_calendar, name="event_calendar"),
    path("events/new/", console_views.event_create, name="event_create"),
    path("events/<int:event_id>/", console_views.event_detail, name="event_detail"),
    path("events/<int:event_id>/live.json", console_views.event_live_json, name="event_live"),
    path("events/<int:event_id>/schedule/", console_views.event_schedule, name="event_schedule"),
    path("events/<int:event_id>/modify/", console_views.event_modify, name="event_modify"),
    path("events/<int:event_id>/cancel/", console_views.event_cancel, name="event_cancel"),
    path("outbox/", console_views.outbox, name="outbox"),
    path("outbox/<int:message_id>/reply/", console_views.outbox_reply, name="outbox_reply"),
]
