"""Manager console pages of the enrollment app: enrollments, the review queue, capacity.

Every page is for staff (``staff_required``) holding the enrollment view permission; the
review decisions and the firm service level are for program managers only
(``enrollment.change_enrollment``). The views validate input, call one selector or service
and render; rules live in services.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from itertools import groupby
from operator import itemgetter

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from dr_platform.views import staff_required
from enrollment import selectors, services
from enrollment.models import Enrollment, Organization, Program, Site

PAGE_SIZE = 50
VIEW_PERMISSION = "enrollment.view_enrollment"
DECIDE_PERMISSION = "enrollment.change_enrollment"

CSV_COLUMNS = [
    "program",
    "organization",
    "billing account",
    "site",
    "service account",
    "zone",
    "substation",
    "feeder",
    "status",
    "committed kW",
    "active from",
    "commitment ends",
]


def _require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied("Your staff role does not allow this.")


def _may_decide(request: HttpRequest) -> bool:
    return request.user.has_perm(DECIDE_PERMISSION)


class EnrollmentFilterForm(forms.Form):
    """The enrollment list's filters, read from the query string; all optional."""

    program = forms.ModelChoiceField(
        queryset=Program.objects.order_by("name"), required=False, empty_label="All programs"
    )
    status = forms.ChoiceField(
        choices=[("", "All statuses"), *Enrollment.Status.choices], required=False
    )
    tier = forms.ChoiceField(
        choices=[("", "All tiers"), *Organization.Tier.choices], required=False
    )
    zone = forms.ChoiceField(required=False)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        zones = (
            Site.objects.exclude(zone="").order_by("zone").values_list("zone", flat=True).distinct()
        )
        self.fields["zone"].choices = [("", "All zones"), *((zone, zone) for zone in zones)]

    def filtered(self) -> dict[str, object]:
        """Return the selector's keyword arguments; invalid filters are dropped (and shown)."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        program = data.get("program")
        return {
            "program_id": program.pk if program else None,
            "status": data.get("status") or None,
            "tier": data.get("tier") or None,
            "zone": data.get("zone") or None,
        }


def _filtered_enrollments(request: HttpRequest) -> tuple[EnrollmentFilterForm, object]:
    form = EnrollmentFilterForm(request.GET or None)
    queryset = selectors.enrollments_filtered(**form.filtered())
    # The selector orders by program, organization and site; a site may have a rejected
    # and a new enrollment in the same program, so the id makes the order total.
    return form, queryset.order_by(*queryset.query.order_by, "pk")


@staff_required
@require_GET
def enrollment_list(request: HttpRequest) -> HttpResponse:
    """Enrollments filtered by program, status, tier and zone, 50 a page."""
    _require(request, VIEW_PERMISSION)
    form, queryset = _filtered_enrollments(request)
    page = Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "console/enrollment/enrollment_list.html",
        {"form": form, "page_obj": page, "applications_waiting": selectors.review_queue().count()},
    )


class _Echo:
    """A write-only file for csv.writer that hands each row back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _csv_text(value: object) -> str:
    text = "" if value is None else str(value)
    # A cell starting with = + - @ is run as a formula by spreadsheets; quote it as text.
    if text[:1] in ("=", "+", "-", "@"):
        return "'" + text
    return text


def _csv_rows(queryset: object) -> Iterator[str]:
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    yield writer.writerow(CSV_COLUMNS)
    for enrollment in queryset.iterator(chunk_size=2000):
        site, organization = enrollment.site, enrollment.site.organization
        yield writer.writerow(
            [
                _csv_text(enrollment.program.name),
                _csv_text(organization.legal_name),
                _csv_text(organization.billing_account_number),
                _csv_text(site.name),
                _csv_text(site.service_account_number),
                _csv_text(site.zone),
                _csv_text(site.substation),
                _csv_text(site.feeder),
                enrollment.status,
                f"{enrollment.committed_kw:.3f}",
                enrollment.active_from.isoformat() if enrollment.active_from else "",
                enrollment.commitment_ends.isoformat() if enrollment.commitment_ends else "",
            ]
        )


