"""Participant portal pages of the enrollment app: apply, contacts, nominations, withdrawal,
audit reports.

Every page lives under ``/portal/o/<organization_id>/``. The organization and every object
are fetched through the access selectors, so another organization's object answers 404
exactly like a missing one; a member whose role may not act gets 403. Views validate the
form, call one service and render; the rules live in ``enrollment.services``.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from dr_platform.models import Membership, OutboxMessage
from dr_platform.selectors import get_for_member, membership_role, require_role
from enrollment import selectors, services
from enrollment.forms import (
    ContactForm,
    ContactMethodForm,
    EnrollmentApplyForm,
    NominationChangeForm,
    VerificationCodeForm,
    WithdrawForm,
    add_service_errors,
)
from enrollment.models import (
    Contact,
    ContactMethod,
    EnablementProject,
    Enrollment,
    Nomination,
    NominationWindow,
    Organization,
    Program,
)

ADMINS = [Membership.Role.ADMIN]
CONTACT_EDITORS = [Membership.Role.ADMIN, Membership.Role.OPERATOR]
OUTBOX_SHOWN = 10
CODE_LIFETIME_MINUTES = int(services.VERIFICATION_CODE_LIFETIME.total_seconds() // 60)


def _organization(request: HttpRequest, organization_id: int) -> Organization:
    """The organization of the URL; 404 unless the user is one of its members."""
    return get_for_member(Organization.objects.all(), request.user, path="", pk=organization_id)


def _enrollment(request: HttpRequest, organization: Organization, enrollment_id: int) -> Enrollment:
    return get_for_member(
        selectors.enrollments_for_member(request.user),
        request.user,
        "site__organization",
        pk=enrollment_id,
        site__organization=organization,
    )


def _method(request: HttpRequest, organization: Organization, method_id: int) -> ContactMethod:
    return get_for_member(
        selectors.contact_methods_for_member(request.user).select_related("contact__organization"),
        request.user,
        "contact__organization",
        pk=method_id,
        contact__organization=organization,
    )


def _sandbox_outbox(organization: Organization, address: str | None = None) -> list | None:
    """The organization's latest sandbox messages, or None when notifications are live."""
    if settings.NOTIFICATION_MODE != "sandbox":
        return None
    outbox = OutboxMessage.objects.filter(organization=organization)
    if address is not None:
        outbox = outbox.filter(address=address)
    return list(outbox[:OUTBOX_SHOWN])


# --- apply ----------------------------------------------------------------------------------


@login_required
def enrollment_apply_programs(request: HttpRequest, organization_id: int) -> HttpResponse:
    """The programs open for applications, each with a link to its application form."""
    organization = _organization(request, organization_id)
    require_role(request.user, organization, ADMINS)
    return render(
        request,
        "portal/enrollment/apply_programs.html",
        {"organization": organization, "programs": Program.objects.filter(is_open=True)},
    )


