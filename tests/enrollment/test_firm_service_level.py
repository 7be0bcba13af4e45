"""An enrollment's firm service level: set by a program manager on the console's enrollment
page, refused when negative, shown to the participant."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from enrollment import services
from tests.enrollment.factories import EnrollmentFactory, SiteFactory

pytestmark = pytest.mark.django_db


def _urls(enrollment) -> tuple[str, str]:
    return (
        reverse("console:enrollment_detail", args=[enrollment.pk]),
        reverse("console:enrollment_firm_level", args=[enrollment.pk]),
    )


def test_a_program_manager_sets_the_firm_level_on_the_enrollment_page(client, manager):
    enrollment = EnrollmentFactory(site=SiteFactory(name="Cold Store 1"))
    detail, action = _urls(enrollment)
    client.force_login(manager)
    assert action in client.get(detail).content.decode()

    response = client.post(action, {"firm_service_level_kw": "250.5"}, follow=True)

    assert response.redirect_chain[-1][0] == detail
    page = response.content.decode()
    assert "Cold Store 1&#x27;s firm service level is now 250.500 kW." in page
    assert "250.500 kW</div>" in page
    enrollment.refresh_from_db()
    assert enrollment.firm_service_level_kw == Decimal("250.5")

    client.post(action, {"firm_service_level_kw": ""})

    enrollment.refresh_from_db()
    assert enrollment.firm_service_level_kw is None


def test_a_negative_firm_level_is_refused_with_a_clear_message(client, manager):
    enrollment = EnrollmentFactory(firm_service_level_kw=Decimal("80"))
    detail, action = _urls(enrollment)
    client.force_login(manager)

    response = client.post(action, {"firm_service_level_kw": "-5"}, follow=True)

    assert response.redirect_chain[-1][0] == detail
    assert "The firm service level cannot be negative." in response.content.decode()
    enrollment.refresh_from_db()
    assert enrollment.firm_service_level_kw == Decimal("80")


def test_the_service_refuses_a_negative_level_and_anyone_but_a_program_manager(
    manager, auditor, participant_a
):
    enrollment = EnrollmentFactory()

    with pytest.raises(ValidationError) as refused:
        services.enrollment_firm_service_level_set(
            enrollment=enrollment, firm_service_level_kw=Decimal("-0.001"), by=manager
        )
    assert refused.value.message_dict == {
        "firm_service_level_kw": ["The firm service level cannot be negative."]
    }
    assert enrollment.firm_service_level_kw is None  # the refused value is not kept
    for user in (auditor, participant_a):
        with pytest.raises(PermissionDenied):
            services.enrollment_firm_service_level_set(
                enrollment=enrollment, firm_service_level_kw=Decimal("10"), by=user
            )
    services.enrollment_firm_service_level_set(
        enrollment=enrollment, firm_service_level_kw=Decimal("0"), by=manager
    )
    enrollment.refresh_from_db()
    assert enrollment.firm_service_level_kw == Decimal("0")


def test_staff_who_are_not_program_managers_see_the_level_but_cannot_set_it(client, auditor):
    enrollment = EnrollmentFactory(firm_service_level_kw=Decimal("80"))
    detail, action = _urls(enrollment)
    client.force_login(auditor)

    page = client.get(detail).content.decode()

    assert "80 kW" in page and action not in page
    assert client.post(action, {"firm_service_level_kw": "10"}).status_code == 403
    enrollment.refresh_from_db()
    assert enrollment.firm_service_level_kw == Decimal("80")


def test_the_admin_enrollment_page_shows_the_firm_level(client, manager):
    enrollment = EnrollmentFactory(firm_service_level_kw=Decimal("80"))
    client.force_login(manager)

    page = client.get(reverse("admin:enrollment_enrollment_change", args=[enrollment.pk]))

    assert "Firm service level kw" in page.content.decode()
    assert "80.000" in page.content.decode()


def test_the_participant_sees_the_firm_level_next_to_the_commitment(
    client, participant_a, organization_a
):
    EnrollmentFactory(
        site=SiteFactory(organization=organization_a),
        committed_kw=Decimal("120"),
        firm_service_level_kw=Decimal("300"),
    )
    client.force_login(participant_a)

    page = client.get(reverse("portal:organization", args=[organization_a.pk])).content.decode()

    assert "firm service level 300 kW" in page
