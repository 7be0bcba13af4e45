"""Events move draft -> scheduled -> active -> completed (or cancelled) by the tick, and
every change tells exactly the participants it affects."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from events import services
from events.models import Event, Notification, Participation
from tests.events.conftest import END, NOW, START, local

pytestmark = pytest.mark.django_db

K = Notification.Kind


def _sent(event: Event) -> None:
    """What a worker would have done by now: every queued message went out."""
    event.notifications.filter(status="queued").update(status="sent", sent_at=NOW)


def test_an_immediate_program_notifies_the_first_methods_when_the_event_is_scheduled(call_event):
    event = call_event().event
    assert event.notice_sent_at == NOW
    # Harbor's one contact covers both Harbor sites: one notice per site and method.
    notices = event.notifications.filter(kind=K.NOTICE)
    assert sorted(notices.values_list("contact_method__address", flat=True)) == [
        "+12125550101", "+12125550101", "+12125550202",
    ]  # fmt: skip
    assert set(notices.values_list("status", flat=True)) == {"queued"}
    assert all(n.queued_at == NOW for n in notices)


def test_a_draft_sends_nothing_until_scheduled(call_event, manager_user):
    plan = call_event(draft=True)
    assert plan.event.status == Event.Status.DRAFT
    assert not plan.event.participations.exists()
    plan = services.event_schedule(event=plan.event, by=manager_user, now=NOW)
    assert plan.event.status == Event.Status.SCHEDULED
    assert plan.event.notifications.count() == 3


def test_a_day_ahead_program_sends_the_notice_the_day_before_at_its_time(call_event, program):
    program.initial_notice = "day_ahead"
    program.save()
    called = local(2026, 7, 13, 10, 0)
    event = call_event(now=called).event
    assert event.notice_due_at == local(2026, 7, 14, 15, 0)
    assert not event.notifications.exists()
    assert services.events_tick(now=local(2026, 7, 14, 14, 59)).notices == 0
    assert services.events_tick(now=local(2026, 7, 14, 15, 0)).notices == 1
    assert event.notifications.filter(kind=K.NOTICE).count() == 3
    assert services.events_tick(now=local(2026, 7, 14, 15, 1)).notices == 0


def test_the_tick_sends_the_reminder_activates_and_completes(call_event, program):
    program.ack_deadline_minutes = 600  # no escalation in this story
    program.save()
    event = call_event().event
    assert event.reminder_due_at == START - dt.timedelta(minutes=60)

    report = services.events_tick(now=START - dt.timedelta(minutes=61), sweep=False)
    assert report.reminders == 0
    report = services.events_tick(now=START - dt.timedelta(minutes=59), sweep=False)
    assert report.reminders == 1
    assert event.notifications.filter(kind=K.REMINDER).count() == 3

    assert services.events_tick(now=START, sweep=False).activated == 1
    event.refresh_from_db()
    assert event.status == Event.Status.ACTIVE and event.activated_at == START
    assert event.notifications.filter(kind=K.START).count() == 3

    assert services.events_tick(now=END - dt.timedelta(seconds=1), sweep=False).completed == 0
    assert services.events_tick(now=END, sweep=False).completed == 1
    event.refresh_from_db()
    assert event.status == Event.Status.COMPLETED
    assert event.notifications.filter(kind=K.END).count() == 3
    # Nobody answered: they are recorded as such, and escalation stops.
    assert set(event.participations.values_list("status", flat=True)) == {"no_response"}
    assert not event.participations.filter(next_escalation_at__isnull=False).exists()


def test_a_second_tick_at_the_same_moment_does_nothing_twice(call_event):
    event = call_event().event
    services.events_tick(now=START, sweep=False)
    count = event.notifications.count()
    report = services.events_tick(now=START, sweep=False)
    assert (report.activated, report.reminders) == (0, 0)
    assert event.notifications.count() == count


def test_start_and_end_notices_follow_the_program(call_event, program):
    program.start_notice = False
    program.end_notice = False
    program.reminder_minutes_before = None
    program.save()
    event = call_event().event
    assert event.reminder_due_at is None
    services.events_tick(now=START, sweep=False)
    services.events_tick(now=END, sweep=False)
    assert set(event.notifications.values_list("kind", flat=True)) == {"notice", "escalation"}


def test_cancelling_tells_everyone_told_and_drops_what_is_queued(call_event, manager_user):
    event = call_event().event
    _sent(event)
    services.events_tick(now=START - dt.timedelta(minutes=60), sweep=False)  # reminders queued
    cancelled = services.event_cancel(
        event=event, by=manager_user, reason="Grid conditions improved", now=NOW
    )
    assert cancelled.status == Event.Status.CANCELLED
    assert cancelled.cancel_reason == "Grid conditions improved"
    assert event.notifications.filter(kind=K.REMINDER).exclude(status="cancelled").count() == 0
    cancels = event.notifications.filter(kind=K.CANCEL, status="queued")
    # Only to the methods that were told: the escalations were still queued, so dropped.
    assert sorted(cancels.values_list("contact_method__address", flat=True)) == [
        "+12125550101", "+12125550101", "+12125550202",
    ]  # fmt: skip
    assert set(event.notifications.filter(kind=K.ESCALATION).values_list("status", flat=True)) == {
        "cancelled"
    }
    with pytest.raises(ValidationError):
        services.event_cancel(event=event, by=manager_user, reason="again", now=NOW)
    # The tick leaves a cancelled event alone.
    assert services.events_tick(now=START, sweep=False).activated == 0


def test_an_active_event_can_be_cancelled(call_event, manager_user):
    event = call_event().event
    services.events_tick(now=START, sweep=False)
    services.event_cancel(event=event, by=manager_user, reason="Done early", now=START)
    event.refresh_from_db()
    assert event.status == Event.Status.CANCELLED
    assert services.events_tick(now=END, sweep=False).completed == 0


def test_modifying_targets_notifies_only_added_and_removed_sites(
    call_event, manager_user, harbor_south
):
    event = call_event(zones=["NORTH"]).event
    _sent(event)
    before = set(event.notifications.values_list("pk", flat=True))
    change = services.event_modify(event=event, by=manager_user, zones=["SOUTH"], now=NOW)
    event.refresh_from_db()
    assert event.modification_number == 1
    assert [p.enrollment.site for p in change.added] == [harbor_south]
    assert sorted(p.enrollment.site.name for p in change.removed) == [
        "Harbor North", "Northside Campus",
    ]  # fmt: skip
    assert change.updated == []
    new = event.notifications.exclude(pk__in=before)
    assert sorted(new.values_list("kind", "participation__enrollment__site__name")) == [
        ("cancel", "Harbor North"),
        ("cancel", "Northside Campus"),
        ("notice", "Harbor South"),
    ]


def test_a_removed_site_whose_notice_is_still_queued_hears_nothing(call_event, manager_user):
    event = call_event(zones=["NORTH"]).event
    services.event_modify(event=event, by=manager_user, zones=["SOUTH"], now=NOW)
    north = event.notifications.filter(participation__enrollment__site__zone="NORTH")
    assert set(north.values_list("kind", "status")) == {("notice", "cancelled")}


def test_changing_times_sends_an_update_to_every_remaining_participant(call_event, manager_user):
    event = call_event().event
    change = services.event_modify(
        event=event, by=manager_user, ends_at=END - dt.timedelta(hours=1), now=NOW
    )
    assert len(change.updated) == 3
    updates = Notification.objects.filter(event=event, kind=K.UPDATE)
    assert updates.count() == 3
    assert set(updates.values_list("modification_number", flat=True)) == {1}


def test_a_stale_modification_is_refused(call_event, manager_user):
    event = call_event().event
    stale = Event.objects.get(pk=event.pk)
    services.event_modify(
        event=event, by=manager_user, ends_at=END - dt.timedelta(hours=1), now=NOW
    )
    with pytest.raises(ValidationError) as raised:
        services.event_modify(event=stale, by=manager_user, ends_at=END, now=NOW)
    assert raised.value.messages == ["The event was changed meanwhile; reload it and try again."]


def test_an_active_event_may_only_change_its_end(call_event, manager_user):
    event = call_event().event
    services.events_tick(now=START, sweep=False)
    event.refresh_from_db()
    with pytest.raises(ValidationError):
        services.event_modify(
            event=event, by=manager_user, starts_at=START + dt.timedelta(minutes=30), now=START
        )
    change = services.event_modify(
        event=event, by=manager_user, ends_at=END - dt.timedelta(hours=1), now=START
    )
    assert change.event.ends_at == END - dt.timedelta(hours=1)


def test_participations_record_the_kw_committed_at_the_start(call_event, enrollments, manager_user):
    from enrollment.models import Nomination

    Nomination.objects.create(
        enrollment=enrollments["northside"], committed_kw=Decimal("75"),
        effective_from=START - dt.timedelta(minutes=1), created_by=manager_user,
    )  # fmt: skip
    event = call_event().event
    participation = event.participations.get(enrollment=enrollments["northside"])
    assert participation.committed_kw == Decimal("75")


def test_summaries_quote_the_reduction_against_the_commitment(call_event):
    event = call_event().event
    services.events_tick(now=END, sweep=False)
    event.refresh_from_db()
    harbor = event.participations.get(enrollment__site__name="Harbor North")
    sent = services.event_send_summaries(event, {harbor: Decimal("87.5")}, now=END)
    assert len(sent) == 1
    from events.notices import compose

    text = compose(sent[0]).text
    assert "you reduced 87.5 kW against 100 kW committed" in text
    assert services.event_send_summaries(event, {harbor.pk: Decimal("87.5")}, now=END) == []


def test_test_events_say_so_in_every_notice(call_event):
    from events.notices import compose

    event = call_event(kind="test").event
    for notification in event.notifications.select_related("contact_method"):
        content = compose(notification)
        assert content.text.startswith("TEST EVENT (drill)")
        assert content.subject.startswith("[TEST]")


def test_an_acknowledged_participation_stops_escalating(call_event):
    event = call_event().event
    participation = event.participations.get(enrollment__site__name="Northside Campus")
    services.participation_acknowledge(participation, "portal", now=NOW)
    participation.refresh_from_db()
    assert participation.status == Participation.Status.ACKNOWLEDGED
    assert participation.next_escalation_at is None
    # Idempotent.
    again = services.participation_acknowledge(participation, "sms", now=NOW)
    assert again.acknowledged_via == "portal"


def test_a_site_targeted_again_keeps_its_opt_out_and_hears_nothing(call_event, manager_user):
    event = call_event(zones=["NORTH"]).event
    northside = event.participations.get(enrollment__site__name="Northside Campus")
    services.participation_opt_out(northside, "portal", now=NOW)
    services.event_modify(event=event, by=manager_user, zones=["SOUTH"], now=NOW)
    _sent(event)
    before = set(event.notifications.values_list("pk", flat=True))
    event.refresh_from_db()
    change = services.event_modify(event=event, by=manager_user, zones=["NORTH"], now=NOW)
    northside.refresh_from_db()
    assert northside.removed_at is None
    assert northside.status == Participation.Status.OPTED_OUT
    assert northside.opted_out_at == NOW
    assert northside.next_escalation_at is None
    assert sorted(p.enrollment.site.name for p in change.added) == [
        "Harbor North", "Northside Campus",
    ]  # fmt: skip
    new = event.notifications.exclude(pk__in=before).exclude(kind=K.CANCEL)
    assert list(new.values_list("kind", "participation__enrollment__site__name")) == [
        ("notice", "Harbor North")
    ]
    harbor_north = event.participations.get(enrollment__site__name="Harbor North")
    assert harbor_north.status == Participation.Status.PENDING


def test_a_site_targeted_again_stays_unavailable_with_the_kw_committed_at_the_new_start(
    call_event, manager_user, enrollments, northside_site
):
    from enrollment.models import Nomination

    services.unavailability_declare(
        site=northside_site, starts_at=START, ends_at=END, reason="Chiller overhaul",
        by=manager_user, now=NOW,
    )  # fmt: skip
    event = call_event(zones=["NORTH"]).event
    northside = event.participations.get(enrollment=enrollments["northside"])
    assert northside.status == Participation.Status.UNAVAILABLE
    services.event_modify(event=event, by=manager_user, zones=["SOUTH"], now=NOW)
    new_start = START + dt.timedelta(hours=1)
    Nomination.objects.create(
        enrollment=enrollments["northside"], committed_kw=Decimal("75"),
        effective_from=new_start - dt.timedelta(minutes=1), created_by=manager_user,
    )  # fmt: skip
    event.refresh_from_db()
    services.event_modify(
        event=event, by=manager_user, zones=["NORTH"], starts_at=new_start, now=NOW
    )
    northside.refresh_from_db()
    assert northside.removed_at is None
    assert northside.status == Participation.Status.UNAVAILABLE
    assert northside.committed_kw == Decimal("75")
    assert northside.modification_number == 2


def test_a_site_that_declared_itself_unavailable_while_removed_comes_back_unavailable(
    call_event, manager_user, harbor_north
):
    event = call_event(zones=["NORTH"]).event
    services.event_modify(event=event, by=manager_user, zones=["SOUTH"], now=NOW)
    window = services.unavailability_declare(
        site=harbor_north, starts_at=START, ends_at=END, reason="Compressor repair",
        by=manager_user, now=NOW,
    )  # fmt: skip
    event.refresh_from_db()
    change = services.event_modify(event=event, by=manager_user, zones=["NORTH"], now=NOW)
    returned = event.participations.get(enrollment__site=harbor_north)
    assert returned.status == Participation.Status.UNAVAILABLE
    assert change.unavailable == [window]


def test_opt_outs_of_cancelled_events_or_removed_sites_leave_the_allowance_alone(
    call_event, manager_user, program, enrollments
):
    program.opt_outs_per_season = 1
    program.save(update_fields=["opt_outs_per_season"])
    day = dt.timedelta(days=1)

    def northside_in(event: Event) -> Participation:
        return event.participations.get(enrollment=enrollments["northside"])

    cancelled = call_event().event
    services.participation_opt_out(northside_in(cancelled), "portal", now=NOW)
    services.event_cancel(event=cancelled, by=manager_user, reason="Grid is fine", now=NOW)
    narrowed = call_event(starts_at=START + day, ends_at=END + day).event
    services.participation_opt_out(northside_in(narrowed), "portal", now=NOW)
    services.event_modify(event=narrowed, by=manager_user, zones=["SOUTH"], now=NOW)
    third = call_event(starts_at=START + 2 * day, ends_at=END + 2 * day).event
    assert services.opt_out_refusal(northside_in(third), NOW) is None
    services.participation_opt_out(northside_in(third), "portal", now=NOW)
    fourth = call_event(starts_at=START + 5 * day, ends_at=END + 5 * day).event
    assert services.opt_out_refusal(northside_in(fourth), NOW) == (
        "You have used all 1 opt-out(s) of this season."
    )


def test_times_the_platform_cannot_handle_are_refused_by_the_services(
    call_event, manager_user, harbor_north
):
    far = dt.datetime(9999, 12, 31, 23, 0, tzinfo=dt.UTC)
    out_of_range = "9999-12-31 23:00 is out of range: give a time between the years 1900 and 8999."
    with pytest.raises(ValidationError) as raised:
        services.unavailability_declare(
            site=harbor_north, starts_at=START, ends_at=far, reason="Closed", by=manager_user,
            now=NOW,
        )  # fmt: skip
    assert raised.value.message_dict == {"ends_at": [out_of_range]}
    with pytest.raises(ValidationError) as raised:
        call_event(ends_at=far)
    assert raised.value.messages == [out_of_range]
