"""Manager console pages of the events app: list, calendar, calling, live view, outbox.

Every page is for staff (``staff_required``) holding the events view permission; calling,
scheduling, changing and cancelling events are for program managers
(``events.add_event``/``events.change_event``), and simulating a participant's reply in the
sandbox outbox needs ``events.change_participation``. The views validate input, call one
service and render; every rule lives in ``events.services``, and a simulated reply goes
through ``events.inbound`` exactly as a real one does.
"""

from __future__ import annotations

import calendar
import datetime as dt
import xml.etree.ElementTree as ET  # noqa: S405 - parsing the TwiML we generated ourselves
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Case, Count, F, IntegerField, Prefetch, Q, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dr_platform.models import OutboxMessage
from dr_platform.views import staff_required
from events import inbound, selectors, services
from events.forms import (
    EventCancelForm,
    EventCreateForm,
    EventFilterForm,
    EventModifyForm,
    OutboxFilterForm,
    SimulatedReplyForm,
)
from events.models import EscalationStep, Event, Notification, Participation
from events.services.rules import FIRST_YEAR, LAST_YEAR

PAGE_SIZE = 50
OUTBOX_PAGE_SIZE = 50
VIEW_PERMISSION = "events.view_event"
ADD_PERMISSION = "events.add_event"
CHANGE_PERMISSION = "events.change_event"
OUTBOX_VIEW_PERMISSION = "events.view_notification"
REPLY_PERMISSION = "events.change_participation"
#: How often the live page asks for fresh figures (live-event.js reads it from the page).
LIVE_POLL_SECONDS = 5

P = Participation.Status
N = Notification.Status


def _require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied("Your staff role does not allow this.")


def _event_or_404(event_id: int) -> Event:
    return get_object_or_404(
        Event.objects.select_related("program", "created_by", "cancelled_by"), pk=event_id
    )


def _error_messages(error: ValidationError) -> list[str]:
    return list(error.messages)


# --- list and calendar -----------------------------------------------------------------


def _filtered_events(request: HttpRequest) -> tuple[EventFilterForm, QuerySet[Event]]:
    form = EventFilterForm(request.GET or None)
    queryset = (
        Event.objects.filter(**form.filtered())
        .select_related("program")
        .annotate(
            targeted=Count("participations", filter=Q(participations__removed_at__isnull=True)),
            acknowledged=Count(
                "participations",
                filter=Q(
                    participations__removed_at__isnull=True,
                    participations__status=P.ACKNOWLEDGED,
                ),
            ),
        )
    )
    return form, queryset


@staff_required
@require_GET
def event_list(request: HttpRequest) -> HttpResponse:
    """Events filtered by program, status and kind; upcoming (soonest first), then past."""
    _require(request, VIEW_PERMISSION)
    form, queryset = _filtered_events(request)
    now = timezone.now()
    is_past = Case(
        When(ends_at__lt=now, then=Value(1)), default=Value(0), output_field=IntegerField()
    )
    queryset = queryset.annotate(is_past=is_past).order_by(
        "is_past",
        # Upcoming: soonest first; past rows all share NULL here and fall to the next key.
        Case(When(ends_at__gte=now, then=F("starts_at"))).asc(nulls_last=True),
        F("starts_at").desc(),
        "-pk",
    )
    page = Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "console/events/event_list.html",
        {"form": form, "page_obj": page, "may_add": request.user.has_perm(ADD_PERMISSION)},
    )


def _month(value: str | None, today: dt.date) -> dt.date:
    """The first day of ``value`` ("YYYY-MM"), or of this month when missing or invalid.

    A month outside the years events may have is moved to the nearest one they may (the
    calendar's weeks and margins reach past the month and would overflow near year 1 or
    9999).
    """
    try:
        year, month = (int(part) for part in (value or "").split("-"))
        first = dt.date(year, month, 1)
    except ValueError:
        return today.replace(day=1)
    return min(max(first, dt.date(FIRST_YEAR, 1, 1)), dt.date(LAST_YEAR, 12, 1))


