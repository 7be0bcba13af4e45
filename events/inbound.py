"""What arrives from participants and providers, mapped onto participations and notifications.

Each function handles one verified inbound message (the views in ``events.hooks`` check
signatures first), stores it as an :class:`~events.models.InboundMessage` linked to what
it answered, and returns what to answer. Answers to unknown senders say nothing about
any event, organization or site.

Reply words (SMS and pager replies, case-insensitive, first word counts):

* ``1``, ``YES``, ``ACK``, ``ACKNOWLEDGE``, ``OK``: acknowledge the sender's latest open
  event notice.
* ``2``, ``OUT``, ``OPTOUT``, ``OPT OUT``: opt out, where the program allows it and before
  the cut-off (otherwise the answer says why).
* ``STOP`` (and Twilio's other opt-out words): disable every SMS method with that number.
  ``START``/``UNSTOP`` re-enable methods STOP disabled (never one a provider error disabled).
  ``HELP``/``INFO``: how to answer. ``YES`` acknowledges here rather than meaning START:
  notices ask for it, and a participant answering a notice must never be misread.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Any, Final

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from enrollment.models import ContactMethod
from events import selectors
from events.channels import voice, wctp
from events.models import Event, InboundMessage, Notification, Participation
from events.services import answers, pipeline

A = InboundMessage.Action
N = Notification.Status

ACK_WORDS: Final = frozenset({"1", "YES", "Y", "ACK", "ACKNOWLEDGE", "OK"})
OPT_OUT_WORDS: Final = frozenset({"2", "OUT", "OPTOUT", "OPT-OUT", "OPT OUT"})
# Twilio's standard opt-out and opt-in keywords (twilio.com/docs/messaging/tutorials/
# advanced-opt-out), except YES, which answers notices here.
STOP_WORDS: Final = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS: Final = frozenset({"START", "UNSTOP"})
HELP_WORDS: Final = frozenset({"HELP", "INFO"})
STOP_REASON: Final = "STOP reply"

HELP_TEXT: Final = (
    "Demand-response event notices. Reply 1 to acknowledge an event, 2 to opt out where "
    "allowed, STOP to stop these messages, START to resume."
)
UNKNOWN_SENDER_TEXT: Final = (
    "This number is not registered for demand-response notices. Please contact your "
    "program administrator."
)
UNRECOGNISED_TEXT: Final = (
    "Sorry, we did not understand. Reply 1 to acknowledge, 2 to opt out, HELP for help."
)
NOTHING_OPEN_TEXT: Final = "There is no open event to answer."


def reply_word(text: str) -> str:
    """The command in a reply: ``"OPT OUT"`` or the first word, upper case, without
    surrounding punctuation. Empty for an empty text."""
    normalized = " ".join(re.sub(r"[^\w\s-]", " ", text or "").upper().split())
    if normalized.startswith("OPT OUT"):
        return "OPT OUT"
    return normalized.split(" ", 1)[0] if normalized else ""


@dataclass(frozen=True, slots=True)
class Answer:
    """What an inbound reply did and what to tell the sender (``text`` may be empty)."""

    action: str
    text: str
    participation: Participation | None = None


def _answer(participation: Participation, word: str, *, via: str, now: dt.datetime) -> Answer:
    event = participation.event
    site = participation.enrollment.site.name
    try:
        if word in ACK_WORDS:
            answers.participation_acknowledge(participation, via, now=now)
            local = event.starts_at.astimezone(event.program.zone)
            return Answer(
                A.ACKNOWLEDGED,
                f"Thank you: {site} acknowledged the event of {local:%a %b} {local.day} "
                f"{local:%H:%M} {local.tzname()}.",
                participation,
            )
        answers.participation_opt_out(participation, via, now=now)
        return Answer(A.OPTED_OUT, f"{site} is opted out of this event.", participation)
    except ValidationError as exc:
        return Answer(A.REFUSED, " ".join(exc.messages), participation)


def _record(
    *,
    channel: str,
    sender: str,
    body: str,
    answer: Answer,
    now: dt.datetime,
    raw: dict[str, Any],
    method: ContactMethod | None = None,
    notification: Notification | None = None,
) -> InboundMessage:
    return InboundMessage.objects.create(
        channel=channel,
        sender=sender[:300],
        body=body,
        action=answer.action,
        response=answer.text,
        contact_method=method,
        notification=notification,
        participation=answer.participation,
        raw=raw,
        received_at=now,
    )


def sms_reply_receive(
    *, sender: str, body: str, raw: dict[str, Any], now: dt.datetime | None = None
) -> str:
    """Handle an SMS from ``sender`` (E.164); returns the text to answer ("" for none).

    STOP disables the sender's SMS methods, START re-enables those STOP disabled, HELP
    explains, 1/YES/ACK acknowledges and 2/OUT opts out of the latest open event notice
    sent to that number. An unknown number gets a neutral answer.
    """
    now = now or timezone.now()
    word = reply_word(body)
    methods = list(
        ContactMethod.objects.filter(kind=ContactMethod.Kind.SMS, address=sender.strip())
        .select_related("contact", "contact__organization__account_manager")
        .order_by("pk")
    )
    record = {"channel": InboundMessage.Channel.SMS, "sender": sender, "body": body, "raw": raw}
    if not methods:
        answer = Answer(A.UNKNOWN_SENDER, "" if word in STOP_WORDS else UNKNOWN_SENDER_TEXT)
        _record(answer=answer, now=now, **record)
        return answer.text
    method = methods[0]
    with transaction.atomic():
        if word in STOP_WORDS:
            for each in methods:
                pipeline.contact_method_disable(method=each, reason=STOP_REASON, now=now)
            answer = Answer(
                A.STOP,
                "You will no longer receive demand-response notices at this number. "
                "Reply START to resume.",
            )
        elif word in START_WORDS:
            for each in methods:
                pipeline.contact_method_enable(method=each, reason_prefix=STOP_REASON)
            answer = Answer(A.START, "You will receive demand-response notices again.")
        elif word in HELP_WORDS:
            answer = Answer(A.HELP, HELP_TEXT)
        elif word in ACK_WORDS or word in OPT_OUT_WORDS:
            notification = selectors.latest_open_notification(m.pk for m in methods)
            if notification is None:
                answer = Answer(A.IGNORED, NOTHING_OPEN_TEXT)
            else:
                answer = _answer(notification.participation, word, via="sms", now=now)
                _record(
                    answer=answer,
                    now=now,
                    method=notification.contact_method,
                    notification=notification,
                    **record,
                )
                return answer.text
        else:
            answer = Answer(A.UNRECOGNISED, UNRECOGNISED_TEXT)
        _record(answer=answer, now=now, method=method, **record)
    return answer.text


# --- provider status ------------------------------------------------------------------

#: Twilio MessageStatus / CallStatus -> our status (None: nothing to record yet).
TWILIO_STATUS: Final[dict[str, str | None]] = {
    # messages
    "accepted": None,
    "scheduled": None,
    "queued": None,
    "sending": None,
    "sent": N.SENT,
    "delivered": N.DELIVERED,
    "read": N.DELIVERED,
    "undelivered": N.FAILED,
    "failed": N.FAILED,
    # calls
    "initiated": N.SENT,
    "ringing": N.SENT,
    "in-progress": N.DELIVERED,
    "answered": N.DELIVERED,
    "completed": N.DELIVERED,
    "busy": N.FAILED,
    "no-answer": N.FAILED,
    "canceled": N.FAILED,
}


def _notification(notification_uuid: uuid.UUID | None) -> Notification | None:
    if notification_uuid is None:
        return None
    return (
        Notification.objects.select_related(
            "participation",
            "participation__event",
            "participation__event__program",
            "participation__enrollment__site",
            "contact_method",
            "event",
        )
        .filter(uuid=notification_uuid)
        .first()
    )


def provider_status_receive(
    *,
    notification_uuid: uuid.UUID | None,
    status: str,
    source: str,
    error: str = "",
    error_code: str = "",
    raw: dict[str, Any],
    now: dt.datetime | None = None,
) -> bool:
    """Record a delivery status for a notification (``status`` already mapped to ours:
    ``sent``, ``delivered``, ``failed``; or empty for a status not worth recording).

    Unknown notifications and statuses are stored and otherwise ignored (the caller
    answers 200 all the same, so the provider stops retrying). Returns whether the
    notification changed; duplicates and statuses older than the current one do not.
    """
    now = now or timezone.now()
    notification = _notification(notification_uuid)
    changed = False
    if notification is not None and status:
        changed = pipeline.notification_status_update(
            notification=notification, status=status, now=now, error=error, error_code=error_code
        )
    InboundMessage.objects.create(
        channel=InboundMessage.Channel.STATUS,
        sender=source,
        body=status,
        action=A.STATUS if changed else A.IGNORED,
        notification=notification,
        participation=notification.participation if notification else None,
        contact_method=notification.contact_method if notification else None,
        raw=raw,
        received_at=now,
    )
    return changed


def twilio_status_receive(
    *, notification_uuid: uuid.UUID, params: dict[str, Any], now: dt.datetime | None = None
) -> bool:
    """A Twilio ``StatusCallback`` for a message or call; returns whether it changed the row."""
    raw_status = (params.get("MessageStatus") or params.get("CallStatus") or "").lower()
    status = TWILIO_STATUS.get(raw_status) or ""
    error_code = str(params.get("ErrorCode") or "")
    return provider_status_receive(
        notification_uuid=notification_uuid,
        status=status,
        source="twilio",
        error=f"Twilio reported {raw_status}" + (f" (error {error_code})" if error_code else ""),
        error_code=error_code,
        raw=params,
        now=now,
    )


# --- voice ------------------------------------------------------------------------------


def voice_digit_receive(
    *, notification_uuid: uuid.UUID, digits: str | None, raw: dict[str, Any],
    now: dt.datetime | None = None,
) -> str:  # fmt: skip
    """The digit pressed during a notice call: 1 acknowledges, 2 opts out.

    Returns the TwiML to answer with (confirmation, the refusal's reason, the menu again
    after a wrong key, or a neutral goodbye for an unknown or closed notice).
    """
    now = now or timezone.now()
    notification = _notification(notification_uuid)
    outcome = voice.outcome_for_digit(digits)
    if notification is None:
        answer = Answer(A.IGNORED, "")
        twiml = voice.build_gather_response_twiml(voice.OUTCOME_UNKNOWN)
    elif outcome in (voice.OUTCOME_ACKNOWLEDGED, voice.OUTCOME_OPTED_OUT):
        word = "1" if outcome == voice.OUTCOME_ACKNOWLEDGED else "2"
        answer = _answer(notification.participation, word, via="voice", now=now)
        if answer.action == A.REFUSED:
            twiml = _say_and_hang_up(answer.text)
        else:
            twiml = voice.build_gather_response_twiml(outcome)
    elif outcome == voice.OUTCOME_INVALID:
        from events.notices import gather_url

        answer = Answer(A.UNRECOGNISED, "", notification.participation)
        twiml = voice.build_gather_response_twiml(outcome, gather_url=gather_url(notification.uuid))
    else:
        answer = Answer(A.IGNORED, "", notification.participation)
        twiml = voice.build_gather_response_twiml(outcome)
    _record(
        channel=InboundMessage.Channel.VOICE,
        sender=str(raw.get("To") or raw.get("Called") or ""),
        body=digits or "",
        answer=answer,
        now=now,
        raw=raw,
        method=notification.contact_method if notification else None,
        notification=notification,
    )
    return twiml


def _say_and_hang_up(text: str) -> str:
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    response.say(text)
    response.hangup()
    return str(response)


# --- WCTP -------------------------------------------------------------------------------

WCTP_STATUS: Final[dict[str, str]] = {
    "queued": N.SENT,
    "delivered": N.DELIVERED,
    "read": N.DELIVERED,
    "failed": N.FAILED,
}


def wctp_receive(document: bytes, *, now: dt.datetime | None = None) -> bytes:
    """A WCTP post from a paging carrier: a status (queued, delivered, read, failed) or a
    two-way pager reply (same words as SMS, or an MCR choice).

    Returns the ``wctp-Confirmation`` to answer with: success for anything understood,
    including unknown message ids and senders (which are stored and ignored); failure
    301 for a document that is not WCTP.
    """
    now = now or timezone.now()
    try:
        inbound = wctp.parse_inbound(document)
    except wctp.WctpParseError as exc:
        return wctp.build_confirmation(code=301, text=f"Unparseable: {exc}"[:200])
    raw = {
        "kind": inbound.kind,
        "message_id": inbound.message_id,
        "sender_id": inbound.sender_id,
        "recipient_id": inbound.recipient_id,
        "status": inbound.status,
        "text": inbound.text,
        "error_code": inbound.error_code,
    }
    if inbound.kind == "status":
        provider_status_receive(
            notification_uuid=inbound.notification_id,
            status=WCTP_STATUS.get(inbound.status or "", ""),
            source=f"wctp:{inbound.recipient_id or inbound.sender_id}",
            error=inbound.text,
            error_code=str(inbound.error_code or ""),
            raw=raw,
            now=now,
        )
        return wctp.build_confirmation()

    notification = _notification(inbound.notification_id)
    method = None
    if notification is None and inbound.sender_id:
        methods = ContactMethod.objects.filter(
            kind=ContactMethod.Kind.PAGER_WCTP, address=inbound.sender_id.strip()
        )
        method = methods.first()
        notification = selectors.latest_open_notification(m.pk for m in methods)
    elif notification is not None:
        method = notification.contact_method
    choice = wctp.MCR_CHOICES.get(inbound.text.strip())
    word = {"acknowledged": "1", "opted_out": "2"}.get(choice or "", reply_word(inbound.text))
    record = {
        "channel": InboundMessage.Channel.WCTP,
        "sender": inbound.sender_id,
        "body": inbound.text,
        "raw": raw,
    }
    with transaction.atomic():
        if notification is None:
            answer = Answer(A.UNKNOWN_SENDER if method is None else A.IGNORED, "")
        elif word in ACK_WORDS or word in OPT_OUT_WORDS:
            participation = notification.participation
            if participation.event.status not in Event.OPEN_STATUSES:
                answer = Answer(A.IGNORED, NOTHING_OPEN_TEXT, participation)
            else:
                answer = _answer(participation, word, via="wctp", now=now)
        else:
            answer = Answer(A.UNRECOGNISED, UNRECOGNISED_TEXT, notification.participation)
        _record(answer=answer, now=now, method=method, notification=notification, **record)
    return wctp.build_confirmation()


# --- email links ------------------------------------------------------------------------


def email_link_participation(participation_id: int, now: dt.datetime) -> Participation | None:
    """The participation a signed link names, while its link still works.

    Links work until the event ends (its current end, so an extended event keeps them
    working) and not for cancelled events or removed sites. Returns ``None`` otherwise.
    """
    participation = (
        Participation.objects.select_related("event", "event__program", "enrollment__site")
        .filter(pk=participation_id)
        .first()
    )
    if participation is None or participation.is_removed:
        return None
    event = participation.event
    if event.status not in Event.OPEN_STATUSES or event.ends_at <= now:
        return None
    return participation


def email_link_act(
    *, participation: Participation, action: str, raw: dict[str, Any],
    now: dt.datetime | None = None,
) -> Answer:  # fmt: skip
    """Carry out a confirmed email link (``acknowledge`` or ``opt_out``).

    Returns the Answer (its ``text`` is the sentence to show). Stores the click.
    """
    now = now or timezone.now()
    word = "1" if action == "acknowledge" else "2"
    answer = _answer(participation, word, via="email", now=now)
    _record(
        channel=InboundMessage.Channel.EMAIL_LINK,
        sender="",
        body=action,
        answer=answer,
        now=now,
        raw=raw,
    )
    return answer
