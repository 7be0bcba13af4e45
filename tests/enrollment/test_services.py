"""Enrollment rules, transitions and their log, consent, nominations, incentives, clawback."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from unittest import mock

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.utils import timezone

from dr_platform.models import Membership, OutboxMessage
from enrollment import selectors, services
from enrollment.models import (
    ConsentRecord,
    ContactMethod,
    EnablementInstallment,
    EnablementProject,
    Enrollment,
    EnrollmentTransition,
    Nomination,
    Program,
)
from tests.enrollment.factories import (
    AuditFactory,
    AuditFindingFactory,
    ContactFactory,
    EnablementMeasureFactory,
    EnrollmentFactory,
    NominationWindowFactory,
    ProgramFactory,
    SiteFactory,
)
from tests.factories import MembershipFactory, staff_user

pytestmark = pytest.mark.django_db


def _apply(user, organization, program, commitments, version="2026.1"):
    return services.enrollment_apply(
        user=user,
        organization=organization,
        program=program,
        commitments=commitments,
        accepted_terms_version=version,
        ip_address="203.0.113.7",
        user_agent="Mozilla/5.0 test",
    )


def _messages(error: ValidationError) -> str:
    return " ".join(error.messages)


# --- program rules ---------------------------------------------------------------------------


def test_a_program_season_cannot_end_before_it_starts():
    program = ProgramFactory.build(season_start=dt.date(2026, 9, 1), season_end=dt.date(2026, 6, 1))
    with pytest.raises(ValidationError) as error:
        program.full_clean()
    assert "The season ends before it starts." in error.value.message_dict["season_end"]


def test_a_zero_length_event_window_is_refused():
    program = ProgramFactory.build(event_window_start=dt.time(14), event_window_end=dt.time(14))
    with pytest.raises(ValidationError) as error:
        program.full_clean()
    assert "zero or negative length" in " ".join(error.value.message_dict["event_window_end"])


def test_a_cost_share_over_100_percent_is_refused():
    program = ProgramFactory.build(enablement_cost_share=Decimal("1.5"))
    with pytest.raises(ValidationError) as error:
        program.full_clean()
    assert "enablement_cost_share" in error.value.message_dict


def test_payment_stages_must_add_up_to_the_whole_incentive():
    program = ProgramFactory.build(
        enablement_stages=[
            {"trigger": "verified", "share": "0.5"},
            {"trigger": "paid", "share": "0.2"},
        ]
    )
    with pytest.raises(ValidationError) as error:
        program.full_clean()
    assert "trigger must be one of" in " ".join(error.value.message_dict["enablement_stages"])


def test_an_unknown_time_zone_is_refused():
    program = ProgramFactory.build(time_zone="Mars/Olympus")
    with pytest.raises(ValidationError) as error:
        program.full_clean()
    assert "is not an IANA time zone" in " ".join(error.value.message_dict["time_zone"])


# --- applying ----------------------------------------------------------------------------------


def test_applying_creates_enrollment_transition_nomination_and_consent(
    participant_a, organization_a
):
    program = ProgramFactory()
    site = SiteFactory(organization=organization_a)
    [enrollment] = _apply(participant_a, organization_a, program, {site: Decimal("150")})
    assert enrollment.status == Enrollment.Status.APPLIED
    assert list(enrollment.transitions.values_list("from_status", "to_status")) == [("", "applied")]
    assert enrollment.nominations.get().committed_kw == Decimal("150")
    consent = ConsentRecord.objects.get(enrollment=enrollment)
    assert (consent.user, consent.terms_version) == (participant_a, "2026.1")
    assert (consent.ip_address, consent.user_agent) == ("203.0.113.7", "Mozilla/5.0 test")
    assert len(consent.terms_sha256) == 64


@pytest.mark.parametrize(
    ("committed_kw", "message"),
    [
        (Decimal("0"), "Committed kW must be greater than zero."),
        (Decimal("5"), "below the program minimum of 10"),
        (Decimal("250"), "above the audited curtailable load of 200"),
    ],
)
def test_commitments_outside_the_rules_are_refused(
    participant_a, organization_a, committed_kw, message
):
    site = SiteFactory(organization=organization_a, audited_curtailable_kw=Decimal("200"))
    with pytest.raises(ValidationError) as error:
        _apply(participant_a, organization_a, ProgramFactory(), {site: committed_kw})
    assert message in _messages(error.value)
    assert not Enrollment.objects.exists()


def test_a_program_requiring_an_audit_refuses_sites_without_one(participant_a, organization_a):
    site = SiteFactory(organization=organization_a, audited_curtailable_kw=None)
    with pytest.raises(ValidationError) as error:
        _apply(
            participant_a,
            organization_a,
            ProgramFactory(audit_required=True),
            {site: Decimal("50")},
        )
    assert "requires a completed audit" in _messages(error.value)
    # Without the audit requirement, the same site may apply.
    enrollments = _apply(
        participant_a, organization_a, ProgramFactory(audit_required=False), {site: Decimal("50")}
    )
    assert len(enrollments) == 1


def test_applying_without_accepting_the_current_terms_is_refused(participant_a, organization_a):
    site = SiteFactory(organization=organization_a)
    with pytest.raises(ValidationError) as error:
        _apply(
            participant_a, organization_a, ProgramFactory(), {site: Decimal("50")}, version="2025.9"
        )
    assert "accept the program terms (version 2026.1)" in _messages(error.value)


def test_a_site_cannot_join_two_exclusive_programs(participant_a, organization_a):
    site = SiteFactory(organization=organization_a)
    first = ProgramFactory(exclusive=True)
    EnrollmentFactory(site=site, program=first)
    with pytest.raises(ValidationError) as error:
        _apply(participant_a, organization_a, ProgramFactory(exclusive=True), {site: Decimal("50")})
    assert f"is enrolled in {first.name}" in _messages(error.value)
    assert _apply(
        participant_a, organization_a, ProgramFactory(exclusive=False), {site: Decimal("50")}
    )


def test_a_site_cannot_apply_twice_to_the_same_program(participant_a, organization_a):
    site = SiteFactory(organization=organization_a)
    program = ProgramFactory(exclusive=False)
    _apply(participant_a, organization_a, program, {site: Decimal("50")})
    with pytest.raises(ValidationError, match="already has an open enrollment"):
        _apply(participant_a, organization_a, program, {site: Decimal("50")})


def test_only_an_organization_admin_may_apply(organization_a, participant_b):
    viewer = MembershipFactory(organization=organization_a, role=Membership.Role.VIEWER).user
    site = SiteFactory(organization=organization_a)
    with pytest.raises(PermissionDenied):
        _apply(viewer, organization_a, ProgramFactory(), {site: Decimal("50")})
    with pytest.raises(Http404):
        _apply(participant_b, organization_a, ProgramFactory(), {site: Decimal("50")})


def test_another_organizations_site_cannot_be_enrolled(
    participant_a, organization_a, organization_b
):
    foreign_site = SiteFactory(organization=organization_b)
    with pytest.raises(PermissionDenied):
        _apply(participant_a, organization_a, ProgramFactory(), {foreign_site: Decimal("50")})
    assert not Enrollment.objects.exists()


# --- transitions -----------------------------------------------------------------------------


def test_approval_activates_and_logs_each_step_with_who_and_why(
    manager, participant_a, organization_a
):
    site = SiteFactory(organization=organization_a)
    [enrollment] = _apply(
        participant_a, organization_a, ProgramFactory(commitment_months=12), {site: Decimal("80")}
    )
    services.enrollment_decide(
        enrollment=enrollment, approve=True, by=manager, reason="Meets the rules"
    )
    enrollment.refresh_from_db()
    assert enrollment.status == Enrollment.Status.ACTIVE
    assert enrollment.active_from is not None
    assert enrollment.commitment_ends == enrollment.active_from.replace(
        year=enrollment.active_from.year + 1
    )
    log = list(enrollment.transitions.values_list("from_status", "to_status", "by", "reason"))
    assert log == [
        ("", "applied", participant_a.pk, ""),
        ("applied", "approved", manager.pk, "Meets the rules"),
        ("approved", "active", manager.pk, "Activated on approval"),
    ]


def test_rejection_needs_a_reason(manager):
    enrollment = EnrollmentFactory(status=Enrollment.Status.APPLIED)
    with pytest.raises(ValidationError) as error:
        services.enrollment_decide(enrollment=enrollment, approve=False, by=manager, reason=" ")
    assert "reason" in error.value.message_dict
    services.enrollment_decide(
        enrollment=enrollment, approve=False, by=manager, reason="No audit on file"
    )
    assert EnrollmentTransition.objects.get(enrollment=enrollment).reason == "No audit on file"


def test_an_impossible_transition_is_refused_and_logs_nothing(manager):
    enrollment = EnrollmentFactory(status=Enrollment.Status.WITHDRAWN)
    with pytest.raises(ValidationError, match="cannot become active"):
        services.enrollment_transition(enrollment=enrollment, to_status="active", by=manager)
    assert not EnrollmentTransition.objects.exists()


def test_a_stale_status_is_caught_by_compare_and_set(manager):
    enrollment = EnrollmentFactory(status=Enrollment.Status.APPLIED)
    Enrollment.objects.filter(pk=enrollment.pk).update(status=Enrollment.Status.REJECTED)
    with pytest.raises(ValidationError, match="changed by someone else"):
        services.enrollment_transition(enrollment=enrollment, to_status="under_review", by=manager)


def test_participants_may_withdraw_but_not_approve(organization_a, participant_a):
    enrollment = EnrollmentFactory(site=SiteFactory(organization=organization_a), status="applied")
    with pytest.raises(PermissionDenied):
        services.enrollment_transition(
            enrollment=enrollment, to_status="approved", by=participant_a
        )
    services.enrollment_transition(enrollment=enrollment, to_status="withdrawn", by=participant_a)
    enrollment.refresh_from_db()
    assert enrollment.status == "withdrawn" and enrollment.ended_at is not None


def test_auditors_and_billing_cannot_decide(auditor, billing_clerk):
    enrollment = EnrollmentFactory(status=Enrollment.Status.APPLIED)
    for user in (auditor, billing_clerk):
        with pytest.raises(PermissionDenied):
            services.enrollment_decide(enrollment=enrollment, approve=True, by=user)


# --- nominations ----------------------------------------------------------------------------


def test_nominations_change_only_inside_a_window(participant_a, organization_a):
    enrollment = EnrollmentFactory(site=SiteFactory(organization=organization_a))
    upcoming = NominationWindowFactory(
        program=enrollment.program,
        opens_at=timezone.now() + dt.timedelta(days=10),
        closes_at=timezone.now() + dt.timedelta(days=20),
    )
    with pytest.raises(ValidationError) as error:
        services.nomination_change(
            enrollment=enrollment, committed_kw=Decimal("120"), by=participant_a
        )
    assert "only change inside the program's nomination windows" in _messages(error.value)
    assert "The next window opens on" in _messages(error.value)
    at = upcoming.opens_at + dt.timedelta(hours=1)
    services.nomination_change(
        enrollment=enrollment, committed_kw=Decimal("120"), by=participant_a, at=at
    )
    enrollment.refresh_from_db()
    assert enrollment.committed_kw == Decimal("120")


def test_committed_kw_is_answered_for_any_moment(participant_a, organization_a):
    enrollment = EnrollmentFactory(
        site=SiteFactory(organization=organization_a), committed_kw=Decimal("100")
    )
    first = enrollment.nominations.get().effective_from
    window = NominationWindowFactory(program=enrollment.program)
    change_at = window.opens_at + dt.timedelta(hours=2)
    services.nomination_change(
        enrollment=enrollment, committed_kw=Decimal("150"), by=participant_a, at=change_at
    )
    assert selectors.committed_kw_at(enrollment, first - dt.timedelta(seconds=1)) is None
    assert selectors.committed_kw_at(enrollment, change_at - dt.timedelta(seconds=1)) == Decimal(
        "100"
    )
    assert selectors.committed_kw_at(enrollment, change_at) == Decimal("150")
    annotated = selectors.with_committed_kw_at(
        Enrollment.objects.all(), change_at - dt.timedelta(minutes=1)
    )
    assert annotated.get().committed_kw_then == Decimal("100")
    assert Nomination.objects.filter(enrollment=enrollment).count() == 2


def test_a_nomination_above_the_audited_load_is_refused(participant_a, organization_a):
    site = SiteFactory(organization=organization_a, audited_curtailable_kw=Decimal("200"))
    enrollment = EnrollmentFactory(site=site)
    NominationWindowFactory(program=enrollment.program)
    with pytest.raises(ValidationError) as error:
        services.nomination_change(
            enrollment=enrollment, committed_kw=Decimal("201"), by=participant_a
        )
    assert "above the audited curtailable load" in " ".join(
        error.value.message_dict["committed_kw"]
    )


# --- audits and enablement ------------------------------------------------------------------------


def test_completing_an_audit_fixes_the_sites_curtailable_kw(auditor):
    audit = AuditFactory(auditor=auditor, site=SiteFactory(audited_curtailable_kw=None))
    AuditFindingFactory(audit=audit, curtailable_kw=Decimal("120.5"))
    AuditFindingFactory(audit=audit, end_use="lighting", curtailable_kw=Decimal("30"))
    services.audit_complete(audit=audit, by=auditor)
    audit.site.refresh_from_db()
    assert audit.status == "completed"
    assert audit.curtailable_kw == audit.site.audited_curtailable_kw == Decimal("150.5")
    with pytest.raises(ValidationError, match="Only a scheduled audit"):
        services.audit_complete(audit=audit, by=auditor)


def test_an_audit_without_findings_cannot_be_completed(auditor):
    audit = AuditFactory(auditor=auditor)
    with pytest.raises(ValidationError, match="at least one finding"):
        services.audit_complete(audit=audit, by=auditor)


@pytest.mark.parametrize(
    ("cost", "share", "cap", "incentive"),
    [
        (Decimal("40000.00"), Decimal("0.5"), Decimal("50000"), Decimal("20000.00")),
        (Decimal("140000.00"), Decimal("0.5"), Decimal("50000"), Decimal("50000.00")),  # capped
        (Decimal("333.33"), Decimal("0.5"), Decimal("50000"), Decimal("166.67")),  # 166.665 half up
    ],
)
def test_the_incentive_is_the_cost_share_up_to_the_cap(cost, share, cap, incentive):
    program = ProgramFactory.build(enablement_cost_share=share, enablement_cap=cap)
    assert services.incentive_for(cost=cost, program=program) == incentive


def _completed_audit(manager, site):
    auditor = staff_user("Auditors")
    audit = AuditFactory(auditor=auditor, site=site)
    AuditFindingFactory(audit=audit)
    services.audit_complete(audit=audit, by=auditor)
    return audit


def test_a_project_is_paid_in_the_programs_stages_adding_up_to_the_incentive(manager):
    program = ProgramFactory(enablement_cost_share=Decimal("0.5"), enablement_cap=Decimal("50000"))
    site = SiteFactory()
    EnrollmentFactory(site=site, program=program)  # active
    audit = _completed_audit(manager, site)
    measure = EnablementMeasureFactory(audit=audit, estimated_cost=Decimal("33333.33"))
    project = services.enablement_project_create(
        audit=audit, program=program, measures=[measure], description="Controls", by=manager
    )
    amounts = list(project.installments.values_list("amount", flat=True))
    assert project.incentive == Decimal("16666.67")
    assert amounts == [Decimal("8333.34"), Decimal("8333.33")]  # 16666.665 rounds half up first
    assert sum(amounts) == project.incentive
    for status in ("approved", "installed", "verified"):
        services.enablement_project_advance(
            project=project, to_status=status, by=manager, on=dt.date(2026, 5, 1)
        )
    first, second = project.installments.order_by("sequence")
    assert (first.status, first.due_date) == ("due", dt.date(2026, 5, 1))
    assert second.status == "pending"
    payable = selectors.payable_installments(start=dt.date(2026, 5, 1), end=dt.date(2026, 5, 31))
    assert list(payable) == [first]


def test_the_season_installment_depends_on_the_performance_ratio(manager):
    program = ProgramFactory()
    site = SiteFactory()
    EnrollmentFactory(site=site, program=program)  # active
    audit = _completed_audit(manager, site)
    measure = EnablementMeasureFactory(audit=audit)
    passing = services.enablement_project_create(
        audit=audit, program=program, measures=[measure], description="A", by=manager
    )
    failing = services.enablement_project_create(
        audit=audit, program=program, measures=[measure], description="B", by=manager
    )
    [due] = services.enablement_season_review(
        project=passing, performance_ratio=Decimal("0.85"), season_end=dt.date(2026, 9, 30)
    )
    [forfeited] = services.enablement_season_review(
        project=failing, performance_ratio=Decimal("0.79"), season_end=dt.date(2026, 9, 30)
    )
    assert (due.status, due.due_date) == ("due", dt.date(2026, 9, 30))
    assert forfeited.status == "forfeited"
    assert "0.79 below 0.80" in forfeited.explanation


def test_leaving_before_the_commitment_ends_claws_back_pro_rata(
    manager, participant_a, organization_a
):
    program = ProgramFactory(commitment_months=12)
    site = SiteFactory(organization=organization_a)
    today = timezone.localdate(timezone=program.zone)
    # Active for 3 months: 9 of 12 months unserved, so 9/12 of the $10,000 paid comes back.
    enrollment = EnrollmentFactory(
        site=site, program=program, active_from=services._add_months(today, -3),
        commitment_ends=services._add_months(today, 9),
    )  # fmt: skip
    audit = _completed_audit(manager, site)
    measure = EnablementMeasureFactory(audit=audit, estimated_cost=Decimal("40000"))
    project = services.enablement_project_create(
        audit=audit, program=program, measures=[measure], description="Transfer switch", by=manager
    )
    for status in ("approved", "installed", "verified", "paid"):
        services.enablement_project_advance(project=project, to_status=status, by=manager)
    services.enrollment_transition(enrollment=enrollment, to_status="withdrawn", by=participant_a)
    project.refresh_from_db()
    clawback = project.installments.get(kind=EnablementInstallment.Kind.CLAWBACK)
    assert clawback.amount == Decimal("-7500.00")
    assert clawback.due_date == today and clawback.status == "due"
    assert project.status == EnablementProject.Status.CLAWED_BACK
    assert project.installments.get(sequence=2).status == "cancelled"  # season share never paid
    assert "left after 3 of 12 committed months" in clawback.explanation


def _verified_project(manager, site, program, cost=Decimal("40000")):
    """A project of $20,000 incentive (cost × 50%), two installments of $10,000, verified."""
    audit = _completed_audit(manager, site)
    measure = EnablementMeasureFactory(audit=audit, estimated_cost=cost)
    project = services.enablement_project_create(
        audit=audit, program=program, measures=[measure], description="Controls", by=manager
    )
    for status in ("approved", "installed", "verified"):
        services.enablement_project_advance(
            project=project, to_status=status, by=manager, on=dt.date(2026, 5, 1)
        )
    return project


def test_installments_wait_until_the_enrollment_becomes_active(manager, organization_a):
    program = ProgramFactory(enablement_cost_share=Decimal("0.5"), enablement_cap=Decimal("50000"))
    site = SiteFactory(organization=organization_a)
    enrollment = EnrollmentFactory(
        site=site, program=program, status="approved", active_from=None, commitment_ends=None
    )
    project = _verified_project(manager, site, program)

    first, second = project.installments.order_by("sequence")
    assert (first.amount, first.status, first.due_date) == (Decimal("10000.00"), "pending", None)
    assert (
        selectors.payable_installments(start=dt.date(2026, 1, 1), end=dt.date(2027, 1, 1)).count()
        == 0
    )
    with pytest.raises(ValidationError, match="not active"):
        services.enablement_project_advance(project=project, to_status="paid", by=manager)

    services.enrollment_transition(enrollment=enrollment, to_status="active", by=manager)

    today = timezone.localdate(timezone=program.zone)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.due_date) == ("due", today)
    assert second.status == "pending"  # the season share still waits for its season


def test_a_suspended_enrollments_season_share_falls_due_only_once_it_is_active_again(
    manager, organization_a
):
    program = ProgramFactory(enablement_cost_share=Decimal("0.5"), enablement_cap=Decimal("50000"))
    site = SiteFactory(organization=organization_a)
    enrollment = EnrollmentFactory(site=site, program=program)  # active
    # $40,000 × 50% = $20,000: $10,000 on verification (due 2026-05-01), $10,000 for the season.
    project = _verified_project(manager, site, program)
    services.enrollment_transition(
        enrollment=enrollment, to_status="suspended", by=manager, reason="Missed two events"
    )
    september = {"start": dt.date(2026, 9, 1), "end": dt.date(2026, 9, 30)}

    with pytest.raises(ValidationError, match="not active"):
        services.enablement_season_review(
            project=project, performance_ratio=Decimal("0.85"), season_end=dt.date(2026, 9, 30)
        )

    season_share = project.installments.get(sequence=2)
    assert (season_share.amount, season_share.status) == (Decimal("10000.00"), "pending")
    assert season_share.due_date is None
    assert not selectors.payable_installments(**september).exists()

    services.enrollment_transition(enrollment=enrollment, to_status="active", by=manager)
    season_share.refresh_from_db()
    assert season_share.status == "pending"  # reactivation alone does not settle the season

    [due] = services.enablement_season_review(
        project=project, performance_ratio=Decimal("0.85"), season_end=dt.date(2026, 9, 30)
    )
    assert (due.pk, due.status, due.due_date) == (season_share.pk, "due", dt.date(2026, 9, 30))
    payable = selectors.payable_installments(**september)
    assert [(item.sequence, item.amount) for item in payable] == [(2, Decimal("10000.00"))]


def test_a_season_review_after_a_term_that_ended_with_the_season_still_pays(
    manager, participant_a, organization_a
):
    # The term and the season end on 2026-09-30; the enrollment ends on that day (after its
    # commitment, so nothing is clawed back) and the season is reviewed in October.
    program = ProgramFactory(enablement_cost_share=Decimal("0.5"), enablement_cap=Decimal("50000"))
    site = SiteFactory(organization=organization_a)
    enrollment = EnrollmentFactory(
        site=site, program=program, active_from=dt.date(2025, 10, 1),
        commitment_ends=dt.date(2026, 9, 30),
    )  # fmt: skip
    project = _verified_project(manager, site, program)
    last_day = dt.datetime.combine(dt.date(2026, 9, 30), dt.time(17), program.zone)
    with mock.patch("django.utils.timezone.now", return_value=last_day):
        services.enrollment_transition(
            enrollment=enrollment, to_status="withdrawn", by=participant_a
        )
    assert not project.installments.filter(kind=EnablementInstallment.Kind.CLAWBACK).exists()

    [due] = services.enablement_season_review(
        project=project, performance_ratio=Decimal("0.85"), season_end=dt.date(2026, 9, 30)
    )

    assert (due.amount, due.status, due.due_date) == (
        Decimal("10000.00"), "due", dt.date(2026, 9, 30),
    )  # fmt: skip


def test_a_season_review_of_an_enrollment_that_ended_before_the_season_did_is_refused(
    manager, participant_a, organization_a
):
    # The commitment ended on 2026-08-31 (nothing clawed back), the enrollment on
    # 2026-09-15: it did not serve the season that ends on 2026-09-30.
    program = ProgramFactory(enablement_cost_share=Decimal("0.5"), enablement_cap=Decimal("50000"))
    site = SiteFactory(organization=organization_a)
    enrollment = EnrollmentFactory(
        site=site, program=program, active_from=dt.date(2025, 9, 1),
        commitment_ends=dt.date(2026, 8, 31),
    )  # fmt: skip
    project = _verified_project(manager, site, program)
    left = dt.datetime.combine(dt.date(2026, 9, 15), dt.time(9), program.zone)
    with mock.patch("django.utils.timezone.now", return_value=left):
        services.enrollment_transition(
            enrollment=enrollment, to_status="withdrawn", by=participant_a
        )

    with pytest.raises(ValidationError, match="not active"):
        services.enablement_season_review(
            project=project, performance_ratio=Decimal("0.85"), season_end=dt.date(2026, 9, 30)
        )
    assert project.installments.get(sequence=2).status == "pending"


def test_a_season_review_of_a_site_without_an_active_enrollment_changes_nothing(manager):
    program = ProgramFactory()
    site = SiteFactory()
    EnrollmentFactory(
        site=site, program=program, status="approved", active_from=None, commitment_ends=None
    )
    audit = _completed_audit(manager, site)
    project = services.enablement_project_create(
        audit=audit,
        program=program,
        measures=[EnablementMeasureFactory(audit=audit)],
        description="Controls",
        by=manager,
    )

    for ratio in (Decimal("0.85"), Decimal("0.10")):  # neither due nor forfeited
        with pytest.raises(ValidationError, match="not active"):
            services.enablement_season_review(
                project=project, performance_ratio=ratio, season_end=dt.date(2026, 9, 30)
            )

    assert set(project.installments.values_list("status", flat=True)) == {"pending"}


@pytest.mark.parametrize(
    ("to_status", "by"), [("withdrawn", "participant_a"), ("rejected", "manager")]
)
def test_leaving_before_activation_cancels_unpaid_installments_and_keeps_nothing(
    request, manager, organization_a, to_status, by
):
    program = ProgramFactory(enablement_cost_share=Decimal("0.5"), enablement_cap=Decimal("50000"))
    site = SiteFactory(organization=organization_a)
    enrollment = EnrollmentFactory(
        site=site, program=program, status="applied", active_from=None, commitment_ends=None
    )
    project = _verified_project(manager, site, program)

    services.enrollment_transition(
        enrollment=enrollment, to_status=to_status, by=request.getfixturevalue(by), reason="No"
    )

    project.refresh_from_db()
    assert project.status == EnablementProject.Status.CLAWED_BACK
    assert list(project.installments.values_list("sequence", "status")) == [
        (1, "cancelled"),
        (2, "cancelled"),
    ]
    assert not project.installments.filter(kind="clawback").exists()
    assert (
        selectors.payable_installments(start=dt.date(2026, 1, 1), end=dt.date(2027, 1, 1)).count()
        == 0
    )


def test_leaving_before_activation_claws_back_a_paid_installment_in_full(
    manager, participant_a, organization_a
):
    program = ProgramFactory(enablement_cost_share=Decimal("0.5"), enablement_cap=Decimal("50000"))
    site = SiteFactory(organization=organization_a)
    enrollment = EnrollmentFactory(
        site=site, program=program, status="approved", active_from=None, commitment_ends=None
    )
    project = _verified_project(manager, site, program, cost=Decimal("33333.33"))
    # Paid before this rule existed: $16,666.67 incentive, first installment $8,333.34 paid,
    # the second one due.
    project.installments.filter(sequence=1).update(status="paid", due_date=dt.date(2026, 5, 1))
    project.installments.filter(sequence=2).update(status="due", due_date=dt.date(2026, 5, 1))

    services.enrollment_transition(enrollment=enrollment, to_status="withdrawn", by=participant_a)

    today = timezone.localdate(timezone=program.zone)
    clawback = project.installments.get(kind=EnablementInstallment.Kind.CLAWBACK)
    assert (clawback.amount, clawback.status, clawback.due_date) == (
        Decimal("-8333.34"),
        "due",
        today,
    )
    assert clawback.sequence == 3 and clawback.share == Decimal("1")
    assert "$8,333.34 paid comes back in full" in clawback.explanation
    assert project.installments.get(sequence=2).status == "cancelled"


@pytest.mark.parametrize(
    ("start", "until", "served"),
    [
        (dt.date(2026, 4, 1), dt.date(2026, 4, 30), 0),  # 29 days
        (dt.date(2026, 4, 30), dt.date(2026, 5, 1), 0),  # 1 day across a month boundary
        (dt.date(2026, 4, 30), dt.date(2026, 5, 29), 0),
        (dt.date(2026, 4, 30), dt.date(2026, 5, 30), 1),
        (dt.date(2026, 4, 1), dt.date(2026, 5, 1), 1),
        (dt.date(2026, 1, 31), dt.date(2026, 2, 27), 0),
        (dt.date(2026, 1, 31), dt.date(2026, 2, 28), 1),  # clamped to February's last day
        (dt.date(2026, 1, 31), dt.date(2026, 3, 30), 1),
        (dt.date(2026, 1, 31), dt.date(2026, 3, 31), 2),
        (dt.date(2028, 1, 31), dt.date(2028, 2, 28), 0),  # leap year: February 29
        (dt.date(2028, 1, 31), dt.date(2028, 2, 29), 1),
        (dt.date(2026, 4, 15), dt.date(2029, 4, 14), 35),
        (dt.date(2026, 4, 15), dt.date(2026, 4, 1), 0),
    ],
)
def test_months_are_served_by_elapsed_time_from_the_activation_day(start, until, served):
    assert services.months_served(start=start, until=until) == served


def _paid_project(manager, site, program) -> EnablementProject:
    """Cost $68,250 × 50% = $34,125 incentive, both installments ($17,062.50 each) paid."""
    audit = _completed_audit(manager, site)
    measure = EnablementMeasureFactory(audit=audit, estimated_cost=Decimal("68250"))
    project = services.enablement_project_create(
        audit=audit, program=program, measures=[measure], description="Chiller", by=manager
    )
    project.installments.update(status="paid", due_date=dt.date(2026, 3, 1))
    return project


@pytest.mark.parametrize(
    ("active_from", "left_on", "served", "amount"),
    [
        # 29 days, then 1 day across a month end: no month served, all $34,125 comes back.
        (dt.date(2026, 4, 1), dt.date(2026, 4, 30), 0, Decimal("-34125.00")),
        (dt.date(2026, 4, 30), dt.date(2026, 5, 1), 0, Decimal("-34125.00")),
        # One month: 34,125 × 35 / 36 = 33,177.0833… → 33,177.08.
        (dt.date(2026, 4, 30), dt.date(2026, 5, 30), 1, Decimal("-33177.08")),
        # January 31 → February 28 completes a month (clamped to the month's end).
        (dt.date(2026, 1, 31), dt.date(2026, 2, 28), 1, Decimal("-33177.08")),
        (dt.date(2026, 1, 31), dt.date(2026, 2, 27), 0, Decimal("-34125.00")),
        # Five months: 34,125 × 31 / 36 = 29,385.4166… → 29,385.42.
        (dt.date(2026, 1, 31), dt.date(2026, 6, 30), 5, Decimal("-29385.42")),
    ],
)
def test_the_clawback_counts_whole_months_served_since_activation(
    manager, organization_a, active_from, left_on, served, amount
):
    program = ProgramFactory(
        commitment_months=36,
        enablement_cost_share=Decimal("0.5"),
        enablement_cap=Decimal("50000"),
    )
    site = SiteFactory(organization=organization_a)
    enrollment = EnrollmentFactory(
        site=site,
        program=program,
        active_from=active_from,
        commitment_ends=services._add_months(active_from, 36),
    )
    _paid_project(manager, site, program)

    [clawback] = services.enablement_clawback(enrollment=enrollment, left_on=left_on)

    assert clawback.amount == amount
    assert f"left after {served} of 36 committed months; $34,125.00 × " in clawback.explanation


def test_leaving_after_the_commitment_ends_claws_back_nothing(
    manager, participant_a, organization_a
):
    site = SiteFactory(organization=organization_a)
    enrollment = EnrollmentFactory(
        site=site, active_from=dt.date(2024, 1, 1), commitment_ends=dt.date(2025, 1, 1)
    )
    services.enrollment_transition(enrollment=enrollment, to_status="withdrawn", by=participant_a)
    assert not EnablementInstallment.objects.filter(kind="clawback").exists()


# --- contacts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stored"),
    [("(212) 555-0142", "+12125550142"), ("+44 20 7946 0958", "+442079460958")],
)
def test_phone_numbers_are_stored_in_e164(participant_a, organization_a, raw, stored):
    contact = ContactFactory(organization=organization_a)
    method = services.contact_method_create(
        contact=contact, kind="sms", address=raw, by=participant_a
    )
    assert method.address == stored
    assert method.verified_at is None


def test_an_invalid_phone_number_is_refused_clearly(participant_a, organization_a):
    contact = ContactFactory(organization=organization_a)
    with pytest.raises(ValidationError) as error:
        services.contact_method_create(
            contact=contact, kind="voice", address="555-01", by=participant_a
        )
    assert "is not a valid phone number" in " ".join(error.value.message_dict["address"])


def test_pager_methods_need_their_gateway(participant_a, organization_a):
    contact = ContactFactory(organization=organization_a)
    with pytest.raises(ValidationError):
        services.contact_method_create(
            contact=contact, kind="pager_snpp", address="1234567", by=participant_a
        )
    method = services.contact_method_create(
        contact=contact,
        kind="pager_snpp",
        address="1234567",
        snpp_host="snpp.carrier.example:444",
        by=participant_a,
    )
    assert method.snpp_host == "snpp.carrier.example:444"


def test_a_method_is_verified_with_the_code_sent_through_the_sandbox(participant_a, organization_a):
    contact = ContactFactory(organization=organization_a)
    method = services.contact_method_create(
        contact=contact, kind="email", address="Ops@Example.com", by=participant_a
    )
    services.contact_method_send_verification(method=method, by=participant_a)
    message = OutboxMessage.objects.get(address="ops@example.com")
    assert message.organization == organization_a
    code = message.body.split("code is ")[1][:6]
    assert code not in method.verification_code_hash
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(ValidationError, match="4 attempt"):
        services.contact_method_verify(method=method, code=wrong, by=participant_a)
    services.contact_method_verify(method=method, code=code, by=participant_a)
    method.refresh_from_db()
    assert method.verified_at is not None and method.is_usable


def test_verification_codes_expire_and_resends_are_rate_limited(participant_a, organization_a):
    contact = ContactFactory(organization=organization_a)
    method = services.contact_method_create(
        contact=contact, kind="sms", address="+12125550199", by=participant_a
    )
    services.contact_method_send_verification(method=method, by=participant_a)
    with pytest.raises(ValidationError, match="less than a minute ago"):
        services.contact_method_send_verification(method=method, by=participant_a)
    ContactMethod.objects.filter(pk=method.pk).update(
        verification_sent_at=timezone.now() - dt.timedelta(minutes=31)
    )
    method.refresh_from_db()
    with pytest.raises(ValidationError, match="expired"):
        services.contact_method_verify(method=method, code="123456", by=participant_a)


def test_another_organization_cannot_touch_contacts(participant_b, organization_a):
    contact = ContactFactory(organization=organization_a)
    with pytest.raises(Http404):
        services.contact_method_create(
            contact=contact, kind="sms", address="+12125550100", by=participant_b
        )


def test_the_capacity_summary_adds_committed_kw_of_active_enrollments():
    program = ProgramFactory(name="Summer Peak")
    north = SiteFactory(zone="NORTH")
    EnrollmentFactory(site=north, program=program, committed_kw=Decimal("100"))
    EnrollmentFactory(site=SiteFactory(zone="NORTH"), program=program, committed_kw=Decimal("50.5"))
    EnrollmentFactory(site=SiteFactory(zone="SOUTH"), program=program, committed_kw=Decimal("70"))
    EnrollmentFactory(site=SiteFactory(zone="SOUTH"), program=program, status="withdrawn")
    rows = selectors.capacity_summary("zone")
    assert [(r["group"], r["sites"], r["committed_kw"]) for r in rows] == [
        ("NORTH", 2, Decimal("150.5")),
        ("SOUTH", 1, Decimal("70")),
    ]
    assert Program.objects.count() == 1


def test_wrong_codes_are_counted_in_the_database_and_stop_at_the_limit(
    participant_a, organization_a
):
    contact = ContactFactory(organization=organization_a)
    method = services.contact_method_create(
        contact=contact, kind="sms", address="+12125550177", by=participant_a
    )
    services.contact_method_send_verification(method=method, by=participant_a)
    code = OutboxMessage.objects.get(address="+12125550177").body.split("code is ")[1][:6]
    wrong = "000000" if code != "000000" else "111111"
    # Two copies read before either guess: as with parallel requests, both must count.
    first, second = ContactMethod.objects.get(pk=method.pk), ContactMethod.objects.get(pk=method.pk)
    for copy in (first, second):
        with pytest.raises(ValidationError):
            services.contact_method_verify(method=copy, code=wrong, by=participant_a)
    assert ContactMethod.objects.get(pk=method.pk).verification_attempts == 2
    ContactMethod.objects.filter(pk=method.pk).update(verification_attempts=5)
    with pytest.raises(ValidationError, match="Too many wrong codes"):
        services.contact_method_verify(method=second, code=code, by=participant_a)


def test_codes_go_through_the_installed_sender_and_never_to_disabled_methods(
    participant_a, organization_a
):
    sent = []
    contact = ContactFactory(organization=organization_a)
    method = services.contact_method_create(
        contact=contact, kind="email", address="ops@example.com", by=participant_a
    )
    services.set_verification_sender(lambda m, subject, body: sent.append((m.address, body)))
    try:
        services.contact_method_send_verification(method=method, by=participant_a)
    finally:
        services.set_verification_sender(None)
    assert sent[0][0] == "ops@example.com" and "verification code is" in sent[0][1]
    assert not OutboxMessage.objects.exists()
    ContactMethod.objects.filter(pk=method.pk).update(
        disabled_at=timezone.now(), disabled_reason="STOP received", verification_sent_at=None
    )
    method.refresh_from_db()
    with pytest.raises(ValidationError, match="disabled"):
        services.contact_method_send_verification(method=method, by=participant_a)


def test_a_bad_email_or_gateway_url_names_its_field(participant_a, organization_a):
    contact = ContactFactory(organization=organization_a)
    with pytest.raises(ValidationError) as error:
        services.contact_method_create(
            contact=contact, kind="email", address="nope", by=participant_a
        )
    assert "address" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        services.contact_method_create(
            contact=contact, kind="pager_wctp", address="123", wctp_endpoint="x", by=participant_a
        )
    assert "wctp_endpoint" in error.value.message_dict


def test_a_wctp_pager_may_name_only_a_gateway_the_operator_trusts(
    participant_a, organization_a, settings
):
    settings.WCTP_TRUSTED_GATEWAYS = ["https://wctp.carrier.example/wctp"]
    contact = ContactFactory(organization=organization_a)
    with pytest.raises(ValidationError) as error:
        services.contact_method_create(
            contact=contact,
            kind="pager_wctp",
            address="4242",
            wctp_endpoint="https://collector.example/wctp",
            by=participant_a,
        )
    [message] = error.value.message_dict["wctp_endpoint"]
    assert "https://wctp.carrier.example/wctp" in message

    method = services.contact_method_create(
        contact=contact,
        kind="pager_wctp",
        address="4242",
        wctp_endpoint="https://wctp.carrier.example/wctp",
        by=participant_a,
    )
    assert method.wctp_endpoint == "https://wctp.carrier.example/wctp"


@pytest.mark.parametrize(
    ("kind", "field", "values"),
    [
        ("webhook", "address", {"address": "http://127.0.0.1:8000/hook"}),
        ("webhook", "address", {"address": "http://169.254.169.254/latest/meta-data/"}),
        ("webhook", "address", {"address": "https://10.0.0.5/hook"}),
        ("pager_snpp", "snpp_host", {"address": "1234567", "snpp_host": "127.0.0.1:444"}),
        ("pager_snpp", "snpp_host", {"address": "1234567", "snpp_host": "192.168.1.20:444"}),
    ],
)
def test_private_outbound_addresses_are_refused_when_the_policy_is_on(
    participant_a, organization_a, settings, kind, field, values
):
    settings.DR_ALLOW_PRIVATE_OUTBOUND = False
    contact = ContactFactory(organization=organization_a)
    with pytest.raises(ValidationError) as error:
        services.contact_method_create(contact=contact, kind=kind, by=participant_a, **values)
    assert "not a public internet address" in " ".join(error.value.message_dict[field])
    assert not contact.methods.exists()


def test_private_outbound_addresses_are_allowed_by_the_setting(
    participant_a, organization_a, settings
):
    settings.DR_ALLOW_PRIVATE_OUTBOUND = True
    contact = ContactFactory(organization=organization_a)
    services.contact_method_create(
        contact=contact, kind="webhook", address="http://127.0.0.1:8000/hook", by=participant_a
    )
    services.contact_method_create(
        contact=contact,
        kind="pager_snpp",
        address="1234567",
        snpp_host="127.0.0.1:4444",
        by=participant_a,
    )
    assert contact.methods.count() == 2


@pytest.mark.parametrize("allowed", [False, True])
def test_an_snpp_port_outside_1_to_65535_is_refused(
    participant_a, organization_a, settings, allowed
):
    settings.DR_ALLOW_PRIVATE_OUTBOUND = allowed
    contact = ContactFactory(organization=organization_a)
    with pytest.raises(ValidationError) as error:
        services.contact_method_create(
            contact=contact,
            kind="pager_snpp",
            address="1234567",
            snpp_host="93.184.215.14:99999",
            by=participant_a,
        )
    assert "1-65535" in " ".join(error.value.message_dict["snpp_host"])


def test_a_project_is_proposed_from_the_measures_of_an_enrolled_sites_audit(manager):
    site = SiteFactory()
    program = ProgramFactory(enablement_cost_share=Decimal("0.5"), enablement_cap=Decimal("50000"))
    audit = _completed_audit(manager, site)
    EnablementMeasureFactory(audit=audit, estimated_cost=Decimal("30000"))
    EnablementMeasureFactory(audit=audit, estimated_cost=Decimal("12000"))
    with pytest.raises(ValidationError, match="no open enrollment"):
        services.enablement_project_propose(audit=audit, by=manager)
    EnrollmentFactory(site=site, program=program)
    project = services.enablement_project_propose(audit=audit, by=manager)
    # (30,000 + 12,000) × 50% = 21,000, under the 50,000 cap.
    assert (project.program, project.cost, project.incentive) == (
        program,
        Decimal("42000"),
        Decimal("21000.00"),
    )
    with pytest.raises(ValidationError, match="already in a project"):
        services.enablement_project_propose(audit=audit, by=manager)


def test_the_audit_admin_action_proposes_a_project(client, manager):
    site = SiteFactory()
    audit = _completed_audit(manager, site)
    EnablementMeasureFactory(audit=audit)
    EnrollmentFactory(site=site)
    client.force_login(manager)
    response = client.post(
        "/admin/enrollment/audit/",
        {"action": "propose_enablement_project", "_selected_action": [audit.pk]},
        follow=True,
    )
    assert "1 enablement project(s) proposed" in response.content.decode()
    assert EnablementProject.objects.get().audit == audit
