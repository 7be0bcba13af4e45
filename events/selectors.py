"""Reads of the events app.

Participant reads go through ``dr_platform.selectors`` scoping: asking for another
organization's event or participation answers 404, the same as for a missing one.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, F, OuterRef, Q, QuerySet

from dr_platform.roles import PROGRAM_MANAGERS
from dr_platform.selectors import get_for_member, scope_to_member
from enrollment.models import Contact, ContactMethod, Enrollment, Program, Site
from events.models import (
    DutyAssignment,
    EscalationStep,
    Event,
    Notification,
    Participation,
    Unavailability,
)

# --- events and participations -------------------------------------------------------


def event_list_for_program(program: Program) -> QuerySet[Event]:
    """The program's events, newest start first, with program and creator selected."""
    return (
        Event.objects.filter(program=program)
        .select_related("program", "created_by")
        .order_by("-starts_at", "-pk")
    )


def events_for_organization(user: AbstractBaseUser) -> QuerySet[Event]:
    """Events in which any site of the user's organizations takes part (not removed).

    None for anonymous users. The live-row and membership conditions sit on the same
    participation (one subquery): chained filters on the multi-valued relation would join
    it twice, and another organization's live row would let in an event whose own rows
    were all removed.
    """
    if not user.is_authenticated:
        return Event.objects.none()
    live_participations = Participation.objects.filter(
        event=OuterRef("pk"),
        removed_at__isnull=True,
        enrollment__site__organization__memberships__user=user,
    )
    return (
        Event.objects.filter(Exists(live_participations))
        .select_related("program")
        .order_by("-starts_at", "-pk")
    )


def participations_for_member(user: AbstractBaseUser) -> QuerySet[Participation]:
    """The user's organizations' participations, with event, program and site selected."""
    return scope_to_member(
        Participation.objects.select_related(
            "event", "event__program", "enrollment", "enrollment__site"
        ),
        user,
        "enrollment__site__organization",
    ).order_by("-event__starts_at", "pk")


def participation_for_member(user: AbstractBaseUser, participation_id: int) -> Participation:
    """The participation ``participation_id`` if the user's organization holds it.

    Raises Http404 both when it does not exist and when it belongs to someone else.
    """
    return get_for_member(
        Participation.objects.select_related(
            "event", "event__program", "enrollment", "enrollment__site"
        ),
        user,
        "enrollment__site__organization",
        pk=participation_id,
    )


def event_participations(event: Event) -> QuerySet[Participation]:
    """The event's current (not removed) participations, by organization and site."""
    return (
        Participation.objects.filter(event=event, removed_at__isnull=True)
        .select_related("enrollment", "enrollment__site", "enrollment__site__organization")
        .order_by("enrollment__site__organization__legal_name", "enrollment__site__name")
    )


def targeted_enrollments(
    *,
    program: Program,
    zones: Sequence[str] = (),
    substations: Sequence[str] = (),
    feeders: Sequence[str] = (),
    site_ids: Iterable[int] = (),
) -> QuerySet[Enrollment]:
    """Active enrollments of ``program`` an event with this targeting reaches.

    With nothing given, every active enrollment; otherwise the sites in any of the zones,
    substations or feeders, or among ``site_ids`` (a union, as managers pick them).
    """
    queryset = Enrollment.objects.filter(program=program, status=Enrollment.Status.ACTIVE)
    site_ids = list(site_ids)
    if zones or substations or feeders or site_ids:
        queryset = queryset.filter(
            Q(site__zone__in=list(zones))
            | Q(site__substation__in=list(substations))
            | Q(site__feeder__in=list(feeders))
            | Q(site_id__in=site_ids)
        )
    return queryset.select_related("site", "site__organization")


def unavailable_sites(
    site_ids: Iterable[int], starts_at: dt.datetime, ends_at: dt.datetime
) -> dict[int, Unavailability]:
    """Site id -> the (first) declared unavailability overlapping ``[starts_at, ends_at)``."""
    found: dict[int, Unavailability] = {}
    for window in Unavailability.objects.filter(
        site_id__in=list(site_ids),
        withdrawn_at__isnull=True,
        starts_at__lt=ends_at,
        ends_at__gt=starts_at,
    ).order_by("starts_at", "pk"):
        found.setdefault(window.site_id, window)
    return found


def latest_open_notification(method_ids: Iterable[int]) -> Notification | None:
    """The latest answerable notification sent to any of these methods for an open event.

    "Open": the event is scheduled or active and the site was not removed from it. Maps a
    bare reply ("1", "YES") to what it answers: the participation of the returned row
    (selected with its event and program). Returns ``None`` when there is none.
    """
    return (
        Notification.objects.filter(
            contact_method_id__in=list(method_ids),
            event__status__in=Event.OPEN_STATUSES,
            participation__removed_at__isnull=True,
            kind__in=Notification.ANSWERABLE_KINDS,
        )
        .select_related("participation", "participation__event", "participation__event__program")
        .order_by("-queued_at", "-pk")
        .first()
    )


# --- contact methods and escalation ---------------------------------------------------


