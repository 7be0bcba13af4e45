"""The portal shell and console home: where each user lands, and the health endpoint."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from dr_platform.health import broker_status, database_status
from dr_platform.models import Membership
from dr_platform.selectors import get_for_member, organizations_for_user, staff_roles
from enrollment.models import Organization
from enrollment.selectors import review_queue


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Let staff through; send anonymous users to log in; refuse participants with 403."""

    @wraps(view)
    @login_required
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not request.user.is_staff:
            raise PermissionDenied("This page is for program staff.")
        return view(request, *args, **kwargs)

    return wrapper


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send staff to the manager console and participants to their organization."""
    if request.user.is_staff:
        return redirect("console:home")
    return redirect("portal:home")


@login_required
def portal_home(request: HttpRequest) -> HttpResponse:
    """A participant with one organization goes straight to its dashboard."""
    organizations = list(organizations_for_user(request.user))
    if len(organizations) == 1:
        return redirect("portal:organization", organization_id=organizations[0].pk)
    return render(request, "portal/home.html", {"organizations": organizations})


@login_required
def organization_dashboard(request: HttpRequest, organization_id: int) -> HttpResponse:
    """The organization's dashboard: sites, enrollments, audits, enablement projects, people.

    404 for anyone who is not one of its members. A fixed number of queries however many
    sites and enrollments the organization has.
    """
    from django.utils import timezone

    from enrollment import selectors as enrollment_selectors
    from enrollment.models import Enrollment, NominationWindow
    from enrollment.services import ENROLLMENT_TRANSITIONS

    user = request.user
    organization = get_for_member(Organization.objects.all(), user, path="", pk=organization_id)
    memberships = list(Membership.objects.filter(organization=organization).select_related("user"))
    mine = next((m for m in memberships if m.user_id == user.pk), None)
    is_admin = mine is not None and mine.role == Membership.Role.ADMIN
    in_organization = {"site__organization": organization}

    now = timezone.now()
    # Each with its firm service level in effect now (firm_kw_then), in the same query.
    enrollments = list(
        enrollment_selectors.with_firm_service_level_at(
            enrollment_selectors.enrollments_for_member(user).filter(**in_organization), now
        ).order_by("program__name", "site__name", "-applied_at")
    )
    programs_with_open_window = set(
        NominationWindow.objects.filter(
            program_id__in={enrollment.program_id for enrollment in enrollments},
            opens_at__lte=now,
            closes_at__gt=now,
        ).values_list("program_id", flat=True)
    )
    for enrollment in enrollments:
        enrollment.may_change_nomination = (
            is_admin
            and enrollment.program_id in programs_with_open_window
            and enrollment.status in (Enrollment.Status.APPROVED, Enrollment.Status.ACTIVE)
        )
        enrollment.may_withdraw = is_admin and Enrollment.Status.WITHDRAWN in (
            ENROLLMENT_TRANSITIONS.get(enrollment.status, ())
        )

    return render(
        request,
        "portal/organization.html",
        {
            "organization": organization,
            "memberships": memberships,
            "my_role": mine.get_role_display() if mine else "",
            "is_admin": is_admin,
            # Admins and operators answer events, declare unavailability and dispute lines.
            "may_respond": mine is not None
            and mine.role in (Membership.Role.ADMIN, Membership.Role.OPERATOR),
            "sites": enrollment_selectors.sites_for_member(user)
            .filter(organization=organization)
            .order_by("name"),
            "enrollments": enrollments,
            "audits": enrollment_selectors.audits_for_member(user)
            .filter(**in_organization)
            .order_by("-scheduled_for"),
            "projects": enrollment_selectors.projects_for_member(user)
            .filter(**in_organization)
            .prefetch_related("installments"),
        },
    )


# --- the console's front page ---------------------------------------------------------------

Check = Callable[[AbstractBaseUser], bool]


def _may(permission: str) -> Check:
    """The check of a page guarded by one model permission (as its view checks it)."""

    def check(user: AbstractBaseUser) -> bool:
        return user.has_perm(permission)

    return check


def _decides_disputes(user: AbstractBaseUser) -> bool:
    # The dispute queue is for program managers by group, not by a model permission.
    from settlements.disputes import is_program_manager

    return is_program_manager(user)


@dataclasses.dataclass(frozen=True)
class ConsoleLink:
    """One way into a console area, shown only to users ``allowed`` lets open it."""

    label: str
    url_name: str
    allowed: Check


@dataclasses.dataclass(frozen=True)
class ConsoleCard:
    """A card of the console home: an area, what it is for, its links and maybe a count."""

    title: str
    note: str
    links: tuple[ConsoleLink, ...]
    stat: Callable[[], int] | None = None
    stat_id: str = ""


#: The console home's areas. Each link's check mirrors the permission check of the view
#: it opens, so nobody is shown a link that answers 403; a card (and its count) appears
#: only with at least one link, a section only with at least one card.
CONSOLE_SECTIONS: tuple[tuple[str, tuple[ConsoleCard, ...]], ...] = (
    (
        "Organizations and people",
        (
            ConsoleCard(
                "Organizations",
                "Businesses, their tiers and billing accounts",
                (
                    ConsoleLink(
                        "Manage organizations",
                        "admin:enrollment_organization_changelist",
                        _may("enrollment.view_organization"),
                    ),
                ),
                stat=lambda: Organization.objects.count(),
            ),
            ConsoleCard(
                "Participant users",
                "Who belongs to which organization, with which role",
                (
                    ConsoleLink(
                        "Manage memberships",
                        "admin:dr_platform_membership_changelist",
                        _may("dr_platform.view_membership"),
                    ),
                ),
                stat=lambda: Membership.objects.values("user").distinct().count(),
            ),
        ),
    ),
    (
        "Enrollment",
        (
            ConsoleCard(
                "Applications waiting",
                "Applications to approve or reject",
                (
                    ConsoleLink(
                        "Review queue", "console:review_queue", _may("enrollment.view_enrollment")
                    ),
                ),
                stat=lambda: review_queue().count(),
                stat_id="applications-waiting",
            ),
            ConsoleCard(
                "Enrollments",
                "Filter, browse and download CSV",
                (
                    ConsoleLink(
                        "Enrollments", "console:enrollment_list", _may("enrollment.view_enrollment")
                    ),
                    ConsoleLink(
                        "Capacity by program, zone and tier",
                        "console:capacity_summary",
                        _may("enrollment.view_enrollment"),
                    ),
                ),
            ),
            ConsoleCard(
                "Audits",
                "Site audits, findings, generators and recommended measures",
                (
                    ConsoleLink(
                        "Audits",
                        "admin:enrollment_audit_changelist",
                        _may("enrollment.view_audit"),
                    ),
                ),
            ),
            ConsoleCard(
                "Programs and sites",
                "Program rules, sites and enablement projects",
                (
                    ConsoleLink(
                        "Programs",
                        "admin:enrollment_program_changelist",
                        _may("enrollment.view_program"),
                    ),
                    ConsoleLink(
                        "Sites", "admin:enrollment_site_changelist", _may("enrollment.view_site")
                    ),
                    ConsoleLink(
                        "Enablement projects",
                        "admin:enrollment_enablementproject_changelist",
                        _may("enrollment.view_enablementproject"),
                    ),
                ),
            ),
        ),
    ),
    (
        "Events",
        (
            ConsoleCard(
                "Events",
                "Curtailment events, live acknowledgements and calling new ones",
                (
                    ConsoleLink("Event list", "console:event_list", _may("events.view_event")),
                    ConsoleLink("Calendar", "console:event_calendar", _may("events.view_event")),
                    ConsoleLink("Call an event", "console:event_create", _may("events.add_event")),
                ),
            ),
            ConsoleCard(
                "Sandbox outbox",
                "Messages sent in sandbox mode; simulate replies",
                (ConsoleLink("Outbox", "console:outbox", _may("events.view_notification")),),
            ),
            ConsoleCard(
                "Notifications and replies",
                "The delivery ledger and what participants answered",
                (
                    ConsoleLink(
                        "Notifications",
                        "admin:events_notification_changelist",
                        _may("events.view_notification"),
                    ),
                    ConsoleLink(
                        "Inbound messages",
                        "admin:events_inboundmessage_changelist",
                        _may("events.view_inboundmessage"),
                    ),
                    ConsoleLink(
                        "Unavailability",
                        "admin:events_unavailability_changelist",
                        _may("events.view_unavailability"),
                    ),
                ),
            ),
        ),
    ),
    (
        "Meter data",
        (
            ConsoleCard(
                "Imports",
                "Upload interval data files; import history and errors",
                (
                    ConsoleLink(
                        "Meter data imports",
                        "console:meterdata_imports",
                        _may("settlements.view_meterdataimport"),
                    ),
                ),
            ),
            ConsoleCard(
                "Meters",
                "Every meter and its data quality: gaps, flags, coverage",
                (
                    # The page opens for any staff but lists only meters whose readings
                    # the user may view, which is none without this permission.
                    ConsoleLink(
                        "Meters", "console:meterdata_meters", _may("settlements.view_meterreading")
                    ),
                ),
            ),
        ),
    ),
    (
        "Performance",
        (
            ConsoleCard(
                "Event performance",
                "Baselines and measured reduction of completed events",
                (
                    ConsoleLink(
                        "Completed events",
                        "console:performance_events",
                        _may("settlements.view_eventperformance"),
                    ),
                ),
            ),
            ConsoleCard(
                "Baseline accuracy",
                "How well each baseline method predicts each enrolled site",
                (
                    ConsoleLink(
                        "Accuracy by program",
                        "console:performance_accuracy",
                        _may("settlements.view_eventperformance"),
                    ),
                ),
            ),
        ),
    ),
    (
        "Settlements",
        (
            ConsoleCard(
                "Settlement runs",
                "Calculate, review and approve a program's period",
                (
                    ConsoleLink(
                        "Settlement runs",
                        "console:settlement_runs",
                        _may("settlements.view_settlementrun"),
                    ),
                ),
            ),
            ConsoleCard(
                "Billing exports",
                "The CSV files handed to billing",
                (
                    ConsoleLink(
                        "Billing exports",
                        "console:billing_exports",
                        _may("settlements.view_billingexport"),
                    ),
                ),
            ),
            ConsoleCard(
                "Disputes",
                "Participants' challenges of settlement lines, to decide",
                (ConsoleLink("Dispute queue", "console:dispute_queue", _decides_disputes),),
            ),
            ConsoleCard(
                "Payment rules",
                "Effective-dated rates and rules of each program",
                (
                    ConsoleLink(
                        "Payment rule versions",
                        "admin:settlements_paymentruleversion_changelist",
                        _may("settlements.view_paymentruleversion"),
                    ),
                ),
            ),
        ),
    ),
)


def console_sections(user: AbstractBaseUser) -> list[dict]:
    """The console home's sections as ``user`` sees them: title and cards, each card with
    its title, note, count (or None) and links (label, href); nothing ``user`` may not
    open. Counts are only computed for cards that are shown."""
    sections = []
    for title, cards in CONSOLE_SECTIONS:
        shown = []
        for card in cards:
            links = [
                {"label": link.label, "href": reverse(link.url_name)}
                for link in card.links
                if link.allowed(user)
            ]
            if links:
                shown.append(
                    {
                        "title": card.title,
                        "note": card.note,
                        "links": links,
                        "stat": card.stat() if card.stat else None,
                        "stat_id": card.stat_id,
                    }
                )
        if shown:
            sections.append({"title": title, "cards": shown})
    return sections


@staff_required
@require_GET
def console_home(request: HttpRequest) -> HttpResponse:
    """The manager console's front page: counts and the way into each area the user's
    roles may open."""
    return render(
        request,
        "console/home.html",
        {
            "roles": sorted(staff_roles(request.user)),
            "sections": console_sections(request.user),
        },
    )


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Database and broker reachability for load balancers: 200 when both answer, else 503."""
    checks = {"database": database_status(), "broker": broker_status()}
    healthy = all(error is None for error in checks.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        "checks": {name: (error or "ok") for name, error in checks.items()},
    }
    return JsonResponse(body, status=200 if healthy else 503)
