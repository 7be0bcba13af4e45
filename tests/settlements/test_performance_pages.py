"""Performance pages: a participant checks their own numbers by hand, never another
organization's; managers see every event's totals and recompute; participants hear their
reduction once."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from events.models import Event, Notification, Participation
from settlements.models import EventPerformance, MeterReading
from settlements.performance import performance_compute_event, performance_notify
from tests.enrollment.factories import (
    ContactFactory,
    ContactMethodFactory,
    EnrollmentFactory,
    MeterFactory,
    ProgramFactory,
    SiteFactory,
)
from tests.factories import staff_user

ZONE = ZoneInfo("America/New_York")
EVENT_DAY = dt.date(2026, 7, 15)  # a Wednesday
EVENT_START, EVENT_END = dt.time(14, 0), dt.time(16, 0)
HISTORY = [dt.date(2026, 6, 1) + dt.timedelta(days=n) for n in range(46)]  # to Jul 16


def store_readings(meter, days, kw_at) -> None:
    """15-minute readings of ``kw_at(local datetime)`` kW (kWh = kW × 15/60)."""
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


def cut_to(in_event_kw: float, usual_kw: float):
    def kw_at(local: dt.datetime) -> float:
        in_event = local.date() == EVENT_DAY and EVENT_START <= local.time() < EVENT_END
        return in_event_kw if in_event else usual_kw

    return kw_at


def completed_event(program, enrollments_committed) -> Event:
    event = Event.objects.create(
        program=program,
        kind=Event.Kind.ECONOMIC,
        status=Event.Status.COMPLETED,
        starts_at=dt.datetime.combine(EVENT_DAY, EVENT_START, ZONE),
        ends_at=dt.datetime.combine(EVENT_DAY, EVENT_END, ZONE),
        created_by=staff_user("Program managers"),
    )
    for enrollment, committed in enrollments_committed:
        Participation.objects.create(event=event, enrollment=enrollment, committed_kw=committed)
    return event


@pytest.fixture
def world(organization_a, organization_b):
    """Harbor (A) draws 100 kW and 60 kW in the event, committed 50; Northside (B) draws
    80 kW and 50 kW in the event, committed 40. CAISO 10 of 10."""
    program = ProgramFactory(baseline_preset="caiso_10_of_10", season_start=dt.date(2026, 5, 1))
    harbor = SiteFactory(organization=organization_a, name="Harbor North")
    northside = SiteFactory(organization=organization_b, name="Northside Main")
    harbor_meter, northside_meter = MeterFactory(site=harbor), MeterFactory(site=northside)
    store_readings(harbor_meter, HISTORY, cut_to(60.0, 100.0))
    store_readings(northside_meter, HISTORY, cut_to(50.0, 80.0))
    harbor_enrollment = EnrollmentFactory(site=harbor, program=program)
    northside_enrollment = EnrollmentFactory(site=northside, program=program)
    event = completed_event(
        program, [(harbor_enrollment, Decimal("50")), (northside_enrollment, Decimal("40"))]
    )
    performance_compute_event(event=event)
    participations = {p.enrollment.site.name: p for p in event.participations.all()}
    return {
        "program": program,
        "event": event,
        "harbor": participations["Harbor North"],
        "northside": participations["Northside Main"],
        "organization_a": organization_a,
        "organization_b": organization_b,
    }


def portal_url(organization, participation) -> str:
    return reverse("portal:performance", args=[organization.pk, participation.pk])


def test_a_participant_sees_the_numbers_to_check_their_reduction_by_hand(
    client, participant_a, world
):
    client.force_login(participant_a)
    response = client.get(portal_url(world["organization_a"], world["harbor"]))
    assert response.status_code == 200
    body = response.content.decode()
    # 100 kW baseline, 60 kW actual for two hours: 40 kW average, 80 kWh, 40 ÷ 50 = 80%.
    assert "40.00 kW" in body and "80.00 kWh" in body and "80.0%" in body
    assert "against 50 kW committed" in body
    # The chart: inline SVG with the event shaded from 14:00 to 16:00 local and the
    # adjustment window (3 hours ending 1 hour before the start) marked.
    assert body.count("<svg") == 1 and "Baseline and actual load, Harbor North" in body
    # Local midnight to midnight over 568 units: 14:00 -> 56 + 14/24 × 568 = 387.33.
    assert '<rect class="event-window" x="387.33" y="28" width="47.33"' in body
    assert 'class="adjustment-window" data-start="292.67" data-end="363.67"' in body
    assert "10:00–13:00" in body
    # Method, adjustment, selected days with their event-window mean, every interval.
    assert "caiso_10_of_10" in body and "× 1.0000 (multiplicative factor)" in body
    assert "Selected days (10 of 10 candidates)" in body
    assert 'Tue 2026-07-14</td><td class="num">100.00</td><td class="num">8</td>' in body
    intervals = response.context["interval_rows"]
    assert [row.starts_at.strftime("%H:%M") for row in intervals][:2] == ["14:00", "14:15"]
    assert len(intervals) == 8
    assert all(row.reduction_kw == pytest.approx(40.0) for row in intervals)
    assert '<td>14:15</td><td class="num">100.00</td><td class="num">100.00</td>' in body
    # No other organization's site anywhere on the page.
    assert "Northside" not in body


def test_another_organizations_participant_gets_404(client, participant_b, world):
    client.force_login(participant_b)
    # Not a member of A: A's organization is invisible.
    assert client.get(portal_url(world["organization_a"], world["harbor"])).status_code == 404
    # A member of B asking for A's participation under B's organization.
    assert client.get(portal_url(world["organization_b"], world["harbor"])).status_code == 404
    assert client.get(portal_url(world["organization_b"], world["northside"])).status_code == 200


def test_managers_see_every_participation_and_participants_no_console(
    client, manager, participant_a, world
):
    client.force_login(manager)
    for name in ("harbor", "northside"):
        url = reverse("console:performance", args=[world[name].pk])
        assert client.get(url).status_code == 200
    client.force_login(participant_a)
    assert client.get(reverse("console:performance", args=[world["harbor"].pk])).status_code == 403


def test_the_portal_lists_past_events_with_a_link_to_each_page(
    client, participant_a, world, django_assert_max_num_queries
):
    client.force_login(participant_a)
    url = reverse("portal:performance_list", args=[world["organization_a"].pk])
    with django_assert_max_num_queries(12):
        response = client.get(url)
    body = response.content.decode()
    assert portal_url(world["organization_a"], world["harbor"]) in body
    assert "40.00" in body and "80%" in body and "Northside" not in body


def test_an_insufficient_data_performance_shows_its_reason(client, organization_a, participant_a):
    program = ProgramFactory(baseline_preset="caiso_10_of_10")
    site = SiteFactory(organization=organization_a)
    store_readings(MeterFactory(site=site), [dt.date(2026, 7, 13), EVENT_DAY], lambda _: 100.0)
    enrollment = EnrollmentFactory(site=site, program=program)
    event = completed_event(program, [(enrollment, Decimal("50"))])
    performance_compute_event(event=event)
    participation = event.participations.get()
    client.force_login(participant_a)
    body = client.get(portal_url(organization_a, participation)).content.decode()
    assert "Insufficient data" in body
    assert "found 1 eligible baseline day(s)" in body and "needs at least 5" in body
    assert "Every event interval" not in body  # no numbers pretending to be measured


def test_previous_versions_are_listed_and_can_be_opened(client, participant_a, world):
    harbor = world["harbor"]
    Participation.objects.filter(pk=harbor.pk).update(committed_kw=Decimal("80"))
    performance_compute_event(event=world["event"])
    client.force_login(participant_a)
    url = portal_url(world["organization_a"], harbor)
    current = client.get(url)
    assert current.context["performance"].version == 2
    assert "50.0%" in current.content.decode()  # 40 ÷ 80
    assert 'href="?version=1"' in current.content.decode()
    old = client.get(url + "?version=1")
    assert old.context["performance"].version == 1 and "superseded" in old.content.decode()
    assert client.get(url + "?version=9").status_code == 404


def test_the_event_summary_totals_reduction_against_commitment(client, manager, world):
    client.force_login(manager)
    response = client.get(reverse("console:performance_event", args=[world["event"].pk]))
    totals = response.context["totals"]
    # Harbor 40 kW of 50, Northside 30 kW of 40: 70 kW against 90 kW, 77.8%; 80 + 60 kWh.
    assert totals.reduction_kw == pytest.approx(70.0)
    assert totals.measured_committed_kw == Decimal("90")
    assert totals.ratio == pytest.approx(70 / 90)
    assert totals.reduction_kwh == pytest.approx(140.0)
    assert (totals.participations, totals.measured, totals.not_computed) == (2, 2, 0)
    body = response.content.decode()
    assert "70.0 kW" in body and "78%" in body and "Recompute performance" in body
    assert reverse("console:performance", args=[world["harbor"].pk]) in body


def test_only_program_managers_recompute(
    client, manager, billing_clerk, auditor, world, monkeypatch
):
    from settlements.tasks import performance_compute_event_task

    queued = []
    monkeypatch.setattr(performance_compute_event_task, "delay_on_commit", queued.append)
    event = world["event"]
    summary = reverse("console:performance_event", args=[event.pk])
    recompute = reverse("console:performance_recompute", args=[event.pk])

    client.force_login(billing_clerk)
    page = client.get(summary)
    assert page.status_code == 200 and "Recompute performance" not in page.content.decode()
    assert client.post(recompute).status_code == 403
    client.force_login(auditor)
    assert client.get(summary).status_code == 403
    assert client.post(recompute).status_code == 403
    assert queued == []

    client.force_login(manager)
    assert client.post(recompute).status_code == 302
    assert queued == [event.pk]


def _reached(participation: Participation) -> None:
    """The event notice went to one SMS method of the participation's organization."""
    method = ContactMethodFactory(
        contact=ContactFactory(organization=participation.enrollment.site.organization)
    )
    now = timezone.now()
    Notification.objects.create(
        event=participation.event, participation=participation, contact_method=method,
        kind=Notification.Kind.NOTICE, channel="sandbox", status=Notification.Status.SENT,
        next_attempt_at=now, queued_at=now, sent_at=now,
    )  # fmt: skip


