"""Web admin of the enrollment app.

Writes that carry rules (completing an audit, advancing an enablement project, deciding an
application) go through ``enrollment.services`` as admin actions; the admin never sets a
status by hand. Enrollments are read-mostly here: their history is shown, not edited.
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from dr_platform.admin import ReadOnlyInline, admin_report
from dr_platform.models import Membership
from dr_platform.roles import AUDITORS
from enrollment import services
from enrollment.models import (
    Audit,
    AuditFinding,
    BackupGenerator,
    ConsentRecord,
    Contact,
    ContactMethod,
    EnablementInstallment,
    EnablementMeasure,
    EnablementProject,
    Enrollment,
    EnrollmentTransition,
    FirmServiceLevel,
    Meter,
    Nomination,
    NominationWindow,
    Organization,
    Program,
    Site,
)

# --- organizations, sites, contacts --------------------------------------------------------


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class SiteInline(admin.TabularInline):
    model = Site
    extra = 0
    fields = ["name", "service_account_number", "zone", "substation", "feeder", "peak_demand_kw"]
    show_change_link = True


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["legal_name", "tier", "billing_account_number", "account_manager"]
    list_filter = ["tier"]
    search_fields = ["legal_name", "billing_account_number"]
    list_select_related = ["account_manager"]
    inlines = [MembershipInline, SiteInline]


class MeterInline(admin.TabularInline):
    model = Meter
    extra = 0
    fields = ["meter_id", "interval_minutes", "unit", "records_net_energy", "usage_point"]


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "organization",
        "service_account_number",
        "zone",
        "substation",
        "feeder",
        "peak_demand_kw",
        "audited_curtailable_kw",
    ]
    list_filter = ["zone", "substation", "organization__tier"]
    search_fields = ["name", "service_account_number", "organization__legal_name"]
    list_select_related = ["organization"]
    autocomplete_fields = ["organization"]
    # Fixed by completing an audit (services.audit_complete), never typed in.
    readonly_fields = ["audited_curtailable_kw", "created_at"]
    fieldsets = [
        (None, {"fields": ["organization", "name", "service_account_number"]}),
        ("Address", {"fields": ["street", "city", "state", "postal_code"]}),
        ("Grid location", {"fields": ["zone", "substation", "feeder"]}),
        ("Load", {"fields": ["peak_demand_kw", "audited_curtailable_kw", "created_at"]}),
    ]
    inlines = [MeterInline]


class ContactMethodForm(forms.ModelForm):
    wctp_endpoint = forms.URLField(
        required=False, assume_scheme="https", help_text="Carrier WCTP URL (WCTP pagers)."
    )

    class Meta:
        model = ContactMethod
        fields = [
            "kind",
            "address",
            "escalation_order",
            "wctp_endpoint",
            "snpp_host",
            "disabled_reason",
        ]

    def clean(self) -> dict:
        cleaned = super().clean()
        kind, address = cleaned.get("kind"), cleaned.get("address")
        if kind and address:
            # The same canonical form (E.164, lower-case email) the portal stores.
            try:
                cleaned["address"] = services.normalize_contact_address(kind=kind, address=address)
            except ValidationError as error:
                raise ValidationError({"address": error.messages}) from None
        if kind:
            # The same gateway rules as the portal: the platform's WCTP credentials go only
            # to trusted gateways, and SNPP servers must be public hosts.
            services.validate_pager_gateway(
                kind=kind,
                wctp_endpoint=cleaned.get("wctp_endpoint") or "",
                snpp_host=cleaned.get("snpp_host") or "",
            )
        return cleaned


class ContactMethodInline(admin.TabularInline):
    model = ContactMethod
    form = ContactMethodForm
    extra = 0
    fields = [
        "kind",
        "address",
        "escalation_order",
        "wctp_endpoint",
        "snpp_host",
        "verified_at",
        "disabled_at",
        "disabled_reason",
    ]
    # Verification happens only by the code sent to the method itself.
    readonly_fields = ["verified_at", "disabled_at"]


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "title", "is_active"]
    list_filter = ["is_active", "organization__tier"]
    search_fields = ["name", "organization__legal_name"]
    list_select_related = ["organization"]
    autocomplete_fields = ["organization", "sites"]
    inlines = [ContactMethodInline]


# --- programs -------------------------------------------------------------------------------


class NominationWindowInline(admin.TabularInline):
    model = NominationWindow
    extra = 0


@admin.register(Program)
class ProgramAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "season_start",
        "season_end",
        "baseline_preset",
        "weekend_baseline_preset",
        "is_open",
        "active_enrollments",
    ]
    list_filter = ["is_open", "baseline_preset", "weekend_baseline_preset", "exclusive"]
    search_fields = ["name"]
    readonly_fields = ["created_at"]
    fieldsets = [
        (None, {"fields": ["name", "description", "time_zone", "is_open"]}),
        ("Season", {"fields": ["season_start", "season_end"]}),
        (
            "Event rules",
            {
                "fields": [
                    "allowed_weekdays",
                    ("event_window_start", "event_window_end"),
                    ("min_notice_minutes", "emergency_overrides_notice"),
                    ("min_event_minutes", "max_event_minutes"),
                    ("max_events_per_season", "max_hours_per_season"),
                    ("max_events_per_month", "max_hours_per_month"),
                    "max_events_per_site_per_day",
                    ("opt_outs_per_season", "opt_out_cutoff_minutes"),
                    "ack_deadline_minutes",
                ]
            },
        ),
        (
            "Measurement and payment",
            {
                "fields": [
                    ("baseline_preset", "baseline_overrides"),
                    ("weekend_baseline_preset", "weekend_baseline_overrides"),
                    "capacity_rate_per_kw_month",
                    "energy_rate_per_kwh",
                ]
            },
        ),
        (
            "Enablement",
            {"fields": ["enablement_cost_share", "enablement_cap", "enablement_stages"]},
        ),
        (
            "Enrollment rules",
            {"fields": ["audit_required", "min_committed_kw", "commitment_months", "exclusive"]},
        ),
        ("Terms", {"fields": ["terms_version", "terms_text", "created_at"]}),
    ]
    inlines = [NominationWindowInline]

    def get_fieldsets(self, request: HttpRequest, obj: Program | None = None) -> list:
        """The fieldsets above, plus any editable field they do not name yet.

        Other apps add program settings (the events app's notice rules, for one); they show
        up here under "Other settings" until they are given a place above.
        """
        fieldsets = list(super().get_fieldsets(request, obj))
        listed = set(flatten_fieldsets(fieldsets))
        others = [
            field.name
            for field in Program._meta.get_fields()
            if field.concrete
            and field.editable
            and not field.auto_created
            and field.name not in listed
        ]
        if others:
            fieldsets.append(("Other settings", {"fields": others}))
        return fieldsets

    def get_queryset(self, request: HttpRequest) -> QuerySet[Program]:
        return (
            super()
            .get_queryset(request)
            .annotate(active_count=Count("enrollments", filter=Q(enrollments__status="active")))
        )

    @admin.display(description="Active enrollments", ordering="active_count")
    def active_enrollments(self, program: Program) -> int:
        return program.active_count


# --- audits and enablement ----------------------------------------------------------------


class AuditFindingInline(admin.TabularInline):
    model = AuditFinding
    extra = 0


class BackupGeneratorInline(admin.TabularInline):
    model = BackupGenerator
    extra = 0


class EnablementMeasureInline(admin.TabularInline):
    model = EnablementMeasure
    extra = 0

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):  # type: ignore[no-untyped-def]
        if db_field.name == "finding":
            # Only this audit's findings (none yet on the add page).
            audit_id = request.resolver_match.kwargs.get("object_id") if request else None
            kwargs["queryset"] = AuditFinding.objects.filter(audit_id=audit_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Audit)
class AuditAdmin(admin.ModelAdmin):
    list_display = [
        "site",
        "organization",
        "auditor",
        "scheduled_for",
        "status",
        "curtailable_kw",
    ]
    list_filter = ["status", "site__zone", "site__organization__tier"]
    search_fields = ["site__name", "site__service_account_number", "site__organization__legal_name"]
    list_select_related = ["site", "site__organization", "auditor"]
    autocomplete_fields = ["site"]
    date_hierarchy = "scheduled_for"
    # The outcome is fixed by the "Complete audit" action (services.audit_complete).
    readonly_fields = ["status", "completed_at", "curtailable_kw"]
    fields = [
        "site",
        "auditor",
        "scheduled_for",
        "summary",
        "status",
        "completed_at",
        "curtailable_kw",
    ]
    inlines = [AuditFindingInline, BackupGeneratorInline, EnablementMeasureInline]
    actions = ["complete_audit", "propose_enablement_project"]

    @admin.display(description="Organization", ordering="site__organization__legal_name")
    def organization(self, audit: Audit) -> Organization:
        return audit.site.organization

    def get_changeform_initial_data(self, request: HttpRequest) -> dict:
        return {"auditor": request.user.pk, **super().get_changeform_initial_data(request)}

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):  # type: ignore[no-untyped-def]
        if db_field.name == "auditor":
            kwargs["queryset"] = (
                get_user_model()
                .objects.filter(Q(groups__name=AUDITORS) | Q(is_superuser=True), is_staff=True)
                .distinct()
                .order_by("username")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.action(
        description="Complete audit (fix curtailable kW from the findings)", permissions=["change"]
    )
    def complete_audit(self, request: HttpRequest, queryset: QuerySet[Audit]) -> None:
        admin_report(
            self,
            request,
            queryset.select_related("site"),
            lambda audit: services.audit_complete(audit=audit, by=request.user),
            "audit(s) completed; their sites' audited kW is set",
        )

    def has_propose_permission(self, request: HttpRequest) -> bool:
        # The service lets only program managers create projects: a project commits money.
        return request.user.has_perm("enrollment.add_enablementproject")

    @admin.action(
        description="Propose an enablement project from the recommended measures",
        permissions=["propose"],
    )
    def propose_enablement_project(self, request: HttpRequest, queryset: QuerySet[Audit]) -> None:
        admin_report(
            self,
            request,
            queryset.select_related("site"),
            lambda audit: services.enablement_project_propose(audit=audit, by=request.user),
            "enablement project(s) proposed with their staged installments",
        )


class InstallmentInline(ReadOnlyInline):
    model = EnablementInstallment
    fields = ["sequence", "kind", "trigger", "share", "amount", "due_date", "status", "explanation"]
    readonly_fields = fields


def _advance_action(to_status: str) -> Callable:
    label = EnablementProject.Status(to_status).label.lower()

    def action(
        modeladmin: EnablementProjectAdmin, request: HttpRequest, queryset: QuerySet
    ) -> None:
        admin_report(
            modeladmin,
            request,
            queryset.select_related("program", "site"),
            lambda project: services.enablement_project_advance(
                project=project, to_status=to_status, by=request.user
            ),
            f"project(s) marked {label}",
        )

    action.__name__ = f"mark_{to_status}"
    action.short_description = f"Mark {label}"  # type: ignore[attr-defined]
    action.allowed_permissions = ("change",)  # type: ignore[attr-defined]
    return action


@admin.register(EnablementProject)
class EnablementProjectAdmin(admin.ModelAdmin):
    """Shows projects and moves them along their flow.

    Projects are proposed by ``services.enablement_project_create`` (it computes the
    incentive and the staged installments), so the admin does not add them by hand.
    """

    list_display = ["site", "program", "status", "cost", "incentive", "status_changed_at"]
    list_filter = ["status", "program"]
    search_fields = ["site__name", "site__organization__legal_name", "description"]
    list_select_related = ["site", "program"]
    readonly_fields = [
        "site",
        "program",
        "audit",
        "measures",
        "cost",
        "incentive",
        "status",
        "status_changed_at",
        "created_at",
    ]
    fields = ["description", *readonly_fields]
    inlines = [InstallmentInline]
    actions = [_advance_action(status) for status in services.PROJECT_FLOW.values()]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


# --- enrollments -----------------------------------------------------------------------------


class TransitionInline(ReadOnlyInline):
    model = EnrollmentTransition
    fields = ["at", "by", "from_status", "to_status", "reason"]
    readonly_fields = fields


class ConsentInline(ReadOnlyInline):
    model = ConsentRecord
    fields = ["accepted_at", "user", "terms_version", "terms_sha256", "ip_address", "user_agent"]
    readonly_fields = fields


class NominationInline(ReadOnlyInline):
    model = Nomination
    fields = ["effective_from", "committed_kw", "created_by", "created_at", "reason"]
    readonly_fields = fields


class FirmServiceLevelInline(ReadOnlyInline):
    # The history is set on the console's enrollment page
    # (services.enrollment_firm_service_level_set), never here.
    model = FirmServiceLevel
    fields = ["effective_from", "firm_kw", "created_by", "created_at", "reason"]
    readonly_fields = fields


class RejectForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="The participant sees this reason.",
    )


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    """Read-mostly: the record and its history; decisions are the approve/reject actions."""

    list_display = [
        "site",
        "organization",
        "program",
        "status",
        "committed_kw",
        "applied_at",
        "active_from",
        "commitment_ends",
    ]
    list_filter = ["status", "program", "site__organization__tier", "site__zone"]
    search_fields = ["site__name", "site__service_account_number", "site__organization__legal_name"]
    list_select_related = ["site", "site__organization", "program"]
    date_hierarchy = "applied_at"
    fields = [
        "site",
        "program",
        "status",
        "committed_kw",
        "applied_by",
        "applied_at",
        "active_from",
        "commitment_ends",
        "ended_at",
    ]
    readonly_fields = fields
    inlines = [TransitionInline, NominationInline, FirmServiceLevelInline, ConsentInline]
    actions = ["approve", "reject"]

    @admin.display(description="Organization", ordering="site__organization__legal_name")
    def organization(self, enrollment: Enrollment) -> Organization:
        return enrollment.site.organization

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # participants apply in the portal (services.enrollment_apply)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # the record and its history are kept

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # The change page is a view-only page; "change" on the list unlocks the decisions.
        return obj is None and super().has_change_permission(request)

    def _decide(
        self, request: HttpRequest, queryset: QuerySet, *, approve: bool, reason: str
    ) -> None:
        admin_report(
            self,
            request,
            queryset.select_related("program", "site", "site__organization"),
            lambda enrollment: services.enrollment_decide(
                enrollment=enrollment, approve=approve, by=request.user, reason=reason
            ),
            "enrollment(s) approved and activated" if approve else "enrollment(s) rejected",
        )

    @admin.action(description="Approve and activate selected applications", permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet[Enrollment]) -> None:
        self._decide(request, queryset, approve=True, reason="")

    @admin.action(description="Reject selected applications…", permissions=["change"])
    def reject(self, request: HttpRequest, queryset: QuerySet[Enrollment]) -> HttpResponse | None:
        """Ask for the reason on an intermediate page, then reject with it."""
        form = RejectForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            self._decide(request, queryset, approve=False, reason=form.cleaned_data["reason"])
            return None
        return TemplateResponse(
            request,
            "console/enrollment/admin_reject.html",
            {
                **self.admin_site.each_context(request),
                "title": "Reject applications",
                "opts": self.model._meta,
                "enrollments": queryset.select_related("site", "site__organization", "program"),
                "form": form,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            },
        )
