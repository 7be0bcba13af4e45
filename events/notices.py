"""What a notification says: subject, text and reply links, separate from how it is sent.

:func:`compose` turns a :class:`~events.models.Notification` into a :class:`NoticeContent`
for its channel. SMS and pager texts stay short and ASCII (an en dash or a curly quote
switches an SMS to UCS-2 and halves what fits in a segment). Times are shown in the
program's time zone with its abbreviation. Test events say so first, on every channel.

Email and webhook notices carry signed links (:func:`reply_link`) to acknowledge or opt
out without logging in; :func:`read_reply_token` checks them. The links only lead to a
confirmation page: mail scanners follow links, so a GET never changes anything.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from django.conf import settings
from django.core import signing
from django.urls import get_script_prefix, get_urlconf, reverse

from events.models import Event, Notification, Participation

REPLY_TOKEN_SALT: Final = "events.reply-link"  # noqa: S105 - a salt, not a secret
ACTIONS: Final = ("acknowledge", "opt_out")

#: Channels whose messages are short text (one or two SMS segments, a pager screen).
SHORT_CHANNELS: Final = frozenset({"sms", "pager_wctp", "pager_snpp"})


@dataclass(frozen=True, slots=True)
class NoticeContent:
    """The words of one notification. ``reply_links`` maps ``acknowledge``/``opt_out``/
    ``gather`` to absolute URLs (see ``events.channels.base.OutboundMessage``)."""

    subject: str
    text: str
    reply_links: dict[str, str] = field(default_factory=dict)
    callback_url: str | None = None


def absolute_url(path: str) -> str:
    """``SITE_URL`` + ``path``: the public address providers and participants use."""
    return f"{settings.SITE_URL}{path}"


def reply_link(participation: Participation, action: str) -> str:
    """An absolute, signed URL that lets the holder ``action`` the participation.

    The token names the participation and the action only; it is refused once the event
    has ended or was cancelled (checked against the database when used, so an extended
    event keeps its links working). Raises ``ValueError`` for an unknown action.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown reply action {action!r}")
    token = signing.dumps({"p": participation.pk, "a": action}, salt=REPLY_TOKEN_SALT)
    return absolute_url(reverse("hooks:email_link", args=[token]))


def read_reply_token(token: str) -> tuple[int, str] | None:
    """Return ``(participation id, action)`` from a token :func:`reply_link` made.

    Returns ``None`` for a forged, altered or malformed token.
    """
    try:
        data = signing.loads(token, salt=REPLY_TOKEN_SALT)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("a") not in ACTIONS:
        return None
    participation_id = data.get("p")
    if not isinstance(participation_id, int):
        return None
    return participation_id, data["a"]


def status_callback_url(notification_uuid: uuid.UUID) -> str:
    """Where Twilio posts a message's or call's status (carries the notification uuid)."""
    return absolute_url(_uuid_path("hooks:twilio_status", notification_uuid))


def gather_url(notification_uuid: uuid.UUID) -> str:
    """Where Twilio posts the digit pressed during a notice call."""
    return absolute_url(_uuid_path("hooks:twilio_gather", notification_uuid))


_PLACEHOLDER: Final = uuid.UUID(int=0)


def _uuid_path(name: str, value: uuid.UUID) -> str:
    # reverse() costs 76 us, once per message sent: 1.5 s of a worker's CPU for a dispatch
    # of 20,000. The path is reversed once per URL configuration and script prefix, with
    # a placeholder where the uuid goes.
    urlconf = get_urlconf() or settings.ROOT_URLCONF
    return _path_with_placeholder(name, urlconf, get_script_prefix()).replace(
        str(_PLACEHOLDER), str(value)
    )


@functools.lru_cache(maxsize=32)
def _path_with_placeholder(name: str, urlconf: str, script_prefix: str) -> str:
    return reverse(name, urlconf=urlconf, args=[_PLACEHOLDER])


# --- wording -----------------------------------------------------------------------------


def _local(moment: dt.datetime, event: Event) -> dt.datetime:
    return moment.astimezone(event.program.zone)


def when(event: Event) -> str:
    """``Tue Jul 7, 14:00-18:00 EDT`` in the program's zone (both dates if it spans midnight)."""
    start, end = _local(event.starts_at, event), _local(event.ends_at, event)
    day = f"{start:%a %b} {start.day}"
    if start.date() == end.date():
        return f"{day}, {start:%H:%M}-{end:%H:%M} {end.tzname()}"
    return f"{day} {start:%H:%M} - {end:%a %b} {end.day} {end:%H:%M} {end.tzname()}"


def _kw(value: Decimal | str | None) -> str:
    if value is None:
        return "0"
    number = Decimal(str(value)).normalize()
    return f"{number:f}"


def _opt_outs_allowed(event: Event) -> bool:
    return event.program.opt_outs_per_season > 0


def _reply_hint(event: Event, channel: str) -> str:
    if channel == "voice":
        return ""  # the call's own menu says it
    if channel in SHORT_CHANNELS:
        return (
            "Reply 1 to acknowledge, 2 to opt out."
            if _opt_outs_allowed(event)
            else "Reply 1 to acknowledge."
        )
    return ""