@staff_required
@require_GET
def event_calendar(request: HttpRequest) -> HttpResponse:
    """A month of events, one cell per day, each event on its program's local start day."""
    _require(request, VIEW_PERMISSION)
    form, queryset = _filtered_events(request)
    first = _month(request.GET.get("month"), timezone.localdate())
    following = (first + dt.timedelta(days=32)).replace(day=1)
    weeks = calendar.Calendar(firstweekday=0).monthdatescalendar(first.year, first.month)
    # A day's margin each side: the local day depends on the program's zone.
    window_start = dt.datetime.combine(weeks[0][0], dt.time(0), tzinfo=dt.UTC) - dt.timedelta(1)
    window_end = dt.datetime.combine(weeks[-1][-1], dt.time(0), tzinfo=dt.UTC) + dt.timedelta(2)
    events = list(
        queryset.filter(starts_at__gte=window_start, starts_at__lt=window_end).order_by(
            "starts_at", "pk"
        )
    )
    by_day: dict[dt.date, list[Event]] = defaultdict(list)
    for event in events:
        event.local_start = event.starts_at.astimezone(event.program.zone)
        event.local_end = event.ends_at.astimezone(event.program.zone)
        by_day[event.local_start.date()].append(event)
    today = timezone.localdate()
    rows = [
        [
            {
                "date": day,
                "in_month": day.month == first.month,
                "is_today": day == today,
                "events": by_day.get(day, []),
            }
            for day in week
        ]
        for week in weeks
    ]
    agenda = [event for event in events if event.local_start.date().month == first.month]
    query = request.GET.copy()
    query.pop("month", None)
    return render(
        request,
        "console/events/event_calendar.html",
        {
            "form": form,
            "month": first,
            "weeks": rows,
            "weekdays": [calendar.day_abbr[day] for day in range(7)],
            "previous_month": (first - dt.timedelta(days=1)).strftime("%Y-%m"),
            "next_month": following.strftime("%Y-%m"),
            "filters": query.urlencode(),
            "agenda": agenda,
        },
    )


# --- calling an event ------------------------------------------------------------------


@staff_required
@require_http_methods(["GET", "POST"])
def event_create(request: HttpRequest) -> HttpResponse:
    """Call an event as a draft; every broken rule is shown. Scheduling is the next step."""
    _require(request, ADD_PERMISSION)
    form = EventCreateForm(request.POST or None)
    rule_errors: list[str] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            plan = services.event_create(
                program=data["program"],
                kind=data["kind"],
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                reason=data["reason"],
                by=request.user,
                draft=True,
                **form.targets(),
            )
        except ValidationError as error:
            rule_errors = _error_messages(error)
        else:
            messages.success(
                request,
                f"Draft event {plan.event.pk} saved. Check the sites and schedule it to notify "
                "participants.",
            )
            return redirect("console:event_detail", event_id=plan.event.pk)
    return render(
        request, "console/events/event_form.html", {"form": form, "rule_errors": rule_errors}
    )


@staff_required
@require_POST
def event_schedule(request: HttpRequest, event_id: int) -> HttpResponse:
    """Schedule a draft (draft -> scheduled): participations are created, notices go out."""
    _require(request, CHANGE_PERMISSION)
    event = _event_or_404(event_id)
    try:
        plan = services.event_schedule(event=event, by=request.user)
    except ValidationError as error:
        for message in _error_messages(error):
            messages.error(request, message)
    else:
        messages.success(request, f"Event {event.pk} is scheduled; participants are notified.")
        if plan.unavailable:
            names = ", ".join(sorted({site.name for site in plan.unavailable_sites}))
            messages.warning(request, f"Declared unavailable for this time: {names}.")
    return redirect("console:event_detail", event_id=event.pk)


