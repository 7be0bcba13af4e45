"""Participant portal pages of the events app: events, answers, unavailability.

Every page lives under ``/portal/o/<organization_id>/events/``. The organization and every
event, participation and site are fetched through the access selectors and limited to the
organization of the URL, so another organization's object answers 404 exactly like a
missing one (checked before the role, so a 403 never confirms that something exists).
Admins and operators answer events and declare unavailability; viewers read. Views call
one service each (``participation_acknowledge``, ``participation_opt_out``,
``unavailability_declare``) and show its refusal text as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from dr_platform.models import Membership
from dr_platform.selectors import get_for_member, membership_role, require_role, scope_to_member
from enrollment import selectors as enrollment_selectors
from enrollment.forms import add_service_errors
from enrollment.models import Enrollment, Organization
from events import selectors, services
from events.models import Event, Notification, Participation, Unavailability
from events.portal_forms import UnavailabilityForm

RESPONDERS = [Membership.Role.ADMIN, Membership.Role.OPERATOR]
PAST_EVENTS_SHOWN = 50
UNAVAILABILITIES_SHOWN = 50
VIA = "portal"


@dataclass
class EventCard:
    """One event as the organization sees it: its own participations, and what it may do."""

    event: Event
    participations: list[Participation] = field(default_factory=list)

    @property
    def committed_kw(self):
        return sum(
            (
                p.committed_kw
                for p in self.participations
                if p.status != Participation.Status.OPTED_OUT
            ),
            start=0,
        )


def _organization(request: HttpRequest, organization_id: int) -> Organization:
    """The organization of the URL; 404 unless the user is one of its members."""
    return get_for_member(Organization.objects.all(), request.user, path="", pk=organization_id)


def _participations(request: HttpRequest, organization: Organization):
    return selectors.participations_for_member(request.user).filter(
        enrollment__site__organization=organization, removed_at__isnull=True
    )


def _participation(
    request: HttpRequest, organization: Organization, participation_id: int
) -> Participation:
    """The organization's participation ``participation_id``; 404 for anyone else's."""
    participation = selectors.participation_for_member(request.user, participation_id)
    if participation.enrollment.site.organization_id != organization.pk:
        raise Http404("No such object.")
    return participation


def _cards(participations: Iterable[Participation]) -> list[EventCard]:
    cards: dict[int, EventCard] = {}
    for participation in participations:
        card = cards.setdefault(participation.event_id, EventCard(event=participation.event))
        card.participations.append(participation)
    for card in cards.values():
        card.participations.sort(key=lambda p: p.enrollment.site.name)
    return list(cards.values())


def _annotate_answers(participations: Iterable[Participation], may_respond: bool) -> None:
    """Set ``may_acknowledge``, ``may_opt_out`` and ``opt_out_refusal`` on open ones.

    The refusal is the service's own sentence (no opt-outs in this program, past the
    cut-off, none left this season), so the page says exactly what an SMS reply would.
    """
    now = timezone.now()
    for participation in participations:
        answered_out = participation.status == Participation.Status.OPTED_OUT
        participation.may_acknowledge = may_respond and (
            participation.status in Participation.UNANSWERED
        )
        participation.opt_out_refusal = (
            None if answered_out else services.opt_out_refusal(participation, now)
        )
        participation.may_opt_out = (
            may_respond and not answered_out and participation.opt_out_refusal is None
        )


def _back(request: HttpRequest, organization: Organization) -> HttpResponse:
    """Back to the page the button was on (one of ours), else the events page."""
    target = request.POST.get("next", "")
    prefix = reverse("portal:events", args=[organization.pk])
    if target.startswith(prefix) and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}
    ):
        return redirect(target)
    return redirect(prefix)


# --- events ---------------------------------------------------------------------------------


@login_required
def events(request: HttpRequest, organization_id: int) -> HttpResponse:
    """Upcoming and active events with answer buttons, then past events with their outcome."""
    organization = _organization(request, organization_id)
    role = membership_role(request.user, organization)
    may_respond = role in RESPONDERS
    participations = _participations(request, organization)
    open_participations = list(
        participations.filter(event__status__in=Event.OPEN_STATUSES).order_by(
            "event__starts_at", "event_id", "enrollment__site__name"
        )
    )
    _annotate_answers(open_participations, may_respond)
    past_event_ids = list(
        participations.filter(event__status__in=[Event.Status.COMPLETED, Event.Status.CANCELLED])
        .order_by("-event__starts_at", "-event_id")
        .values_list("event_id", flat=True)
        .distinct()[: PAST_EVENTS_SHOWN * 4]
    )
    past_event_ids = list(dict.fromkeys(past_event_ids))[:PAST_EVENTS_SHOWN]
    past = _cards(
        participations.filter(event_id__in=past_event_ids).order_by(
            "-event__starts_at", "-event_id"
        )
    )
    return render(
        request,
        "portal/events/events.html",
        {
            "organization": organization,
            "upcoming": _cards(open_participations),
            "past": past,
            "may_respond": may_respond,
            "next": request.get_full_path(),
        },
    )


@login_required
def event_detail(request: HttpRequest, organization_id: int, event_id: int) -> HttpResponse:
    """One event: its window, the organization's sites in it, and the messages they got."""
    organization = _organization(request, organization_id)
    event = get_for_member(
        selectors.events_for_organization(request.user).filter(
            participations__enrollment__site__organization=organization,
            participations__removed_at__isnull=True,
        ),
        request.user,
        "participations__enrollment__site__organization",
        pk=event_id,
    )
    may_respond = membership_role(request.user, organization) in RESPONDERS
    participations = list(
        _participations(request, organization)
        .filter(event=event)
        .order_by("enrollment__site__name")
    )
    if event.status in Event.OPEN_STATUSES:
        _annotate_answers(participations, may_respond)
    notifications = (
        Notification.objects.filter(participation__in=participations)
        .select_related(
            "contact_method", "contact_method__contact", "participation__enrollment__site"
        )
        .order_by("queued_at", "pk")
    )
    return render(
        request,
        "portal/events/event_detail.html",
        {
            "organization": organization,
            "event": event,
            "card": EventCard(event=event, participations=participations),
            "notifications": notifications,
            "may_respond": may_respond,
            "next": request.get_full_path(),
        },
    )


