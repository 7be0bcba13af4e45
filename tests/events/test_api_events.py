"""The events REST API: managers call, schedule and cancel events through the services
(400 with every broken rule); participants see only events reaching their organizations,
with only their own participations, and 404 for any other."""

from __future__ import annotations

import datetime as dt

import pytest
from rest_framework.test import APIClient

from events import services
from events.models import Event, Participation
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def as_manager(api, manager_user) -> APIClient:
    api.force_authenticate(manager_user)
    return api


@pytest.fixture
def harbor_member(harbor):
    return MembershipFactory(organization=harbor, role="operator").user


@pytest.fixture
def northside_member(northside):
    return MembershipFactory(organization=northside, role="admin").user


def _soon(call_event_soon, manager_user) -> tuple[dt.datetime, dt.datetime]:
    """Widen the program (through the cast's fixture) and return a free start and end."""
    event = call_event_soon()
    start, end = event.starts_at, event.ends_at
    event.delete()
    return start, end


# --- calling, scheduling, cancelling -----------------------------------------------------------


def test_a_manager_calls_and_schedules_an_event_at_once(
    as_manager, program, call_event_soon, manager_user
):
    start, end = _soon(call_event_soon, manager_user)
    response = as_manager.post(
        "/api/events/",
        {
            "program": program.pk,
            "kind": "emergency",
            "starts_at": start.isoformat(),
            "ends_at": end.isoformat(),
            "reason": "Capacity shortfall",
            "zones": ["NORTH"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    event = Event.objects.get(pk=body["id"])
    assert event.status == Event.Status.SCHEDULED
    assert body["status"] == "scheduled"
    assert body["target_zones"] == ["NORTH"]
    assert {p["site_name"] for p in body["participations"]} == {"Harbor North", "Northside Campus"}
    assert body["unavailable_sites"] == []


def test_times_without_an_offset_are_the_programs_local_time(
    as_manager, program, call_event_soon, manager_user
):
    start, end = _soon(call_event_soon, manager_user)
    local_start = start.astimezone(program.zone).replace(tzinfo=None)
    local_end = end.astimezone(program.zone).replace(tzinfo=None)
    response = as_manager.post(
        "/api/events/",
        {
            "program": program.pk,
            "starts_at": local_start.isoformat(),
            "ends_at": local_end.isoformat(),
            "draft": True,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    event = Event.objects.get(pk=response.json()["id"])
    assert (event.starts_at, event.ends_at) == (start, end)
    assert event.status == Event.Status.DRAFT


def test_every_broken_rule_is_a_400_with_its_message(as_manager, program, enrollments):
    response = as_manager.post(
        "/api/events/",
        {
            "program": program.pk,
            "starts_at": "2001-01-01T03:00:00Z",
            "ends_at": "2001-01-01T12:00:00Z",
        },
        format="json",
    )
    assert response.status_code == 400
    messages = response.json()["non_field_errors"]
    assert "The event must start in the future." in messages
    assert any(message.startswith("Events must run within") for message in messages)
    assert any(message.startswith("An event lasts at most") for message in messages)
    assert any("outside the season" in message for message in messages)
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "field"),
    [
        ("2027-07-01T14:00", "9999-12-31T23:59", "ends_at"),
        ("0001-01-01T00:00:00+14:00", "0001-01-01T03:00:00+14:00", "starts_at"),
        ("9999-12-31T20:00:00-05:00", "9999-12-31T23:00:00-05:00", "ends_at"),
    ],
)
def test_times_at_the_ends_of_the_calendar_are_a_400(
    as_manager, program, enrollments, starts_at, ends_at, field
):
    response = as_manager.post(
        "/api/events/",
        {"program": program.pk, "starts_at": starts_at, "ends_at": ends_at, "draft": True},
        format="json",
    )
    assert response.status_code == 400
    message = response.json()[field][0]
    assert message.endswith("is out of range: give a time between the years 1900 and 8999.")
    assert not Event.objects.exists()


def test_an_id_filter_beyond_any_stored_id_is_a_400(as_manager, harbor_member, call_event_soon):
    call_event_soon()
    too_large = "99999999999999999999999"
    response = as_manager.get("/api/events/", {"program": too_large})
    assert response.status_code == 400
    assert "program" in response.json()
    as_manager.force_authenticate(harbor_member)
    response = as_manager.get("/api/participations/", {"event": too_large})
    assert response.status_code == 400
    assert "event" in response.json()
    largest = str(2**63 - 1)
    assert as_manager.get("/api/participations/", {"event": largest}).json()["results"] == []
    assert as_manager.get("/api/events/", {"program": largest}).json()["results"] == []


def test_a_draft_is_scheduled_then_cancelled_with_a_reason(
    as_manager, program, call_event_soon, manager_user
):
    start, end = _soon(call_event_soon, manager_user)
    created = as_manager.post(
        "/api/events/",
        {"program": program.pk, "starts_at": start, "ends_at": end, "draft": True},
        format="json",
    ).json()
    assert created["participations"] == []
    scheduled = as_manager.post(f"/api/events/{created['id']}/schedule/")
    assert scheduled.status_code == 200
    assert scheduled.json()["status"] == "scheduled"
    assert len(scheduled.json()["participations"]) == 3
    again = as_manager.post(f"/api/events/{created['id']}/schedule/")
    assert again.status_code == 400
    assert again.json() == {"non_field_errors": ["This event is no longer a draft."]}
    no_reason = as_manager.post(f"/api/events/{created['id']}/cancel/", {}, format="json")
    assert no_reason.status_code == 400
    cancelled = as_manager.post(
        f"/api/events/{created['id']}/cancel/", {"reason": "Grid recovered"}, format="json"
    )
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancel_reason"] == "Grid recovered"


@pytest.mark.parametrize("name", ["billing_clerk", "auditor", "northside_member"])
def test_only_program_managers_call_schedule_and_cancel(
    api, request, name, program, call_event_soon
):
    event = call_event_soon()
    api.force_authenticate(request.getfixturevalue(name))
    assert api.post("/api/events/", {"program": program.pk}, format="json").status_code == 403
    assert api.post(f"/api/events/{event.pk}/schedule/").status_code == 403
    response = api.post(f"/api/events/{event.pk}/cancel/", {"reason": "x"}, format="json")
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.status == Event.Status.SCHEDULED


# --- reading ----------------------------------------------------------------------------------


def test_staff_with_the_view_permission_read_every_event(
    api, billing_clerk, call_event_soon, django_assert_max_num_queries
):
    event = call_event_soon()
    api.force_authenticate(billing_clerk)
    with django_assert_max_num_queries(10):
        response = api.get("/api/events/")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [event.pk]
    assert len(response.json()["results"][0]["participations"]) == 3
    assert api.get("/api/events/", {"status": "cancelled"}).json()["results"] == []


def test_auditors_hold_no_event_permission(api, auditor, call_event_soon):
    call_event_soon()
    api.force_authenticate(auditor)
    assert api.get("/api/events/").status_code == 403


def test_a_participant_sees_only_their_events_and_their_own_participations(
    api, harbor_member, call_event_soon, harbor_north
):
    everyone = call_event_soon()
    api.force_authenticate(harbor_member)
    response = api.get("/api/events/")
    assert [row["id"] for row in response.json()["results"]] == [everyone.pk]
    row = response.json()["results"][0]
    assert {p["site_name"] for p in row["participations"]} == {"Harbor North", "Harbor South"}
    assert "target_sites" not in row
    detail = api.get(f"/api/events/{everyone.pk}/").json()
    assert {p["organization_name"] for p in detail["participations"]} == {"Harbor Cold Storage LLC"}


def test_a_participant_gets_404_for_an_event_that_does_not_reach_them(
    api, harbor_member, northside_member, call_event_soon, northside_site, program
):
    program.max_events_per_site_per_day = 2
    program.save()
    northside_only = call_event_soon(sites=[northside_site])
    api.force_authenticate(harbor_member)
    assert api.get(f"/api/events/{northside_only.pk}/").status_code == 404
    assert api.get("/api/events/999999/").status_code == 404
    assert api.get("/api/events/").json()["results"] == []
    api.force_authenticate(northside_member)
    assert api.get(f"/api/events/{northside_only.pk}/").status_code == 200


def test_participations_are_read_scoped_to_the_callers_organizations(
    api, harbor_member, manager_user, call_event_soon
):
    event = call_event_soon()
    api.force_authenticate(harbor_member)
    response = api.get("/api/participations/", {"event": event.pk})
    assert {p["site_name"] for p in response.json()["results"]} == {"Harbor North", "Harbor South"}
    northside = event.participations.get(enrollment__site__name="Northside Campus")
    assert api.get(f"/api/participations/{northside.pk}/").status_code == 404
    api.force_authenticate(manager_user)
    response = api.get("/api/participations/", {"event": event.pk, "status": "pending"})
    assert len(response.json()["results"]) == 3
    assert response.json()["results"][0]["status"] == Participation.Status.PENDING


def test_an_organization_whose_sites_were_all_removed_no_longer_sees_the_event(
    api, harbor_member, northside_member, call_event_soon, manager_user, northside_site
):
    event = call_event_soon()
    services.event_modify(event=event, by=manager_user, sites=[northside_site])
    api.force_authenticate(harbor_member)
    assert api.get(f"/api/events/{event.pk}/").status_code == 404
    assert api.get("/api/events/").json()["results"] == []
    api.force_authenticate(northside_member)
    assert api.get(f"/api/events/{event.pk}/").status_code == 200
    assert [row["id"] for row in api.get("/api/events/").json()["results"]] == [event.pk]
