"""Thin views for inbound webhooks: verify, hand to ``events.inbound``, answer.

Twilio requests must carry a valid ``X-Twilio-Signature`` computed over the public URL
(``SITE_URL`` + path and query, since behind a proxy the request's own host may differ)
and the posted parameters; anything else gets 403. Callbacks for an unknown notification
still answer 200, so Twilio stops retrying and learns nothing.

WCTP has no signature of its own: the endpoint acts only on our own random message ids
and registered pager ids; restrict it to the carrier's addresses at the proxy.

Email links show a confirmation page on GET and act only on POST: mail scanners and
link previews follow links, and must never acknowledge or opt out for anyone.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.template import engines
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from events import inbound
from events.notices import read_reply_token

TWIML = "text/xml"


def twilio_signature_valid(request: HttpRequest) -> bool:
    """Whether the request carries Twilio's signature for our public URL and its POST data.

    Always False without ``TWILIO_AUTH_TOKEN``: with no secret, nothing can be verified.
    """
    token = settings.TWILIO_AUTH_TOKEN
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        return False
    url = f"{settings.SITE_URL}{request.get_full_path()}"
    return RequestValidator(token).validate(url, request.POST, signature)


def _forbidden() -> HttpResponse:
    return HttpResponseForbidden("Invalid signature.", content_type="text/plain")


@csrf_exempt
@require_POST
def twilio_sms(request: HttpRequest) -> HttpResponse:
    """An SMS reply: answered with TwiML (a ``<Message>`` when there is something to say)."""
    if not twilio_signature_valid(request):
        return _forbidden()
    text = inbound.sms_reply_receive(
        sender=request.POST.get("From", ""),
        body=request.POST.get("Body", ""),
        raw=request.POST.dict(),
    )
    response = MessagingResponse()
    if text:
        response.message(text)
    return HttpResponse(str(response), content_type=TWIML)


@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest, notification_uuid: uuid.UUID) -> HttpResponse:
    """A message or call status callback: recorded (forward only); 200 whenever signed,
    even for an unknown notification, so Twilio stops retrying."""
    if not twilio_signature_valid(request):
        return _forbidden()
    inbound.twilio_status_receive(notification_uuid=notification_uuid, params=request.POST.dict())
    return HttpResponse(status=200)


@csrf_exempt
@require_POST
def twilio_gather(request: HttpRequest, notification_uuid: uuid.UUID) -> HttpResponse:
    """The digit pressed during a notice call, answered with TwiML."""
    if not twilio_signature_valid(request):
        return _forbidden()
    twiml = inbound.voice_digit_receive(
        notification_uuid=notification_uuid,
        digits=request.POST.get("Digits"),
        raw=request.POST.dict(),
    )
    return HttpResponse(twiml, content_type=TWIML)


@csrf_exempt
@require_POST
def wctp_inbound(request: HttpRequest) -> HttpResponse:
    """A WCTP status or pager reply, answered with a ``wctp-Confirmation``."""
    return HttpResponse(inbound.wctp_receive(request.body), content_type="text/xml")


_CONFIRM_PAGE = engines["django"].from_string(
    """{% extends "base.html" %}
{% block title %}{{ title }}{% endblock %}
{% block content %}
<h1>{{ title }}</h1>
{% if message %}<p>{{ message }}</p>{% endif %}
{% if participation and not done %}
  <p>{{ site }}: {{ event_kind }} event, {{ when }}. Committed: {{ committed_kw }} kW.</p>
  <form method="post">{% csrf_token %}
    <button type="submit">{{ button }}</button>
  </form>
{% endif %}
{% endblock %}
"""
)

_ACTION_WORDS = {
    "acknowledge": ("Acknowledge this event", "Acknowledge"),
    "opt_out": ("Opt out of this event", "Opt out"),
}


@require_http_methods(["GET", "POST"])
def email_link(request: HttpRequest, token: str) -> HttpResponse:
    """A signed acknowledge/opt-out link: GET confirms, POST acts. No login needed.

    A bad token answers 404; an expired link (event ended or cancelled, site removed)
    says so with 410.
    """
    from events.notices import when

    parsed = read_reply_token(token)
    if parsed is None:
        return HttpResponse("This link is not valid.", status=404, content_type="text/plain")
    participation_id, action = parsed
    now = timezone.now()
    participation = inbound.email_link_participation(participation_id, now)
    title, button = _ACTION_WORDS[action]
    context = {"title": title, "button": button, "participation": participation, "done": False}
    if participation is None:
        context["message"] = "This link has expired: the event is over or was cancelled."
        return HttpResponse(_CONFIRM_PAGE.render(context, request), status=410)
    event = participation.event
    context.update(
        site=participation.enrollment.site.name,
        event_kind=event.get_kind_display().lower(),
        when=when(event),
        committed_kw=participation.committed_kw,
    )
    if request.method == "POST":
        answer = inbound.email_link_act(
            participation=participation, action=action, raw={"ip": request.META.get("REMOTE_ADDR")}
        )
        context.update(done=True, message=answer.text)
    return HttpResponse(_CONFIRM_PAGE.render(context, request))