@login_required
@require_POST
def participation_acknowledge(
    request: HttpRequest, organization_id: int, participation_id: int
) -> HttpResponse:
    """Acknowledge the event for one site (admins and operators)."""
    organization = _organization(request, organization_id)
    participation = _participation(request, organization, participation_id)
    require_role(request.user, organization, RESPONDERS)
    try:
        services.participation_acknowledge(participation, VIA, by=request.user)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    else:
        messages.success(
            request,
            f"{participation.enrollment.site.name}: acknowledged. Thank you; the program "
            "counts on its committed "
            f"{participation.committed_kw.normalize():f} kW.",
        )
    return _back(request, organization)


@login_required
@require_POST
def participation_opt_out(
    request: HttpRequest, organization_id: int, participation_id: int
) -> HttpResponse:
    """Opt one site out of the event, where the program allows it and before the cut-off."""
    organization = _organization(request, organization_id)
    participation = _participation(request, organization, participation_id)
    require_role(request.user, organization, RESPONDERS)
    try:
        services.participation_opt_out(participation, VIA, by=request.user)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    else:
        messages.success(
            request,
            f"{participation.enrollment.site.name} is opted out of this event; no further "
            "reminders will be sent for it.",
        )
    return _back(request, organization)


# --- unavailability -------------------------------------------------------------------------


def _site_zones(request: HttpRequest, organization: Organization) -> dict[int, str]:
    """Site id -> the time zone of its (first open) enrollment's program."""
    zones: dict[int, str] = {}
    for site_id, zone in (
        enrollment_selectors.enrollments_for_member(request.user)
        .filter(site__organization=organization, status__in=Enrollment.OPEN_STATUSES)
        .order_by("site_id", "pk")
        .values_list("site_id", "program__time_zone")
    ):
        zones.setdefault(site_id, zone)
    return zones


@login_required
def unavailability(request: HttpRequest, organization_id: int) -> HttpResponse:
    """Declared unavailability windows of the organization's sites; admins and operators
    declare new ones (before the opt-out cut-off of any event they overlap)."""
    organization = _organization(request, organization_id)
    role = membership_role(request.user, organization)
    may_declare = role in RESPONDERS
    sites = enrollment_selectors.sites_for_member(request.user).filter(organization=organization)
    form = UnavailabilityForm(
        request.POST or None, sites=sites, zones=_site_zones(request, organization)
    )
    if request.method == "POST":
        require_role(request.user, organization, RESPONDERS)
        if form.is_valid():
            starts_at, ends_at = form.window()
            site = form.cleaned_data["site"]
            try:
                services.unavailability_declare(
                    site=site,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    reason=form.cleaned_data["reason"],
                    by=request.user,
                )
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                messages.success(
                    request,
                    f"{site.name} is declared unavailable from "
                    f"{starts_at:%Y-%m-%d %H:%M} to {ends_at:%Y-%m-%d %H:%M} {starts_at.tzname()}.",
                )
                return redirect("portal:unavailability", organization_id=organization.pk)
    windows = (
        scope_to_member(
            Unavailability.objects.select_related("site", "declared_by"),
            request.user,
            "site__organization",
        )
        .filter(site__organization=organization, withdrawn_at__isnull=True)
        .order_by("-starts_at", "-pk")[:UNAVAILABILITIES_SHOWN]
    )
    return render(
        request,
        "portal/events/unavailability.html",
        {
            "organization": organization,
            "form": form,
            "may_declare": may_declare,
            "windows": windows,
            "now": timezone.now(),
        },
    )
