"""The organization dashboard and the printable audit report."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
import pytest
from django.utils import timezone

from enrollment import services
from enrollment.models import (
    Audit,
    BackupGenerator,
    EnablementInstallment,
    EnablementProject,
    Enrollment,
)
from tests.enrollment.factories import (
    AuditFactory,
    AuditFindingFactory,
    EnablementMeasureFactory,
    EnrollmentFactory,
    NominationWindowFactory,
    ProgramFactory,
    SiteFactory,
)

pytestmark = pytest.mark.django_db


class BackupGeneratorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BackupGenerator

    audit = factory.SubFactory(AuditFactory)
    kw = Decimal("250")
    fuel = BackupGenerator.Fuel.DIESEL
    permitted_run_hours_per_year = 100
    remote_start = True


class EnablementProjectFactory(factory.django.DjangoModelFactory):
    """A verified project with a due first installment and a pending second one."""

    class Meta:
        model = EnablementProject
        skip_postgeneration_save = True

    site = factory.SubFactory(SiteFactory)
    program = factory.SubFactory(ProgramFactory)
    description = "Remote HVAC setpoint control"
    cost = Decimal("40000.00")
    incentive = Decimal("20000.00")
    status = EnablementProject.Status.VERIFIED

    @factory.post_generation
    def installments(self, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            EnablementInstallment.objects.create(
                project=self,
                sequence=1,
                trigger="verified",
                share=Decimal("0.5"),
                amount=Decimal("10000.00"),
                due_date=dt.date(2026, 7, 15),
                status=EnablementInstallment.Status.DUE,
                explanation="50% once the installation is verified",
            )
            EnablementInstallment.objects.create(
                project=self,
                sequence=2,
                trigger="season_performance",
                share=Decimal("0.5"),
                amount=Decimal("10000.00"),
                explanation="50% after a season with enough performance",
            )


def add_site_with_everything(organization, program, number: int) -> None:
    site = SiteFactory(
        organization=organization,
        name=f"Warehouse {number}",
        service_account_number=f"SA-DASH-{number:04d}",
        zone=f"ZONE-{number}",
        peak_demand_kw=Decimal("800"),
        audited_curtailable_kw=Decimal("300.5"),
    )
    EnrollmentFactory(site=site, program=program, committed_kw=Decimal("120"))
    audit = AuditFactory(site=site, status=Audit.Status.COMPLETED)
    AuditFindingFactory(audit=audit)
    EnablementProjectFactory(site=site, program=program)


def test_the_dashboard_shows_sites_enrollments_audits_and_projects(
    client, participant_a, organization_a
):
    program = ProgramFactory(name="Summer Peak")
    add_site_with_everything(organization_a, program, 1)
    client.force_login(participant_a)

    page = client.get(f"/portal/o/{organization_a.pk}/").content.decode()

    for text in (
        "Warehouse 1",
        "SA-DASH-0001",
        "ZONE-1",
        "800",
        "300.5",
        "Summer Peak",
        '<span class="badge ok">Active</span>',
        "120",
        "2027-06-01",
        "Report",
        "Remote HVAC setpoint control",
        "$40,000.00",
        "$20,000.00",
        "$10,000.00",
        "2026-07-15",
        "Waiting for its trigger",
    ):
        assert text in page, text


def test_the_dashboard_of_an_organization_with_nothing_yet_says_so(
    client, participant_a, organization_a
):
    client.force_login(participant_a)
    page = client.get(f"/portal/o/{organization_a.pk}/").content.decode()
    assert "No enrollments yet." in page
    assert "No enablement projects." in page


def test_the_dashboard_offers_a_nomination_change_only_while_a_window_is_open(
    client, participant_a, organization_a
):
    open_program = ProgramFactory(name="Open Window Program")
    NominationWindowFactory(program=open_program)
    closed_program = ProgramFactory(name="Closed Window Program")
    NominationWindowFactory(
        program=closed_program,
        opens_at=timezone.now() + dt.timedelta(days=10),
        closes_at=timezone.now() + dt.timedelta(days=20),
    )
    site = SiteFactory(organization=organization_a)
    in_open = EnrollmentFactory(site=site, program=open_program)
    in_closed = EnrollmentFactory(site=site, program=closed_program)
    client.force_login(participant_a)

    page = client.get(f"/portal/o/{organization_a.pk}/").content.decode()

    base = f"/portal/o/{organization_a.pk}/enrollments"
    assert f"{base}/{in_open.pk}/nomination/" in page
    assert f"{base}/{in_closed.pk}/nomination/" not in page
    assert f"{base}/{in_open.pk}/withdraw/" in page
    assert f"{base}/{in_closed.pk}/withdraw/" in page


def test_an_ended_enrollment_offers_no_withdrawal(client, participant_a, organization_a):
    ended = EnrollmentFactory(
        site=SiteFactory(organization=organization_a), status=Enrollment.Status.WITHDRAWN
    )
    client.force_login(participant_a)
    page = client.get(f"/portal/o/{organization_a.pk}/").content.decode()
    assert '<span class="badge bad">Withdrawn</span>' in page
    assert f"/enrollments/{ended.pk}/withdraw/" not in page


def test_the_dashboard_needs_a_bounded_number_of_queries(
    client, participant_a, organization_a, django_assert_max_num_queries
):
    program = ProgramFactory()
    NominationWindowFactory(program=program)
    for number in range(8):
        add_site_with_everything(organization_a, program, number)
    client.force_login(participant_a)

    with django_assert_max_num_queries(12):
        response = client.get(f"/portal/o/{organization_a.pk}/")

    assert response.status_code == 200
    assert response.content.decode().count("/nomination/") == 8


def test_the_audit_report_lists_findings_generators_measures_and_totals(
    client, participant_a, organization_a, auditor
):
    site = SiteFactory(organization=organization_a, name="Cold Store 1")
    audit = AuditFactory(site=site, auditor=auditor)
    hvac = AuditFindingFactory(
        audit=audit, end_use="hvac", curtailable_kw=Decimal("120"), response_time_minutes=15
    )
    AuditFindingFactory(
        audit=audit,
        end_use="lighting",
        curtailable_kw=Decimal("35.5"),
        response_time_minutes=5,
        needs_enablement=True,
    )
    BackupGeneratorFactory(audit=audit, kw=Decimal("500"), permitted_run_hours_per_year=100)
    EnablementMeasureFactory(audit=audit, finding=hvac, estimated_cost=Decimal("40000"))
    EnablementMeasureFactory(
        audit=audit, description="Lighting relay panel", estimated_cost=Decimal("2500.50")
    )
    services.audit_complete(audit=audit, by=auditor, summary="Two end uses can be shed.")
    client.force_login(participant_a)

    response = client.get(f"/portal/o/{organization_a.pk}/audits/{audit.pk}/")

    assert response.status_code == 200
    page = response.content.decode()
    for text in (
        "Audit report: Cold Store 1",
        '<span class="badge ok">Completed</span>',
        "Two end uses can be shed.",
        "HVAC",
        "Lighting",
        "15 min",
        "5 min",
        "155.500",  # total curtailable kW
        "35.500 kW needs enablement",
        "Diesel",
        "Permitted hours / year",
        "100",
        "Remote HVAC setpoint control",
        "Lighting relay panel",
        "$42,500.50",  # total estimated cost
        "window.print()",
        'class="no-print"',
    ):
        assert text in page, text