@staff_required
@require_http_methods(["GET", "POST"])
def event_modify(request: HttpRequest, event_id: int) -> HttpResponse:
    """Change a scheduled or active event's times or targets; only those affected are told."""
    _require(request, CHANGE_PERMISSION)
    event = _event_or_404(event_id)
    if event.status not in Event.OPEN_STATUSES:
        messages.error(request, f"A {event.get_status_display().lower()} event cannot change.")
        return redirect("console:event_detail", event_id=event.pk)
    form = EventModifyForm(request.POST or None, event=event)
    rule_errors: list[str] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        # The number the manager saw: someone else's change since then is refused.
        seen = request.POST.get("modification_number", "")
        if seen.isdigit():
            event.modification_number = int(seen)
        try:
            change = services.event_modify(
                event=event,
                by=request.user,
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                reason=data["reason"],
                **form.targets(),
            )
        except ValidationError as error:
            rule_errors = _error_messages(error)
        else:
            messages.success(
                request,
                f"Event {event.pk} changed (modification {change.event.modification_number}): "
                f"{len(change.added)} site(s) added, {len(change.removed)} removed, "
                f"{len(change.updated)} told of new times.",
            )
            return redirect("console:event_detail", event_id=event.pk)
    return render(
        request,
        "console/events/event_modify.html",
        {"event": event, "form": form, "rule_errors": rule_errors},
    )


@staff_required
@require_http_methods(["GET", "POST"])
def event_cancel(request: HttpRequest, event_id: int) -> HttpResponse:
    """Cancel an event with a reason; everyone already told is sent a cancel notice."""
    _require(request, CHANGE_PERMISSION)
    event = _event_or_404(event_id)
    form = EventCancelForm(request.POST or None)
    rule_errors: list[str] = []
    if request.method == "POST" and form.is_valid():
        try:
            services.event_cancel(event=event, by=request.user, reason=form.cleaned_data["reason"])
        except ValidationError as error:
            rule_errors = _error_messages(error)
        else:
            messages.success(request, f"Event {event.pk} is cancelled.")
            return redirect("console:event_detail", event_id=event.pk)
    return render(
        request,
        "console/events/event_cancel.html",
        {"event": event, "form": form, "rule_errors": rule_errors},
    )


# --- the live page -----------------------------------------------------------------------


def _live_participations(event: Event) -> list[Participation]:
    """The event's current participations with notifications and escalation steps, in
    four queries however many there are."""
    return list(
        selectors.event_participations(event).prefetch_related(
            Prefetch(
                "notifications",
                queryset=Notification.objects.select_related("contact_method").order_by(
                    "queued_at", "pk"
                ),
            ),
            Prefetch(
                "escalation_steps",
                queryset=EscalationStep.objects.select_related("user").order_by("at", "pk"),
            ),
        )
    )


def _method_rows(participation: Participation) -> list[dict[str, Any]]:
    """Per contact method: its latest message (kind and status) and every message sent."""
    by_method: dict[int, dict[str, Any]] = {}
    for notification in participation.notifications.all():
        method = notification.contact_method
        row = by_method.setdefault(
            method.pk,
            {
                "method_id": method.pk,
                "method": method.get_kind_display(),
                "address": method.address,
                "disabled": method.disabled_at is not None,
                "messages": [],
            },
        )
        row["messages"].append(
            {
                "kind": notification.kind,
                "kind_label": notification.get_kind_display(),
                "status": notification.status,
                "status_label": notification.get_status_display(),
                "attempts": notification.attempts,
                "error": notification.error,
            }
        )
    for row in by_method.values():
        latest = row["messages"][-1]
        row.update(
            kind_label=latest["kind_label"],
            status=latest["status"],
            status_label=latest["status_label"],
            error=latest["error"],
        )
    return list(by_method.values())


def _escalation_rows(participation: Participation) -> list[dict[str, Any]]:
    return [
        {
            "level": step.level,
            "target": step.get_target_display(),
            "reason": step.get_reason_display(),
            "user": step.user.get_username() if step.user else "",
            "detail": step.detail,
            "at": step.at.isoformat(),
        }
        for step in participation.escalation_steps.all()
    ]


def _answered_at(participation: Participation) -> dt.datetime | None:
    if participation.status == P.ACKNOWLEDGED:
        return participation.acknowledged_at
    if participation.status == P.OPTED_OUT:
        return participation.opted_out_at
    return None


def _kw(value: Decimal) -> str:
    """A kW figure as a plain decimal string without trailing zeros ("100", "12.5")."""
    return f"{value.normalize():f}" if value else "0"


