"""Admin for meter data and settlements.

Meter data: imports (read-only records of what happened) and revisions. Readings
themselves are not in the admin: there are millions, they change only through imports
(which keep revisions), and their composite primary key is not supported by the admin.
Imports are created by the console upload, the API or ``import_readings``.

Settlements: program managers add payment rule versions here (through
``payment_rules_add``, validated by ``PaymentRules`` itself); a stored version is never
edited, since runs were settled on it: a change is a new version from a later date. Runs,
lines, disputes and billing exports are records, read here and worked on in the console
(calculate, approve, export, decide), so the admin never adds, changes or deletes them.
"""

from __future__ import annotations

import dataclasses
import re

from django import forms
from django.contrib import admin
from django.core.exceptions import NON_FIELD_ERRORS
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from dr_platform.admin import ReadOnlyAdmin
from settlements.models import (
    BillingExport,
    Dispute,
    DisputeEntry,
    ImportProblem,
    MeterDataImport,
    PaymentRuleVersion,
    ReadingRevision,
    SettlementLine,
    SettlementRun,
)
from settlements.payments import PaymentRules
from settlements.payments.rules import (
    CAPACITY_UNITS,
    FACTOR_METHODS,
    INTERPOLATIONS,
    NEGATIVE_REDUCTIONS,
    OPTED_OUT_EVENTS,
    TEST_EVENTS,
)
from settlements.runs import is_settlement_staff, payment_rules_add


class ImportProblemInline(admin.TabularInline):
    model = ImportProblem
    fields = ["line", "severity", "code", "message", "meter_ref", "interval_start"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).order_by("line", "pk")


@admin.register(MeterDataImport)
class MeterDataImportAdmin(admin.ModelAdmin):
    list_display = [
        "pk",
        "file_name",
        "format",
        "status",
        "rows_accepted",
        "rows_replaced",
        "rows_rejected",
        "flagged_count",
        "gap_count",
        "created_by",
        "created_at",
    ]
    list_filter = ["status", "format", "correction", "valid_rows_only"]
    list_select_related = ["created_by", "meter"]
    search_fields = ["file_name", "sha256"]
    date_hierarchy = "created_at"
    inlines = [ImportProblemInline]

    def get_readonly_fields(self, request: HttpRequest, obj: MeterDataImport | None = None):
        return [field.name for field in MeterDataImport._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ReadingRevision)