def test_performance_notify_sends_one_summary_per_participation_once(world):
    _reached(world["harbor"])
    _reached(world["northside"])
    sent = performance_notify(world["event"])
    summaries = Notification.objects.filter(kind=Notification.Kind.SUMMARY)
    assert len(sent) == 2 and summaries.count() == 2
    by_site = {n.participation.enrollment.site.name: n.payload for n in summaries}
    assert by_site["Harbor North"]["reduction_kw"] == "40.0"
    assert Decimal(by_site["Harbor North"]["committed_kw"]) == Decimal("50")
    assert by_site["Northside Main"]["reduction_kw"] == "30.0"
    assert performance_notify(world["event"]) == []  # already told


def test_the_performance_task_notifies_after_writing_new_versions(organization_a):
    from settlements.tasks import performance_compute_event_task

    program = ProgramFactory(baseline_preset="caiso_10_of_10", season_start=dt.date(2026, 5, 1))
    site = SiteFactory(organization=organization_a)
    meter = MeterFactory(site=site)
    store_readings(meter, HISTORY, cut_to(60.0, 100.0))
    event = completed_event(program, [(EnrollmentFactory(site=site, program=program), 50)])
    _reached(event.participations.get())
    assert performance_compute_event_task(event.pk) == {
        "created": 1, "unchanged": 0, "insufficient": 0,
    }  # fmt: skip
    assert Notification.objects.filter(kind=Notification.Kind.SUMMARY).count() == 1
    assert performance_compute_event_task(event.pk)["unchanged"] == 1
    assert Notification.objects.filter(kind=Notification.Kind.SUMMARY).count() == 1