def live_state(event: Event) -> dict[str, Any]:
    """Everything the live page shows, as plain data (the page and live.json share it).

    kW figures are strings (exact decimals, no trailing zeros); times are ISO 8601 in UTC.
    """
    participations = _live_participations(event)
    rows = []
    participation_counts: Counter[str] = Counter()
    notification_counts: Counter[str] = Counter()
    targeted_kw = acknowledged_kw = Decimal("0")
    for participation in participations:
        participation_counts[participation.status] += 1
        targeted_kw += participation.committed_kw
        if participation.status == P.ACKNOWLEDGED:
            acknowledged_kw += participation.committed_kw
        methods = _method_rows(participation)
        for method in methods:
            for message in method["messages"]:
                notification_counts[message["status"]] += 1
        site = participation.enrollment.site
        answered = _answered_at(participation)
        rows.append(
            {
                "id": participation.pk,
                "site": site.name,
                "organization": site.organization.legal_name,
                "committed_kw": _kw(participation.committed_kw),
                "status": participation.status,
                "status_label": participation.get_status_display(),
                "answered_at": answered.isoformat() if answered else None,
                "answered_via": participation.acknowledged_via or participation.opted_out_via,
                "escalation_level": participation.escalation_level,
                "methods": methods,
                "escalations": _escalation_rows(participation),
            }
        )
    share = (acknowledged_kw / targeted_kw * 100) if targeted_kw else Decimal("0")
    return {
        "event": {
            "id": event.pk,
            "status": event.status,
            "status_label": event.get_status_display(),
            "modification_number": event.modification_number,
            "starts_at": event.starts_at.isoformat(),
            "ends_at": event.ends_at.isoformat(),
            "final": event.status in (Event.Status.COMPLETED, Event.Status.CANCELLED),
        },
        "totals": {
            "sites": len(participations),
            "targeted_kw": _kw(targeted_kw),
            "acknowledged_kw": _kw(acknowledged_kw),
            "acknowledged_percent": f"{share:.0f}",
        },
        "participation_counts": {status: participation_counts[status] for status in P.values},
        "notification_counts": {status: notification_counts[status] for status in N.values},
        "participations": rows,
    }


def _draft_review(event: Event) -> dict[str, Any]:
    """For a draft: whom it would reach, who declared itself unavailable, broken rules."""
    enrollments = list(
        selectors.targeted_enrollments(
            program=event.program,
            zones=event.target_zones,
            substations=event.target_substations,
            feeders=event.target_feeders,
            site_ids=event.target_sites.values_list("pk", flat=True),
        ).order_by("site__organization__legal_name", "site__name")
    )
    site_ids = [enrollment.site_id for enrollment in enrollments]
    unavailable = selectors.unavailable_sites(site_ids, event.starts_at, event.ends_at)
    for enrollment in enrollments:
        enrollment.unavailability = unavailable.get(enrollment.site_id)
    return {
        "enrollments": enrollments,
        "targeted_kw": sum((e.committed_kw for e in enrollments), Decimal("0")),
        "unavailable_count": len(unavailable),
        "rule_errors": services.event_rule_errors(
            program=event.program,
            kind=event.kind,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            site_ids=site_ids,
            now=timezone.now(),
            exclude_event_id=event.pk,
        ),
    }


@staff_required
@require_GET
def event_detail(request: HttpRequest, event_id: int) -> HttpResponse:
    """One event: its facts, then either the draft review or the live participation table."""
    _require(request, VIEW_PERMISSION)
    event = _event_or_404(event_id)
    may_change = request.user.has_perm(CHANGE_PERMISSION)
    context: dict[str, Any] = {
        "event": event,
        "may_change": may_change,
        "is_open": event.status in Event.OPEN_STATUSES,
        "is_draft": event.status == Event.Status.DRAFT,
        "poll_seconds": LIVE_POLL_SECONDS,
        "target_sites": list(event.target_sites.order_by("name")),
    }
    if event.status == Event.Status.DRAFT:
        context["review"] = _draft_review(event)
    else:
        state = live_state(event)
        context.update(
            live=state,
            participation_counts=[
                (status, label, state["participation_counts"][status])
                for status, label in P.choices
            ],
            notification_counts=[
                (status, label, state["notification_counts"][status]) for status, label in N.choices
            ],
        )
    return render(request, "console/events/event_detail.html", context)


