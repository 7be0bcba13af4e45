"""The events demo loader: what it creates, through the services, and only once.

A small stand-in for the enrollment demo (its users, the summer program, Harbor and
Northside with three audited, actively enrolled sites each, one more organization, and
verified contacts) keeps these tests fast; ``make demo-check`` runs the loader on the full
enrollment demo. The clock is the real one, as in ``make demo``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from dr_platform.demo import load_foundation
from dr_platform.models import Membership, OutboxMessage
from enrollment.models import ContactMethod, Enrollment, Organization, Program
from events import demo
from events.models import EscalationStep, Event, Notification, Participation, Unavailability
from tests.enrollment.factories import (
    ContactFactory,
    ContactMethodFactory,
    EnrollmentFactory,
    ProgramFactory,
    SiteFactory,
)
from tests.factories import MembershipFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

P = Participation.Status


def _enrollment_demo_stand_in() -> None:
    year = timezone.localdate().year
    program = ProgramFactory(
        name=demo.SUMMER_PROGRAM_NAME,
        season_start=dt.date(year, 5, 1),
        season_end=dt.date(year, 9, 30),
        event_window_start=dt.time(11, 0),
        event_window_end=dt.time(21, 0),
        min_notice_minutes=21 * 60,
        initial_notice="day_ahead",
        opt_outs_per_season=2,
        opt_out_cutoff_minutes=120,
        min_committed_kw=Decimal("50"),
    )
    other = OrganizationFactory(legal_name="Atlas Bearings Inc.")
    MembershipFactory(organization=other, role=Membership.Role.ADMIN)
    for number, organization in enumerate(
        [*Organization.objects.filter(billing_account_number__in=["BA-100001", "BA-100002"]), other]
    ):
        contact = ContactFactory(organization=organization)
        ContactMethodFactory(contact=contact, address=f"+121255501{number}1", escalation_order=1)
        ContactMethodFactory(
            contact=contact,
            kind=ContactMethod.Kind.EMAIL,
            address=f"ops{number}@example.com",
            escalation_order=2,
        )
        for _ in range(3 if organization != other else 1):
            site = SiteFactory(organization=organization, audited_curtailable_kw=Decimal("300"))
            EnrollmentFactory(program=program, site=site, committed_kw=Decimal("200"))


@pytest.fixture
def loaded(settings):
    settings.NOTIFICATION_MODE = "sandbox"
    load_foundation()
    _enrollment_demo_stand_in()
    demo.load_events_demo()


def counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (
            Program,
            Enrollment,
            Event,
            Participation,
            Notification,
            EscalationStep,
            Unavailability,
            OutboxMessage,
        )
    }


def test_loading_twice_creates_nothing_more(loaded):
    before = counts()
    demo.load_events_demo()
    assert counts() == before


def test_the_past_event_was_replayed_to_completion_with_every_kind_of_answer(loaded):
    event = Event.objects.get(reason=demo.PAST_EVENT_REASON)
    assert event.status == Event.Status.COMPLETED
    assert event.program.name == demo.SUMMER_PROGRAM_NAME
    local = event.starts_at.astimezone(event.program.zone)
    assert local.weekday() < 5 and local.hour == 14
    assert event.program.season_start <= local.date() <= event.program.season_end
    statuses = list(event.participations.values_list("status", flat=True))
    assert statuses.count(P.OPTED_OUT) == 1
    assert statuses.count(P.NO_RESPONSE) == 1
    assert statuses.count(P.ACKNOWLEDGED) == len(statuses) - 2
    # Every notice went out through the sandbox, at its historical moment.
    assert not event.notifications.filter(
        status__in=[Notification.Status.QUEUED, Notification.Status.SENDING]
    ).exists()
    notice = event.notifications.filter(kind=Notification.Kind.NOTICE).earliest("sent_at")
    assert notice.sent_at < event.starts_at - dt.timedelta(hours=12)
    assert OutboxMessage.objects.filter(reference=notice.uuid).exists()
    # The silent site was escalated to further methods and then to people.
    silent = event.participations.get(status=P.NO_RESPONSE)
    assert silent.escalation_steps.filter(target=EscalationStep.Target.METHODS).exists()


def test_the_upcoming_drill_is_open_for_harbor_to_answer(loaded):
    drill = Event.objects.get(reason=demo.DRILL_REASON)
    assert drill.is_test and drill.status == Event.Status.SCHEDULED
    assert drill.program.name == demo.WINTER_PROGRAM_NAME
    harbor = drill.participations.filter(
        enrollment__site__organization__billing_account_number=demo.HARBOR_ACCOUNT
    )
    assert harbor.count() == 3
    assert set(harbor.values_list("status", flat=True)) <= {P.PENDING, P.UNAVAILABLE}
    assert drill.notifications.filter(status=Notification.Status.DELIVERED).exists()
    assert Unavailability.objects.filter(reason=demo.MAINTENANCE_REASON).count() == 1
