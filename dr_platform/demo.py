"""Demo data and the pages the demo check visits.

``load_demo_data`` is idempotent: every object is found by a natural key before it is
created, so running ``make demo`` twice leaves one copy of everything. Each app adds its
own loader to ``DEMO_LOADERS`` (in dependency order) as the platform grows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from dr_platform.models import Membership
from dr_platform.roles import AUDITORS, BILLING, PROGRAM_MANAGERS
from enrollment.models import Meter, Organization
from events.models import Participation
from settlements.models import BillingExport, Dispute, SettlementRun

DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - published demo login, local only


@dataclass(frozen=True)
class DemoLogin:
    username: str
    description: str
    # Pages this user must be able to open (200), checked by ``make demo-check``.
    pages: tuple[str, ...]
    # Pages this user must NOT see (another organization's data answers 404).
    forbidden: tuple[str, ...] = ()


def _user(username: str, *, first: str, last: str, staff: bool = False, superuser: bool = False):
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=username,
        defaults={
            "first_name": first,
            "last_name": last,
            "email": f"{username}@example.com",
            "is_staff": staff or superuser,
            "is_superuser": superuser,
        },
    )
    if created:
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
    return user


def load_foundation() -> None:
    """Staff users in each role, and two participant organizations with one admin each."""
    _user("admin", first="Ada", last="Admin", superuser=True)
    roles = {
        "manager": (PROGRAM_MANAGERS, "Morgan", "Manager"),
        "auditor": (AUDITORS, "Avery", "Auditor"),
        "billing": (BILLING, "Blake", "Billing"),
    }
    for username, (group_name, first, last) in roles.items():
        user = _user(username, first=first, last=last, staff=True)
        user.groups.add(Group.objects.get(name=group_name))
    manager = get_user_model().objects.get(username="manager")
    organizations = {
        "harbor": ("Harbor Cold Storage LLC", Organization.Tier.A, "BA-100001"),
        "northside": ("Northside Medical Center", Organization.Tier.A, "BA-100002"),
    }
    for username, (legal_name, tier, account) in organizations.items():
        organization, _ = Organization.objects.get_or_create(
            billing_account_number=account,
            defaults={"legal_name": legal_name, "tier": tier, "account_manager": manager},
        )
        user = _user(username, first=username.capitalize(), last="Facilities")
        Membership.objects.get_or_create(
            user=user, organization=organization, defaults={"role": Membership.Role.ADMIN}
        )


def _load_enrollment() -> None:
    from enrollment.demo import load_enrollment_demo

    load_enrollment_demo()


def _load_events() -> None:
    from events.demo import load_events_demo

    load_events_demo()


def _load_meter_data() -> None:
    from settlements.demo import load_meter_data_demo

    load_meter_data_demo()


def _load_settlements() -> None:
    from settlements.demo import load_settlement_demo

    load_settlement_demo()


DEMO_LOADERS: list[Callable[[], None]] = [
    load_foundation,
    _load_enrollment,
    _load_events,
    _load_meter_data,
    _load_settlements,
]


def load_demo_data() -> None:
    """Run every app's demo loader in one transaction (all or nothing)."""
    with transaction.atomic():
        for loader in DEMO_LOADERS:
            loader()


def _statement_run(organization: Organization) -> int | None:
    """The organization's latest statement (a run participants may see with its lines)."""
    return (
        SettlementRun.objects.filter(
            status__in=SettlementRun.LOCKED_STATUSES, lines__organization=organization
        )
        .order_by("-period_start", "-version")
        .values_list("pk", flat=True)
        .first()
    )


def _statement_pages(organization: Organization) -> tuple[str, ...]:
    """The statement list and, when there is one, a statement with its PDF and CSV."""
    base = f"/portal/o/{organization.pk}/statements/"
    run_id = _statement_run(organization)
    if run_id is None:
        return (base,)
    return (
        base,
        f"{base}{run_id}/",
        f"{base}{run_id}/statement.pdf",
        f"{base}{run_id}/statement.csv",
    )


def _other_statement(owner: Organization) -> tuple[str, ...]:
    """``owner``'s statement pages, which another organization's members must not see:
    the list, and its latest statement with its PDF (404, like a missing one)."""
    base = f"/portal/o/{owner.pk}/statements/"
    run_id = _statement_run(owner)
    if run_id is None:
        return (base,)
    return (base, f"{base}{run_id}/", f"{base}{run_id}/statement.pdf")