@staff_required
@require_GET
def enrollment_export(request: HttpRequest) -> StreamingHttpResponse:
    """The list's filtered rows as a UTF-8 CSV file with a header row, streamed."""
    _require(request, VIEW_PERMISSION)
    _form, queryset = _filtered_enrollments(request)
    response = StreamingHttpResponse(_csv_rows(queryset), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="enrollments.csv"'
    return response


@staff_required
@require_GET
def enrollment_detail(request: HttpRequest, enrollment_id: int) -> HttpResponse:
    """One enrollment with its transition log, nominations, firm service levels and consent
    records."""
    _require(request, VIEW_PERMISSION)
    enrollment = get_object_or_404(
        Enrollment.objects.select_related("site", "site__organization", "program", "applied_by"),
        pk=enrollment_id,
    )
    firm_kw_now = selectors.firm_service_level_at(enrollment, timezone.now())
    return render(
        request,
        "console/enrollment/enrollment_detail.html",
        {
            "enrollment": enrollment,
            "transitions": enrollment.transitions.select_related("by").order_by("at", "pk"),
            "nominations": enrollment.nominations.select_related("created_by").order_by(
                "effective_from", "pk"
            ),
            "consents": enrollment.consents.select_related("user").order_by("accepted_at", "pk"),
            "may_decide": _may_decide(request) and _in_review(enrollment),
            "decision_form": DecisionForm(),
            # The level in effect now, and its effective-dated history.
            "firm_kw_now": firm_kw_now,
            "firm_levels": enrollment.firm_service_levels.select_related("created_by").order_by(
                "effective_from", "pk"
            ),
            # Program managers set the firm service level (the same permission as decisions).
            "may_set_firm_level": _may_decide(request),
            "firm_level_form": FirmServiceLevelForm(
                initial={
                    "firm_kw": firm_kw_now,
                    "effective_from": timezone.localdate(timezone=enrollment.program.zone),
                }
            ),
        },
    )


def _in_review(enrollment: Enrollment) -> bool:
    return enrollment.status in (Enrollment.Status.APPLIED, Enrollment.Status.UNDER_REVIEW)


@staff_required
@require_GET
def review_queue(request: HttpRequest) -> HttpResponse:
    """Applications waiting for a decision, oldest first, with approve and reject forms."""
    _require(request, VIEW_PERMISSION)
    page = Paginator(selectors.review_queue(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "console/enrollment/review_queue.html",
        {"page_obj": page, "may_decide": _may_decide(request), "decision_form": DecisionForm()},
    )


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    reason = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required to reject; the participant sees it.",
    )
    next = forms.CharField(required=False, widget=forms.HiddenInput)


@staff_required
@require_POST
def enrollment_decide(request: HttpRequest, enrollment_id: int) -> HttpResponse:
    """Approve (and activate) or reject an application through services.enrollment_decide."""
    if not _may_decide(request):
        raise PermissionDenied("Only program managers decide applications.")
    enrollment = get_object_or_404(
        Enrollment.objects.select_related("site", "site__organization", "program"),
        pk=enrollment_id,
    )
    form = DecisionForm(request.POST)
    target = form.data.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = ""
    target = target or reverse("console:review_queue")
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
        return redirect(target)
    approve = form.cleaned_data["decision"] == "approve"
    try:
        services.enrollment_decide(
            enrollment=enrollment,
            approve=approve,
            by=request.user,
            reason=form.cleaned_data["reason"],
        )
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, f"{enrollment.site.name}: {message}")
        return redirect(target)
    outcome = "approved and activated" if approve else "rejected"
    messages.success(request, f"{enrollment.site.name} in {enrollment.program.name} was {outcome}.")
    return redirect(target)


def _with_subtotals(rows: list[dict], labels: dict[str, str] | None = None) -> list[dict]:
    """Follow each program's group rows with its subtotal row.

    Summing within a program is exact: a site has one zone and one tier, and at most one
    open enrollment per program.
    """
    result: list[dict] = []
    for program, group_rows in groupby(rows, key=itemgetter("program")):
        mine = list(group_rows)
        for row in mine:
            group = (labels or {}).get(row["group"], row["group"])
            result.append({**row, "group": group, "kind": "group"})
        result.append(
            {
                "program": program,
                "group": "All",
                "sites": sum(row["sites"] for row in mine),
                "committed_kw": sum((row["committed_kw"] for row in mine), Decimal("0")),
                "kind": "subtotal",
            }
        )
    return result


@staff_required
@require_GET
def capacity_summary(request: HttpRequest) -> HttpResponse:
    """Enrolled sites and committed kW of active enrollments by program × zone and × tier."""
    _require(request, VIEW_PERMISSION)
    # A site may be active in two non-exclusive programs: the grand total counts it once.
    total = Enrollment.objects.filter(status=Enrollment.Status.ACTIVE).aggregate(
        sites=Count("site", distinct=True), committed_kw=Sum("committed_kw")
    )
    return render(
        request,
        "console/enrollment/capacity_summary.html",
        {
            "by_zone": _with_subtotals(selectors.capacity_summary("zone")),
            "by_tier": _with_subtotals(
                selectors.capacity_summary("tier"), labels=dict(Organization.Tier.choices)
            ),
            "total_sites": total["sites"],
            "total_kw": total["committed_kw"] or Decimal("0"),
        },
    )


class FirmServiceLevelForm(forms.Form):
    # Only "is it a number": the sign and the digits are the service's to check, so that the
    # page and any other caller get the same message.
    firm_kw = forms.DecimalField(
        required=False,
        label="Firm service level (kW)",
        help_text="Load the site must stay at or below during events; empty for none.",
    )
    effective_from = forms.DateField(
        label="Effective from",
        help_text="From the start of this day in the program's time zone.",
    )
    reason = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )


@staff_required
@require_POST
def enrollment_firm_level(request: HttpRequest, enrollment_id: int) -> HttpResponse:
    """Record an enrollment's firm service level (or its clearing) from a day on, through
    services.enrollment_firm_service_level_set, then show the enrollment again."""
    if not _may_decide(request):
        raise PermissionDenied("Only program managers set the firm service level.")
    enrollment = get_object_or_404(
        Enrollment.objects.select_related("site", "program"), pk=enrollment_id
    )
    detail = reverse("console:enrollment_detail", args=[enrollment.pk])
    form = FirmServiceLevelForm(request.POST)
    if not form.is_valid():
        for name, errors in form.errors.items():
            messages.error(request, f"{form.fields[name].label}: {' '.join(errors)}")
        return redirect(detail)
    level, day = form.cleaned_data["firm_kw"], form.cleaned_data["effective_from"]
    # A day starts at local midnight in the program's zone, as its events' days do.
    effective_from = dt.datetime.combine(day, dt.time(), enrollment.program.zone)
    try:
        services.enrollment_firm_service_level_set(
            enrollment=enrollment,
            firm_kw=level,
            effective_from=effective_from,
            by=request.user,
            reason=form.cleaned_data["reason"],
        )
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return redirect(detail)
    if level is None:
        messages.success(request, f"{enrollment.site.name} has no firm service level from {day}.")
    else:
        messages.success(
            request, f"{enrollment.site.name}'s firm service level is {level:.3f} kW from {day}."
        )
    return redirect(detail)
