"""Factories for the enrollment models (programs, sites, contacts, audits, enrollments)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.utils import timezone

from enrollment.models import (
    Audit,
    AuditFinding,
    Contact,
    ContactMethod,
    EnablementMeasure,
    Enrollment,
    Meter,
    Nomination,
    NominationWindow,
    Program,
    Site,
)
from tests.factories import OrganizationFactory, UserFactory


class ProgramFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Program

    name = factory.Sequence(lambda n: f"Summer Peak Program {n}")
    time_zone = "America/New_York"
    season_start = dt.date(2026, 6, 1)
    season_end = dt.date(2026, 9, 30)
    capacity_rate_per_kw_month = Decimal("8.00")
    energy_rate_per_kwh = Decimal("0.50")
    enablement_cost_share = Decimal("0.5")
    enablement_cap = Decimal("50000.00")
    min_committed_kw = Decimal("10")
    commitment_months = 12
    terms_text = "The participant agrees to curtail load when called."
    terms_version = "2026.1"


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Facility {n}")
    street = factory.Sequence(lambda n: f"{n} Industrial Way")
    city = "Springfield"
    state = "NY"
    postal_code = "10001"
    service_account_number = factory.Sequence(lambda n: f"SA-{n:08d}")
    zone = "NORTH"
    substation = "SUB-1"
    feeder = "F-101"
    peak_demand_kw = Decimal("500")
    audited_curtailable_kw = Decimal("200")


class MeterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Meter

    site = factory.SubFactory(SiteFactory)
    meter_id = factory.Sequence(lambda n: f"MTR-{n:06d}")
    interval_minutes = 15


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Facility Manager {n}")


class ContactMethodFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ContactMethod

    contact = factory.SubFactory(ContactFactory)
    kind = ContactMethod.Kind.SMS
    address = factory.Sequence(lambda n: f"+1212555{n % 10000:04d}")
    escalation_order = 1
    verified_at = factory.LazyFunction(timezone.now)


class AuditFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Audit

    site = factory.SubFactory(SiteFactory)
    auditor = factory.SubFactory(UserFactory, is_staff=True)
    scheduled_for = factory.LazyFunction(timezone.now)


class AuditFindingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditFinding

    audit = factory.SubFactory(AuditFactory)
    end_use = AuditFinding.EndUse.HVAC
    curtailable_kw = Decimal("100")
    response_time_minutes = 30


class EnablementMeasureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EnablementMeasure

    audit = factory.SubFactory(AuditFactory)
    kind = EnablementMeasure.Kind.LOAD_CONTROL
    description = "Remote HVAC setpoint control"
    estimated_cost = Decimal("40000.00")


class EnrollmentFactory(factory.django.DjangoModelFactory):
    """An active enrollment with its first nomination."""

    class Meta:
        model = Enrollment
        skip_postgeneration_save = True

    site = factory.SubFactory(SiteFactory)
    program = factory.SubFactory(ProgramFactory)
    status = Enrollment.Status.ACTIVE
    committed_kw = Decimal("100")
    applied_by = factory.SubFactory(UserFactory)
    active_from = dt.date(2026, 6, 1)
    commitment_ends = dt.date(2027, 6, 1)

    @factory.post_generation
    def nomination(self, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            Nomination.objects.create(
                enrollment=self,
                committed_kw=self.committed_kw,
                effective_from=timezone.now() - dt.timedelta(days=365),
                created_by=self.applied_by,
            )


class NominationWindowFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NominationWindow

    program = factory.SubFactory(ProgramFactory)
    opens_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=1))
    closes_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(days=6))
