"""Inbound webhooks (mounted at ``/hooks/``): providers and participants' email links.

Twilio posts to ``twilio/sms/`` (replies), ``twilio/status/<uuid>/`` (message and call
status) and ``twilio/voice/<uuid>/gather/`` (keypresses); paging carriers post WCTP to
``wctp/``; notice emails link to ``email/<token>/``.
"""

from django.urls import path

from events import hooks

app_name = "hooks"

urlpatterns = [
    path("twilio/sms/", hooks.twilio_sms, name="twilio_sms"),
    path("twilio/status/<uuid:notification_uuid>/", hooks.twilio_status, name="twilio_status"),
    path(
        "twilio/voice/<uuid:notification_uuid>/gather/",
        hooks.twilio_gather,
        name="twilio_gather",
    ),
    path("wctp/", hooks.wctp_inbound, name="wctp"),
    path("email/<str:token>/", hooks.email_link, name="email_link"),
]
