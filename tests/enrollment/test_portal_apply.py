"""Applying to enroll from the portal: the form, the consent record, and every refusal."""

from __future__ import annotations

from decimal import Decimal

import pytest

from enrollment.models import ConsentRecord, Enrollment, Nomination
from tests.enrollment.factories import EnrollmentFactory, ProgramFactory, SiteFactory

pytestmark = pytest.mark.django_db

USER_AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"


@pytest.fixture
def program():
    return ProgramFactory(
        name="Summer Peak",
        min_committed_kw=Decimal("10"),
        audit_required=True,
        terms_text="The participant agrees to curtail load within 30 minutes of a call.",
        terms_version="2026.2",
    )


@pytest.fixture
def site(organization_a):
    return SiteFactory(
        organization=organization_a, name="Cold Store 1", audited_curtailable_kw=Decimal("200")
    )


def apply_url(organization, program) -> str:
    return f"/portal/o/{organization.pk}/apply/{program.pk}/"


def application(site, committed_kw: str, *, accept: bool = True, version: str = "2026.2"):
    data = {f"site_{site.pk}": "on", f"kw_{site.pk}": committed_kw, "terms_version": version}
    if accept:
        data["accept_terms"] = "on"
    return data


def test_the_program_list_links_to_each_open_programs_form(
    client, participant_a, organization_a, program
):
    closed = ProgramFactory(name="Winter Reserve", is_open=False)
    client.force_login(participant_a)
    page = client.get(f"/portal/o/{organization_a.pk}/apply/").content.decode()
    assert apply_url(organization_a, program) in page
    assert "Winter Reserve" not in page
    assert client.get(apply_url(organization_a, closed)).status_code == 404


def test_the_form_shows_the_terms_text_and_version_and_the_sites(
    client, participant_a, organization_a, program, site
):
    client.force_login(participant_a)
    page = client.get(apply_url(organization_a, program)).content.decode()
    assert "The participant agrees to curtail load within 30 minutes of a call." in page
    assert "2026.2" in page
    assert "Cold Store 1" in page
    assert 'name="accept_terms"' in page


def test_applying_creates_the_enrollment_with_a_consent_record(
    client, participant_a, organization_a, program, site
):
    client.force_login(participant_a)

    response = client.post(
        apply_url(organization_a, program),
        application(site, "150"),
        REMOTE_ADDR="203.0.113.9",
        HTTP_USER_AGENT=USER_AGENT,
        follow=True,
    )

    assert response.redirect_chain[-1][0] == f"/portal/o/{organization_a.pk}/"
    assert "Application sent for Cold Store 1 in Summer Peak" in response.content.decode()
    enrollment = Enrollment.objects.get(site=site, program=program)
    assert enrollment.status == Enrollment.Status.APPLIED
    assert enrollment.committed_kw == Decimal("150")
    assert enrollment.applied_by == participant_a
    consent = ConsentRecord.objects.get(enrollment=enrollment)
    assert consent.user == participant_a
    assert consent.terms_version == "2026.2"
    assert consent.ip_address == "203.0.113.9"
    assert consent.user_agent == USER_AGENT
    assert Nomination.objects.get(enrollment=enrollment).committed_kw == Decimal("150")


def test_several_sites_apply_at_once_and_unticked_sites_stay_out(
    client, participant_a, organization_a, program, site
):
    second = SiteFactory(organization=organization_a, name="Cold Store 2")
    third = SiteFactory(organization=organization_a, name="Cold Store 3")
    client.force_login(participant_a)
    data = {**application(site, "150"), f"site_{second.pk}": "on", f"kw_{second.pk}": "20"}
    data[f"kw_{third.pk}"] = "30"  # a kW without the box ticked is not an application

    client.post(apply_url(organization_a, program), data)

    enrolled = dict(
        Enrollment.objects.filter(program=program).values_list("site__name", "committed_kw")
    )
    assert enrolled == {"Cold Store 1": Decimal("150"), "Cold Store 2": Decimal("20")}


@pytest.mark.parametrize(
    ("committed_kw", "message"),
    [
        ("5", "Cold Store 1: 5 kW is below the program minimum of 10.000 kW."),
        ("250", "Cold Store 1: 250 kW is above the audited curtailable load of 200.000 kW."),
    ],
)
def test_a_commitment_outside_the_rules_is_refused_on_the_page(
    client, participant_a, organization_a, program, site, committed_kw, message
):
    client.force_login(participant_a)
    response = client.post(apply_url(organization_a, program), application(site, committed_kw))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Enrollment.objects.exists()


def test_a_site_without_an_audit_is_refused_when_the_program_requires_one(
    client, participant_a, organization_a, program
):
    unaudited = SiteFactory(
        organization=organization_a, name="New Plant", audited_curtailable_kw=None
    )
    client.force_login(participant_a)
    response = client.post(apply_url(organization_a, program), application(unaudited, "50"))
    assert "New Plant: this program requires a completed audit before you can apply" in (
        response.content.decode()
    )
    assert not Enrollment.objects.exists()


def test_terms_not_accepted_are_refused(client, participant_a, organization_a, program, site):
    client.force_login(participant_a)
    response = client.post(
        apply_url(organization_a, program), application(site, "150", accept=False)
    )
    assert "Please read and accept the program terms (version 2026.2) to apply." in (
        response.content.decode()
    )
    assert not Enrollment.objects.exists()
    assert not ConsentRecord.objects.exists()


def test_terms_changed_while_reading_are_not_accepted_for_the_user(
    client, participant_a, organization_a, program, site
):
    client.force_login(participant_a)
    response = client.post(
        apply_url(organization_a, program), application(site, "150", version="2026.1")
    )
    assert "accept the program terms (version 2026.2)" in response.content.decode()
    assert not Enrollment.objects.exists()


def test_every_refusal_is_shown_together(client, participant_a, organization_a, program, site):
    unaudited = SiteFactory(
        organization=organization_a, name="New Plant", audited_curtailable_kw=None
    )
    client.force_login(participant_a)
    data = {
        **application(site, "5", accept=False),
        f"site_{unaudited.pk}": "on",
        f"kw_{unaudited.pk}": "50",
    }
    page = client.post(apply_url(organization_a, program), data).content.decode()
    assert "accept the program terms" in page
    assert "below the program minimum" in page
    assert "requires a completed audit" in page


def test_a_ticked_site_without_kw_and_no_site_at_all_are_explained(
    client, participant_a, organization_a, program, site
):
    client.force_login(participant_a)
    data = application(site, "")
    page = client.post(apply_url(organization_a, program), data).content.decode()
    assert "Give the kW this site commits to shed." in page
    nothing = {"accept_terms": "on", "terms_version": "2026.2"}
    page = client.post(apply_url(organization_a, program), nothing).content.decode()
    assert "Choose at least one site." in page
    assert not Enrollment.objects.exists()


def test_a_site_already_enrolled_is_refused(client, participant_a, organization_a, program, site):
    EnrollmentFactory(site=site, program=program)
    client.force_login(participant_a)
    page = client.post(apply_url(organization_a, program), application(site, "150"))
    assert "Cold Store 1 already has an open enrollment in Summer Peak." in page.content.decode()
    assert Enrollment.objects.count() == 1
