"""The enrollment admin: changelists in bounded queries, program validation, service actions."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from enrollment import services
from enrollment.models import (
    ContactMethod,
    EnablementInstallment,
    EnablementProject,
    Enrollment,
    EnrollmentTransition,
    Program,
)
from tests.enrollment.factories import (
    AuditFactory,
    AuditFindingFactory,
    ContactFactory,
    EnablementMeasureFactory,
    EnrollmentFactory,
    ProgramFactory,
    SiteFactory,
)
from tests.factories import OrganizationFactory, UserFactory, staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_for(client):
    def login(user):
        client.force_login(user)
        return client

    return login


# --- changelists ----------------------------------------------------------------------------


def _twenty_of_everything(auditor) -> None:
    applicant = UserFactory()
    programs = [ProgramFactory() for _ in range(20)]
    for number in range(20):
        organization = OrganizationFactory(tier="ABC"[number % 3])
        site = SiteFactory(organization=organization, zone=f"Z{number % 4}")
        EnrollmentFactory(site=site, program=programs[number], applied_by=applicant)
        AuditFactory(site=site, auditor=auditor)
        ContactFactory(organization=organization)


@pytest.mark.parametrize(
    "model", ["program", "site", "enrollment", "audit", "organization", "contact"]
)
def test_changelists_open_for_a_manager_within_bounded_queries(
    admin_client_for, manager, auditor, model, django_assert_max_num_queries
):
    _twenty_of_everything(auditor)
    client = admin_client_for(manager)
    with django_assert_max_num_queries(15):
        response = client.get(reverse(f"admin:enrollment_{model}_changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count == 20


def test_the_enablement_project_changelist_stays_bounded(
    admin_client_for, manager, django_assert_max_num_queries
):
    for _ in range(20):
        _project(manager)
    client = admin_client_for(manager)
    with django_assert_max_num_queries(15):
        response = client.get(reverse("admin:enrollment_enablementproject_changelist"))
    assert response.context["cl"].result_count == 20


# --- programs -------------------------------------------------------------------------------


def _program_form(**overrides: str) -> dict[str, str]:
    data = {
        "name": "Winter Peak 2026",
        "description": "",
        "time_zone": "America/New_York",
        "is_open": "on",
        "season_start": "2026-12-01",
        "season_end": "2027-02-28",
        "allowed_weekdays": "[0, 1, 2, 3, 4]",
        "event_window_start": "07:00",
        "event_window_end": "10:00",
        "min_notice_minutes": "120",
        "min_event_minutes": "60",
        "max_event_minutes": "180",
        "max_events_per_site_per_day": "1",
        "opt_outs_per_season": "2",
        "opt_out_cutoff_minutes": "60",
        "ack_deadline_minutes": "30",
        "baseline_preset": "pjm_high_4_of_5",
        "baseline_overrides": "{}",
        "capacity_rate_per_kw_month": "6.50",
        "energy_rate_per_kwh": "0.25",
        "enablement_cost_share": "0.5",
        "enablement_cap": "25000",
        "enablement_stages": json.dumps([{"trigger": "verified", "share": "1"}]),
        "audit_required": "on",
        "min_committed_kw": "10",
        "commitment_months": "12",
        "exclusive": "on",
        "terms_version": "2026.2",
        "terms_text": "The participant curtails load when called.",
        "nomination_windows-TOTAL_FORMS": "0",
        "nomination_windows-INITIAL_FORMS": "0",
        "nomination_windows-MIN_NUM_FORMS": "0",
        "nomination_windows-MAX_NUM_FORMS": "1000",
    }
    # Fields other apps add to programs keep their model defaults.
    for field in Program._meta.get_fields():
        if getattr(field, "editable", False) and field.concrete and field.name not in data:
            default = field.get_default()
            if isinstance(default, bool):
                if default:
                    data[field.name] = "on"
            elif isinstance(default, dt.time):
                data[field.name] = default.strftime("%H:%M")
            elif default not in (None, ""):
                data[field.name] = str(default)
    data.update(overrides)
    return data


def test_a_manager_adds_a_program_with_a_nomination_window(admin_client_for, manager):
    data = _program_form(
        **{
            "nomination_windows-TOTAL_FORMS": "1",
            "nomination_windows-0-opens_at_0": "2026-11-01",
            "nomination_windows-0-opens_at_1": "08:00",
            "nomination_windows-0-closes_at_0": "2026-11-15",
            "nomination_windows-0-closes_at_1": "17:00",
        }
    )
    response = admin_client_for(manager).post(reverse("admin:enrollment_program_add"), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    program = Program.objects.get(name="Winter Peak 2026")
    assert program.nomination_windows.count() == 1
    assert program.enablement_cost_share == Decimal("0.5")


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"season_start": "2027-03-01", "season_end": "2026-12-01"},
            "season_end",
            "The season ends before it starts.",
        ),
        (
            {"event_window_start": "09:00", "event_window_end": "09:00"},
            "event_window_end",
            "The event window has zero or negative length",
        ),
        (
            {"enablement_cost_share": "1.5"},
            "enablement_cost_share",
            "The cost share must be between 0% and 100% (0 to 1).",
        ),
    ],
)
def test_the_program_add_form_shows_the_models_validation_errors(
    admin_client_for, manager, overrides, field, message
):
    response = admin_client_for(manager).post(
        reverse("admin:enrollment_program_add"), _program_form(**overrides)
    )

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert message in " ".join(form.errors[field])
    assert message in response.content.decode()
    assert not Program.objects.exists()


def test_a_nomination_window_that_closes_before_it_opens_is_refused(admin_client_for, manager):
    data = _program_form(
        **{
            "nomination_windows-TOTAL_FORMS": "1",
            "nomination_windows-0-opens_at_0": "2026-11-15",
            "nomination_windows-0-opens_at_1": "08:00",
            "nomination_windows-0-closes_at_0": "2026-11-01",
            "nomination_windows-0-closes_at_1": "08:00",
        }
    )
    response = admin_client_for(manager).post(reverse("admin:enrollment_program_add"), data)
    assert response.status_code == 200
    assert "The window closes before it opens." in response.content.decode()
    assert not Program.objects.exists()


def test_auditors_edit_audits_but_only_view_programs(admin_client_for, auditor):
    program = ProgramFactory()
    audit = AuditFactory(auditor=auditor)
    client = admin_client_for(auditor)

    assert client.get(reverse("admin:enrollment_program_add")).status_code == 403
    program_page = client.get(reverse("admin:enrollment_program_change", args=[program.pk]))
    assert program_page.status_code == 200
    assert program_page.context["has_change_permission"] is False
    refused = client.post(
        reverse("admin:enrollment_program_change", args=[program.pk]), _program_form()
    )
    assert refused.status_code == 403
    audit_page = client.get(reverse("admin:enrollment_audit_change", args=[audit.pk]))
    assert audit_page.context["has_change_permission"] is True


# --- audits ---------------------------------------------------------------------------------


def _run_action(client, model: str, action: str, objects, **extra: str):
    return client.post(
        reverse(f"admin:enrollment_{model}_changelist"),
        {"action": action, ACTION_CHECKBOX_NAME: [obj.pk for obj in objects], **extra},
        follow=True,
    )


def test_completing_an_audit_sets_the_sites_audited_kw(admin_client_for, auditor):
    site = SiteFactory(audited_curtailable_kw=None)
    audit = AuditFactory(site=site, auditor=auditor)
    AuditFindingFactory(audit=audit, curtailable_kw=Decimal("120.5"))
    AuditFindingFactory(audit=audit, curtailable_kw=Decimal("30"))

    response = _run_action(admin_client_for(auditor), "audit", "complete_audit", [audit])

    assert "1 audit(s) completed" in response.content.decode()
    audit.refresh_from_db()
    site.refresh_from_db()
    assert audit.status == "completed"
    assert audit.curtailable_kw == site.audited_curtailable_kw == Decimal("150.5")


def test_completing_an_audit_without_findings_says_why(admin_client_for, auditor):
    audit = AuditFactory(auditor=auditor, site=SiteFactory(audited_curtailable_kw=None))

    response = _run_action(admin_client_for(auditor), "audit", "complete_audit", [audit])

    assert "Record at least one finding before completing the audit." in response.content.decode()
    audit.refresh_from_db()
    assert audit.status == "scheduled"


def test_billing_clerks_are_not_offered_the_complete_action(admin_client_for, billing_clerk):
    audit = AuditFactory()
    AuditFindingFactory(audit=audit)
    client = admin_client_for(billing_clerk)
    page = client.get(reverse("admin:enrollment_audit_changelist"))
    assert "complete_audit" not in page.content.decode()
    _run_action(client, "audit", "complete_audit", [audit])
    audit.refresh_from_db()
    assert audit.status == "scheduled"


# --- enablement projects --------------------------------------------------------------------


def _project(manager) -> EnablementProject:
    audit = AuditFactory()
    AuditFindingFactory(audit=audit)
    services.audit_complete(audit=audit, by=staff_user("Auditors"))
    measure = EnablementMeasureFactory(audit=audit, estimated_cost=Decimal("40000"))
    program = ProgramFactory()
    EnrollmentFactory(site=audit.site, program=program)  # active: installments fall due
    return services.enablement_project_create(
        audit=audit,
        program=program,
        measures=[measure],
        description="Remote HVAC control",
        by=manager,
    )


def test_the_project_actions_advance_through_the_service(admin_client_for, manager):
    project = _project(manager)
    client = admin_client_for(manager)

    _run_action(client, "enablementproject", "mark_approved", [project])
    _run_action(client, "enablementproject", "mark_installed", [project])
    response = _run_action(client, "enablementproject", "mark_verified", [project])

    assert "1 project(s) marked verified" in response.content.decode()
    project.refresh_from_db()
    assert project.status == "verified"
    first = project.installments.get(sequence=1)
    assert first.status == EnablementInstallment.Status.DUE


def test_a_project_cannot_skip_a_step(admin_client_for, manager):
    project = _project(manager)

    response = _run_action(admin_client_for(manager), "enablementproject", "mark_paid", [project])

    assert "A proposed project cannot become paid." in response.content.decode()
    project.refresh_from_db()
    assert project.status == "proposed"


def test_the_project_page_shows_installments_read_only(admin_client_for, manager):
    project = _project(manager)
    client = admin_client_for(manager)
    page = client.get(reverse("admin:enrollment_enablementproject_change", args=[project.pk]))
    assert page.status_code == 200
    assert "installments-0-amount" not in page.content.decode()
    assert "$20,000.00 incentive" in page.content.decode()
    assert client.get(reverse("admin:enrollment_enablementproject_add")).status_code == 403


# --- enrollments ----------------------------------------------------------------------------


def _application() -> Enrollment:
    return EnrollmentFactory(status="applied", active_from=None, commitment_ends=None)


def test_the_approve_action_activates_through_the_service(admin_client_for, manager):
    enrollment = _application()

    response = _run_action(admin_client_for(manager), "enrollment", "approve", [enrollment])

    assert "1 enrollment(s) approved and activated" in response.content.decode()
    enrollment.refresh_from_db()
    assert enrollment.status == "active"
    assert list(
        EnrollmentTransition.objects.filter(enrollment=enrollment).values_list(
            "to_status", flat=True
        )
    ) == ["approved", "active"]


def test_the_reject_action_asks_for_a_reason_first(admin_client_for, manager):
    enrollment = _application()
    client = admin_client_for(manager)

    confirmation = _run_action(client, "enrollment", "reject", [enrollment])

    assert "The participant sees the reason you give." in confirmation.content.decode()
    enrollment.refresh_from_db()
    assert enrollment.status == "applied"

    done = _run_action(
        client, "enrollment", "reject", [enrollment], apply="1", reason="No interval meter."
    )

    assert "1 enrollment(s) rejected" in done.content.decode()
    enrollment.refresh_from_db()
    assert enrollment.status == "rejected"
    transition = EnrollmentTransition.objects.get(enrollment=enrollment)
    assert transition.reason == "No interval meter."


def test_an_approve_the_service_refuses_is_reported(admin_client_for, manager):
    enrollment = EnrollmentFactory(status="active")
    response = _run_action(admin_client_for(manager), "enrollment", "approve", [enrollment])
    assert "An enrollment that is active cannot become approved." in response.content.decode()


def test_the_enrollment_page_is_view_only_with_its_history(admin_client_for, manager):
    enrollment = _application()
    services.enrollment_decide(enrollment=enrollment, approve=True, by=manager)
    client = admin_client_for(manager)

    page = client.get(reverse("admin:enrollment_enrollment_change", args=[enrollment.pk]))

    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert "Activated on approval" in page.content.decode()
    assert client.get(reverse("admin:enrollment_enrollment_add")).status_code == 403


def test_auditors_are_not_offered_enrollment_decisions(admin_client_for, auditor):
    enrollment = _application()
    client = admin_client_for(auditor)
    page = client.get(reverse("admin:enrollment_enrollment_changelist"))
    assert page.status_code == 200
    assert 'value="approve"' not in page.content.decode()
    _run_action(client, "enrollment", "approve", [enrollment])
    enrollment.refresh_from_db()
    assert enrollment.status == "applied"


# --- contacts -------------------------------------------------------------------------------


def test_contact_methods_added_in_the_admin_are_stored_in_canonical_form(admin_client_for, manager):
    contact = ContactFactory()
    data = {
        "organization": contact.organization.pk,
        "name": contact.name,
        "title": "",
        "is_active": "on",
        "methods-TOTAL_FORMS": "1",
        "methods-INITIAL_FORMS": "0",
        "methods-MIN_NUM_FORMS": "0",
        "methods-MAX_NUM_FORMS": "1000",
        "methods-0-kind": "sms",
        "methods-0-address": "(212) 555-0142",
        "methods-0-escalation_order": "1",
    }
    response = admin_client_for(manager).post(
        reverse("admin:enrollment_contact_change", args=[contact.pk]), data
    )
    assert response.status_code == 302
    method = ContactMethod.objects.get(contact=contact)
    assert method.address == "+12125550142"
    assert method.verified_at is None  # it waits for the code sent to it


def test_the_admin_refuses_a_wctp_gateway_the_platform_does_not_trust(
    admin_client_for, manager, settings
):
    settings.WCTP_TRUSTED_GATEWAYS = ["https://wctp.carrier.example/wctp"]
    contact = ContactFactory()
    data = {
        "organization": contact.organization.pk,
        "name": contact.name,
        "title": "",
        "is_active": "on",
        "methods-TOTAL_FORMS": "1",
        "methods-INITIAL_FORMS": "0",
        "methods-MIN_NUM_FORMS": "0",
        "methods-MAX_NUM_FORMS": "1000",
        "methods-0-kind": "pager_wctp",
        "methods-0-address": "4242",
        "methods-0-escalation_order": "1",
        "methods-0-wctp_endpoint": "https://collector.example/wctp",
    }
    response = admin_client_for(manager).post(
        reverse("admin:enrollment_contact_change", args=[contact.pk]), data
    )
    assert response.status_code == 200
    assert "is not a paging gateway this platform sends through" in response.content.decode()
    assert not ContactMethod.objects.filter(contact=contact).exists()