def test_a_redelivered_performance_task_sends_the_summaries_a_dead_worker_did_not(
    organization_a,
):
    from settlements.tasks import performance_compute_event_task

    program = ProgramFactory(baseline_preset="caiso_10_of_10", season_start=dt.date(2026, 5, 1))
    site = SiteFactory(organization=organization_a)
    store_readings(MeterFactory(site=site), HISTORY, cut_to(60.0, 100.0))
    event = completed_event(program, [(EnrollmentFactory(site=site, program=program), 50)])
    _reached(event.participations.get())
    # The first delivery's worker committed the performance, then died before the summaries.
    performance_compute_event(event=event)

    counts = performance_compute_event_task(event.pk)

    assert counts == {"created": 0, "unchanged": 1, "insufficient": 0}, counts
    [summary] = Notification.objects.filter(kind=Notification.Kind.SUMMARY)
    assert summary.payload["reduction_kw"] == "40.0"


def test_insufficient_data_gets_no_summary(organization_a):
    program = ProgramFactory(baseline_preset="caiso_10_of_10")
    site = SiteFactory(organization=organization_a)
    store_readings(MeterFactory(site=site), [EVENT_DAY], lambda _: 100.0)
    event = completed_event(program, [(EnrollmentFactory(site=site, program=program), 50)])
    _reached(event.participations.get())
    performance_compute_event(event=event)
    assert EventPerformance.objects.get().status == "insufficient_data"
    assert performance_notify(event) == []


def test_the_console_lists_completed_events(client, manager, world, django_assert_max_num_queries):
    client.force_login(manager)
    with django_assert_max_num_queries(10):
        body = client.get(reverse("console:performance_events")).content.decode()
    assert reverse("console:performance_event", args=[world["event"].pk]) in body
    assert re.search(r'<td class="num">2</td><td class="num">2</td>', body)
