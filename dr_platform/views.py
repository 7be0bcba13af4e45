"""The portal shell and console home: where each user lands, and the health endpoint."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
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

    enrollments = list(
        enrollment_selectors.enrollments_for_member(user)
        .filter(**in_organization)
        .order_by("program__name", "site__name", "-applied_at")
    )
    now = timezone.now()
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


@staff_required
def console_home(request: HttpRequest) -> HttpResponse:
    """The manager console's front page: counts and the way into each area."""
    return render(
        request,
        "console/home.html",
        {
            "roles": sorted(staff_roles(request.user)),
            "organization_count": Organization.objects.count(),
            "participant_count": Membership.objects.values("user").distinct().count(),
            "applications_waiting": review_queue().count(),
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
