"""Access scoping across two organizations, login landing pages and password flows."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from dr_platform.models import Membership
from dr_platform.selectors import get_for_member, organizations_for_user, scope_to_member
from enrollment.models import Organization
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_a_participant_sees_only_their_own_organizations(
    participant_a, organization_a, organization_b
):
    assert list(organizations_for_user(participant_a)) == [organization_a]
    memberships = scope_to_member(Membership.objects.all(), participant_a)
    assert {m.organization_id for m in memberships} == {organization_a.pk}


def test_another_organizations_object_is_a_404_like_a_missing_one(participant_a, organization_b):
    from django.http import Http404

    with pytest.raises(Http404) as not_mine:
        get_for_member(Organization.objects.all(), participant_a, path="", pk=organization_b.pk)
    with pytest.raises(Http404) as missing:
        get_for_member(Organization.objects.all(), participant_a, path="", pk=999_999)
    assert str(not_mine.value) == str(missing.value)


def test_the_dashboard_of_another_organization_answers_404(
    client, participant_a, organization_a, organization_b
):
    client.force_login(participant_a)
    own = client.get(f"/portal/o/{organization_a.pk}/")
    assert own.status_code == 200
    assert organization_a.legal_name in own.content.decode()
    other = client.get(f"/portal/o/{organization_b.pk}/")
    missing = client.get("/portal/o/999999/")
    assert other.status_code == missing.status_code == 404
    assert organization_b.legal_name not in other.content.decode()


def test_the_api_lists_and_reads_only_own_organizations(
    client, participant_a, organization_a, organization_b
):
    client.force_login(participant_a)
    listing = client.get("/api/organizations/").json()
    assert [row["legal_name"] for row in listing["results"]] == [organization_a.legal_name]
    assert client.get(f"/api/organizations/{organization_a.pk}/").status_code == 200
    assert client.get(f"/api/organizations/{organization_b.pk}/").status_code == 404


def test_the_api_refuses_anonymous_callers(client, organization_a):
    assert client.get("/api/organizations/").status_code == 401


def test_anonymous_visitors_are_sent_to_log_in(client, organization_a):
    response = client.get(f"/portal/o/{organization_a.pk}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_after_login_a_participant_lands_on_their_organization(
    client, participant_a, organization_a
):
    response = client.post(
        "/accounts/login/", {"username": participant_a.username, "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == f"/portal/o/{organization_a.pk}/"


def test_after_login_staff_land_on_the_console(client, manager):
    response = client.post(
        "/accounts/login/", {"username": manager.username, "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/console/"
    assert b"Program console" in response.content


def test_a_member_of_two_organizations_chooses_between_them(client, participant_a, organization_b):
    Membership.objects.create(user=participant_a, organization=organization_b, role="viewer")
    client.force_login(participant_a)
    response = client.get("/portal/")
    assert response.status_code == 200
    assert organization_b.legal_name in response.content.decode()


def test_password_reset_sends_a_link_that_sets_a_new_password(client, participant_a):
    client.post("/accounts/password_reset/", {"email": participant_a.email})
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/reset/\S+)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200
    new_password = "another-long-password-7"
    client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": new_password, "new_password2": new_password},
    )
    participant_a.refresh_from_db()
    assert participant_a.check_password(new_password)


def test_password_change_requires_the_old_password(client, participant_a):
    client.force_login(participant_a)
    wrong = client.post(
        "/accounts/password_change/",
        {
            "old_password": "nope",
            "new_password1": "x-new-pass-123456",
            "new_password2": "x-new-pass-123456",
        },
    )
    assert wrong.status_code == 200
    participant_a.refresh_from_db()
    assert participant_a.check_password(PASSWORD)
    client.post(
        "/accounts/password_change/",
        {
            "old_password": PASSWORD,
            "new_password1": "x-new-pass-123456",
            "new_password2": "x-new-pass-123456",
        },
    )
    participant_a.refresh_from_db()
    assert participant_a.check_password("x-new-pass-123456")


def test_pages_load_no_asset_from_another_host(client, participant_a, organization_a):
    client.force_login(participant_a)
    html = client.get(f"/portal/o/{organization_a.pk}/").content.decode()
    assets = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="([^"]+)"', html)
    assert assets, "the page should load at least its stylesheet"
    assert all(not re.match(r"^(https?:)?//", asset) for asset in assets)
    assert 'name="viewport"' in html