class ReadingRevisionAdmin(admin.ModelAdmin):
    list_display = ["meter", "interval_start", "old_kwh", "new_kwh", "data_import", "revised_at"]
    list_select_related = ["meter", "data_import"]
    search_fields = ["meter__meter_id"]
    date_hierarchy = "revised_at"

    def get_readonly_fields(self, request: HttpRequest, obj: ReadingRevision | None = None):
        return [field.name for field in ReadingRevision._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


# --- payment rules --------------------------------------------------------------------------

_DEFAULTS = {
    field.name: field.default
    for field in dataclasses.fields(PaymentRules)
    if field.default is not dataclasses.MISSING
}


def _amount(label: str, help_text: str) -> forms.DecimalField:
    return forms.DecimalField(label=label, help_text=help_text, required=False, max_digits=18)


def _choice(name: str, label: str, values: tuple[str, ...], help_text: str) -> forms.ChoiceField:
    return forms.ChoiceField(
        label=label,
        choices=[(value, value) for value in values],
        initial=_DEFAULTS[name],
        help_text=help_text,
    )


class PaymentRuleVersionForm(forms.ModelForm):
    """One field per ``PaymentRules`` setting. The form only converts what was typed; every
    rule (signs, methods and what they need, floors below caps) is checked by building the
    ``PaymentRules`` itself, and its message is shown on the field it names."""

    version = forms.CharField(
        label="Version label",
        required=False,
        max_length=60,
        help_text="A free label, recorded with the rules of each run that uses them, e.g. 2026-v2.",
    )
    capacity_rate = _amount("Capacity rate ($ per kW per unit)", "Empty: no capacity payment.")
    capacity_unit = _choice(
        "capacity_unit", "Capacity unit", CAPACITY_UNITS, "Per kW per month or per season."
    )
    factor_method = _choice(
        "factor_method",
        "Performance factor",
        FACTOR_METHODS,
        "linear: the performance ratio, between 0 and 1; piecewise: the breakpoints below; "
        "threshold: a month's capacity is void after an event below the threshold ratio.",
    )
    breakpoints = forms.CharField(
        label="Breakpoints (piecewise)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 24}),
        help_text="One “ratio, factor” pair a line, ratios increasing, e.g. 0.5, 0 then 1, 1. "
        "A negative factor is a penalty.",
    )
    interpolation = _choice(
        "interpolation",
        "Interpolation (piecewise)",
        INTERPOLATIONS,
        "linear between breakpoints, or step: the last breakpoint at or below the ratio.",
    )
    threshold_ratio = _amount("Threshold ratio (threshold)", "e.g. 0.5 for half the commitment.")
    capacity_factor_floor = _amount("Factor floor", "Lowest factor after the method.")
    capacity_factor_cap = _amount("Factor cap", "Highest factor after the method.")
    energy_rate = _amount("Energy rate ($ per kWh reduced)", "Empty: no energy payment.")
    energy_floor_per_event = _amount("Energy floor per event ($)", "")
    energy_cap_per_event = _amount("Energy cap per event ($)", "")
    season_rate = _amount(
        "Season rate ($ per kW-season)",
        "Pay-for-performance on the season's average event kW. Empty: none.",
    )
    season_floor = _amount("Season floor ($)", "")
    season_cap = _amount("Season cap ($)", "")
    excess_energy_rate = _amount(
        "Excess energy rate ($ per kWh)",
        "Charged for kWh above the firm service level during events. Empty: none.",
    )
    excess_charge_cap_per_event = _amount("Excess charge cap per event ($)", "")
    negative_reductions = _choice(
        "negative_reductions",
        "Negative reductions",
        NEGATIVE_REDUCTIONS,
        "net: intervals above baseline offset the others; floor_interval / floor_event: "
        "each interval's / event's reduction is floored at 0.",
    )
    opted_out_events = _choice(
        "opted_out_events",
        "Opted-out events",
        OPTED_OUT_EVENTS,
        "Left out, counted with zero performance, or counted as measured.",
    )
    test_events = _choice(
        "test_events", "Test events", TEST_EVENTS, "Settled like any other event, or left out."
    )

    RULE_FIELDS = (
        "version",
        "capacity_rate",
        "capacity_unit",
        "factor_method",
        "breakpoints",
        "interpolation",
        "threshold_ratio",
        "capacity_factor_floor",
        "capacity_factor_cap",
        "energy_rate",
        "energy_floor_per_event",
        "energy_cap_per_event",
        "season_rate",
        "season_floor",
        "season_cap",
        "excess_energy_rate",
        "excess_charge_cap_per_event",
        "negative_reductions",
        "opted_out_events",
        "test_events",
    )

    class Meta:
        model = PaymentRuleVersion
        fields = ["program", "effective_from"]
        help_texts = {
            "effective_from": "The version in effect on a settlement period's first day is "
            "the latest one starting on or before it."
        }
        error_messages = {
            NON_FIELD_ERRORS: {
                "unique_together": "This program already has payment rules taking effect "
                "on that day; add a version with another date."
            }
        }

    rules: PaymentRules | None = None

    def clean_breakpoints(self) -> tuple[tuple[str, str], ...]:
        pairs = []
        for number, line in enumerate(self.cleaned_data["breakpoints"].splitlines(), start=1):
            parts = [part for part in re.split(r"[,;\s]+", line.strip()) if part]
            if not parts:
                continue
            if len(parts) != 2:
                raise forms.ValidationError(
                    f"Line {number} should be one “ratio, factor” pair, e.g. 0.5, 0."
                )
            pairs.append((parts[0], parts[1]))
        return tuple(pairs)

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.errors:
            return cleaned  # the fields' own errors first; the rules need every value
        values = {name: cleaned.get(name) for name in self.RULE_FIELDS}
        try:
            self.rules = PaymentRules(effective_from=cleaned["effective_from"], **values)
        except (ValueError, TypeError) as error:
            message = str(error)
            self.add_error(self._field_named_in(message), self._in_labels(message))
        return cleaned

    def _named(self, message: str) -> list[tuple[int, int, str]]:
        """(start, end, field name) of each rule setting the message names, in order."""
        return sorted(
            (match.start(), match.end(), name)
            for name in self.RULE_FIELDS
            for match in re.finditer(rf"\b{name}\b", message)
        )

    def _field_named_in(self, message: str) -> str | None:
        """The form field the rules' message names first (None: a form-wide error)."""
        named = self._named(message)
        if not named and "breakpoint" in message:
            return "breakpoints"
        return named[0][2] if named else None

    def _in_labels(self, message: str) -> str:
        """The rules' message with each setting's name replaced by its label on the form."""
        for start, end, name in reversed(self._named(message)):
            message = f"{message[:start]}“{self.fields[name].label}”{message[end:]}"
        return message


@admin.register(PaymentRuleVersion)
class PaymentRuleVersionAdmin(admin.ModelAdmin):
    """Program managers add a version; everyone with the view permission reads them."""

    form = PaymentRuleVersionForm
    list_display = ["program", "effective_from", "label", "rates", "created_by", "created_at"]
    list_filter = ["program"]
    list_select_related = ["program", "created_by"]
    date_hierarchy = "effective_from"
    ordering = ["program__name", "-effective_from"]
    ADD_FIELDSETS = [
        (None, {"fields": ["program", "effective_from", "version"]}),
        (
            "Capacity payment",
            {
                "fields": [
                    "capacity_rate",
                    "capacity_unit",
                    "factor_method",
                    "breakpoints",
                    "interpolation",
                    "threshold_ratio",
                    "capacity_factor_floor",
                    "capacity_factor_cap",
                ]
            },
        ),
        (
            "Energy payment",
            {"fields": ["energy_rate", "energy_floor_per_event", "energy_cap_per_event"]},
        ),
        ("Season pay-for-performance", {"fields": ["season_rate", "season_floor", "season_cap"]}),
        ("Excess energy charge", {"fields": ["excess_energy_rate", "excess_charge_cap_per_event"]}),
        (
            "Event treatments",
            {"fields": ["negative_reductions", "opted_out_events", "test_events"]},
        ),
    ]
    VIEW_FIELDSETS = [
        (None, {"fields": ["program", "effective_from", "created_by", "created_at"]}),
        ("Rules", {"fields": ["rules_table"]}),
    ]

    def get_fieldsets(self, request: HttpRequest, obj: PaymentRuleVersion | None = None):
        return self.VIEW_FIELDSETS if obj is not None else self.ADD_FIELDSETS

    def get_readonly_fields(self, request: HttpRequest, obj: PaymentRuleVersion | None = None):
        if obj is None:
            return []
        return ["program", "effective_from", "created_by", "created_at", "rules_table"]

    def get_form(self, request: HttpRequest, obj: PaymentRuleVersion | None = None, **kwargs):
        if obj is not None:
            kwargs["form"] = forms.ModelForm  # a stored version is only shown
        return super().get_form(request, obj, **kwargs)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # payment_rules_add refuses anyone outside Billing and Program managers.
        return super().has_add_permission(request) and is_settlement_staff(request.user)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def save_form(self, request: HttpRequest, form: PaymentRuleVersionForm, change: bool):
        """Store the version through ``payment_rules_add`` (the one write path) and hand the
        admin the stored row for its log entry and redirect."""
        return payment_rules_add(
            program=form.cleaned_data["program"], rules=form.rules, by=request.user
        )

    def save_model(self, request: HttpRequest, obj, form, change: bool) -> None:
        """Nothing left to do: ``save_form`` stored it."""

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        """A rule version has no related objects to save."""

    @admin.display(description="Label")
    def label(self, version: PaymentRuleVersion) -> str:
        return version.rules.get("version") or "—"

    @admin.display(description="Rates")
    def rates(self, version: PaymentRuleVersion) -> str:
        rules = version.rules
        parts = []
        if rules.get("capacity_rate") is not None:
            parts.append(f"capacity ${rules['capacity_rate']}/{rules.get('capacity_unit')}")
        if rules.get("energy_rate") is not None:
            parts.append(f"energy ${rules['energy_rate']}/kWh")
        if rules.get("season_rate") is not None:
            parts.append(f"season ${rules['season_rate']}/kW-season")
        if rules.get("excess_energy_rate") is not None:
            parts.append(f"excess ${rules['excess_energy_rate']}/kWh")
        return ", ".join(parts) or "no payments"

    @admin.display(description="Settings")
    def rules_table(self, version: PaymentRuleVersion) -> str:
        rows = [
            (name, _setting(value))
            for name, value in version.rules.items()
            if name != "effective_from"
        ]
        return format_html(
            "<table><tbody>{}</tbody></table>",
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
        )


def _setting(value: object) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, list):
        return "; ".join(", ".join(str(part) for part in pair) for pair in value)
    return str(value)


