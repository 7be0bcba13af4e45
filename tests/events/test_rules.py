"""Each program rule refuses an event with its own message, all of them at once."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from events import services
from events.models import Event, Participation
from tests.events.conftest import END, NOW, START, local

pytestmark = pytest.mark.django_db


def _messages(call, **overrides) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        call(**overrides)
    return raised.value.messages


def test_it_schedules_an_event_that_keeps_every_rule(call_event):
    plan = call_event()
    assert plan.event.status == Event.Status.SCHEDULED
    assert plan.event.participations.count() == 3
    assert plan.unavailable == []


def test_it_refuses_less_than_the_minimum_notice(call_event):
    messages = _messages(call_event, now=START - dt.timedelta(minutes=90))
    assert messages == ["Events need at least 120 minutes' notice; this one gives 90."]


def test_an_emergency_overrides_notice_only_where_the_program_allows_it(call_event, program):
    soon = START - dt.timedelta(minutes=30)
    messages = _messages(call_event, kind="emergency", now=soon)
    assert "this program does not let emergency events override it" in messages[0]
    program.emergency_overrides_notice = True
    program.save()
    assert call_event(kind="emergency", now=soon).event.status == Event.Status.SCHEDULED


def test_it_refuses_a_weekday_the_program_does_not_allow(call_event):
    saturday = local(2026, 7, 18, 14, 0)
    messages = _messages(call_event, starts_at=saturday, ends_at=saturday + dt.timedelta(hours=2))
    assert messages == [
        "Events may only fall on Monday, Tuesday, Wednesday, Thursday, Friday; 2026-07-18 "
        "is a Saturday."
    ]


def test_it_refuses_hours_outside_the_local_window(call_event):
    messages = _messages(
        call_event, starts_at=local(2026, 7, 15, 18, 0), ends_at=local(2026, 7, 15, 21, 0)
    )
    assert messages == [
        "Events must run within 12:00-20:00 local time (America/New_York); this one runs "
        "2026-07-15 18:00-21:00."
    ]


def test_it_refuses_too_short_and_too_long_events(call_event):
    assert _messages(call_event, ends_at=START + dt.timedelta(minutes=30)) == [
        "An event lasts at least 60 minutes; this one lasts 30."
    ]
    long_start = local(2026, 7, 15, 12, 0)
    assert _messages(
        call_event, starts_at=long_start, ends_at=long_start + dt.timedelta(hours=5)
    ) == ["An event lasts at most 240 minutes; this one lasts 300."]


def test_it_refuses_an_event_outside_the_season(call_event):
    october = local(2026, 10, 7, 14, 0)
    messages = _messages(
        call_event, starts_at=october, ends_at=october + dt.timedelta(hours=2),
        now=october - dt.timedelta(days=1),
    )  # fmt: skip
    assert messages == ["The event falls outside the season (2026-06-01 to 2026-09-30)."]


def test_it_counts_events_and_hours_left_in_the_season(call_event, program):
    program.max_events_per_season = 1
    program.max_hours_per_season = 5
    program.save()
    call_event()
    next_day = local(2026, 7, 16, 14, 0)
    messages = _messages(call_event, starts_at=next_day, ends_at=next_day + dt.timedelta(hours=2))
    assert messages == [
        "The season allows 1 event(s) and 1 are already called; none is left.",
        "The season allows 5 event hour(s); 4 are used and this event needs 2.",
    ]


def test_it_counts_events_and_hours_left_in_the_month(call_event, program):
    program.max_events_per_month = 2
    program.max_hours_per_month = 6
    program.save()
    call_event()
    next_day = local(2026, 7, 16, 14, 0)
    messages = _messages(call_event, starts_at=next_day, ends_at=next_day + dt.timedelta(hours=3))
    assert messages == [
        "The month of July 2026 allows 6 event hour(s); 4 are used and this event needs 3."
    ]
    # A cancelled event gives its hours back; August is another month.
    august = local(2026, 8, 5, 14, 0)
    assert call_event(starts_at=august, ends_at=august + dt.timedelta(hours=4)).event.pk


def test_test_events_neither_count_nor_are_limited(call_event, program):
    program.max_events_per_season = 1
    program.save()
    call_event(kind="test")
    next_day = local(2026, 7, 16, 14, 0)
    assert call_event(starts_at=next_day, ends_at=next_day + dt.timedelta(hours=2)).event.pk


def test_it_allows_one_event_per_site_per_day_unless_the_program_allows_more(
    call_event, program, harbor_north
):
    call_event(
        sites=[harbor_north], starts_at=local(2026, 7, 15, 12, 0), ends_at=local(2026, 7, 15, 13, 0)
    )
    messages = _messages(call_event, sites=[harbor_north])
    assert messages == [
        "Harbor North already has 1 event(s) on 2026-07-15; the program allows 1 per site and day."
    ]
    program.max_events_per_site_per_day = 2
    program.save()
    assert call_event(sites=[harbor_north]).event.status == Event.Status.SCHEDULED


def test_it_collects_every_broken_rule_at_once(call_event):
    saturday = local(2026, 7, 18, 19, 45)
    messages = _messages(
        call_event, starts_at=saturday, ends_at=saturday + dt.timedelta(minutes=30),
        now=saturday - dt.timedelta(minutes=10),
    )  # fmt: skip
    assert len(messages) == 4
    assert [m.split(" ")[0:2] for m in messages] == [
        ["Events", "need"], ["Events", "may"], ["Events", "must"], ["An", "event"],
    ]  # fmt: skip


def test_it_refuses_an_end_before_the_start_and_a_start_in_the_past(call_event):
    assert _messages(call_event, ends_at=START) == ["The event must end after it starts."]
    assert _messages(call_event, now=START + dt.timedelta(minutes=1))[0] == (
        "The event must start in the future."
    )


def test_it_targets_zones_substations_feeders_and_sites(call_event, harbor_south):
    assert call_event(zones=["NORTH"]).event.participations.count() == 2
    day = local(2026, 7, 16, 14, 0)
    again = {"starts_at": day, "ends_at": day + dt.timedelta(hours=1)}
    assert (
        call_event(feeders=["F-201"], **again).event.participations.get().enrollment.site
        == harbor_south
    )
    day2 = local(2026, 7, 17, 14, 0)
    plan = call_event(substations=["SUB-3"], sites=[harbor_south], starts_at=day2,
                      ends_at=day2 + dt.timedelta(hours=1))  # fmt: skip
    assert plan.event.participations.count() == 2
    assert _messages(call_event, zones=["WEST"]) == ["No active enrollment matches this targeting."]


def test_it_returns_unavailable_sites_and_still_notifies_them(
    call_event, harbor_north, manager_user
):
    services.unavailability_declare(
        site=harbor_north, starts_at=START - dt.timedelta(hours=1), ends_at=END,
        reason="Compressor maintenance", by=manager_user, now=NOW - dt.timedelta(days=1),
    )  # fmt: skip
    plan = call_event()
    assert plan.unavailable_sites == [harbor_north]
    participation = plan.event.participations.get(enrollment__site=harbor_north)
    assert participation.status == Participation.Status.UNAVAILABLE
    assert participation.notifications.count() == 1


def test_unavailability_counts_as_opt_out_where_the_program_says_so(
    call_event, program, harbor_north, manager_user
):
    program.unavailability_counts_as_opt_out = True
    program.save()
    services.unavailability_declare(
        site=harbor_north, starts_at=START, ends_at=END, reason="Shutdown week",
        by=manager_user, now=NOW - dt.timedelta(days=1),
    )  # fmt: skip
    plan = call_event()
    participation = plan.event.participations.get(enrollment__site=harbor_north)
    assert participation.status == Participation.Status.OPTED_OUT
    assert participation.opted_out_via == "unavailability"
    assert participation.notifications.count() == 0


def test_unavailability_closes_at_the_opt_out_cutoff(call_event, harbor_north, participant_a):
    call_event()
    with pytest.raises(ValidationError) as raised:
        services.unavailability_declare(
            site=harbor_north, starts_at=START, ends_at=END, reason="Late",
            by=harbor_north.organization.account_manager, now=START - dt.timedelta(minutes=30),
        )  # fmt: skip
    assert "declarations closed at its opt-out cut-off" in raised.value.messages[0]


def test_only_staff_call_events(call_event, participant_a):
    with pytest.raises(PermissionDenied):
        call_event(by=participant_a)
