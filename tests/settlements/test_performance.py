"""Event performance in the platform: readings imported, an event completed, performance
computed, versioned when inputs change, and the task run by a real worker."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from events.models import Event, Participation
from settlements import services as meterdata
from settlements.models import EventPerformance, MeterDataImport, MeterReading
from settlements.performance import events_needing_performance, performance_compute_event
from tests.enrollment.factories import EnrollmentFactory, MeterFactory, ProgramFactory, SiteFactory
from tests.factories import staff_user

ZONE = ZoneInfo("America/New_York")
ROOT = Path(__file__).resolve().parents[2]
EVENT_DAY = dt.date(2026, 7, 15)  # a Wednesday
EVENT_START, EVENT_END = dt.time(14, 0), dt.time(16, 0)


def _csv(meter_id: str, days: list[dt.date], kw_at) -> bytes:
    """Canonical CSV of 15-minute readings: kWh = kW × 15/60."""
    lines = ["meter_id,interval_start,kwh"]
    for day in days:
        start = dt.datetime.combine(day, dt.time(), ZONE)
        for quarter in range(96):
            at = (start.astimezone(dt.UTC) + dt.timedelta(minutes=15 * quarter)).astimezone(ZONE)
            if at.date() != day:
                continue
            lines.append(f"{meter_id},{at.isoformat()},{kw_at(at) * 15 / 60:.4f}")
    return ("\n".join(lines) + "\n").encode()


def _import(payload: bytes, *, correction: bool = False) -> MeterDataImport:
    record = meterdata.meter_data_import_create(
        stream=io.BytesIO(payload), file_name="readings.csv", by=None, correction=correction
    )
    finished = meterdata.meter_data_import_run(data_import_id=record.pk)
    assert finished.status == MeterDataImport.Status.SUCCEEDED, finished.status
    return finished


def _event(program, enrollment, day: dt.date, committed=Decimal("50")) -> Participation:
    event = Event.objects.create(
        program=program,
        kind=Event.Kind.ECONOMIC,
        status=Event.Status.COMPLETED,
        starts_at=dt.datetime.combine(day, EVENT_START, ZONE),
        ends_at=dt.datetime.combine(day, EVENT_END, ZONE),
        created_by=staff_user("Program managers"),
    )
    return Participation.objects.create(event=event, enrollment=enrollment, committed_kw=committed)


@pytest.fixture
def site_with_history(db):
    """A site that draws a flat 100 kW every day and 60 kW during the event window."""
    program = ProgramFactory(baseline_preset="caiso_10_of_10", season_start=dt.date(2026, 5, 1))
    site = SiteFactory(peak_demand_kw=Decimal("500"))
    meter = MeterFactory(site=site)
    enrollment = EnrollmentFactory(site=site, program=program)

    def kw(at: dt.datetime) -> float:
        in_event = at.date() == EVENT_DAY and EVENT_START <= at.time() < EVENT_END
        return 60.0 if in_event else 100.0

    days = [dt.date(2026, 6, 1) + dt.timedelta(days=n) for n in range(46)]  # to Jul 16
    _import(_csv(meter.meter_id, days, kw))
    return program, enrollment, meter


def test_it_measures_the_reduction_against_the_baseline(site_with_history):
    program, enrollment, _ = site_with_history
    participation = _event(program, enrollment, EVENT_DAY)
    report = performance_compute_event(event=participation.event)
    assert report.created == (participation.pk,)
    performance = EventPerformance.objects.get(participation=participation)
    # CAISO 10 of 10: the ten weekdays before Jul 15 (Jul 14 back to Jul 1, Jul 3 and 4
    # being holidays only if declared; none are here), each 100 kW; actual 60 kW for 2 h.
    assert performance.selected_days[0] == "2026-07-14"
    assert len(performance.selected_days) == 10
    assert performance.adjustment == pytest.approx(1.0)  # 100 kW before the event, as usual
    assert performance.average_reduction_kw == pytest.approx(40.0)
    assert performance.reduction_kwh == pytest.approx(80.0)  # 40 kW × 2 h
    assert performance.performance_ratio == pytest.approx(0.8)  # 40 ÷ 50 committed
    assert len(performance.intervals) == 8 and performance.missing_intervals == 0
    assert len(performance.day_actual) == 96
    assert performance.status == "computed" and performance.is_current


def test_the_same_inputs_write_nothing_new(site_with_history):
    program, enrollment, _ = site_with_history
    participation = _event(program, enrollment, EVENT_DAY)
    performance_compute_event(event=participation.event)
    again = performance_compute_event(event=participation.event)
    assert again.unchanged == (participation.pk,) and again.created == ()
    assert EventPerformance.objects.count() == 1


def test_corrected_readings_make_a_new_version_and_keep_the_old(site_with_history):
    program, enrollment, meter = site_with_history
    participation = _event(program, enrollment, EVENT_DAY)
    performance_compute_event(event=participation.event)
    assert events_needing_performance() == []
    # The meter data management system restates the event day: 70 kW in the window.
    _import(
        _csv(
            meter.meter_id,
            [EVENT_DAY],
            lambda at: 70.0 if EVENT_START <= at.time() < EVENT_END else 100.0,
        ),
        correction=True,
    )
    assert events_needing_performance() == [participation.event_id]
    performance_compute_event(event=participation.event)
    old, new = EventPerformance.objects.filter(participation=participation).order_by("version")
    assert (old.version, old.is_current, old.average_reduction_kw) == (1, False, pytest.approx(40))
    assert (new.version, new.is_current, new.average_reduction_kw) == (2, True, pytest.approx(30))
    assert old.fingerprint != new.fingerprint


def test_days_of_the_sites_other_events_are_never_baseline_days(site_with_history):
    program, enrollment, _ = site_with_history
    _event(program, enrollment, dt.date(2026, 7, 14))
    participation = _event(program, enrollment, EVENT_DAY)
    performance_compute_event(event=participation.event)
    performance = EventPerformance.objects.get(participation=participation)
    assert "2026-07-14" not in performance.candidate_days
    assert performance.selected_days[0] == "2026-07-13"


def test_a_site_without_enough_history_is_stored_as_insufficient(db):
    program = ProgramFactory(baseline_preset="caiso_10_of_10")
    site = SiteFactory()
    meter = MeterFactory(site=site)
    enrollment = EnrollmentFactory(site=site, program=program)
    _import(_csv(meter.meter_id, [dt.date(2026, 7, 13), EVENT_DAY], lambda at: 100.0))
    participation = _event(program, enrollment, EVENT_DAY)
    report = performance_compute_event(event=participation.event)
    assert report.insufficient == (participation.pk,)
    performance = EventPerformance.objects.get(participation=participation)
    assert performance.status == "insufficient_data"
    # Only Jul 13 precedes the event, and CAISO 10 of 10 needs at least 5 days.
    assert performance.message.startswith("found 1 eligible baseline day(s)")
    assert "needs at least 5" in performance.message


def test_an_event_that_has_not_ended_is_refused(site_with_history):
    program, enrollment, _ = site_with_history
    participation = _event(program, enrollment, EVENT_DAY)
    Event.objects.filter(pk=participation.event_id).update(status=Event.Status.ACTIVE)
    participation.event.refresh_from_db()
    with pytest.raises(ValueError, match="needs it completed"):
        performance_compute_event(event=participation.event)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_performance_task_runs_in_a_real_worker(site_with_history, worker_environment):
    from settlements.tasks import performance_compute_event_task

    program, enrollment, _ = site_with_history
    participation = _event(program, enrollment, EVENT_DAY)
    db = connection.settings_dict
    url = (
        f"sqlite:///{db['NAME']}"
        if connection.vendor == "sqlite"
        else f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "dr_platform", "worker", "--pool", "solo",
         "-Q", "settlements", "--loglevel", "WARNING",
         "--hostname", f"perf-{uuid.uuid4().hex[:6]}@%h"],
        cwd=ROOT,
        env={**worker_environment, "DATABASE_URL": url},
    )  # fmt: skip
    try:
        counts = performance_compute_event_task.delay(participation.event_id).get(timeout=90)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert counts == {"created": 1, "unchanged": 0, "insufficient": 0}
    assert EventPerformance.objects.get(participation=participation).reduction_kwh == pytest.approx(
        80
    )


def _store(meter, days: list[dt.date], kw_at) -> None:
    """15-minute readings of ``kw_at(local datetime)`` kW straight into the table."""
    rows = []
    for day in days:
        start = dt.datetime.combine(day, dt.time(), ZONE).astimezone(dt.UTC)
        for quarter in range(100):
            moment = start + dt.timedelta(minutes=15 * quarter)
            local = moment.astimezone(ZONE)
            if local.date() != day:
                break
            rows.append(MeterReading(meter=meter, interval_start=moment, kwh=kw_at(local) / 4))
    MeterReading.objects.bulk_create(rows)


def test_curtailed_event_days_do_not_hide_an_inflated_baseline_day(db):
    # Flat 100 kW, except: 130 kW in the event hours on Mon Jul 13 (a selected baseline day)
    # and 20 kW in the event hours on five earlier event days (Jun 22-26).
    program = ProgramFactory(baseline_preset="caiso_10_of_10", season_start=dt.date(2026, 5, 1))
    site = SiteFactory(peak_demand_kw=Decimal("500"))
    meter = MeterFactory(site=site)
    enrollment = EnrollmentFactory(site=site, program=program)
    earlier_events = [dt.date(2026, 6, 22) + dt.timedelta(days=n) for n in range(5)]

    def kw(at: dt.datetime) -> float:
        if not EVENT_START <= at.time() < EVENT_END:
            return 100.0
        if at.date() == dt.date(2026, 7, 13):
            return 130.0
        return 20.0 if at.date() in earlier_events else 100.0

    _store(meter, [dt.date(2026, 6, 1) + dt.timedelta(days=n) for n in range(46)], kw)
    for day in earlier_events:
        _event(program, enrollment, day)
    participation = _event(program, enrollment, EVENT_DAY)
    performance_compute_event(event=participation.event)
    performance = EventPerformance.objects.get(participation=participation)

    # The site's usual load is that of its like days that were not event days: the 32
    # weekdays from Jun 1 to Jul 14 less the 5 event days = 27 days, 26 at 100 kW and Jul 13
    # at 130 kW. Median 100 kW, MAD 0, mean absolute deviation 30 / 27 = 1.111 kW, robust
    # z = 30 / (1.253314 x 1.111) = 21.5 > 3.5, and 130 > 110 kW: flagged. (With the five
    # 20 kW event days counted as usual load, z = 30 / (1.253314 x 430 / 32) = 1.8 would
    # hide it.)
    inflated = [flag for flag in performance.flags if flag["code"] == "inflated_baseline_day"]
    assert len(inflated) == 1
    detail = inflated[0]["detail"]
    assert detail["date"] == "2026-07-13"
    assert detail["reference_days"] == 27
    assert detail["reference_median_kw"] == pytest.approx(100.0)
    assert detail["robust_z"] == pytest.approx(30 / (1.253314 * 30 / 27))


def test_holidays_are_not_weekday_baseline_days(db):
    # Flat 100 kW, but only 30 kW in the event hours on Labor Day (Mon Sep 7, 2026); the
    # event is Wed Sep 9, 14:00-16:00, at 60 kW. CAISO 10 of 10 takes the ten most recent
    # non-event, non-holiday weekdays: Sep 8, 4, 3, 2, 1, Aug 31, 28, 27, 26, 25, all 100 kW
    # in the event hours and in the adjustment window (10:00-13:00, factor 1). Baseline
    # 100 kW, reduction 40 kW. (With Labor Day counted as a weekday the baseline would be
    # (9 x 100 + 30) / 10 = 93 kW and the reduction 33 kW.)
    program = ProgramFactory(baseline_preset="caiso_10_of_10", season_start=dt.date(2026, 5, 1))
    site = SiteFactory(peak_demand_kw=Decimal("500"))
    meter = MeterFactory(site=site)
    enrollment = EnrollmentFactory(site=site, program=program)
    event_day, labor_day = dt.date(2026, 9, 9), dt.date(2026, 9, 7)

    def kw(at: dt.datetime) -> float:
        if not EVENT_START <= at.time() < EVENT_END:
            return 100.0
        return {labor_day: 30.0, event_day: 60.0}.get(at.date(), 100.0)

    _store(meter, [dt.date(2026, 7, 20) + dt.timedelta(days=n) for n in range(52)], kw)
    participation = _event(program, enrollment, event_day)
    performance_compute_event(event=participation.event)
    performance = EventPerformance.objects.get(participation=participation)

    assert "2026-09-07" not in performance.candidate_days
    assert performance.selected_days == [
        "2026-09-08", "2026-09-04", "2026-09-03", "2026-09-02", "2026-09-01",
        "2026-08-31", "2026-08-28", "2026-08-27", "2026-08-26", "2026-08-25",
    ]  # fmt: skip
    assert performance.adjustment == pytest.approx(1.0)
    assert performance.average_reduction_kw == pytest.approx(40.0)
    assert performance.reduction_kwh == pytest.approx(80.0)


def test_the_accuracy_back_test_does_not_take_a_holiday_for_a_weekday(db):
    from settlements.performance_views import sites_accuracy

    program = ProgramFactory(
        baseline_preset="caiso_10_of_10",
        event_window_start=EVENT_START,
        event_window_end=EVENT_END,
    )
    site = SiteFactory()
    meter = MeterFactory(site=site)
    labor_day = dt.date(2026, 9, 7)
    _store(
        meter,
        [dt.date(2026, 7, 20) + dt.timedelta(days=n) for n in range(52)],  # to Sep 9
        lambda at: 30.0 if at.date() == labor_day else 100.0,
    )
    accuracy = sites_accuracy(program, [site.pk])[site.pk]
    caiso = next(p.result for p in accuracy.presets if p.name == "caiso_10_of_10")
    # Weekday test days walk back from Sep 9, skipping Labor Day: neither tested nor used as
    # a baseline day, every remaining weekday is forecast exactly (100 kW).
    tested = [day.date for day in caiso.days]
    assert tested[:3] == [dt.date(2026, 9, 9), dt.date(2026, 9, 8), dt.date(2026, 9, 4)]
    assert labor_day not in tested
    assert caiso.rmse_kw == pytest.approx(0.0)


def test_a_site_interval_missing_one_meter_s_reading_is_missing_not_a_reduction(db):
    # Two meters of 50 kW each (the site: 100 kW), both at 30 kW in the event (60 kW). Meter
    # B has no reading at 15:00 on the event day: the site's load there is unknown. The
    # reduction counts the other 7 intervals, 40 kW each: 40 kW on average and
    # 40 x 7 x 0.25 = 70 kWh. (Taking meter A's 30 kW as the site's load would credit a
    # 70 kW reduction at 15:00: 43.75 kW on average.)
    program = ProgramFactory(baseline_preset="caiso_10_of_10", season_start=dt.date(2026, 5, 1))
    site = SiteFactory(peak_demand_kw=Decimal("500"))
    meter_a, meter_b = MeterFactory(site=site), MeterFactory(site=site)
    enrollment = EnrollmentFactory(site=site, program=program)
    days = [dt.date(2026, 6, 1) + dt.timedelta(days=n) for n in range(46)]

    def kw(at: dt.datetime) -> float:
        in_event = at.date() == EVENT_DAY and EVENT_START <= at.time() < EVENT_END
        return 30.0 if in_event else 50.0

    _store(meter_a, days, kw)
    _store(meter_b, days, kw)
    missing_at = dt.datetime.combine(EVENT_DAY, dt.time(15, 0), ZONE)
    MeterReading.objects.filter(meter=meter_b, interval_start=missing_at).delete()
    participation = _event(program, enrollment, EVENT_DAY)
    performance_compute_event(event=participation.event)
    performance = EventPerformance.objects.get(participation=participation)

    assert performance.missing_intervals == 1
    assert performance.average_reduction_kw == pytest.approx(40.0)
    assert performance.reduction_kwh == pytest.approx(70.0)
    assert performance.max_reduction_kw == pytest.approx(40.0)
    assert any(flag["code"] == "missing_event_intervals" for flag in performance.flags)


def test_an_hourly_site_without_a_baseline_shows_its_load_in_kw(db):
    # Too little history for a baseline; the page still charts the event day's load. Hourly
    # readings of 100 kWh are 100 kW (kW = kWh x 60 / 60), not 400 kW.
    program = ProgramFactory(baseline_preset="caiso_10_of_10")
    site = SiteFactory()
    meter = MeterFactory(site=site, interval_minutes=60)
    enrollment = EnrollmentFactory(site=site, program=program)
    start = dt.datetime.combine(EVENT_DAY, dt.time(), ZONE)
    MeterReading.objects.bulk_create(
        MeterReading(meter=meter, interval_start=start + dt.timedelta(hours=hour), kwh=100.0)
        for hour in range(24)
    )
    participation = _event(program, enrollment, EVENT_DAY)
    performance_compute_event(event=participation.event)
    performance = EventPerformance.objects.get(participation=participation)
    assert performance.status == "insufficient_data"
    assert len(performance.day_actual) == 24
    assert {kw for _, kw in performance.day_actual} == {100.0}


def test_an_event_off_a_site_s_meter_intervals_does_not_stop_the_other_sites(db):
    # The event runs 14:15-16:00: on the quarter-hour grid of site A's 15-minute meter, not
    # on the hourly grid of site B's meter. Site A is measured (100 kW baseline, 60 kW in the
    # event: 40 kW over 7 quarter-hours, 70 kWh); site B is stored as not measurable, saying
    # why, instead of the whole event failing.
    program = ProgramFactory(baseline_preset="caiso_10_of_10", season_start=dt.date(2026, 5, 1))
    site_a, site_b = SiteFactory(), SiteFactory()
    meter_a = MeterFactory(site=site_a)
    meter_b = MeterFactory(site=site_b, interval_minutes=60)
    enrollment_a = EnrollmentFactory(site=site_a, program=program)
    enrollment_b = EnrollmentFactory(site=site_b, program=program)
    days = [dt.date(2026, 6, 1) + dt.timedelta(days=n) for n in range(46)]
    start, end = dt.time(14, 15), EVENT_END

    def kw(at: dt.datetime) -> float:
        return 60.0 if at.date() == EVENT_DAY and start <= at.time() < end else 100.0

    _store(meter_a, days, kw)
    first = dt.datetime.combine(days[0], dt.time(), ZONE)
    MeterReading.objects.bulk_create(
        MeterReading(meter=meter_b, interval_start=first + dt.timedelta(hours=hour), kwh=100.0)
        for hour in range(24 * len(days))
    )
    event = Event.objects.create(
        program=program,
        kind=Event.Kind.EMERGENCY,
        status=Event.Status.COMPLETED,
        starts_at=dt.datetime.combine(EVENT_DAY, start, ZONE),
        ends_at=dt.datetime.combine(EVENT_DAY, end, ZONE),
        created_by=staff_user("Program managers"),
    )
    a = Participation.objects.create(event=event, enrollment=enrollment_a, committed_kw=50)
    b = Participation.objects.create(event=event, enrollment=enrollment_b, committed_kw=50)

    report = performance_compute_event(event=event)

    assert report.created == (a.pk,) and report.insufficient == (b.pk,)
    measured = EventPerformance.objects.get(participation=a)
    assert measured.average_reduction_kw == pytest.approx(40.0)
    assert measured.reduction_kwh == pytest.approx(70.0)
    unmeasured = EventPerformance.objects.get(participation=b)
    assert unmeasured.status == "insufficient_data"
    assert "14:15-16:00" in unmeasured.message and "60-minute" in unmeasured.message
    assert len(unmeasured.day_actual) == 24