# --- settlement runs, lines, disputes and exports (records: read only) ---------------------


def _link(url: str, text: str) -> str:
    return format_html('<a href="{}">{}</a>', url, text)


@admin.register(SettlementRun)
class SettlementRunAdmin(ReadOnlyAdmin):
    """Every run, discarded ones included (the record of who discarded a version, when and
    why): read only, like every settlement record here."""

    list_display = [
        "program",
        "period_kind",
        "period_start",
        "period_end",
        "version",
        "status",
        "total",
        "line_count",
        "calculated_by",
        "approved_by",
    ]
    list_filter = ["status", "period_kind", "program"]
    list_select_related = ["program", "calculated_by", "approved_by"]
    date_hierarchy = "period_start"
    fields = [
        "program",
        "period_kind",
        "period_start",
        "period_end",
        "version",
        "restates",
        "status",
        "total",
        "line_count",
        "lines_link",
        "console_link",
        "notes",
        "created_by",
        "created_at",
        "calculated_by",
        "calculated_at",
        "approved_by",
        "approved_at",
        "exported_at",
        "discarded_by",
        "discarded_at",
        "discard_reason",
    ]
    readonly_fields = fields

    @admin.display(description="Lines")
    def lines_link(self, run: SettlementRun) -> str:
        url = reverse("admin:settlements_settlementline_changelist")
        return _link(f"{url}?run__id__exact={run.pk}", f"{run.line_count} line(s)")

    @admin.display(description="Console")
    def console_link(self, run: SettlementRun) -> str:
        return _link(reverse("console:settlement_run", args=[run.pk]), "Review in the console")