@login_required
def enrollment_apply(request: HttpRequest, organization_id: int, program_id: int) -> HttpResponse:
    """Apply to enroll sites in one program: committed kW per site and the terms accepted."""
    organization = _organization(request, organization_id)
    require_role(request.user, organization, ADMINS)
    program = get_object_or_404(Program.objects.filter(is_open=True), pk=program_id)
    sites = selectors.sites_for_member(request.user).filter(organization=organization)
    form = EnrollmentApplyForm(request.POST or None, program=program, sites=sites)
    if request.method == "POST" and form.is_valid():
        try:
            enrollments = services.enrollment_apply(
                user=request.user,
                organization=organization,
                program=program,
                commitments=form.commitments(),
                accepted_terms_version=form.accepted_terms_version(),
                ip_address=request.META.get("REMOTE_ADDR") or None,
                user_agent=request.headers.get("User-Agent", ""),
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            names = ", ".join(enrollment.site.name for enrollment in enrollments)
            messages.success(
                request,
                f"Application sent for {names} in {program.name}. A program manager will "
                "review it; you will see its status here.",
            )
            return redirect("portal:organization", organization_id=organization.pk)
    return render(
        request,
        "portal/enrollment/apply.html",
        {"organization": organization, "program": program, "form": form},
    )


# --- nominations and withdrawal -------------------------------------------------------------


@login_required
def nomination_change(
    request: HttpRequest, organization_id: int, enrollment_id: int
) -> HttpResponse:
    """Change an enrollment's committed kW inside an open nomination window."""
    organization = _organization(request, organization_id)
    require_role(request.user, organization, ADMINS)
    enrollment = _enrollment(request, organization, enrollment_id)
    form = NominationChangeForm(
        request.POST or None, initial={"committed_kw": enrollment.committed_kw}
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.nomination_change(
                enrollment=enrollment,
                committed_kw=form.cleaned_data["committed_kw"],
                by=request.user,
                reason=form.cleaned_data["reason"],
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(
                request,
                f"{enrollment.site.name} now commits {enrollment.committed_kw} kW "
                f"in {enrollment.program.name}.",
            )
            return redirect("portal:organization", organization_id=organization.pk)
    now = timezone.now()
    return render(
        request,
        "portal/enrollment/nomination_change.html",
        {
            "organization": organization,
            "enrollment": enrollment,
            "form": form,
            "nominations": Nomination.objects.filter(enrollment=enrollment)
            .select_related("created_by")
            .order_by("-effective_from", "-pk"),
            "open_window": services.open_nomination_window(enrollment.program, now),
            "firm_kw_now": selectors.firm_service_level_at(enrollment, now),
            "next_window": NominationWindow.objects.filter(
                program=enrollment.program, opens_at__gt=now
            )
            .order_by("opens_at")
            .first(),
        },
    )


@login_required
def enrollment_withdraw(
    request: HttpRequest, organization_id: int, enrollment_id: int
) -> HttpResponse:
    """Confirm and record a withdrawal, explaining the clawback of enablement incentives."""
    organization = _organization(request, organization_id)
    require_role(request.user, organization, ADMINS)
    enrollment = _enrollment(request, organization, enrollment_id)
    form = WithdrawForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.enrollment_transition(
                enrollment=enrollment,
                to_status=Enrollment.Status.WITHDRAWN,
                by=request.user,
                reason=form.cleaned_data["reason"],
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(
                request, f"{enrollment.site.name} was withdrawn from {enrollment.program.name}."
            )
            return redirect("portal:organization", organization_id=organization.pk)
    today = timezone.localdate(timezone=enrollment.program.zone)
    return render(
        request,
        "portal/enrollment/withdraw.html",
        {
            "organization": organization,
            "enrollment": enrollment,
            "form": form,
            "may_withdraw": Enrollment.Status.WITHDRAWN
            in services.ENROLLMENT_TRANSITIONS.get(enrollment.status, ()),
            "leaves_early": bool(
                enrollment.active_from
                and enrollment.commitment_ends
                and today < enrollment.commitment_ends
            ),
            "never_active": enrollment.active_from is None,
            "projects": selectors.projects_for_member(request.user)
            .filter(site=enrollment.site, program=enrollment.program)
            .exclude(status=EnablementProject.Status.CLAWED_BACK),
        },
    )


# --- audit report ---------------------------------------------------------------------------


@login_required
def audit_report(request: HttpRequest, organization_id: int, audit_id: int) -> HttpResponse:
    """A printable audit report: findings, generators, recommended measures and totals."""
    organization = _organization(request, organization_id)
    audit = get_for_member(
        selectors.audits_for_member(request.user),
        request.user,
        "site__organization",
        pk=audit_id,
        site__organization=organization,
    )
    findings = list(audit.findings.all())
    generators = list(audit.generators.all())
    measures = list(audit.measures.select_related("finding"))
    return render(
        request,
        "portal/enrollment/audit_report.html",
        {
            "organization": organization,
            "audit": audit,
            "findings": findings,
            "generators": generators,
            "measures": measures,
            "total_curtailable_kw": sum((f.curtailable_kw for f in findings), Decimal("0")),
            "total_generator_kw": sum((g.kw for g in generators), Decimal("0")),
            "total_measure_cost": sum((m.estimated_cost for m in measures), Decimal("0")),
            "enablement_kw": sum(
                (f.curtailable_kw for f in findings if f.needs_enablement), Decimal("0")
            ),
        },
    )


# --- contacts -------------------------------------------------------------------------------


@login_required
def contacts(request: HttpRequest, organization_id: int) -> HttpResponse:
    """The organization's contacts and their methods, and (sandbox) the latest outbox."""
    organization = _organization(request, organization_id)
    role = membership_role(request.user, organization)
    return render(
        request,
        "portal/enrollment/contacts.html",
        {
            "organization": organization,
            "contacts": selectors.contacts_for_member(request.user)
            .filter(organization=organization)
            .order_by("name"),
            "may_edit": role in CONTACT_EDITORS,
            "is_admin": role in ADMINS,
            "outbox": _sandbox_outbox(organization),
        },
    )


@login_required
def contact_add(request: HttpRequest, organization_id: int) -> HttpResponse:
    """Add a contact, optionally limited to some of the organization's sites."""
    organization = _organization(request, organization_id)
    require_role(request.user, organization, CONTACT_EDITORS)
    sites = selectors.sites_for_member(request.user).filter(organization=organization)
    form = ContactForm(request.POST or None, sites=sites)
    if request.method == "POST" and form.is_valid():
        try:
            contact = services.contact_create(
                organization=organization,
                by=request.user,
                name=form.cleaned_data["name"],
                title=form.cleaned_data["title"],
                sites=form.cleaned_data["sites"],
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"{contact.name} was added; now add a way to reach them.")
            return redirect(
                "portal:contact_method_add", organization_id=organization.pk, contact_id=contact.pk
            )
    return render(
        request, "portal/enrollment/contact_add.html", {"organization": organization, "form": form}
    )


@login_required
def contact_method_add(request: HttpRequest, organization_id: int, contact_id: int) -> HttpResponse:
    """Add an (unverified) contact method to one of the organization's contacts."""
    organization = _organization(request, organization_id)
    role = require_role(request.user, organization, CONTACT_EDITORS)
    contact = get_for_member(
        Contact.objects.all(), request.user, pk=contact_id, organization=organization
    )
    form = ContactMethodForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            method = services.contact_method_create(
                contact=contact,
                kind=data["kind"],
                address=data["address"],
                by=request.user,
                escalation_order=data["escalation_order"],
                wctp_endpoint=data["wctp_endpoint"],
                snpp_host=data["snpp_host"],
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            if method.kind == ContactMethod.Kind.WEBHOOK:
                if role in ADMINS:
                    return _secret_page(request, organization, method, created=True)
                messages.info(
                    request,
                    "Its signing secret is only shown to your organization's administrators: "
                    "ask one to create a new secret from the contacts page and set it up in "
                    "your receiver.",
                )
            messages.success(
                request, f"{method} was added for {contact.name}. Send it a code to verify it."
            )
            return redirect(
                "portal:contact_method_verify", organization_id=organization.pk, method_id=method.pk
            )
    return render(
        request,
        "portal/enrollment/contact_method_add.html",
        {"organization": organization, "contact": contact, "form": form},
    )


@login_required
@require_POST
def contact_method_send_code(
    request: HttpRequest, organization_id: int, method_id: int
) -> HttpResponse:
    """Send a verification code to the method, then show where to enter it."""
    organization = _organization(request, organization_id)
    require_role(request.user, organization, CONTACT_EDITORS)
    method = _method(request, organization, method_id)
    try:
        services.contact_method_send_verification(method=method, by=request.user)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    else:
        messages.success(
            request,
            f"A code was sent to {method}. It is valid for {CODE_LIFETIME_MINUTES} minutes.",
        )
    return redirect(
        "portal:contact_method_verify", organization_id=organization.pk, method_id=method.pk
    )


@login_required
def contact_method_verify(
    request: HttpRequest, organization_id: int, method_id: int
) -> HttpResponse:
    """Enter the code sent to a method; a right code marks the method verified."""
    organization = _organization(request, organization_id)
    require_role(request.user, organization, CONTACT_EDITORS)
    method = _method(request, organization, method_id)
    form = VerificationCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.contact_method_verify(
                method=method, code=form.cleaned_data["code"], by=request.user
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"{method} is verified and will be used for event notices.")
            return redirect("portal:contacts", organization_id=organization.pk)
    return render(
        request,
        "portal/enrollment/contact_method_verify.html",
        {
            "organization": organization,
            "method": method,
            "form": form,
            "outbox": _sandbox_outbox(organization, address=method.address),
            "code_lifetime_minutes": CODE_LIFETIME_MINUTES,
            "max_attempts": services.VERIFICATION_MAX_ATTEMPTS,
        },
    )


@login_required
@require_POST
def contact_method_remove(
    request: HttpRequest, organization_id: int, method_id: int
) -> HttpResponse:
    """Remove a contact method (disable it instead when notifications refer to it)."""
    organization = _organization(request, organization_id)
    require_role(request.user, organization, CONTACT_EDITORS)
    method = _method(request, organization, method_id)
    description, contact_name = str(method), method.contact.name
    services.contact_method_remove(method=method, by=request.user)
    messages.success(request, f"{description} was removed from {contact_name}.")
    return redirect("portal:contacts", organization_id=organization.pk)


def _secret_page(
    request: HttpRequest, organization: Organization, method: ContactMethod, *, created: bool
) -> HttpResponse:
    """The one page that shows a webhook's signing secret, as the answer to the POST that
    made it: never in a URL, a message or the session, and never cached, so going back
    to it later shows nothing. Losing it means rotating it."""
    response = render(
        request,
        "portal/enrollment/webhook_secret.html",
        {"organization": organization, "method": method, "created": created},
    )
    add_never_cache_headers(response)
    return response


@login_required
@require_POST
def contact_method_rotate_secret(
    request: HttpRequest, organization_id: int, method_id: int
) -> HttpResponse:
    """Replace a webhook method's signing secret and show the new one once (admins only)."""
    organization = _organization(request, organization_id)
    require_role(request.user, organization, ADMINS)
    method = _method(request, organization, method_id)
    try:
        services.contact_method_rotate_secret(method=method, by=request.user)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return redirect("portal:contacts", organization_id=organization.pk)
    return _secret_page(request, organization, method, created=False)
