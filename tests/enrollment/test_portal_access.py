"""Who may open and post to the enrollment portal pages.

Another organization's member gets 404 on every URL of organization A, exactly like a
missing object, and their POSTs change nothing; a viewer reads but gets 403 on every write
and sees no action buttons.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from dr_platform.models import Membership, OutboxMessage
from enrollment import services
from enrollment.models import (
    Audit,
    ConsentRecord,
    Contact,
    ContactMethod,
    Enrollment,
    EnrollmentTransition,
    Nomination,
)
from tests.enrollment.factories import (
    AuditFactory,
    AuditFindingFactory,
    ContactFactory,
    ContactMethodFactory,
    EnrollmentFactory,
    NominationWindowFactory,
    ProgramFactory,
    SiteFactory,
)
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world_a(organization_a, participant_a):
    """Organization A with one of everything a portal URL can point at."""
    program = ProgramFactory(name="Summer Peak")
    NominationWindowFactory(program=program)
    site = SiteFactory(organization=organization_a, name="Cold Store 1")
    spare_site = SiteFactory(organization=organization_a, name="Cold Store 2")
    enrollment = EnrollmentFactory(site=site, program=program, committed_kw=Decimal("100"))
    audit = AuditFactory(site=site, status=Audit.Status.COMPLETED, curtailable_kw=Decimal("150"))
    AuditFindingFactory(audit=audit, curtailable_kw=Decimal("150"))
    contact = ContactFactory(organization=organization_a, name="Dana Ortiz")
    method = ContactMethodFactory(contact=contact, verified_at=None)
    services.contact_method_send_verification(method=method, by=participant_a)
    method.refresh_from_db()
    return {
        "organization": organization_a,
        "program": program,
        "site": site,
        "spare_site": spare_site,
        "enrollment": enrollment,
        "audit": audit,
        "contact": contact,
        "method": method,
    }


def holds_an_object_of_a(url: str) -> bool:
    """Whether ``url`` names an object of A (the apply and add-contact pages name none)."""
    return "/apply/" not in url and not url.endswith("/contacts/add/")


def reads(o: int, w: dict) -> list[str]:
    return [
        f"/portal/o/{o}/",
        f"/portal/o/{o}/contacts/",
        f"/portal/o/{o}/audits/{w['audit'].pk}/",
    ]


def write_pages(o: int, w: dict) -> list[str]:
    """Pages whose GET shows a form for a write."""
    return [
        f"/portal/o/{o}/apply/",
        f"/portal/o/{o}/apply/{w['program'].pk}/",
        f"/portal/o/{o}/contacts/add/",
        f"/portal/o/{o}/contacts/{w['contact'].pk}/methods/add/",
        f"/portal/o/{o}/methods/{w['method'].pk}/verify/",
        f"/portal/o/{o}/enrollments/{w['enrollment'].pk}/nomination/",
        f"/portal/o/{o}/enrollments/{w['enrollment'].pk}/withdraw/",
    ]


def writes(o: int, w: dict) -> list[tuple[str, dict]]:
    """Every write URL with data that would succeed for an admin of A."""
    site, method, enrollment = w["site"], w["method"], w["enrollment"]
    return [
        (
            f"/portal/o/{o}/apply/{w['program'].pk}/",
            {
                f"site_{w['spare_site'].pk}": "on",
                f"kw_{w['spare_site'].pk}": "50",
                "accept_terms": "on",
                "terms_version": w["program"].terms_version,
            },
        ),
        (f"/portal/o/{o}/contacts/add/", {"name": "Intruder", "sites": [site.pk]}),
        (
            f"/portal/o/{o}/contacts/{w['contact'].pk}/methods/add/",
            {"kind": "email", "address": "intruder@example.com"},
        ),
        (f"/portal/o/{o}/methods/{method.pk}/send-code/", {}),
        (f"/portal/o/{o}/methods/{method.pk}/verify/", {"code": "123456"}),
        (f"/portal/o/{o}/methods/{method.pk}/remove/", {}),
        (f"/portal/o/{o}/enrollments/{enrollment.pk}/nomination/", {"committed_kw": "120"}),
        (f"/portal/o/{o}/enrollments/{enrollment.pk}/withdraw/", {"reason": "Leaving"}),
    ]


def snapshot() -> dict:
    """Everything a portal write could change."""
    return {
        "enrollments": sorted(
            Enrollment.objects.values_list("pk", "status", "committed_kw", "ended_at")
        ),
        "nominations": Nomination.objects.count(),
        "transitions": EnrollmentTransition.objects.count(),
        "consents": ConsentRecord.objects.count(),
        "contacts": sorted(Contact.objects.values_list("pk", "name")),
        "methods": sorted(
            ContactMethod.objects.values_list(
                "pk",
                "address",
                "verified_at",
                "verification_code_hash",
                "verification_sent_at",
                "verification_attempts",
                "disabled_at",
            )
        ),
        "outbox": OutboxMessage.objects.count(),
    }


def test_every_url_of_organization_a_answers_404_to_a_member_of_b(client, world_a, participant_b):
    client.force_login(participant_b)
    a = world_a["organization"].pk
    for url in reads(a, world_a) + write_pages(a, world_a):
        assert client.get(url).status_code == 404, url


def test_objects_of_a_under_bs_own_organization_answer_404(
    client, world_a, participant_b, organization_b
):
    client.force_login(participant_b)
    b = organization_b.pk
    object_urls = [url for url in write_pages(b, world_a) if holds_an_object_of_a(url)]
    object_urls.append(f"/portal/o/{b}/audits/{world_a['audit'].pk}/")
    for url in object_urls:
        assert client.get(url).status_code == 404, url
    missing = client.get(f"/portal/o/{b}/audits/999999/")
    assert missing.status_code == 404


def test_posts_by_a_member_of_b_answer_404_and_change_nothing(
    client, world_a, participant_b, organization_b
):
    before = snapshot()
    client.force_login(participant_b)
    for organization_id in (world_a["organization"].pk, organization_b.pk):
        for url, data in writes(organization_id, world_a):
            if organization_id == organization_b.pk and not holds_an_object_of_a(url):
                continue  # B's own pages naming no object of A: the next test
            assert client.post(url, data).status_code == 404, url
    assert snapshot() == before


def test_as_sites_cannot_be_smuggled_into_bs_forms(client, world_a, participant_b, organization_b):
    """Only B's own sites get form fields; A's site ids in the POST are ignored."""
    client.force_login(participant_b)
    before = snapshot()
    response = client.post(
        f"/portal/o/{organization_b.pk}/apply/{world_a['program'].pk}/",
        {
            f"site_{world_a['spare_site'].pk}": "on",
            f"kw_{world_a['spare_site'].pk}": "50",
            "accept_terms": "on",
            "terms_version": world_a["program"].terms_version,
        },
    )
    assert response.status_code == 200
    assert "Choose at least one site." in response.content.decode()
    response = client.post(
        f"/portal/o/{organization_b.pk}/contacts/add/",
        {"name": "Smuggler", "sites": [world_a["site"].pk]},
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert snapshot() == before


@pytest.fixture
def viewer_a(organization_a):
    return MembershipFactory(organization=organization_a, role=Membership.Role.VIEWER).user


def test_a_viewer_gets_403_on_every_write_and_nothing_changes(client, world_a, viewer_a):
    before = snapshot()
    client.force_login(viewer_a)
    a = world_a["organization"].pk
    for url in write_pages(a, world_a):
        assert client.get(url).status_code == 403, url
    for url, data in writes(a, world_a):
        assert client.post(url, data).status_code == 403, url
    assert snapshot() == before


def test_a_viewer_reads_every_page_without_action_buttons(client, world_a, viewer_a):
    client.force_login(viewer_a)
    a = world_a["organization"].pk
    for url in reads(a, world_a):
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        for action in ("/apply/", "/nomination/", "/withdraw/", "/contacts/add/", "/methods/"):
            assert action not in page, (url, action)
        assert "Remove" not in page
    dashboard = client.get(f"/portal/o/{a}/").content.decode()
    assert "Cold Store 1" in dashboard
    contacts = client.get(f"/portal/o/{a}/contacts/").content.decode()
    assert "Dana Ortiz" in contacts


def test_an_operator_manages_contacts_but_may_not_apply_or_withdraw(client, world_a):
    operator = MembershipFactory(
        organization=world_a["organization"], role=Membership.Role.OPERATOR
    ).user
    client.force_login(operator)
    a = world_a["organization"].pk
    assert client.get(f"/portal/o/{a}/contacts/add/").status_code == 200
    assert client.get(f"/portal/o/{a}/apply/").status_code == 403
    enrollment = world_a["enrollment"]
    response = client.post(f"/portal/o/{a}/enrollments/{enrollment.pk}/withdraw/", {})
    assert response.status_code == 403
    enrollment.refresh_from_db()
    assert enrollment.status == Enrollment.Status.ACTIVE
    dashboard = client.get(f"/portal/o/{a}/").content.decode()
    assert "/withdraw/" not in dashboard and "/apply/" not in dashboard


def test_anonymous_visitors_are_sent_to_log_in(client, world_a):
    a = world_a["organization"].pk
    for url in write_pages(a, world_a):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/")


def test_writes_refuse_get_where_they_are_post_only(client, world_a, participant_a):
    client.force_login(participant_a)
    a, method = world_a["organization"].pk, world_a["method"]
    assert client.get(f"/portal/o/{a}/methods/{method.pk}/send-code/").status_code == 405
    assert client.get(f"/portal/o/{a}/methods/{method.pk}/remove/").status_code == 405
    assert ContactMethod.objects.filter(pk=method.pk).exists()


def test_an_admin_of_a_reaches_every_page_of_a(client, world_a, participant_a):
    """The control for the tests above: their 404s and 403s are about access, not bad URLs."""
    client.force_login(participant_a)
    a = world_a["organization"].pk
    for url in reads(a, world_a) + write_pages(a, world_a):
        assert client.get(url).status_code == 200, url
