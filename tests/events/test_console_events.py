"""The events console: list, calendar, calling (rules shown), scheduling, the live page and
its JSON, modifying, cancelling, and who may do what.

Views use the real clock, so events here start about three hours from now in a program
widened to allow it (``open_program``); the pipeline is not run by a worker: tests call
``services.notification_send`` where a worker would have sent a message.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from events import services
from events.console_views import live_state
from events.forms import DATETIME_LOCAL
from events.models import Event, Notification, Participation
from tests.enrollment.factories import (
    ContactFactory,
    ContactMethodFactory,
    EnrollmentFactory,
    SiteFactory,
)
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

P = Participation.Status


@pytest.fixture
def open_program(program):
    """The events cast's program, allowing an event about three hours from now.

    Returns the event's local start (aware, in the program's zone).
    """
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
    return start


@pytest.fixture
def manager_client(client, manager_user):
    client.force_login(manager_user)
    return client


def _form_data(program, start: dt.datetime, hours: int = 2, **extra) -> dict:
    return {
        "program": program.pk,
        "kind": "economic",
        "starts_at": start.strftime(DATETIME_LOCAL),
        "ends_at": (start + dt.timedelta(hours=hours)).strftime(DATETIME_LOCAL),
        "targeting": "all",
        "reason": "Heat wave",
        **extra,
    }


def _send_all(event: Event) -> None:
    """What a worker would do: send every queued message of the event."""
    for notification_id in event.notifications.filter(status="queued").values_list("pk", flat=True):
        services.notification_send(notification_id)


# --- calling an event ----------------------------------------------------------------------


def test_a_manager_calls_a_draft_in_the_programs_local_time(
    manager_client, program, enrollments, open_program
):
    response = manager_client.post(
        reverse("console:event_create"), _form_data(program, open_program)
    )
    event = Event.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("console:event_detail", args=[event.pk])
    assert event.status == Event.Status.DRAFT
    # Typed as New York wall-clock time, stored as the same instant in UTC.
    assert event.starts_at == open_program
    assert event.ends_at == open_program + dt.timedelta(hours=2)
    assert not event.participations.exists()


def test_every_broken_rule_is_shown_on_the_form(manager_client, program, enrollments, open_program):
    program.max_event_minutes = 60
    program.min_notice_minutes = 24 * 60
    program.save()
    response = manager_client.post(
        reverse("console:event_create"), _form_data(program, open_program)
    )
    assert response.status_code == 200
    errors = response.context["rule_errors"]
    assert any("minutes' notice" in message for message in errors)
    assert any("An event lasts at most 60 minutes" in message for message in errors)
    content = response.content.decode()
    assert "The program's rules do not allow this:" in content
    assert "An event lasts at most 60 minutes; this one lasts 120." in content
    assert not Event.objects.exists()


def test_a_time_the_clocks_skip_is_refused(manager_client, program, enrollments, open_program):
    data = _form_data(program, open_program)
    data["starts_at"] = "2026-03-08T02:30"  # New York springs forward at 02:00
    response = manager_client.post(reverse("console:event_create"), data)
    assert response.status_code == 200
    assert "does not exist in America/New_York" in response.content.decode()
    assert not Event.objects.exists()


def test_times_near_the_end_of_the_calendar_are_refused_on_the_form(
    manager_client, program, enrollments, open_program
):
    data = _form_data(program, open_program)
    data.update(starts_at="9999-12-31T23:00", ends_at="9999-12-31T23:30")
    response = manager_client.post(reverse("console:event_create"), data)
    assert response.status_code == 200
    assert response.context["form"].errors["starts_at"] == [
        "9999-12-31 23:00 is out of range: give a time between the years 1900 and 8999."
    ]
    data = _form_data(program, open_program)
    data["ends_at"] = "9999-12-31T23:59"
    response = manager_client.post(reverse("console:event_create"), data)
    assert response.status_code == 200
    assert "ends_at" in response.context["form"].errors
    assert not Event.objects.exists()


def test_targeting_by_grid_location_needs_a_choice_and_reaches_only_those_sites(
    manager_client, program, enrollments, open_program
):
    data = _form_data(program, open_program, targeting="grid")
    response = manager_client.post(reverse("console:event_create"), data)
    assert "Choose at least one zone, substation or feeder." in response.content.decode()
    data["feeders"] = ["F-201"]
    manager_client.post(reverse("console:event_create"), data)
    event = Event.objects.get()
    assert event.target_feeders == ["F-201"]
    page = manager_client.get(reverse("console:event_detail", args=[event.pk]))
    assert [e.site.name for e in page.context["review"]["enrollments"]] == ["Harbor South"]


def test_the_draft_page_shows_sites_that_declared_themselves_unavailable(
    manager_client, manager_user, program, enrollments, open_program, harbor_north
):
    services.unavailability_declare(
        site=harbor_north,
        starts_at=open_program - dt.timedelta(hours=1),
        ends_at=open_program + dt.timedelta(hours=4),
        reason="Compressor maintenance",
        by=manager_user,
    )
    manager_client.post(reverse("console:event_create"), _form_data(program, open_program))
    event = Event.objects.get()
    response = manager_client.get(reverse("console:event_detail", args=[event.pk]))
    review = response.context["review"]
    assert review["unavailable_count"] == 1
    assert review["targeted_kw"] == Decimal("230")
    assert review["rule_errors"] == []
    content = response.content.decode()
    assert "Compressor maintenance" in content
    assert "Schedule and notify participants" in content


def test_scheduling_a_draft_notifies_and_the_live_page_shows_each_method(
    manager_client, program, enrollments, methods, open_program
):
    manager_client.post(reverse("console:event_create"), _form_data(program, open_program))
    event = Event.objects.get()
    response = manager_client.post(reverse("console:event_schedule", args=[event.pk]))
    assert response.status_code == 302
    event.refresh_from_db()
    assert event.status == Event.Status.SCHEDULED
    assert event.participations.count() == 3
    assert event.notifications.count() == 3
    lee_notice = event.notifications.get(contact_method=methods["lee_sms"])
    services.notification_send(lee_notice.pk)

    page = manager_client.get(reverse("console:event_detail", args=[event.pk]))
    content = page.content.decode()
    assert 'id="live-participations"' in content
    assert "js/live-event.js" in content
    rows = {row["site"]: row for row in page.context["live"]["participations"]}
    assert rows["Northside Campus"]["methods"][0]["status"] == "delivered"
    assert rows["Harbor North"]["methods"][0]["status"] == "queued"
    assert page.context["live"]["notification_counts"]["delivered"] == 1
    assert page.context["live"]["notification_counts"]["queued"] == 2


def test_scheduling_twice_says_why_the_second_time(manager_client, call_event_soon):
    event = call_event_soon()
    response = manager_client.post(reverse("console:event_schedule", args=[event.pk]), follow=True)
    assert "This event is no longer a draft." in response.content.decode()


# --- the live page and its JSON -----------------------------------------------------------------


def test_live_json_reports_totals_counts_rows_and_escalation(
    manager_client, call_event_soon, methods
):
    event = call_event_soon()
    north = event.participations.get(enrollment__site__name="Harbor North")
    northside = event.participations.get(enrollment__site__name="Northside Campus")
    services.participation_acknowledge(north, "portal")
    services.notification_send(event.notifications.get(participation=northside).pk)
    services.participation_escalate(participation=northside, now=timezone.now())

    response = manager_client.get(reverse("console:event_live", args=[event.pk]))
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    data = response.json()
    assert data["event"]["status"] == "scheduled"
    assert data["event"]["final"] is False
    assert data["totals"] == {
        "sites": 3,
        "targeted_kw": "230",
        "acknowledged_kw": "100",
        "acknowledged_percent": "43",
    }
    assert data["participation_counts"]["acknowledged"] == 1
    assert data["participation_counts"]["pending"] == 2
    rows = {row["site"]: row for row in data["participations"]}
    assert rows["Harbor North"]["status"] == "acknowledged"
    assert rows["Harbor North"]["answered_via"] == "portal"
    northside_row = rows["Northside Campus"]
    assert northside_row["organization"] == "Northside Medical Center"
    assert [m["method"] for m in northside_row["methods"]] == ["SMS", "Voice call"]
    assert northside_row["methods"][0]["status"] == "delivered"
    assert northside_row["methods"][1]["kind_label"] == "Escalation"
    assert northside_row["escalations"][0]["level"] == 1
    assert northside_row["escalations"][0]["target"] == "Next contact methods"


def test_the_live_page_stays_within_bounded_queries_for_thirty_sites(
    manager_client, program, harbor, call_event_soon, django_assert_max_num_queries
):
    contact = ContactFactory(organization=harbor, name="Ops desk")
    ContactMethodFactory(contact=contact, address="+12125550999", escalation_order=1)
    for number in range(27):
        site = SiteFactory(organization=harbor, name=f"Warehouse {number:02d}")
        EnrollmentFactory(program=program, site=site, committed_kw=Decimal("20"))
    event = call_event_soon()
    assert event.participations.count() == 30
    for notification_id in event.notifications.values_list("pk", flat=True)[:10]:
        services.notification_send(notification_id)
    with django_assert_max_num_queries(16):
        page = manager_client.get(reverse("console:event_detail", args=[event.pk]))
    assert len(page.context["live"]["participations"]) == 30
    with django_assert_max_num_queries(10):
        response = manager_client.get(reverse("console:event_live", args=[event.pk]))
    assert len(response.json()["participations"]) == 30


def test_a_finished_event_is_not_polled(manager_client, call_event_soon, manager_user):
    event = call_event_soon()
    services.event_cancel(event=event, by=manager_user, reason="Grid recovered")
    page = manager_client.get(reverse("console:event_detail", args=[event.pk]))
    content = page.content.decode()
    assert "live-event.js" not in content
    assert "Grid recovered" in content
    assert live_state(event)["event"]["final"] is True


# --- list and calendar ------------------------------------------------------------------------


def test_the_list_shows_upcoming_events_first_and_filters(
    manager_client, manager_user, call_event_soon, program, open_program
):
    program.max_events_per_site_per_day = 2
    upcoming = call_event_soon()
    later = services.event_create(
        program=program,
        kind="test",
        starts_at=upcoming.starts_at + dt.timedelta(hours=3),
        ends_at=upcoming.starts_at + dt.timedelta(hours=4),
        by=manager_user,
        draft=True,
    ).event
    past = Event.objects.create(
        program=program,
        kind="economic",
        status=Event.Status.COMPLETED,
        starts_at=upcoming.starts_at - dt.timedelta(days=1),
        ends_at=upcoming.starts_at - dt.timedelta(days=1, hours=-1),
        created_by=manager_user,
    )
    response = manager_client.get(reverse("console:event_list"))
    assert [event.pk for event in response.context["page_obj"]] == [upcoming.pk, later.pk, past.pk]
    assert response.context["page_obj"][0].targeted == 3
    response = manager_client.get(reverse("console:event_list"), {"kind": "test"})
    assert [event.pk for event in response.context["page_obj"]] == [later.pk]
    response = manager_client.get(reverse("console:event_list"), {"status": "completed"})
    assert [event.pk for event in response.context["page_obj"]] == [past.pk]


def test_the_calendar_puts_events_on_their_local_day_with_month_links(
    manager_client, call_event_soon, program
):
    event = call_event_soon()
    local_start = event.starts_at.astimezone(program.zone)
    month = local_start.strftime("%Y-%m")
    response = manager_client.get(reverse("console:event_calendar"), {"month": month})
    assert response.status_code == 200
    days = [day for week in response.context["weeks"] for day in week if day["events"]]
    assert [(day["date"], [e.pk for e in day["events"]]) for day in days] == [
        (local_start.date(), [event.pk])
    ]
    first = local_start.date().replace(day=1)
    assert response.context["previous_month"] == (first - dt.timedelta(days=1)).strftime("%Y-%m")
    assert f"?month={response.context['next_month']}" in response.content.decode()
    assert [e.pk for e in response.context["agenda"]] == [event.pk]
    other = manager_client.get(reverse("console:event_calendar"), {"month": "2001-01"})
    assert other.context["agenda"] == []


@pytest.mark.parametrize(
    ("asked", "shown"), [("0001-01", dt.date(1900, 1, 1)), ("9999-12", dt.date(8999, 12, 1))]
)
def test_the_calendar_shows_the_nearest_month_it_can_for_one_at_the_ends_of_time(
    manager_client, db, asked, shown
):
    response = manager_client.get(reverse("console:event_calendar"), {"month": asked})
    assert response.status_code == 200
    assert response.context["month"] == shown


# --- modifying and cancelling ------------------------------------------------------------------


def test_a_manager_lengthens_an_event_and_sees_the_modification_number(
    manager_client, call_event_soon, program
):
    event = call_event_soon()
    start = event.starts_at.astimezone(program.zone)
    form = manager_client.get(reverse("console:event_modify", args=[event.pk]))
    assert form.context["form"]["starts_at"].value() == start.replace(tzinfo=None)
    data = {
        "modification_number": 0,
        "starts_at": start.strftime(DATETIME_LOCAL),
        "ends_at": (start + dt.timedelta(hours=3)).strftime(DATETIME_LOCAL),
        "targeting": "all",
        "reason": "Load forecast up",
    }
    response = manager_client.post(reverse("console:event_modify", args=[event.pk]), data)
    assert response.status_code == 302
    event.refresh_from_db()
    assert event.modification_number == 1
    assert event.ends_at == event.starts_at + dt.timedelta(hours=3)
    assert event.notifications.filter(kind=Notification.Kind.UPDATE).count() == 3
    page = manager_client.get(response["Location"])
    assert '<div class="stat" data-live="modification_number">1</div>' in page.content.decode()


def test_a_change_to_a_time_near_the_end_of_the_calendar_is_refused_on_the_form(
    manager_client, call_event_soon, program
):
    event = call_event_soon()
    start = event.starts_at.astimezone(program.zone)
    data = {
        "modification_number": 0,
        "starts_at": start.strftime(DATETIME_LOCAL),
        "ends_at": "9999-12-31T23:59",
        "targeting": "all",
    }
    response = manager_client.post(reverse("console:event_modify", args=[event.pk]), data)
    assert response.status_code == 200
    assert response.context["form"].errors["ends_at"] == [
        "9999-12-31 23:59 is out of range: give a time between the years 1900 and 8999."
    ]
    event.refresh_from_db()
    assert event.modification_number == 0


def test_a_stale_change_is_refused_with_the_services_message(
    manager_client, call_event_soon, program
):
    event = call_event_soon()
    start = event.starts_at.astimezone(program.zone)
    data = {
        "modification_number": 0,
        "starts_at": start.strftime(DATETIME_LOCAL),
        "ends_at": (start + dt.timedelta(hours=1)).strftime(DATETIME_LOCAL),
        "targeting": "all",
    }
    url = reverse("console:event_modify", args=[event.pk])
    assert manager_client.post(url, data).status_code == 302
    response = manager_client.post(url, data)  # the form still says modification 0
    assert response.status_code == 200
    assert "The event was changed meanwhile" in response.content.decode()


def test_narrowing_the_targets_removes_sites(
    manager_client, call_event_soon, program, harbor_south
):
    event = call_event_soon()
    start = event.starts_at.astimezone(program.zone)
    data = {
        "modification_number": 0,
        "starts_at": start.strftime(DATETIME_LOCAL),
        "ends_at": (start + dt.timedelta(hours=2)).strftime(DATETIME_LOCAL),
        "targeting": "sites",
        "sites": [harbor_south.pk],
    }
    manager_client.post(reverse("console:event_modify", args=[event.pk]), data)
    assert list(
        event.participations.filter(removed_at__isnull=True).values_list(
            "enrollment__site__name", flat=True
        )
    ) == ["Harbor South"]


def test_cancelling_needs_a_reason_and_calls_the_service(manager_client, call_event_soon):
    event = call_event_soon()
    url = reverse("console:event_cancel", args=[event.pk])
    response = manager_client.post(url, {"reason": ""})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    response = manager_client.post(url, {"reason": "Grid recovered"})
    assert response.status_code == 302
    event.refresh_from_db()
    assert event.status == Event.Status.CANCELLED
    assert event.cancel_reason == "Grid recovered"
    assert event.modification_number == 1
    response = manager_client.post(url, {"reason": "Again"})
    assert "Only a draft, scheduled or active event can be cancelled." in response.content.decode()


# --- who may do what ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["billing_clerk", "auditor"])
def test_staff_without_event_permissions_may_not_call_change_or_cancel(
    client, request, name, call_event_soon
):
    event = call_event_soon()
    client.force_login(request.getfixturevalue(name))
    assert client.get(reverse("console:event_create")).status_code == 403
    assert client.post(reverse("console:event_create"), {}).status_code == 403
    assert client.post(reverse("console:event_schedule", args=[event.pk])).status_code == 403
    assert client.get(reverse("console:event_modify", args=[event.pk])).status_code == 403
    assert (
        client.post(reverse("console:event_cancel", args=[event.pk]), {"reason": "x"}).status_code
        == 403
    )
    event.refresh_from_db()
    assert event.status == Event.Status.SCHEDULED


def test_billing_reads_events_without_the_write_buttons(client, billing_clerk, call_event_soon):
    event = call_event_soon()
    client.force_login(billing_clerk)
    assert client.get(reverse("console:event_list")).status_code == 200
    assert client.get(reverse("console:event_calendar")).status_code == 200
    assert client.get(reverse("console:event_live", args=[event.pk])).status_code == 200
    page = client.get(reverse("console:event_detail", args=[event.pk]))
    assert page.status_code == 200
    assert "Change times or targets" not in page.content.decode()


def test_participants_are_refused_every_console_page(client, harbor, call_event_soon):
    event = call_event_soon()
    client.force_login(MembershipFactory(organization=harbor, role="admin").user)
    for url in [
        reverse("console:event_list"),
        reverse("console:event_calendar"),
        reverse("console:event_create"),
        reverse("console:event_detail", args=[event.pk]),
        reverse("console:event_live", args=[event.pk]),
        reverse("console:event_modify", args=[event.pk]),
        reverse("console:event_cancel", args=[event.pk]),
        reverse("console:outbox"),
    ]:
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("console:event_schedule", args=[event.pk])).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client, db):
    response = client.get(reverse("console:event_list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_console_home_links_the_events_pages(manager_client):
    content = manager_client.get(reverse("console:home")).content.decode()
    assert reverse("console:event_list") in content
    assert reverse("console:event_calendar") in content
    assert reverse("console:outbox") in content
