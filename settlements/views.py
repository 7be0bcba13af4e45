"""Meter data pages: the managers' upload page, import history and detail (console), and the
per-meter data quality page (console for staff, portal for participants' own meters).

Views validate input, call one service or selector and render. Console pages need staff
with the settlements view permission; uploading needs ``settlements.add_meterdataimport``
(program managers). Participants reach only their own sites' meters (404 otherwise).
"""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from dr_platform.views import staff_required
from settlements import selectors, services
from settlements.forms import MeterDataUploadForm
from settlements.models import MeterDataImport

VIEW_PERMISSION = "settlements.view_meterdataimport"
UPLOAD_PERMISSION = "settlements.add_meterdataimport"
PAGE_SIZE = 25
QUALITY_DAYS = (14, 30, 60, 120)


def _require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied("Your staff role does not allow this.")


@staff_required
@require_http_methods(["GET", "POST"])
def import_list(request: HttpRequest) -> HttpResponse:
    """The upload form (program managers) and the import history, newest first."""
    _require(request, VIEW_PERMISSION)
    may_upload = request.user.has_perm(UPLOAD_PERMISSION)
    form = MeterDataUploadForm()
    if request.method == "POST":
        if not may_upload:
            raise PermissionDenied("Only program managers upload meter data.")
        form = MeterDataUploadForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            record = services.meter_data_import_create(
                stream=upload,
                file_name=upload.name,
                by=request.user,
                format=form.cleaned_data["format"],
                meter=form.cleaned_data["meter"],
                correction=form.cleaned_data["correction"],
                valid_rows_only=form.cleaned_data["valid_rows_only"],
                time_zone=form.cleaned_data["time_zone"],
            )
            record = services.meter_data_import_submit(data_import=record)
            _announce(request, record)
            return redirect("console:meterdata_import", import_id=record.pk)
    page = Paginator(selectors.import_history(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "console/meterdata/import_list.html",
        {"form": form, "page_obj": page, "may_upload": may_upload},
    )


def _announce(request: HttpRequest, record: MeterDataImport) -> None:
    status = MeterDataImport.Status
    if record.status == status.SUCCEEDED:
        messages.success(request, f"{record.file_name}: {record.rows_accepted:,} readings stored.")
    elif record.status == status.PENDING:
        messages.info(request, f"{record.file_name} is being imported in the background.")
    elif record.status == status.DUPLICATE:
        messages.warning(request, record.message)
    else:
        messages.error(request, f"{record.file_name}: {record.message}")


def _import_for_staff(request: HttpRequest, import_id: int) -> MeterDataImport:
    _require(request, VIEW_PERMISSION)
    return get_object_or_404(
        MeterDataImport.objects.select_related("created_by", "meter", "duplicate_of"),
        pk=import_id,
    )


@staff_required
@require_GET
def import_detail(request: HttpRequest, import_id: int) -> HttpResponse:
    """One import: status and progress, counts, problems with line numbers, gaps, flags."""
    record = _import_for_staff(request, import_id)
    problems = selectors.import_problems(record)
    return render(
        request,
        "console/meterdata/import_detail.html",
        {
            "record": record,
            "problems": problems[:500],
            "problems_shown": min(500, record.error_count + record.warning_count),
        },
    )


@never_cache
@staff_required
@require_GET
def import_progress(request: HttpRequest, import_id: int) -> JsonResponse:
    """The progress of one import as JSON, for the detail page's polling script."""
    record = _import_for_staff(request, import_id)
    return JsonResponse(
        {
            "status": record.status,
            "status_label": record.get_status_display(),
            "finished": record.finished,
            "rows_processed": record.rows_processed,
            "bytes_processed": record.bytes_processed,
            "bytes_total": record.file_size,
            "percent": record.progress_percent,
            "rows_accepted": record.rows_accepted,
            "rows_rejected": record.rows_rejected,
            "text": (
                f"{record.rows_processed:,} rows read, {record.progress_percent}% "
                f"({record.get_status_display()})"
            ),
        }
    )


@staff_required
@require_GET
def import_error_report(request: HttpRequest, import_id: int) -> FileResponse:
    """Download the import's error report (CSV: every rejected row and warning)."""
    record = _import_for_staff(request, import_id)
    if not record.error_report:
        raise Http404("This import has no error report.")
    return FileResponse(
        record.error_report.open("rb"),
        as_attachment=True,
        filename=f"import-{record.pk}-errors.csv",
        content_type="text/csv",
    )


def _quality_context(request: HttpRequest, meter_id: int) -> dict[str, object]:
    meter = selectors.meter_for_user(request.user, meter_id)
    try:
        days = int(request.GET.get("days", 30))
    except ValueError:
        days = 30
    days = days if days in QUALITY_DAYS else 30
    last_day = None
    if request.GET.get("until"):
        try:
            last_day = dt.date.fromisoformat(request.GET["until"])
        except ValueError:
            last_day = None
    quality = selectors.meter_quality(meter, last_day=last_day, days=days)
    return {"quality": quality, "meter": meter, "days": days, "day_choices": QUALITY_DAYS}


@staff_required
@require_GET
def console_meter_quality(request: HttpRequest, meter_id: int) -> HttpResponse:
    """A meter's data quality for staff (any meter)."""
    context = _quality_context(request, meter_id)
    return render(request, "console/meterdata/meter_quality.html", context)


@staff_required
@require_GET
def console_meter_list(request: HttpRequest) -> HttpResponse:
    """Every meter, with a link to its data quality page."""
    meters = selectors.meters_for_user(request.user)
    page = Paginator(meters, 100).get_page(request.GET.get("page"))
    return render(request, "console/meterdata/meter_list.html", {"page_obj": page})


@login_required
@require_GET
def portal_meter_list(request: HttpRequest) -> HttpResponse:
    """The participant's own meters, with links to their data quality pages."""
    meters = selectors.meters_for_user(request.user)
    return render(request, "portal/meterdata/meter_list.html", {"meters": meters})


@login_required
@require_GET
def portal_meter_quality(request: HttpRequest, meter_id: int) -> HttpResponse:
    """A meter's data quality for a member of its organization (404 for anyone else)."""
    context = _quality_context(request, meter_id)
    return render(request, "portal/meterdata/meter_quality.html", context)