def demo_logins() -> list[DemoLogin]:
    """The demo accounts and, for each, the pages the demo check opens."""
    harbor = Organization.objects.get(billing_account_number="BA-100001")
    northside = Organization.objects.get(billing_account_number="BA-100002")
    harbor_meter, northside_meter = (
        Meter.objects.filter(site__organization=org).values_list("pk", flat=True).first()
        for org in (harbor, northside)
    )
    harbor_event, northside_event = (
        Participation.objects.filter(enrollment__site__organization=org)
        .order_by("event__starts_at")
        .values_list("event_id", flat=True)
        .first()
        for org in (harbor, northside)
    )
    harbor_events = (f"/portal/o/{harbor.pk}/events/",) + (
        (f"/portal/o/{harbor.pk}/events/{harbor_event}/",) if harbor_event else ()
    )
    northside_events = (f"/portal/o/{northside.pk}/events/",) + (
        (f"/portal/o/{northside.pk}/events/{northside_event}/",) if northside_event else ()
    )
    harbor_audit = (
        harbor.sites.filter(audits__status="completed").values_list("audits__pk", flat=True).first()
    )
    harbor_statements, northside_statements = (
        _statement_pages(organization) for organization in (harbor, northside)
    )
    export = BillingExport.objects.order_by("pk").values_list("pk", "run_id").first()
    settlement_pages = (
        "/console/settlements/", "/console/settlements/exports/",
        *((f"/console/settlements/runs/{export[1]}/",
           f"/console/settlements/exports/{export[0]}/download/") if export else ()),
    )  # fmt: skip
    dispute_id = (
        Dispute.objects.filter(status=Dispute.Status.OPEN)
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    dispute_pages = (
        "/console/settlements/disputes/",
        *((f"/console/settlements/disputes/{dispute_id}/",) if dispute_id else ()),
    )
    return [
        DemoLogin(
            "manager",
            "program manager",
            (
                "/console/", "/admin/", "/api/", "/console/enrollments/",
                "/console/enrollments/review/", "/console/capacity/",
                "/console/enrollments/export.csv", "/api/enrollments/",
                "/admin/enrollment/program/", "/admin/enrollment/enrollment/",
                "/console/meterdata/", f"/console/meterdata/meters/{harbor_meter}/quality/",
                *dispute_pages,
            ),
        ),
        DemoLogin("auditor", "auditor", ("/console/", "/admin/enrollment/audit/")),
        DemoLogin(
            "billing", "billing clerk",
            ("/console/", "/console/enrollments/", "/console/meterdata/", *settlement_pages),
        ),
        DemoLogin(
            "harbor",
            f"participant admin of {harbor.legal_name}",
            (
                f"/portal/o/{harbor.pk}/", "/api/organizations/", "/api/enrollments/",
                f"/portal/o/{harbor.pk}/contacts/", f"/portal/o/{harbor.pk}/apply/",
                *((f"/portal/o/{harbor.pk}/audits/{harbor_audit}/",) if harbor_audit else ()),
                f"/portal/meters/{harbor_meter}/quality/",
                *harbor_events, f"/portal/o/{harbor.pk}/events/unavailability/",
                *harbor_statements,
            ),
            forbidden=(
                f"/portal/meters/{northside_meter}/quality/",
                *northside_events, *_other_statement(northside),
                f"/portal/o/{northside.pk}/", f"/api/organizations/{northside.pk}/",
                f"/portal/o/{northside.pk}/contacts/",
                *((f"/portal/o/{northside.pk}/audits/{harbor_audit}/",) if harbor_audit else ()),
            ),
        ),
        DemoLogin(
            "northside",
            f"participant admin of {northside.legal_name}",
            (
                f"/portal/o/{northside.pk}/", f"/portal/o/{northside.pk}/contacts/",
                f"/portal/meters/{northside_meter}/quality/", *northside_events,
                *northside_statements,
            ),
            forbidden=(
                f"/portal/o/{harbor.pk}/", f"/portal/meters/{harbor_meter}/quality/",
                *harbor_events, *_other_statement(harbor),
            ),
        ),
    ]  # fmt: skip
