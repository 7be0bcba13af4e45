"""The settlement demo: last summer's event measured from the demo readings, its month
settled with four eyes and exported, statements for the participants, one open dispute.

The stand-in for the enrollment demo is the events demo tests' (Harbor and Northside with
three enrolled sites each, one more organization), with a meter per site, and its
enrollments made to look like the enrollment demo's: active from today, committed from
now. The events demo then replays its past event, the meter data demo writes readings
around it, and the settlement demo settles it, all with the real clock as in ``make demo``.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.utils import timezone

from dr_platform import demo as platform_demo
from dr_platform.demo import load_foundation
from enrollment.models import Enrollment, Nomination, Organization, Program
from events import demo as events_demo
from events.models import Event, Participation
from settlements import demo
from settlements.models import (
    BillingExport,
    Dispute,
    DisputeEntry,
    EventPerformance,
    MeterDataImport,
    MeterReading,
    PaymentRuleVersion,
    SettlementLine,
    SettlementRun,
)
from tests.enrollment.factories import MeterFactory
from tests.events.test_demo_events import _enrollment_demo_stand_in

pytestmark = pytest.mark.django_db

P = Participation.Status
HOURS = Decimal(4)  # the demo event runs 14:00-18:00


@pytest.fixture(autouse=True)
def _media_and_sandbox(settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.NOTIFICATION_MODE = "sandbox"


def _user(username: str):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=username)


@pytest.fixture
def settled():
    """The demo loaders from the foundation to the settlement, on the stand-in."""
    load_foundation()
    _enrollment_demo_stand_in()
    program = Program.objects.get(name=events_demo.SUMMER_PROGRAM_NAME)
    if events_demo.past_event_day(program, timezone.localdate(timezone=program.zone)) is None:
        pytest.skip("the summer season has no past weekday yet this year: no event to settle")
    for enrollment in Enrollment.objects.filter(program=program):
        MeterFactory(site=enrollment.site)
    # Like the enrollment demo: enrolled today, committed from now.
    Enrollment.objects.filter(program=program).update(active_from=timezone.localdate())
    Nomination.objects.filter(enrollment__program=program).update(effective_from=timezone.now())
    events_demo.load_events_demo()
    assert demo.load_meter_data_demo() is not None
    result = demo.load_settlement_demo()
    assert result is not None
    return result


def _harbor() -> Organization:
    return Organization.objects.get(billing_account_number=demo.HARBOR_ACCOUNT)


def _northside() -> Organization:
    return Organization.objects.get(billing_account_number=demo.NORTHSIDE_ACCOUNT)


def test_the_past_month_is_calculated_approved_by_another_clerk_and_exported(settled):
    run = settled.run
    event = Event.objects.get(reason=events_demo.PAST_EVENT_REASON)
    event_day = timezone.localtime(event.starts_at, event.program.zone).date()
    assert run.status == SettlementRun.Status.EXPORTED
    assert (run.period_kind, run.period_start) == ("month", event_day.replace(day=1))
    assert run.period_end.month == event_day.month and run.period_end >= event_day
    assert run.calculated_by == _user("manager")
    assert run.approved_by == _user("billing")
    assert run.line_count == run.lines.count() > 0
    assert not run.lines.filter(locked=False).exists()
    assert run.total == sum(run.lines.values_list("amount", flat=True))
    # The program had no payment rules: the demo's, from the season's start, were added.
    [rules] = PaymentRuleVersion.objects.filter(program=run.program)
    assert rules.effective_from == run.program.season_start
    assert rules.rules["version"] == demo.DEMO_RULES_VERSION
    # One hand-over to billing, one CSV row per line.
    [export] = BillingExport.objects.filter(run=run)
    assert export == settled.export
    assert export.exported_by == _user("billing")
    assert export.row_count == run.line_count
    assert bytes(export.content).decode().count("\n") == run.line_count + 1  # and the header


def test_the_enrollments_that_took_part_are_dated_back_before_the_season(settled):
    program = settled.run.program
    event = Event.objects.get(reason=events_demo.PAST_EVENT_REASON)
    for enrollment in Enrollment.objects.filter(participations__event=event):
        assert enrollment.active_from <= settled.run.period_start
        assert enrollment.applied_at < dt.datetime.combine(
            program.season_start, dt.time(), program.zone
        )
        nomination = enrollment.nominations.get()
        assert nomination.effective_from < event.starts_at
        assert enrollment.transitions.filter(at__gte=event.starts_at).count() == 0


def test_the_participants_numbers_are_measured_from_the_readings(settled):
    run = settled.run
    past = Participation.objects.filter(
        event__reason=events_demo.PAST_EVENT_REASON, removed_at=None
    )
    performances = EventPerformance.objects.filter(
        participation__in=past, is_current=True
    ).select_related("participation")
    assert performances.count() == past.count() > 0
    for performance in performances:
        assert performance.status == EventPerformance.Status.COMPUTED
        committed = performance.committed_kw
        if performance.participation.status == P.ACKNOWLEDGED:
            # The readings were cut by 75% to 120% of the committed kW during the event.
            assert performance.average_reduction_kw > 0.5 * float(committed)
        else:
            # Opted out or silent: the load stayed as usual.
            assert abs(performance.average_reduction_kw) < 0.4 * float(committed)
    # Each energy line is the measured kWh at the program's rate, rounded to cents.
    rate = run.program.energy_rate_per_kwh
    energy_lines = run.lines.filter(kind=SettlementLine.Kind.ENERGY).select_related("performance")
    assert energy_lines.exists()
    for line in energy_lines:
        kwh = max(Decimal(repr(line.performance.reduction_kwh)), Decimal(0))
        assert line.quantity == kwh.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
        assert line.amount == (kwh * rate).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    # A capacity line pays committed kW x 1 month x rate x the ratio capped at 1.
    capacity_rate = run.program.capacity_rate_per_kw_month
    for line in energy_lines:
        capacity = run.lines.get(kind=SettlementLine.Kind.CAPACITY, site=line.site)
        ratio = min(max(Decimal(repr(line.performance.performance_ratio)), Decimal(0)), Decimal(1))
        expected = line.performance.committed_kw * capacity_rate * ratio
        assert abs(capacity.amount - expected) <= Decimal("0.02")


def test_harbor_opens_its_statement_and_its_files_but_not_northsides(settled, client):
    run = settled.run
    harbor, northside = _harbor(), _northside()
    client.force_login(_user("harbor"))
    listing = client.get(f"/portal/o/{harbor.pk}/statements/")
    assert listing.status_code == 200
    assert f"/portal/o/{harbor.pk}/statements/{run.pk}/" in listing.content.decode()
    page = client.get(f"/portal/o/{harbor.pk}/statements/{run.pk}/")
    assert page.status_code == 200
    assert demo.NO_RESPONSE_DISPUTE[:60] in page.content.decode()
    pdf = client.get(f"/portal/o/{harbor.pk}/statements/{run.pk}/statement.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    csv = client.get(f"/portal/o/{harbor.pk}/statements/{run.pk}/statement.csv")
    assert csv.status_code == 200
    harbor_lines = run.lines.filter(organization=harbor).count()
    assert csv.content.decode().strip().count("\n") >= harbor_lines
    assert client.get(f"/portal/o/{northside.pk}/statements/").status_code == 404
    assert client.get(f"/portal/o/{northside.pk}/statements/{run.pk}/").status_code == 404


def test_one_open_dispute_of_a_harbor_line_waits_in_the_managers_queue(settled, client):
    [dispute] = Dispute.objects.all()
    assert dispute == settled.dispute
    assert dispute.status == Dispute.Status.OPEN
    assert dispute.organization == _harbor() == dispute.line.organization
    assert dispute.line.run == settled.run
    assert dispute.raised_by == _user("harbor")
    # The line of Harbor's site that never answered the event, as the comment says.
    silent = Participation.objects.get(
        event__reason=events_demo.PAST_EVENT_REASON, status=P.NO_RESPONSE
    )
    assert dispute.line.site_id == silent.enrollment.site_id
    assert dispute.line.kind == SettlementLine.Kind.CAPACITY
    assert dispute.comment == demo.NO_RESPONSE_DISPUTE
    [entry] = dispute.entries.all()
    assert (entry.action, entry.text) == ("raised", demo.NO_RESPONSE_DISPUTE)
    client.force_login(_user("manager"))
    queue = client.get("/console/settlements/disputes/")
    assert queue.status_code == 200
    assert f"/console/settlements/disputes/{dispute.pk}/" in queue.content.decode()


def _counts() -> dict[str, int]:
    models = (
        MeterDataImport, MeterReading, EventPerformance, PaymentRuleVersion, SettlementRun,
        SettlementLine, BillingExport, Dispute, DisputeEntry, Nomination,
    )  # fmt: skip
    return {model.__name__: model.objects.count() for model in models}


def test_loading_again_changes_nothing(settled):
    before = _counts()
    history = list(
        Enrollment.objects.order_by("pk").values_list(
            "applied_at", "active_from", "commitment_ends"
        )
    )
    assert demo.load_meter_data_demo() is None
    again = demo.load_settlement_demo()
    assert again == settled
    assert _counts() == before
    assert (
        list(
            Enrollment.objects.order_by("pk").values_list(
                "applied_at", "active_from", "commitment_ends"
            )
        )
        == history
    )


def test_the_demo_check_opens_the_settlement_pages_of_each_role(settled):
    assert platform_demo.DEMO_LOADERS.index(platform_demo._load_settlements) == (
        platform_demo.DEMO_LOADERS.index(platform_demo._load_meter_data) + 1
    )
    run, harbor, northside = settled.run, _harbor(), _northside()
    logins = {login.username: login for login in platform_demo.demo_logins()}
    assert {"/console/settlements/", "/console/settlements/exports/"} <= set(
        logins["billing"].pages
    )
    assert f"/console/settlements/disputes/{settled.dispute.pk}/" in logins["manager"].pages
    for owner, other in ((harbor, northside), (northside, harbor)):
        username = "harbor" if owner == harbor else "northside"
        statement = f"/portal/o/{owner.pk}/statements/{run.pk}/"
        assert {statement, f"{statement}statement.pdf", f"{statement}statement.csv"} <= set(
            logins[username].pages
        )
        assert f"/portal/o/{other.pk}/statements/{run.pk}/" in logins[username].forbidden
