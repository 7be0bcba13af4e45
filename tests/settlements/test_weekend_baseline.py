"""A program's weekend and holiday method: events on a Saturday, a Sunday or a NERC holiday
are measured with it, every other event with the program's main method.

The site below draws 100 kW on weekdays and less on weekend days, a different load on each
of the last weekend days, so the selected days and the baseline say which method ran. All
loads are flat over the day except in the event (14:00-16:00 New York time), so the
baseline is the mean of the selected days' loads and the CAISO adjustment (event-day load
10:00-13:00 over the baseline's there, within +/-20%) is read off by hand.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from enrollment.constants import BASELINE_PRESETS, WEEKEND_BASELINE_VARIANTS
from events.models import Event, Participation
from settlements.baselines import PRESETS
from settlements.models import EventPerformance, MeterDataImport
from settlements.performance import (
    event_method,
    events_needing_performance,
    performance_compute_event,
)
from tests.enrollment.factories import EnrollmentFactory, MeterFactory, ProgramFactory, SiteFactory
from tests.factories import staff_user
from tests.settlements.test_performance_pages import store_readings

pytestmark = pytest.mark.django_db

ZONE = ZoneInfo("America/New_York")
EVENT_START, EVENT_END = dt.time(14, 0), dt.time(16, 0)
SATURDAY = dt.date(2026, 7, 18)
WEDNESDAY = dt.date(2026, 7, 1)
LABOR_DAY = dt.date(2026, 9, 7)  # a Monday, a NERC holiday
HISTORY = [dt.date(2026, 6, 1) + dt.timedelta(days=n) for n in range(100)]  # to Sep 8

# The last weekend days (and holidays) before each event, each with its own load, kW.
# Saturday Jul 4 is Independence Day, a holiday on the Saturday (NERC observes no Friday).
WEEKEND_KW = {
    dt.date(2026, 7, 12): 40.0,  # Sun
    dt.date(2026, 7, 11): 50.0,  # Sat
    dt.date(2026, 7, 5): 60.0,  # Sun
    dt.date(2026, 7, 4): 70.0,  # Sat, Independence Day
    dt.date(2026, 9, 6): 30.0,  # Sun
    dt.date(2026, 9, 5): 40.0,  # Sat
    dt.date(2026, 8, 30): 50.0,  # Sun
    dt.date(2026, 8, 29): 60.0,  # Sat
}
OTHER_WEEKEND_KW = 90.0
WEEKDAY_KW = 100.0
# Event days: (load outside the event, load in the event), kW. Outside the event each
# equals its baseline under the weekend method (the mean of its four days above), so that
# method's adjustment factor is 1.
EVENT_KW = {
    SATURDAY: (55.0, 25.0),  # (40 + 50 + 60 + 70) / 4 = 55
    LABOR_DAY: (45.0, 15.0),  # (30 + 40 + 50 + 60) / 4 = 45
    WEDNESDAY: (100.0, 60.0),
}


def _kw(local: dt.datetime) -> float:
    day = local.date()
    if day in EVENT_KW:
        usual, cut = EVENT_KW[day]
        return cut if EVENT_START <= local.time() < EVENT_END else usual
    if day in WEEKEND_KW:
        return WEEKEND_KW[day]
    return OTHER_WEEKEND_KW if day.weekday() >= 5 else WEEKDAY_KW


@pytest.fixture
def site(db):
    """A program with CAISO 10 of 10 and its weekend variant, and one enrolled site."""
    program = ProgramFactory(
        baseline_preset="caiso_10_of_10",
        weekend_baseline_preset="caiso_weekend_4_of_4",
        allowed_weekdays=[0, 1, 2, 3, 4, 5, 6],
        season_start=dt.date(2026, 5, 1),
    )
    site = SiteFactory(peak_demand_kw=Decimal("500"))
    meter = MeterFactory(site=site)
    store_readings(meter, HISTORY, _kw)
    return EnrollmentFactory(site=site, program=program)


def _participation(enrollment, day: dt.date) -> Participation:
    event = Event.objects.create(
        program=enrollment.program,
        kind=Event.Kind.ECONOMIC,
        status=Event.Status.COMPLETED,
        starts_at=dt.datetime.combine(day, EVENT_START, ZONE),
        ends_at=dt.datetime.combine(day, EVENT_END, ZONE),
        created_by=staff_user("Program managers"),
    )
    return Participation.objects.create(
        event=event, enrollment=enrollment, committed_kw=Decimal("50")
    )


def _measure(enrollment, day: dt.date) -> EventPerformance:
    participation = _participation(enrollment, day)
    performance_compute_event(event=participation.event)
    return EventPerformance.objects.get(participation=participation, is_current=True)


def test_a_saturday_event_uses_the_four_most_recent_weekend_days(site):
    performance = _measure(site, SATURDAY)

    # Jul 12, 11, 5 and 4 (Independence Day, a Saturday): 40, 50, 60, 70 kW, mean 55 kW.
    # The event day drew 55 kW before the event: factor 1. 55 - 25 = 30 kW for 2 hours.
    assert performance.method == "caiso_weekend_4_of_4"
    assert performance.parameters == PRESETS["caiso_weekend_4_of_4"].to_dict()
    assert performance.selected_days == ["2026-07-12", "2026-07-11", "2026-07-05", "2026-07-04"]
    assert performance.adjustment == pytest.approx(1.0)
    assert [row[1] for row in performance.intervals] == [pytest.approx(55.0)] * 8
    assert performance.average_reduction_kw == pytest.approx(30.0)
    assert performance.reduction_kwh == pytest.approx(60.0)
    assert performance.performance_ratio == pytest.approx(0.6)  # 30 ÷ 50 committed


def test_a_weekday_event_still_uses_ten_weekdays(site):
    performance = _measure(site, WEDNESDAY)

    # The ten weekdays before Wed Jul 1, all 100 kW.
    assert performance.method == "caiso_10_of_10"
    assert performance.parameters == PRESETS["caiso_10_of_10"].to_dict()
    assert performance.selected_days == [
        "2026-06-30", "2026-06-29", "2026-06-26", "2026-06-25", "2026-06-24",
        "2026-06-23", "2026-06-22", "2026-06-19", "2026-06-18", "2026-06-17",
    ]  # fmt: skip
    assert performance.adjustment == pytest.approx(1.0)
    assert performance.average_reduction_kw == pytest.approx(40.0)  # 100 - 60


def test_a_labor_day_event_uses_the_weekend_method(site):
    performance = _measure(site, LABOR_DAY)

    # Sep 6, 5 and Aug 30, 29: 30, 40, 50, 60 kW, mean 45 kW; 45 before the event: factor
    # 1; 45 - 15 = 30 kW. (The weekday method would take ten 100 kW weekdays, cap the
    # factor 45/100 at 0.8 and credit 80 - 15 = 65 kW.)
    assert performance.method == "caiso_weekend_4_of_4"
    assert performance.selected_days == ["2026-09-06", "2026-09-05", "2026-08-30", "2026-08-29"]
    assert performance.adjustment == pytest.approx(1.0)
    assert performance.average_reduction_kw == pytest.approx(30.0)


def test_a_program_without_a_weekend_method_measures_a_saturday_with_its_main_one(site):
    program = site.program
    program.weekend_baseline_preset = ""
    program.save(update_fields=["weekend_baseline_preset"])

    performance = _measure(site, SATURDAY)

    # The ten weekdays before Sat Jul 18, all 100 kW; the event day drew 55 kW before the
    # event: factor 0.55, capped at 0.8, baseline 80 kW, 80 - 25 = 55 kW.
    assert performance.method == "caiso_10_of_10"
    assert performance.selected_days[:3] == ["2026-07-17", "2026-07-16", "2026-07-15"]
    assert len(performance.selected_days) == 10
    assert performance.adjustment == pytest.approx(0.8)
    assert performance.average_reduction_kw == pytest.approx(55.0)


def test_the_weekend_overrides_apply_to_weekend_events_only(site):
    program = site.program
    program.weekend_baseline_overrides = {"pool_days": 2, "select_days": 2}
    program.save(update_fields=["weekend_baseline_overrides"])

    saturday = _measure(site, SATURDAY)
    wednesday = _measure(site, WEDNESDAY)

    # Jul 12 and 11: (40 + 50) / 2 = 45 kW; the event day drew 55 before the event: factor
    # 55/45 = 1.222, capped at 1.2, baseline 54 kW, 54 - 25 = 29 kW.
    assert saturday.selected_days == ["2026-07-12", "2026-07-11"]
    assert saturday.parameters["pool_days"] == 2
    assert saturday.adjustment == pytest.approx(1.2)
    assert saturday.average_reduction_kw == pytest.approx(29.0)
    assert wednesday.parameters == PRESETS["caiso_10_of_10"].to_dict()


def test_choosing_a_weekend_method_makes_a_new_version_of_weekend_events_only(site):
    program = site.program
    program.weekend_baseline_preset = ""
    program.save(update_fields=["weekend_baseline_preset"])
    saturday, wednesday = _participation(site, SATURDAY), _participation(site, WEDNESDAY)
    for participation in (saturday, wednesday):
        performance_compute_event(event=participation.event)

    program.weekend_baseline_preset = "caiso_weekend_4_of_4"
    program.save(update_fields=["weekend_baseline_preset"])
    saturday.event.refresh_from_db()
    wednesday.event.refresh_from_db()

    assert performance_compute_event(event=saturday.event).created == (saturday.pk,)
    assert performance_compute_event(event=wednesday.event).unchanged == (wednesday.pk,)
    assert performance_compute_event(event=saturday.event).unchanged == (saturday.pk,)
    old, new = EventPerformance.objects.filter(participation=saturday).order_by("version")
    assert (old.method, old.average_reduction_kw) == ("caiso_10_of_10", pytest.approx(55.0))
    assert (new.method, new.average_reduction_kw) == ("caiso_weekend_4_of_4", pytest.approx(30))
    assert new.fingerprint != old.fingerprint


def test_the_event_day_is_the_programs_local_day(site):
    # Fri Jul 17, 21:00 in Los Angeles is Saturday 04:00 UTC: still a Friday event there.
    program = site.program
    program.time_zone = "America/Los_Angeles"
    program.save(update_fields=["time_zone"])
    friday_evening = dt.datetime(2026, 7, 17, 21, 0, tzinfo=ZoneInfo("America/Los_Angeles"))
    event = Event(program=program, starts_at=friday_evening)

    assert friday_evening.astimezone(dt.UTC).date() == SATURDAY
    assert event_method(event).name == "caiso_10_of_10"
    event.starts_at += dt.timedelta(hours=3)  # Saturday 00:00 in Los Angeles
    assert event_method(event).name == "caiso_weekend_4_of_4"


def test_new_readings_in_the_weekend_methods_longer_lookback_call_for_a_recomputation(site):
    # The weekend method reads 60 days back; an import of readings 50 days before the
    # Saturday event is outside the weekday method's 45 days but inside these.
    program = site.program
    program.weekend_baseline_overrides = {"lookback_days": 60}
    program.save(update_fields=["weekend_baseline_overrides"])
    participation = _participation(site, SATURDAY)
    performance_compute_event(event=participation.event)
    assert events_needing_performance() == []
    old_day = dt.datetime.combine(SATURDAY - dt.timedelta(days=50), dt.time(12), ZONE)
    MeterDataImport.objects.create(
        file_name="late.csv",
        sha256="a" * 64,
        status=MeterDataImport.Status.SUCCEEDED,
        finished_at=timezone.now(),
        first_interval=old_day,
        last_interval=old_day,
    )

    assert events_needing_performance() == [participation.event_id]


def test_a_participant_s_performance_page_names_the_weekend_method(
    client, organization_a, participant_a, site
):
    site.site.organization = organization_a
    site.site.save(update_fields=["organization"])
    participation = _participation(site, SATURDAY)
    performance_compute_event(event=participation.event)
    client.force_login(participant_a)

    response = client.get(reverse("portal:performance", args=[organization_a.pk, participation.pk]))

    body = response.content.decode()
    assert "method <strong>caiso_weekend_4_of_4</strong> (Saturday event)" in body
    assert "events on weekdays with caiso_10_of_10" in body
    assert "NERC holiday with its weekend and holiday method, caiso_weekend_4_of_4" in body


def test_the_event_summary_names_the_method_the_event_was_measured_with(client, manager, site):
    participation = _participation(site, LABOR_DAY)
    client.force_login(manager)

    response = client.get(reverse("console:performance_event", args=[participation.event_id]))

    body = response.content.decode()
    assert "method caiso_weekend_4_of_4 (the program's weekend and holiday method" in body
    assert "a holiday event" in body


def test_the_enrollment_preset_names_and_weekend_variants_match_the_presets():
    assert BASELINE_PRESETS == tuple(PRESETS)
    for weekday, weekend in WEEKEND_BASELINE_VARIANTS.items():
        assert (PRESETS[weekday].day_type, PRESETS[weekend].day_type) == ("weekday", "weekend")
    weekday_methods = {name for name, spec in PRESETS.items() if spec.day_type == "weekday"}
    assert set(WEEKEND_BASELINE_VARIANTS) == weekday_methods
