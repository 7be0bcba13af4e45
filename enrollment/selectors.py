"""Reads of the enrollment app. Participant reads are scoped through dr_platform.selectors."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, OuterRef, QuerySet, Subquery, Sum

from dr_platform.selectors import scope_to_member
from enrollment.models import (
    Audit,
    Contact,
    ContactMethod,
    EnablementInstallment,
    EnablementProject,
    Enrollment,
    FirmServiceLevel,
    Nomination,
    Site,
)


def committed_kw_at(enrollment: Enrollment, moment: dt.datetime) -> Decimal | None:
    """Return the kW ``enrollment`` committed at ``moment`` (None before its first nomination)."""
    return (
        Nomination.objects.filter(enrollment=enrollment, effective_from__lte=moment)
        .order_by("-effective_from", "-pk")
        .values_list("committed_kw", flat=True)
        .first()
    )


def with_committed_kw_at(
    queryset: QuerySet[Enrollment], moment: dt.datetime
) -> QuerySet[Enrollment]:
    """Annotate each enrollment with ``committed_kw_then``: its nomination in effect at ``moment``.

    One query for any number of enrollments (events and settlements use it in bulk).
    """
    latest = (
        Nomination.objects.filter(enrollment=OuterRef("pk"), effective_from__lte=moment)
        .order_by("-effective_from", "-pk")
        .values("committed_kw")[:1]
    )
    return queryset.annotate(committed_kw_then=Subquery(latest))


def firm_service_level_at(enrollment: Enrollment, moment: dt.datetime) -> Decimal | None:
    """Return the firm service level (kW) of ``enrollment`` in effect at ``moment``: the
    latest record starting on or before it. None before the first record, and from a
    record that clears the level."""
    return (
        FirmServiceLevel.objects.filter(enrollment=enrollment, effective_from__lte=moment)
        .order_by("-effective_from", "-pk")
        .values_list("firm_kw", flat=True)
        .first()
    )


def with_firm_service_level_at(
    queryset: QuerySet[Enrollment], moment: dt.datetime
) -> QuerySet[Enrollment]:
    """Annotate each enrollment with ``firm_kw_then``: its firm service level (kW) in effect
    at ``moment``, None where there is none (as :func:`firm_service_level_at`).

    One query for any number of enrollments (the participant's dashboard lists them all).
    """
    latest = (
        FirmServiceLevel.objects.filter(enrollment=OuterRef("pk"), effective_from__lte=moment)
        .order_by("-effective_from", "-pk")
        .values("firm_kw")[:1]
    )
    return queryset.annotate(firm_kw_then=Subquery(latest))


def sites_for_member(user: AbstractBaseUser) -> QuerySet[Site]:
    return scope_to_member(Site.objects.select_related("organization"), user)


def enrollments_for_member(user: AbstractBaseUser) -> QuerySet[Enrollment]:
    return scope_to_member(
        Enrollment.objects.select_related("site", "program", "site__organization"),
        user,
        "site__organization",
    )


def audits_for_member(user: AbstractBaseUser) -> QuerySet[Audit]:
    return scope_to_member(
        Audit.objects.select_related("site", "auditor"), user, "site__organization"
    )


def projects_for_member(user: AbstractBaseUser) -> QuerySet[EnablementProject]:
    return scope_to_member(
        EnablementProject.objects.select_related("site", "program"), user, "site__organization"
    )


def contacts_for_member(user: AbstractBaseUser) -> QuerySet[Contact]:
    return scope_to_member(Contact.objects.prefetch_related("methods", "sites"), user)


def contact_methods_for_member(user: AbstractBaseUser) -> QuerySet[ContactMethod]:
    return scope_to_member(
        ContactMethod.objects.select_related("contact"), user, "contact__organization"
    )


def review_queue() -> QuerySet[Enrollment]:
    """Applications waiting for a manager's decision, oldest first."""
    return (
        Enrollment.objects.filter(
            status__in=[Enrollment.Status.APPLIED, Enrollment.Status.UNDER_REVIEW]
        )
        .select_related("site", "site__organization", "program", "applied_by")
        .order_by("applied_at")
    )


def enrollments_filtered(
    *,
    program_id: int | None = None,
    status: str | None = None,
    tier: str | None = None,
    zone: str | None = None,
) -> QuerySet[Enrollment]:
    """Enrollments for the console list and its CSV export, filtered as given."""
    queryset = Enrollment.objects.select_related("site", "site__organization", "program")
    if program_id:
        queryset = queryset.filter(program_id=program_id)
    if status:
        queryset = queryset.filter(status=status)
    if tier:
        queryset = queryset.filter(site__organization__tier=tier)
    if zone:
        queryset = queryset.filter(site__zone=zone)
    return queryset.order_by("program__name", "site__organization__legal_name", "site__name", "pk")


def capacity_summary(group_by: str) -> list[dict]:
    """Enrolled sites and committed kW of active enrollments, by program and ``group_by``.

    ``group_by`` is "zone" or "tier". Returns rows with program, the group value, site
    count and committed kW, ordered by program then group.
    """
    field = {"zone": "site__zone", "tier": "site__organization__tier"}[group_by]
    rows = (
        Enrollment.objects.filter(status=Enrollment.Status.ACTIVE)
        .values("program__name", field)
        .annotate(sites=Count("site", distinct=True), committed_kw=Sum("committed_kw"))
        .order_by("program__name", field)
    )
    return [
        {
            "program": row["program__name"],
            "group": row[field] or "—",
            "sites": row["sites"],
            "committed_kw": row["committed_kw"] or Decimal("0"),
        }
        for row in rows
    ]


def payable_installments(
    *, start: dt.date, end: dt.date, program_id: int | None = None
) -> QuerySet[EnablementInstallment]:
    """Installments and clawbacks due from ``start`` to ``end`` inclusive: payable items.

    Settlement turns each into a line (clawbacks are negative amounts).
    """
    queryset = EnablementInstallment.objects.filter(
        status__in=[EnablementInstallment.Status.DUE, EnablementInstallment.Status.PAID],
        due_date__gte=start,
        due_date__lte=end,
    ).select_related("project", "project__site", "project__site__organization", "project__program")
    if program_id:
        queryset = queryset.filter(project__program_id=program_id)
    return queryset.order_by("due_date", "project_id", "sequence")