@never_cache
@staff_required
@require_GET
def event_live_json(request: HttpRequest, event_id: int) -> JsonResponse:
    """The live page's figures and rows as JSON (``live_state``), polled by live-event.js."""
    _require(request, VIEW_PERMISSION)
    event = _event_or_404(event_id)
    return JsonResponse(live_state(event))


# --- the sandbox outbox -------------------------------------------------------------------


@staff_required
@require_GET
def outbox(request: HttpRequest) -> HttpResponse:
    """The sandbox outbox: the latest messages first, filtered by kind, address, organization."""
    _require(request, OUTBOX_VIEW_PERMISSION)
    form = OutboxFilterForm(request.GET or None)
    queryset = (
        OutboxMessage.objects.filter(**form.filtered())
        .select_related("organization")
        .order_by("-created_at", "-pk")
    )
    page = Paginator(queryset, OUTBOX_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "console/events/outbox.html",
        {
            "form": form,
            "page_obj": page,
            "may_reply": request.user.has_perm(REPLY_PERMISSION),
            "reply_form": SimulatedReplyForm(),
            "replyable": REPLYABLE_KINDS,
        },
    )


#: Outbox message kinds a reply can be simulated for, and what the participant would do.
REPLYABLE_KINDS = ("sms", "voice", "email")


def _twiml_text(twiml: str) -> str:
    root = ET.fromstring(twiml)  # noqa: S314 - TwiML we generated ourselves
    return " ".join((node.text or "").strip() for node in root.iter() if node.tag in ("Say",))


def simulate_reply(message: OutboxMessage, text: str, *, by: str) -> str:
    """Feed ``text`` through the inbound path a real answer to ``message`` would take.

    SMS: ``inbound.sms_reply_receive`` from the message's address (so 1, YES, 2, STOP,
    START and HELP behave exactly as from a phone). Voice: the digit pressed during the
    call (``inbound.voice_digit_receive``). Email: the acknowledge or opt-out link
    (``inbound.email_link_act``). Returns what the platform answers ("" for nothing).
    Raises ``ValidationError`` for a message kind or reply that cannot be simulated.
    """
    raw = {"simulated": True, "outbox_message": message.pk, "by": by}
    if message.kind == "sms":
        return inbound.sms_reply_receive(sender=message.address, body=text, raw=raw)
    if message.kind not in REPLYABLE_KINDS or message.reference is None:
        raise ValidationError("Replies can be simulated for event notices by SMS, voice or email.")
    if message.kind == "voice":
        twiml = inbound.voice_digit_receive(
            notification_uuid=message.reference,
            digits=text.strip()[:1],
            raw={**raw, "To": message.address},
        )
        return _twiml_text(twiml)
    word = inbound.reply_word(text)
    if word in inbound.ACK_WORDS:
        action = "acknowledge"
    elif word in inbound.OPT_OUT_WORDS:
        action = "opt_out"
    else:
        raise ValidationError("An email notice offers two links: reply 1 (acknowledge) or 2.")
    notification = Notification.objects.filter(uuid=message.reference).first()
    participation = (
        inbound.email_link_participation(notification.participation_id, timezone.now())
        if notification
        else None
    )
    if participation is None:
        return "This link has expired: the event is over or was cancelled."
    return inbound.email_link_act(participation=participation, action=action, raw=raw).text


def _back_to_outbox(request: HttpRequest) -> str:
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target or reverse("console:outbox")
    return reverse("console:outbox")


@staff_required
@require_POST
def outbox_reply(request: HttpRequest, message_id: int) -> HttpResponse:
    """Simulate the participant's reply to one outbox message; show what we answer."""
    _require(request, REPLY_PERMISSION)
    message = get_object_or_404(OutboxMessage, pk=message_id)
    form = SimulatedReplyForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, " ".join(errors))
        return redirect(_back_to_outbox(request))
    text = form.cleaned_data["text"]
    try:
        answer = simulate_reply(message, text, by=request.user.get_username())
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        said = f"“{answer}”" if answer else "nothing"
        messages.info(
            request,
            f"Reply “{text}” from {message.address} handled; the platform answers: {said}",
        )
    return redirect(_back_to_outbox(request))