@admin.register(SettlementLine)
class SettlementLineAdmin(ReadOnlyAdmin):
    """Lines are written by the calculation and locked at approval: never edited here."""

    list_display = [
        "run",
        "sequence",
        "organization",
        "site",
        "kind",
        "event",
        "quantity",
        "unit",
        "rate",
        "amount",
        "locked",
    ]
    list_filter = ["kind", "locked", "run__status"]
    list_select_related = ["run__program", "organization", "site", "event__program"]
    search_fields = ["organization__legal_name", "site__name", "reference"]
    ordering = ["-run__period_start", "run", "sequence"]
    # Runs hold thousands of lines: no second COUNT(*) of the whole table on each page.
    show_full_result_count = False
    fields = [
        "run",
        "sequence",
        "organization",
        "site",
        "kind",
        "event",
        "performance",
        "installment",
        "reference",
        "quantity",
        "unit",
        "rate",
        "amount",
        "explanation",
        "details",
        "locked",
    ]
    readonly_fields = fields


class DisputeEntryInline(admin.TabularInline):
    model = DisputeEntry
    fields = ["at", "author", "action", "text"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[DisputeEntry]:
        return super().get_queryset(request).select_related("author").order_by("at", "pk")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    """Disputes are raised in the portal and decided in the console's dispute queue."""

    list_display = [
        "pk",
        "organization",
        "line",
        "status",
        "claimed_amount",
        "adjustment_amount",
        "created_at",
        "decided_by",
        "decided_at",
    ]
    list_filter = ["status"]
    list_select_related = ["organization", "line", "decided_by"]
    search_fields = ["organization__legal_name", "comment"]
    date_hierarchy = "created_at"
    fields = [
        "organization",
        "line",
        "status",
        "raised_by",
        "comment",
        "claimed_amount",
        "created_at",
        "decided_by",
        "decided_at",
        "decision_reason",
        "adjustment_amount",
        "adjustment_line",
        "console_link",
    ]
    readonly_fields = fields
    inlines = [DisputeEntryInline]

    @admin.display(description="Console")
    def console_link(self, dispute: Dispute) -> str:
        return _link(reverse("console:dispute", args=[dispute.pk]), "Open in the console")


@admin.register(BillingExport)
class BillingExportAdmin(ReadOnlyAdmin):
    """Exports are made from an approved run in the console; the file is downloaded as it
    was handed to billing, never shown or changed here."""

    list_display = ["file_name", "run", "row_count", "sha256", "exported_by", "exported_at"]
    list_select_related = ["run__program", "exported_by"]
    search_fields = ["file_name", "sha256"]
    date_hierarchy = "exported_at"
    fields = [
        "run",
        "file_name",
        "sha256",
        "row_count",
        "exported_by",
        "exported_at",
        "download",
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[BillingExport]:
        return super().get_queryset(request).defer("content")

    @admin.display(description="File")
    def download(self, export: BillingExport) -> str:
        url = reverse("console:billing_export_download", args=[export.pk])
        return _link(url, f"Download {export.file_name}")
