"""The enrollment REST API: public program rules, scoped sites and enrollments, decisions."""

from __future__ import annotations

from decimal import Decimal

import pytest

from enrollment.models import Enrollment, EnrollmentTransition
from tests.enrollment.factories import (
    EnrollmentFactory,
    NominationWindowFactory,
    ProgramFactory,
    SiteFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_organizations(organization_a, organization_b):
    """A has two sites (one active, one applied); B has one active site."""
    summer, winter = ProgramFactory(name="Summer"), ProgramFactory(name="Winter")
    a_store = SiteFactory(organization=organization_a, name="A cold store")
    a_dock = SiteFactory(organization=organization_a, name="A loading dock")
    b_ward = SiteFactory(organization=organization_b, name="B east wing")
    return {
        "summer": summer,
        "winter": winter,
        "a_store": a_store,
        "a_dock": a_dock,
        "b_ward": b_ward,
        "a_active": EnrollmentFactory(site=a_store, program=summer),
        "a_applied": EnrollmentFactory(
            site=a_dock, program=winter, status="applied", active_from=None, commitment_ends=None
        ),
        "b_active": EnrollmentFactory(site=b_ward, program=summer),
    }


def _ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


# --- programs -------------------------------------------------------------------------------


def test_any_signed_in_user_reads_the_public_program_rules(client, participant_a):
    program = ProgramFactory(name="Summer Peak", min_committed_kw=Decimal("25"))
    NominationWindowFactory(program=program)
    client.force_login(participant_a)

    listing = client.get("/api/programs/").json()["results"]
    detail = client.get(f"/api/programs/{program.pk}/").json()

    assert [row["name"] for row in listing] == ["Summer Peak"]
    assert detail["min_committed_kw"] == "25.000"
    assert detail["terms_version"] == program.terms_version
    assert detail["allowed_weekdays"] == [0, 1, 2, 3, 4]
    assert len(detail["nomination_windows"]) == 1


def test_programs_are_read_only(client, manager):
    program = ProgramFactory()
    client.force_login(manager)
    response = client.patch(
        f"/api/programs/{program.pk}/", {"name": "x"}, content_type="application/json"
    )
    assert response.status_code == 405


@pytest.mark.parametrize(
    "url", ["/api/programs/", "/api/sites/", "/api/enrollments/", "/api/enrollments/1/"]
)
def test_anonymous_callers_are_refused(client, url):
    response = client.get(url)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_anonymous_callers_cannot_post_decisions(client, two_organizations):
    enrollment = two_organizations["a_applied"]
    response = client.post(
        f"/api/enrollments/{enrollment.pk}/decision/",
        {"approve": True},
        content_type="application/json",
    )
    assert response.status_code == 401


# --- scoping --------------------------------------------------------------------------------


def test_a_participant_lists_only_their_own_sites_and_enrollments(
    client, participant_a, two_organizations
):
    t = two_organizations
    client.force_login(participant_a)

    assert _ids(client.get("/api/sites/")) == {t["a_store"].pk, t["a_dock"].pk}
    assert _ids(client.get("/api/enrollments/")) == {t["a_active"].pk, t["a_applied"].pk}


def test_another_organizations_site_or_enrollment_is_a_404_like_a_missing_one(
    client, participant_a, two_organizations
):
    t = two_organizations
    client.force_login(participant_a)

    assert client.get(f"/api/sites/{t['a_store'].pk}/").status_code == 200
    assert client.get(f"/api/sites/{t['b_ward'].pk}/").status_code == 404
    assert client.get(f"/api/enrollments/{t['b_active'].pk}/").status_code == 404
    assert client.get("/api/enrollments/999999/").status_code == 404


def test_an_enrollment_shows_its_history_without_naming_staff(
    client, participant_a, manager, two_organizations
):
    from enrollment import services

    enrollment = two_organizations["a_applied"]
    services.enrollment_decide(enrollment=enrollment, approve=False, by=manager, reason="Too small")
    client.force_login(participant_a)

    body = client.get(f"/api/enrollments/{enrollment.pk}/").json()

    assert body["status"] == "rejected"
    assert body["organization"] == enrollment.site.organization_id
    assert body["transitions"][-1] == {
        "from_status": "applied",
        "to_status": "rejected",
        "at": body["transitions"][-1]["at"],
        "reason": "Too small",
    }
    assert manager.username not in str(body)


@pytest.mark.parametrize("clerk", ["manager", "auditor", "billing_clerk"])
def test_staff_with_the_view_permission_read_every_organization(
    client, request, clerk, two_organizations
):
    t = two_organizations
    client.force_login(request.getfixturevalue(clerk))

    assert _ids(client.get("/api/sites/")) == {t["a_store"].pk, t["a_dock"].pk, t["b_ward"].pk}
    assert len(_ids(client.get("/api/enrollments/"))) == 3
    assert client.get(f"/api/enrollments/{t['b_active'].pk}/").status_code == 200


def test_the_site_and_enrollment_lists_stay_within_bounded_queries(
    client, manager, django_assert_max_num_queries
):
    program = ProgramFactory()
    for _ in range(20):
        EnrollmentFactory(program=program)
    client.force_login(manager)
    with django_assert_max_num_queries(8):
        assert len(_ids(client.get("/api/enrollments/"))) == 20
    with django_assert_max_num_queries(8):
        assert len(_ids(client.get("/api/sites/"))) == 20


# --- filters --------------------------------------------------------------------------------


def test_enrollments_filter_by_status_and_program(client, participant_a, two_organizations):
    t = two_organizations
    client.force_login(participant_a)

    assert _ids(client.get("/api/enrollments/", {"status": "applied"})) == {t["a_applied"].pk}
    assert _ids(client.get("/api/enrollments/", {"program": t["summer"].pk})) == {t["a_active"].pk}
    assert (
        _ids(client.get("/api/enrollments/", {"program": t["summer"].pk, "status": "applied"}))
        == set()
    )


def test_an_unknown_status_filter_is_a_400(client, participant_a, two_organizations):
    client.force_login(participant_a)
    response = client.get("/api/enrollments/", {"status": "bogus"})
    assert response.status_code == 400
    assert "status" in response.json()
    assert client.get("/api/enrollments/", {"program": "summer"}).status_code == 400
    too_large = client.get("/api/enrollments/", {"program": "99999999999999999999999"})
    assert too_large.status_code == 400
    assert "program" in too_large.json()


# --- decisions ------------------------------------------------------------------------------


def _decide(client, enrollment: Enrollment, **body):
    return client.post(
        f"/api/enrollments/{enrollment.pk}/decision/", body, content_type="application/json"
    )


def test_a_participant_cannot_decide_even_their_own_application(
    client, participant_a, two_organizations
):
    enrollment = two_organizations["a_applied"]
    client.force_login(participant_a)

    response = _decide(client, enrollment, approve=True)

    assert response.status_code == 403
    enrollment.refresh_from_db()
    assert enrollment.status == "applied"


@pytest.mark.parametrize("clerk", ["auditor", "billing_clerk"])
def test_auditors_and_billing_clerks_cannot_decide(client, request, clerk, two_organizations):
    client.force_login(request.getfixturevalue(clerk))
    assert _decide(client, two_organizations["a_applied"], approve=True).status_code == 403


def test_a_manager_approves_and_gets_the_active_enrollment_back(client, manager, two_organizations):
    enrollment = two_organizations["a_applied"]
    client.force_login(manager)

    response = _decide(client, enrollment, approve=True, reason="Audit checks out")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == enrollment.pk
    assert body["status"] == "active"
    assert body["active_from"] is not None
    log = EnrollmentTransition.objects.filter(enrollment=enrollment).order_by("at", "pk")
    assert [(t.to_status, t.reason, t.by) for t in log] == [
        ("approved", "Audit checks out", manager),
        ("active", "Activated on approval", manager),
    ]


def test_a_manager_rejects_with_a_reason(client, manager, two_organizations):
    enrollment = two_organizations["a_applied"]
    client.force_login(manager)

    response = _decide(client, enrollment, approve=False, reason="Meter not interval-capable")

    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    transition = EnrollmentTransition.objects.get(enrollment=enrollment)
    assert transition.reason == "Meter not interval-capable"


def test_a_rejection_without_a_reason_is_a_400_with_the_services_message(
    client, manager, two_organizations
):
    enrollment = two_organizations["a_applied"]
    client.force_login(manager)

    response = _decide(client, enrollment, approve=False)

    assert response.status_code == 400
    assert response.json() == {"reason": ["Give a reason; the participant will see it."]}
    enrollment.refresh_from_db()
    assert enrollment.status == "applied"


def test_an_invalid_transition_is_a_400(client, manager, two_organizations):
    client.force_login(manager)

    response = _decide(client, two_organizations["a_active"], approve=True)

    assert response.status_code == 400
    assert response.json() == {
        "non_field_errors": ["An enrollment that is active cannot become approved."]
    }


def test_a_decision_needs_a_yes_or_no(client, manager, two_organizations):
    client.force_login(manager)
    response = _decide(client, two_organizations["a_applied"], reason="?")
    assert response.status_code == 400
    assert "approve" in response.json()


def test_a_decision_on_a_missing_enrollment_is_a_404_for_a_manager(client, manager):
    client.force_login(manager)
    response = client.post(
        "/api/enrollments/999999/decision/", {"approve": True}, content_type="application/json"
    )
    assert response.status_code == 404
