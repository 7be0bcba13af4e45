"""Changing a nomination and withdrawing an enrollment from the portal."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import dateformat, timezone

from enrollment import services
from enrollment.models import (
    EnablementInstallment,
    EnablementProject,
    Enrollment,
    EnrollmentTransition,
    Nomination,
)
from tests.enrollment.factories import (
    AuditFactory,
    AuditFindingFactory,
    EnablementMeasureFactory,
    EnrollmentFactory,
    NominationWindowFactory,
    ProgramFactory,
    SiteFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def enrollment(organization_a):
    site = SiteFactory(
        organization=organization_a, name="Cold Store 1", audited_curtailable_kw=Decimal("200")
    )
    return EnrollmentFactory(
        site=site, program=ProgramFactory(name="Summer Peak"), committed_kw=Decimal("100")
    )


def nomination_url(enrollment: Enrollment) -> str:
    return f"/portal/o/{enrollment.site.organization_id}/enrollments/{enrollment.pk}/nomination/"


def withdraw_url(enrollment: Enrollment) -> str:
    return f"/portal/o/{enrollment.site.organization_id}/enrollments/{enrollment.pk}/withdraw/"


def test_inside_a_window_the_nomination_changes_from_now_on(client, participant_a, enrollment):
    window = NominationWindowFactory(program=enrollment.program)
    client.force_login(participant_a)

    page = client.get(nomination_url(enrollment)).content.decode()
    assert '<span class="badge ok">Open</span>' in page
    closes = timezone.localtime(window.closes_at, enrollment.program.zone)
    assert f"until {dateformat.format(closes, 'M j, Y H:i T')}" in page

    response = client.post(
        nomination_url(enrollment), {"committed_kw": "150", "reason": "New chiller"}, follow=True
    )

    assert response.redirect_chain[-1][0] == f"/portal/o/{enrollment.site.organization_id}/"
    assert "Cold Store 1 now commits 150" in response.content.decode()
    enrollment.refresh_from_db()
    assert enrollment.committed_kw == Decimal("150")
    history = list(
        Nomination.objects.filter(enrollment=enrollment).values_list("committed_kw", "reason")
    )
    assert history[0][0] == Decimal("100")
    assert history[-1] == (Decimal("150"), "New chiller")
    page = client.get(nomination_url(enrollment)).content.decode()
    assert page.index("New chiller") < page.index(">100<")  # newest first


def test_outside_a_window_the_page_says_when_the_next_one_opens(client, participant_a, enrollment):
    opens = timezone.now() + dt.timedelta(days=20)
    NominationWindowFactory(
        program=enrollment.program, opens_at=opens, closes_at=opens + dt.timedelta(days=7)
    )
    client.force_login(participant_a)

    response = client.post(nomination_url(enrollment), {"committed_kw": "150"})

    page = response.content.decode()
    assert response.status_code == 200
    assert "Committed kW can only change inside the program&#x27;s nomination windows." in page
    local_opening = timezone.localtime(opens, enrollment.program.zone)
    assert f"The next window opens on {local_opening:%b %d, %Y %H:%M}." in page
    assert '<span class="badge warn">Closed</span>' in page
    enrollment.refresh_from_db()
    assert enrollment.committed_kw == Decimal("100")
    assert Nomination.objects.filter(enrollment=enrollment).count() == 1


def test_a_nomination_above_the_audited_load_is_refused_next_to_the_field(
    client, participant_a, enrollment
):
    NominationWindowFactory(program=enrollment.program)
    client.force_login(participant_a)
    response = client.post(nomination_url(enrollment), {"committed_kw": "250"})
    assert "250 kW is above the audited curtailable load of 200.000 kW." in (
        response.content.decode()
    )
    assert Nomination.objects.filter(enrollment=enrollment).count() == 1


def test_withdrawing_records_the_transition_with_its_reason(client, participant_a, enrollment):
    client.force_login(participant_a)

    page = client.get(withdraw_url(enrollment)).content.decode()
    assert "claws back enablement incentives" in page

    response = client.post(withdraw_url(enrollment), {"reason": "Closing the site"}, follow=True)

    assert "Cold Store 1 was withdrawn from Summer Peak." in response.content.decode()
    enrollment.refresh_from_db()
    assert enrollment.status == Enrollment.Status.WITHDRAWN
    assert enrollment.ended_at is not None
    transition = EnrollmentTransition.objects.get(enrollment=enrollment)
    assert (transition.from_status, transition.to_status) == ("active", "withdrawn")
    assert transition.by == participant_a
    assert transition.reason == "Closing the site"


def test_withdrawing_before_the_commitment_ends_claws_back_incentives(
    client, participant_a, organization_a, auditor, manager
):
    program = ProgramFactory(name="Summer Peak", commitment_months=12)
    site = SiteFactory(organization=organization_a, name="Cold Store 1")
    today = timezone.localdate(timezone=program.zone)
    enrollment = EnrollmentFactory(
        site=site,
        program=program,
        active_from=today - dt.timedelta(days=62),
        commitment_ends=today + dt.timedelta(days=300),
    )
    audit = AuditFactory(site=site, auditor=auditor)
    AuditFindingFactory(audit=audit)
    measure = EnablementMeasureFactory(audit=audit, estimated_cost=Decimal("40000"))
    services.audit_complete(audit=audit, by=auditor)
    project = services.enablement_project_create(
        audit=audit, program=program, measures=[measure], description="HVAC control", by=manager
    )
    for status in ("approved", "installed", "verified"):
        services.enablement_project_advance(project=project, to_status=status, by=manager)
    client.force_login(participant_a)

    page = client.get(withdraw_url(enrollment)).content.decode()
    assert "these projects will be clawed back" in page
    assert "HVAC control" in page

    client.post(withdraw_url(enrollment), {"reason": ""})

    project.refresh_from_db()
    assert project.status == EnablementProject.Status.CLAWED_BACK
    clawback = project.installments.get(kind=EnablementInstallment.Kind.CLAWBACK)
    assert clawback.amount < 0


def test_withdrawing_before_activation_says_unpaid_installments_are_cancelled(
    client, participant_a, organization_a, auditor, manager
):
    program = ProgramFactory(name="Summer Peak", commitment_months=12)
    site = SiteFactory(organization=organization_a, name="Cold Store 1")
    enrollment = EnrollmentFactory(
        site=site, program=program, status="applied", active_from=None, commitment_ends=None
    )
    audit = AuditFactory(site=site, auditor=auditor)
    AuditFindingFactory(audit=audit)
    measure = EnablementMeasureFactory(audit=audit, estimated_cost=Decimal("10000"))
    services.audit_complete(audit=audit, by=auditor)
    project = services.enablement_project_create(
        audit=audit, program=program, measures=[measure], description="HVAC control", by=manager
    )
    for status in ("approved", "installed", "verified"):
        services.enablement_project_advance(project=project, to_status=status, by=manager)
    client.force_login(participant_a)

    page = client.get(withdraw_url(enrollment)).content.decode()
    client.post(withdraw_url(enrollment), {"reason": ""})

    assert "has not become active" in page and "HVAC control" in page
    project.refresh_from_db()
    assert project.status == EnablementProject.Status.CLAWED_BACK
    assert set(project.installments.values_list("status", flat=True)) == {"cancelled"}


def test_an_ended_enrollment_cannot_be_withdrawn_again(client, participant_a, enrollment):
    Enrollment.objects.filter(pk=enrollment.pk).update(status=Enrollment.Status.WITHDRAWN)
    client.force_login(participant_a)

    page = client.get(withdraw_url(enrollment)).content.decode()
    assert "cannot be withdrawn" in page
    assert "Withdraw this enrollment" not in page

    response = client.post(withdraw_url(enrollment), {"reason": "again"})
    assert "An enrollment that is withdrawn cannot become withdrawn." in response.content.decode()
    assert not EnrollmentTransition.objects.filter(enrollment=enrollment).exists()