def _headline(notification: Notification) -> str:
    event = notification.event
    kind = Notification.Kind
    label = event.get_kind_display().split(" ")[0].lower()
    return {
        kind.NOTICE: f"{label.capitalize()} demand-response event",
        kind.REMINDER: "Reminder: demand-response event",
        kind.START: "Demand-response event started",
        kind.END: "Demand-response event ended",
        kind.UPDATE: "Demand-response event CHANGED",
        kind.CANCEL: "Demand-response event CANCELLED",
        kind.ESCALATION: "URGENT, not yet acknowledged: demand-response event",
        kind.SUMMARY: "Demand-response event results",
    }[notification.kind]


def _body(notification: Notification) -> str:
    event = notification.event
    participation = notification.participation
    site = participation.enrollment.site.name
    committed = _kw(participation.committed_kw)
    kind = Notification.Kind
    if notification.kind == kind.START:
        end = _local(event.ends_at, event)
        return f"{site}: reduce load by {committed} kW now, until {end:%H:%M} {end.tzname()}."
    if notification.kind == kind.END:
        return f"{site}: the event of {when(event)} is over. You may restore load. Thank you."
    if notification.kind == kind.CANCEL:
        if participation.is_removed:
            return f"{site} is no longer called for the event of {when(event)}. No action needed."
        return f"The event of {when(event)} is cancelled for {site}. No action needed."
    if notification.kind == kind.SUMMARY:
        reduced = _kw(notification.payload.get("reduction_kw"))
        committed = _kw(notification.payload.get("committed_kw", participation.committed_kw))
        return (
            f"{site}, event of {when(event)}: you reduced {reduced} kW "
            f"against {committed} kW committed."
        )
    # notice, reminder, update, escalation: the call to act.
    return f"{site}: reduce load by {committed} kW, {when(event)}."


def compose(notification: Notification) -> NoticeContent:
    """The content of ``notification`` for its contact method's channel.

    Reads ``notification.event`` (with its program), ``participation`` (with enrollment
    and site) and ``contact_method``; select them together to avoid extra queries. Never
    raises for a well-formed row.
    """
    event = notification.event
    method_kind = notification.contact_method.kind
    test = event.is_test
    prefix = "TEST EVENT (drill): " if test else ""
    headline = _headline(notification)
    body = _body(notification)
    answerable = notification.kind in Notification.ANSWERABLE_KINDS
    program = event.program.name

    subject = f"{'[TEST] ' if test else ''}{headline}: {program}, {when(event)}"
    reply_links: dict[str, str] = {}
    callback_url = None
    if method_kind in ("sms", "voice"):
        callback_url = status_callback_url(notification.uuid)

    if method_kind in SHORT_CHANNELS:
        hint = _reply_hint(event, method_kind) if answerable else ""
        text = " ".join(part for part in (f"{prefix}{program}: {headline}.", body, hint) if part)
        return NoticeContent(subject=subject, text=text, callback_url=callback_url)

    if method_kind == "voice":
        if answerable:
            reply_links["gather"] = gather_url(notification.uuid)
        test_words = "This is a test event, a drill. " if test else ""
        text = f"{test_words}{headline}, {program}. {body}"
        return NoticeContent(
            subject=subject, text=text, reply_links=reply_links, callback_url=callback_url
        )

    # email and webhook: full text with signed links.
    lines = []
    if test:
        lines.append("THIS IS A TEST EVENT (a drill of the demand-response program).")
        lines.append("")
    lines += [f"{headline} - {program}", "", body]
    if event.reason and notification.kind in (Notification.Kind.NOTICE, Notification.Kind.UPDATE):
        lines += ["", f"Reason: {event.reason}"]
    if answerable:
        participation = notification.participation
        reply_links["acknowledge"] = reply_link(participation, "acknowledge")
        lines += ["", f"Acknowledge: {reply_links['acknowledge']}"]
        if _opt_outs_allowed(event):
            reply_links["opt_out"] = reply_link(participation, "opt_out")
            cutoff = _local(
                event.starts_at - dt.timedelta(minutes=event.program.opt_out_cutoff_minutes),
                event,
            )
            lines.append(
                f"Opt out (until {cutoff:%a %b} {cutoff.day} {cutoff:%H:%M} {cutoff.tzname()}): "
                f"{reply_links['opt_out']}"
            )
    return NoticeContent(subject=subject, text="\n".join(lines), reply_links=reply_links)


def staff_alert_text(participation: Participation, *, why: str) -> tuple[str, str]:
    """Subject and body of an email to an account manager or the manager on duty."""
    event = participation.event
    site = participation.enrollment.site
    organization = site.organization
    subject = f"{'[TEST] ' if event.is_test else ''}DR event {event.pk}: {organization} - {why}"
    body = "\n".join(
        [
            f"{why}.",
            "",
            f"Organization: {organization} (billing account {organization.billing_account_number})",
            f"Site: {site.name}, {site.address}",
            f"Event: {event.get_kind_display()} {when(event)} ({event.program.name})",
            f"Committed: {_kw(participation.committed_kw)} kW",
            f"Participation status: {participation.get_status_display()}",
        ]
    )
    return subject, body