def usable_methods_by_participation(
    participations: Sequence[Participation],
) -> dict[int, list[ContactMethod]]:
    """Participation id -> the verified, enabled methods of the contacts covering its site.

    A contact covers a site when it is active and either lists the site or lists no site
    at all. Methods come in escalation order (then contact, then id), loaded with their
    id, contact, kind, address and escalation order only (other fields load on access).
    Two queries for any number of participations.
    """
    site_by_participation = {p.pk: p.enrollment.site for p in participations}
    organization_ids = {site.organization_id for site in site_by_participation.values()}
    methods = list(
        ContactMethod.objects.filter(
            contact__organization_id__in=organization_ids,
            contact__is_active=True,
            verified_at__isnull=False,
            disabled_at__isnull=True,
        )
        # The organization id is all a dispatch reads of the contact: no Contact objects.
        .annotate(organization_id=F("contact__organization_id"))
        # What choosing and naming a method takes, nothing more: a dispatch to 10,000
        # sites builds 20,000 of these, in half the time (0.27 s) with five fields.
        .only("id", "contact_id", "kind", "address", "escalation_order")
        .order_by("escalation_order", "contact_id", "pk")
    )
    # The sites each contact lists, as ids: a dispatch to 10,000 sites need not build a
    # Site object per contact and site.
    covered_by_contact: dict[int, set[int]] = defaultdict(set)
    for contact_id, site_id in Contact.sites.through.objects.filter(
        contact__organization_id__in=organization_ids
    ).values_list("contact_id", "site_id"):
        covered_by_contact[contact_id].add(site_id)
    # Grouped by organization first: a dispatch to 10,000 sites must not compare every site
    # with every method of every organization.
    by_organization: dict[int, list[tuple[ContactMethod, set[int]]]] = defaultdict(list)
    for method in methods:
        covered = covered_by_contact.get(method.contact_id, set())
        by_organization[method.organization_id].append((method, covered))
    result: dict[int, list[ContactMethod]] = defaultdict(list)
    for participation_id, site in site_by_participation.items():
        for method, covered in by_organization.get(site.organization_id, ()):
            if covered and site.pk not in covered:
                continue
            result[participation_id].append(method)
    return result


def method_levels(methods: Sequence[ContactMethod]) -> list[list[ContactMethod]]:
    """Group methods by escalation order: level 0 holds the lowest order number."""
    levels: dict[int, list[ContactMethod]] = defaultdict(list)
    for method in methods:
        levels[method.escalation_order].append(method)
    return [levels[order] for order in sorted(levels)]


def reached_method_ids(participation_ids: Iterable[int]) -> dict[int, set[int]]:
    """Participation id -> ids of methods sent a notice or escalation that did not fail.

    Queued and sending ones count (they will go out): later notices of the same event
    (reminder, start, update ...) go to exactly these methods.
    """
    reached: dict[int, set[int]] = defaultdict(set)
    rows = (
        Notification.objects.filter(
            participation_id__in=list(participation_ids),
            kind__in=[Notification.Kind.NOTICE, Notification.Kind.ESCALATION],
        )
        .exclude(status__in=[Notification.Status.FAILED, Notification.Status.CANCELLED])
        .values_list("participation_id", "contact_method_id")
    )
    for participation_id, method_id in rows:
        reached[participation_id].add(method_id)
    return reached


def escalation_steps(participation: Participation) -> QuerySet[EscalationStep]:
    """The participation's escalation steps, oldest first, with the reached user selected."""
    return EscalationStep.objects.filter(participation=participation).select_related("user")


def manager_on_duty(moment: dt.datetime) -> AbstractBaseUser | None:
    """The staff user on duty at ``moment``.

    The active user whose :class:`DutyAssignment` covers ``moment`` (latest start wins);
    without one, the first active member of the "Program managers" group (lowest id).
    Returns ``None`` only when neither exists.
    """
    assignment = (
        DutyAssignment.objects.filter(starts_at__lte=moment, user__is_active=True)
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=moment))
        .select_related("user")
        .order_by("-starts_at", "-pk")
        .first()
    )
    if assignment is not None:
        return assignment.user
    return (
        get_user_model()
        .objects.filter(is_active=True, is_staff=True, groups__name=PROGRAM_MANAGERS)
        .order_by("pk")
        .first()
    )


# --- the pipeline ---------------------------------------------------------------------


def notifications_stuck_queued(*, before: dt.datetime, channel: str) -> QuerySet[Notification]:
    """Queued rows of ``channel`` whose attempt was due before ``before`` (presumed lost)."""
    return Notification.objects.filter(
        status=Notification.Status.QUEUED, channel=channel, next_attempt_at__lt=before
    ).order_by("next_attempt_at", "pk")


def notifications_stuck_sending(*, before: dt.datetime) -> QuerySet[Notification]:
    """Rows claimed for sending before ``before`` and never finished (the worker died)."""
    return Notification.objects.filter(
        status=Notification.Status.SENDING, sending_at__lt=before
    ).order_by("sending_at", "pk")


def sites_of(site_ids: Iterable[int]) -> QuerySet[Site]:
    """Sites by id, with their organization selected."""
    return Site.objects.filter(pk__in=list(site_ids)).select_related("organization")
