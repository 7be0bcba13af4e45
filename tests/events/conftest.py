"""The events cast: one program, two organizations, their sites, contacts and methods.

Times are fixed: the program's season is summer 2026 (America/New_York); ``NOW`` is the
morning of Wednesday 15 July 2026 and the default event runs 14:00-18:00 local that day.
Services take ``now``, so nothing here freezes the clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings
from django.utils import timezone

from enrollment.models import ContactMethod
from events import services
from events.models import Event
from events.services import pipeline
from tests.enrollment.factories import (
    ContactFactory,
    ContactMethodFactory,
    EnrollmentFactory,
    ProgramFactory,
    SiteFactory,
)
from tests.factories import OrganizationFactory, UserFactory
from tests.stubs.fixtures import (  # noqa: F401 -- fixtures are found by name
    STUB_ACCOUNT_SID,
    STUB_AUTH_TOKEN,
    twilio_stub,
    wctp_stub,
)

NEW_YORK = ZoneInfo("America/New_York")


def local(*args: int) -> dt.datetime:
    """A New York wall-clock time as an aware datetime."""
    return dt.datetime(*args, tzinfo=NEW_YORK)


NOW = local(2026, 7, 15, 9, 0)
START = local(2026, 7, 15, 14, 0)
END = local(2026, 7, 15, 18, 0)


@pytest.fixture
def program(db):
    return ProgramFactory(
        opt_outs_per_season=2,
        opt_out_cutoff_minutes=60,
        ack_deadline_minutes=30,
        reminder_minutes_before=60,
        min_notice_minutes=120,
        max_events_per_site_per_day=1,
    )


@pytest.fixture
def account_manager(db):
    return UserFactory(is_staff=True, email="am@utility.example", username="account-manager")


@pytest.fixture
def harbor(db, account_manager):
    """A tier A key account with two sites, one contact with SMS then email."""
    organization = OrganizationFactory(
        legal_name="Harbor Cold Storage LLC", tier="A", account_manager=account_manager
    )
    return organization


@pytest.fixture
def northside(db):
    return OrganizationFactory(legal_name="Northside Medical Center", tier="B")


@pytest.fixture
def harbor_north(harbor):
    return SiteFactory(
        organization=harbor, name="Harbor North", zone="NORTH", substation="SUB-1", feeder="F-101"
    )


@pytest.fixture
def harbor_south(harbor):
    return SiteFactory(
        organization=harbor, name="Harbor South", zone="SOUTH", substation="SUB-2", feeder="F-201"
    )


@pytest.fixture
def northside_site(northside):
    return SiteFactory(
        organization=northside, name="Northside Campus", zone="NORTH", substation="SUB-3",
        feeder="F-301",
    )  # fmt: skip


@pytest.fixture
def enrollments(program, harbor_north, harbor_south, northside_site):
    """Active enrollments of the three sites (100, 80 and 50 kW)."""
    return {
        "harbor_north": EnrollmentFactory(
            program=program, site=harbor_north, committed_kw=Decimal("100")
        ),
        "harbor_south": EnrollmentFactory(
            program=program, site=harbor_south, committed_kw=Decimal("80")
        ),
        "northside": EnrollmentFactory(
            program=program, site=northside_site, committed_kw=Decimal("50")
        ),
    }


@pytest.fixture
def methods(harbor, northside):
    """Verified methods: Harbor's manager by SMS (1) then email (2), Northside's by SMS (1)
    then voice (2)."""
    dana = ContactFactory(organization=harbor, name="Dana Harbor")
    lee = ContactFactory(organization=northside, name="Lee Northside")
    return {
        "dana_sms": ContactMethodFactory(contact=dana, address="+12125550101", escalation_order=1),
        "dana_email": ContactMethodFactory(
            contact=dana,
            kind=ContactMethod.Kind.EMAIL,
            address="dana@harbor.example",
            escalation_order=2,
        ),
        "lee_sms": ContactMethodFactory(contact=lee, address="+12125550202", escalation_order=1),
        "lee_voice": ContactMethodFactory(
            contact=lee, kind=ContactMethod.Kind.VOICE, address="+12125550202", escalation_order=2
        ),
    }


@pytest.fixture
def manager_user(manager):
    manager.email = "manager@utility.example"
    manager.save(update_fields=["email"])
    return manager


@pytest.fixture
def call_event(program, enrollments, methods, manager_user) -> Callable[..., services.EventPlan]:
    """Call an event of ``program`` with the defaults above; keywords override them."""

    def call(**overrides: Any) -> services.EventPlan:
        values: dict[str, Any] = {
            "program": program,
            "kind": "economic",
            "starts_at": START,
            "ends_at": END,
            "by": manager_user,
            "now": NOW,
        }
        values.update(overrides)
        return services.event_create(**values)

    return call


@pytest.fixture
def enqueued(monkeypatch) -> list[tuple[int, str, float | None]]:
    """Capture what the pipeline would put on the broker instead of sending it."""
    sent: list[tuple[int, str, float | None]] = []

    def capture(rows, countdown=None):
        sent.extend((notification_id, channel, countdown) for notification_id, channel in rows)

    monkeypatch.setattr(pipeline, "_enqueue", capture)
    return sent


@pytest.fixture
def live_twilio(twilio_stub) -> Iterator[Any]:  # noqa: F811
    """Live mode against the loopback Twilio stub (SMS and voice)."""
    with override_settings(
        NOTIFICATION_MODE="live",
        TWILIO_ACCOUNT_SID=STUB_ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=STUB_AUTH_TOKEN,
        TWILIO_FROM_NUMBER="+15005550006",
        TWILIO_BASE_URL=twilio_stub.base_url,
        TWILIO_TIMEOUT=1,
        SITE_URL="https://dr.example.com",
    ):
        yield twilio_stub


@pytest.fixture
def call_event_soon(program, enrollments, methods, manager_user) -> Callable[..., Event]:
    """Call an event starting about three hours from the real clock.

    For tests going through views, which use the real time: the program is widened to
    allow it whatever today is. Keywords override ``event_create``'s arguments.
    """

    def call(**overrides: Any) -> Event:
        now = timezone.now()
        start = now.astimezone(program.zone).replace(minute=0, second=0, microsecond=0)
        start += dt.timedelta(hours=3)
        if start.hour >= 20:  # keep the event on one local day
            start = start.replace(hour=12) + dt.timedelta(days=1)
        program.season_start = start.date() - dt.timedelta(days=1)
        program.season_end = start.date() + dt.timedelta(days=1)
        program.allowed_weekdays = list(range(7))
        program.event_window_start = dt.time(0, 0)
        program.event_window_end = dt.time(23, 59)
        program.save()
        values: dict[str, Any] = {
            "program": program,
            "kind": "economic",
            "starts_at": start,
            "ends_at": start + dt.timedelta(hours=2),
            "by": manager_user,
            "now": now,
        }
        values.update(overrides)
        return services.event_create(**values).event

    return call
