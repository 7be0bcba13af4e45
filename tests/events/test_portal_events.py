"""The participant's events pages: see events, answer them, declare unavailability.

The cast comes from ``tests/events/conftest.py``: Harbor (two sites) and Northside (one
site) in one program; events are called about three hours from the real clock because the
views use it. Another organization's objects answer 404 and their POSTs change nothing;
viewers read and get 403 on every write.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from events.models import Event, Participation, Unavailability
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

P = Participation.Status


@pytest.fixture
def harbor_admin(harbor):
    return MembershipFactory(organization=harbor, role="admin").user


@pytest.fixture
def harbor_viewer(harbor):
    return MembershipFactory(organization=harbor, role="viewer").user


@pytest.fixture
def harbor_operator(harbor):
    return MembershipFactory(organization=harbor, role="operator").user


@pytest.fixture
def northside_admin(northside):
    return MembershipFactory(organization=northside, role="admin").user


@pytest.fixture
def event(call_event_soon) -> Event:
    return call_event_soon()


def participation_of(event: Event, site) -> Participation:
    return Participation.objects.get(event=event, enrollment__site=site)


def events_url(organization) -> str:
    return f"/portal/o/{organization.pk}/events/"


def answer_url(organization, participation: Participation, action: str) -> str:
    return f"/portal/o/{organization.pk}/events/participations/{participation.pk}/{action}/"


def unavailability_url(organization) -> str:
    return f"/portal/o/{organization.pk}/events/unavailability/"


def snapshot() -> list[tuple]:
    return sorted(
        Participation.objects.values_list("pk", "status", "acknowledged_at", "opted_out_at")
    )


# --- reading ---------------------------------------------------------------------------------


def test_the_events_page_shows_own_sites_with_committed_kw_and_buttons(
    client, event, harbor, harbor_admin, harbor_north, harbor_south, northside_site
):
    client.force_login(harbor_admin)
    response = client.get(events_url(harbor))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Harbor North" in page and "Harbor South" in page
    assert "Northside Campus" not in page
    assert "180 kW" in page  # 100 + 80 committed at stake
    assert page.count(">Acknowledge</button>") == 2
    assert page.count(">Opt out</button>") == 2
    assert f"/portal/o/{harbor.pk}/events/{event.pk}/" in page


def test_test_events_are_marked_as_drills(client, call_event_soon, harbor, harbor_admin):
    call_event_soon(kind=Event.Kind.TEST)
    client.force_login(harbor_admin)
    page = client.get(events_url(harbor)).content.decode()
    assert "TEST / DRILL" in page
    assert "This is a test of the call-out." in page


def test_the_event_page_lists_the_messages_sent_to_own_contacts_only(
    client, event, harbor, harbor_admin
):
    client.force_login(harbor_admin)
    response = client.get(f"/portal/o/{harbor.pk}/events/{event.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "+12125550101" in page  # Dana's SMS got the notice
    assert "+12125550202" not in page  # Lee is Northside's


def test_past_events_show_their_outcome_without_buttons(
    client, event, harbor, harbor_admin, harbor_north
):
    Event.objects.filter(pk=event.pk).update(status=Event.Status.COMPLETED)
    Participation.objects.filter(event=event, enrollment__site=harbor_north).update(
        status=P.NO_RESPONSE
    )
    client.force_login(harbor_admin)
    page = client.get(events_url(harbor)).content.decode()
    assert "No event is scheduled for your sites." in page
    assert "No response" in page
    assert ">Acknowledge</button>" not in page


def test_the_events_page_query_count_does_not_grow_with_events(
    client, call_event_soon, harbor, harbor_admin, program, django_assert_max_num_queries
):
    first = call_event_soon()
    Event.objects.filter(pk=first.pk).update(status=Event.Status.COMPLETED)
    client.force_login(harbor_admin)
    # Opt-out refusals read the season's opt-outs: one query per open participation.
    with django_assert_max_num_queries(16):
        assert client.get(events_url(harbor)).status_code == 200


# --- answering -------------------------------------------------------------------------------


def test_acknowledge_button_acknowledges_the_participation(
    client, event, harbor, harbor_operator, harbor_north
):
    participation = participation_of(event, harbor_north)
    client.force_login(harbor_operator)
    response = client.post(answer_url(harbor, participation, "acknowledge"), follow=True)
    participation.refresh_from_db()
    assert participation.status == P.ACKNOWLEDGED
    assert participation.acknowledged_via == "portal"
    assert participation.acknowledged_by == harbor_operator
    assert "Harbor North: acknowledged." in response.content.decode()


def test_opt_out_button_opts_the_site_out(client, event, harbor, harbor_admin, harbor_south):
    participation = participation_of(event, harbor_south)
    client.force_login(harbor_admin)
    response = client.post(
        answer_url(harbor, participation, "opt-out"),
        {"next": f"/portal/o/{harbor.pk}/events/{event.pk}/"},
    )
    assert response.status_code == 302
    assert response["Location"] == f"/portal/o/{harbor.pk}/events/{event.pk}/"
    participation.refresh_from_db()
    assert participation.status == P.OPTED_OUT
    assert participation.opted_out_by == harbor_admin


def test_next_pointing_elsewhere_is_ignored(client, event, harbor, harbor_admin, harbor_north):
    participation = participation_of(event, harbor_north)
    client.force_login(harbor_admin)
    response = client.post(
        answer_url(harbor, participation, "acknowledge"), {"next": "https://evil.example/"}
    )
    assert response["Location"] == events_url(harbor)


def test_opt_out_after_the_cut_off_is_refused_with_the_reason_shown(
    client, event, program, harbor, harbor_admin, harbor_north
):
    program.opt_out_cutoff_minutes = 24 * 60  # the cut-off passed a day before the start
    program.save(update_fields=["opt_out_cutoff_minutes"])
    participation = participation_of(event, harbor_north)
    client.force_login(harbor_admin)

    page = client.get(events_url(harbor)).content.decode()
    assert ">Opt out</button>" not in page
    assert "Opt-outs for this event closed at" in page

    response = client.post(answer_url(harbor, participation, "opt-out"), follow=True)
    participation.refresh_from_db()
    assert participation.status == P.PENDING
    assert "Opt-outs for this event closed at" in response.content.decode()


def test_a_program_without_opt_outs_says_so(client, event, program, harbor, harbor_admin):
    program.opt_outs_per_season = 0
    program.save(update_fields=["opt_outs_per_season"])
    client.force_login(harbor_admin)
    page = client.get(events_url(harbor)).content.decode()
    assert "This program does not allow opting out of events." in page
    assert ">Opt out</button>" not in page


def test_answers_need_post(client, event, harbor, harbor_admin, harbor_north):
    participation = participation_of(event, harbor_north)
    client.force_login(harbor_admin)
    assert client.get(answer_url(harbor, participation, "acknowledge")).status_code == 405


# --- unavailability --------------------------------------------------------------------------


def _local_input(moment: dt.datetime) -> str:
    return moment.astimezone(timezone.get_default_timezone()).strftime("%Y-%m-%dT%H:%M")


def test_declaring_unavailability_marks_the_overlapping_participation(
    client, event, harbor, harbor_admin, harbor_north
):
    client.force_login(harbor_admin)
    response = client.post(
        unavailability_url(harbor),
        {
            "site": harbor_north.pk,
            "starts_at": _local_input(event.starts_at - dt.timedelta(hours=1)),
            "ends_at": _local_input(event.ends_at + dt.timedelta(hours=1)),
            "reason": "Chiller maintenance",
        },
        follow=True,
    )
    window = Unavailability.objects.get(site=harbor_north)
    assert window.starts_at == event.starts_at - dt.timedelta(hours=1)
    assert window.declared_by == harbor_admin
    assert participation_of(event, harbor_north).status == P.UNAVAILABLE
    page = response.content.decode()
    assert "Chiller maintenance" in page and "is declared unavailable" in page


def test_unavailability_after_the_cut_off_is_refused(
    client, event, program, harbor, harbor_admin, harbor_north
):
    program.opt_out_cutoff_minutes = 24 * 60
    program.save(update_fields=["opt_out_cutoff_minutes"])
    client.force_login(harbor_admin)
    response = client.post(
        unavailability_url(harbor),
        {
            "site": harbor_north.pk,
            "starts_at": _local_input(event.starts_at),
            "ends_at": _local_input(event.ends_at),
            "reason": "Chiller maintenance",
        },
    )
    assert response.status_code == 200
    assert "declarations closed at its opt-out cut-off" in response.content.decode()
    assert not Unavailability.objects.exists()


def test_unavailability_until_the_end_of_the_calendar_is_refused_on_the_form(
    client, event, harbor, harbor_admin, harbor_north
):
    client.force_login(harbor_admin)
    response = client.post(
        unavailability_url(harbor),
        {
            "site": harbor_north.pk,
            "starts_at": "9999-12-31T23:00",
            "ends_at": "9999-12-31T23:59",
            "reason": "Chiller maintenance",
        },
    )
    assert response.status_code == 200
    assert response.context["form"].errors["ends_at"] == [
        "9999-12-31 23:59 is out of range: give a time between the years 1900 and 8999."
    ]
    assert not Unavailability.objects.exists()


def test_another_organizations_site_cannot_be_declared(
    client, event, harbor, harbor_admin, northside_site
):
    client.force_login(harbor_admin)
    response = client.post(
        unavailability_url(harbor),
        {
            "site": northside_site.pk,
            "starts_at": _local_input(event.starts_at),
            "ends_at": _local_input(event.ends_at),
            "reason": "Not ours",
        },
    )
    assert response.status_code == 200
    assert not Unavailability.objects.exists()


# --- who may do what -------------------------------------------------------------------------


def test_every_event_url_of_another_organization_answers_404_and_changes_nothing(
    client, event, harbor, northside, northside_admin, harbor_north
):
    participation = participation_of(event, harbor_north)
    before = snapshot()
    client.force_login(northside_admin)
    # Harbor's own pages, and Harbor's participation under Northside's organization.
    gets = [
        events_url(harbor),
        f"/portal/o/{harbor.pk}/events/{event.pk}/",
        unavailability_url(harbor),
    ]
    posts = [
        answer_url(harbor, participation, "acknowledge"),
        answer_url(harbor, participation, "opt-out"),
        answer_url(northside, participation, "acknowledge"),
        answer_url(northside, participation, "opt-out"),
        unavailability_url(harbor),
    ]
    for url in gets:
        assert client.get(url).status_code == 404, url
    for url in posts:
        data = {"site": harbor_north.pk, "starts_at": "2030-01-01T10:00",
                "ends_at": "2030-01-01T12:00", "reason": "x"}  # fmt: skip
        assert client.post(url, data).status_code == 404, url
    assert snapshot() == before
    assert not Unavailability.objects.exists()


def test_an_event_without_own_sites_answers_404(
    client, call_event_soon, northside, northside_site, harbor, harbor_admin
):
    only_northside = call_event_soon(sites=[northside_site])
    client.force_login(harbor_admin)
    assert client.get(f"/portal/o/{harbor.pk}/events/{only_northside.pk}/").status_code == 404
    assert client.get(f"/portal/o/{harbor.pk}/events/999999/").status_code == 404


def test_a_viewer_reads_but_gets_403_on_every_write(
    client, event, harbor, harbor_viewer, harbor_north
):
    participation = participation_of(event, harbor_north)
    before = snapshot()
    client.force_login(harbor_viewer)
    page = client.get(events_url(harbor)).content.decode()
    assert ">Acknowledge</button>" not in page and ">Opt out</button>" not in page
    assert client.get(f"/portal/o/{harbor.pk}/events/{event.pk}/").status_code == 200
    unavailability_page = client.get(unavailability_url(harbor)).content.decode()
    assert "Declare unavailable" not in unavailability_page
    for action in ("acknowledge", "opt-out"):
        assert client.post(answer_url(harbor, participation, action)).status_code == 403
    response = client.post(
        unavailability_url(harbor),
        {"site": harbor_north.pk, "starts_at": "2030-01-01T10:00",
         "ends_at": "2030-01-01T12:00", "reason": "x"},
    )  # fmt: skip
    assert response.status_code == 403
    assert snapshot() == before
    assert not Unavailability.objects.exists()


def test_anonymous_visitors_are_sent_to_log_in(client, event, harbor):
    response = client.get(events_url(harbor))
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
