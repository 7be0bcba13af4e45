"""Statement and dispute pages: participants' statements (portal) and the staff's settlement
runs, billing export history and dispute queue (console).

Portal pages live under ``/portal/o/<organization_id>/statements/``; the organization,
run, line and dispute are fetched through the access helpers, so another organization's
object, and a run participants may not see yet (draft, calculated), answer 404 exactly
like a missing one. Viewers read; admins and operators dispute and comment (403 for
viewers). Console pages need staff with the matching permission (403 otherwise);
Billing and Program managers also start, calculate, approve, export, restate and
discard runs there (a refusal, four eyes included, comes back as a message on the run
page; a discard needs a reason, which stays on record with the discarded version and shows
on the run list and in the period's history); a calculation, a restatement's included,
runs in a worker while the run page polls its progress (:func:`console_run_progress`);
deciding disputes is for program managers. Views validate the form, call one service or
selector and render; the rules live in ``settlements.disputes`` and
``settlements.statements``.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q, Sum
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from dr_platform.selectors import get_for_member, membership_role, require_role
from dr_platform.views import staff_required
from enrollment.models import Organization, Program
from settlements import disputes, statements
from settlements.billing import billing_export_create
from settlements.models import BillingExport, Dispute, SettlementLine, SettlementRun
from settlements.runs import (
    CALCULATION_TIME_LIMIT,
    SettlementError,
    calculation_stale,
    discarded_refusal,
    is_settlement_staff,
    settlement_run_approve,
    settlement_run_calculation_request,
    settlement_run_create,
    settlement_run_discard,
    settlement_run_restatement_request,
)
from settlements.runs.parties import billed_parties
from settlements.runs.services import approved_versions_before

RUN_VIEW_PERMISSION = "settlements.view_settlementrun"
EXPORT_VIEW_PERMISSION = "settlements.view_billingexport"
PAGE_SIZE = 25


# --- forms ----------------------------------------------------------------------------------


class DisputeRaiseForm(forms.Form):
    comment = forms.CharField(
        label="Why is this line wrong?",
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=disputes.MAX_TEXT,
        error_messages={
            "required": "Say why this line is wrong, so the program manager can check it."
        },
    )
    claimed_amount = forms.DecimalField(
        label="The amount you believe is right ($, optional)",
        required=False,
        max_digits=14,
        decimal_places=2,
    )


class CommentForm(forms.Form):
    text = forms.CharField(
        label="Comment",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=disputes.MAX_TEXT,
        error_messages={"required": "Write the comment first."},
    )


class DisputeAcceptForm(forms.Form):
    adjustment_amount = forms.DecimalField(
        label="Adjustment ($; negative recovers money)",
        max_digits=14,
        decimal_places=2,
        error_messages={"required": "Enter the adjustment in dollars, e.g. 25.00."},
    )
    reason = forms.CharField(
        label="Reason",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=disputes.MAX_TEXT,
        error_messages={"required": "Give the reason for accepting; the participant reads it."},
    )


class DisputeRejectForm(forms.Form):
    reason = forms.CharField(
        label="Reason (the participant reads it)",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=disputes.MAX_TEXT,
        error_messages={
            "required": "A rejection needs a reason: say why the line stands, the participant "
            "reads it."
        },
    )


def _add_service_errors(form: forms.Form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            for message in errors:
                form.add_error(field if field in form.fields else None, message)
    else:
        for message in error.messages:
            form.add_error(None, message)


# --- portal ---------------------------------------------------------------------------------


def _organization(request: HttpRequest, organization_id: int) -> Organization:
    """The organization of the URL; 404 unless the user is one of its members."""
    return get_for_member(Organization.objects.all(), request.user, path="", pk=organization_id)


def _may_dispute(request: HttpRequest, organization: Organization) -> bool:
    return membership_role(request.user, organization) in disputes.DISPUTING_ROLES


@login_required
@require_GET
def portal_statement_list(request: HttpRequest, organization_id: int) -> HttpResponse:
    """The organization's statements: one row per visible run with its lines' total."""
    organization = _organization(request, organization_id)
    return render(
        request,
        "portal/statements/list.html",
        {"organization": organization, "runs": statements.statement_runs(organization)},
    )


def _render_statement(
    request: HttpRequest,
    organization: Organization,
    run: SettlementRun,
    *,
    raise_form: tuple[int, DisputeRaiseForm] | None = None,
    comment_form: tuple[int, CommentForm] | None = None,
) -> HttpResponse:
    statement = statements.statement_build(organization, run, with_charts=True)
    later_versions = statements.statement_later_versions(organization, run)
    return render(
        request,
        "portal/statements/statement.html",
        {
            "organization": organization,
            "statement": statement,
            "run": run,
            "may_dispute": _may_dispute(request, organization) and statement.disputable,
            "may_comment": _may_dispute(request, organization),
            "error_line_id": raise_form[0] if raise_form else None,
            "raise_form": raise_form[1] if raise_form else DisputeRaiseForm(),
            "error_dispute_id": comment_form[0] if comment_form else None,
            "comment_form": comment_form[1] if comment_form else CommentForm(),
            "later_versions": later_versions,
            "status": statements.statement_status(run, superseded=bool(later_versions)),
        },
    )


@login_required
@require_GET
def portal_statement(request: HttpRequest, organization_id: int, run_id: int) -> HttpResponse:
    """One statement: the organization's lines of the run by site, how each was computed,
    the event charts, totals, the dispute form per line and every dispute's history."""
    organization = _organization(request, organization_id)
    run = statements.statement_run(organization, run_id)
    return _render_statement(request, organization, run)


def _download(content: bytes, content_type: str, file_name: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{file_name}"'
    return response


@login_required
@require_GET
def portal_statement_csv(request: HttpRequest, organization_id: int, run_id: int) -> HttpResponse:
    """The statement's lines as CSV (the same bytes for every download)."""
    organization = _organization(request, organization_id)
    run = statements.statement_run(organization, run_id)
    statement = statements.statement_build(organization, run, with_disputes=False)
    return _download(
        statements.statement_csv(statement),
        "text/csv; charset=utf-8",
        statements.statement_file_name(statement, "csv"),
    )


@login_required
@require_GET
def portal_statement_pdf(request: HttpRequest, organization_id: int, run_id: int) -> HttpResponse:
    """The statement as a PDF to print or file."""
    organization = _organization(request, organization_id)
    run = statements.statement_run(organization, run_id)
    statement = statements.statement_build(organization, run, with_disputes=False)
    return _download(
        statements.statement_pdf(statement),
        "application/pdf",
        statements.statement_file_name(statement, "pdf"),
    )


@login_required
@require_POST
def portal_dispute_raise(
    request: HttpRequest, organization_id: int, run_id: int, line_id: int
) -> HttpResponse:
    """Dispute one line of the statement (admins and operators; viewers get 403)."""
    organization = _organization(request, organization_id)
    run = statements.statement_run(organization, run_id)
    line = get_for_member(
        SettlementLine.objects.select_related("organization"),
        request.user,
        pk=line_id,
        run=run,
        organization=organization,
    )
    # Viewers are refused before their form is judged.
    require_role(request.user, organization, disputes.DISPUTING_ROLES)
    form = DisputeRaiseForm(request.POST)
    if form.is_valid():
        try:
            disputes.dispute_raise(
                line=line,
                by=request.user,
                comment=form.cleaned_data["comment"],
                claimed_amount=form.cleaned_data["claimed_amount"],
            )
        except ValidationError as error:
            _add_service_errors(form, error)
        else:
            messages.success(
                request,
                f"Line {line.sequence} is disputed. A program manager will review it; the "
                "decision and any questions appear under the line.",
            )
            return redirect(_line_url(organization.pk, run.pk, line.pk))
    return _render_statement(request, organization, run, raise_form=(line.pk, form))


def _line_url(organization_id: int, run_id: int, line_id: int) -> str:
    url = reverse("portal:statement", args=[organization_id, run_id])
    return f"{url}#line-{line_id}"


@login_required
@require_POST
def portal_dispute_comment(
    request: HttpRequest, organization_id: int, dispute_id: int
) -> HttpResponse:
    """Add a comment to one of the organization's disputes (admins and operators)."""
    organization = _organization(request, organization_id)
    dispute = disputes.dispute_for_member(request.user, organization.pk, dispute_id)
    require_role(request.user, organization, disputes.DISPUTING_ROLES)
    form = CommentForm(request.POST)
    if form.is_valid():
        try:
            disputes.dispute_comment(
                dispute=dispute, by=request.user, text=form.cleaned_data["text"]
            )
        except ValidationError as error:
            _add_service_errors(form, error)
        else:
            messages.success(request, "Comment added.")
            return redirect(_line_url(organization.pk, dispute.line.run_id, dispute.line_id))
    run = statements.statement_run(organization, dispute.line.run_id)
    return _render_statement(request, organization, run, comment_form=(dispute.pk, form))


# --- console --------------------------------------------------------------------------------


def _require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied("Your staff role does not allow this.")


def _require_manager(request: HttpRequest) -> None:
    if not disputes.is_program_manager(request.user):
        raise PermissionDenied("The dispute queue is for program managers.")


class RunCreateForm(forms.Form):
    program = forms.ModelChoiceField(
        queryset=Program.objects.order_by("name"),
        error_messages={"required": "Choose the program to settle."},
    )
    period_kind = forms.ChoiceField(
        label="Period", choices=SettlementRun.PeriodKind.choices, initial="month"
    )
    period_start = forms.DateField(
        label="First day",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="A month run starts on the 1st; a season run on the program's season start.",
        error_messages={"required": "Enter the period's first day."},
    )


class RunDiscardForm(forms.Form):
    reason = forms.CharField(
        label="Why is this version discarded?",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=SettlementRun.DISCARD_REASON_MAX,
        help_text="Kept on record with the version, for billing clerks and auditors.",
        error_messages={
            "required": "Say why this version is discarded: the reason stays on record with "
            "it, for billing clerks and auditors."
        },
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("auto_id", "discard-%s")  # the ids the run page's form uses
        super().__init__(*args, **kwargs)


def _run_list(request: HttpRequest, create_form: RunCreateForm | None = None) -> HttpResponse:
    runs = (
        SettlementRun.objects.select_related(
            "program", "restates", "calculated_by", "approved_by", "discarded_by"
        )
        .defer(*statements.UNLISTED)
        .annotate(open_disputes=Count("lines__disputes", filter=Q(lines__disputes__status="open")))
        .order_by("-period_start", "program__name", "-version")
    )
    page = Paginator(runs, PAGE_SIZE).get_page(request.GET.get("page"))
    may_act = is_settlement_staff(request.user)
    return render(
        request,
        "console/settlements/run_list.html",
        {
            "page_obj": page,
            "may_act": may_act,
            "create_form": (create_form or RunCreateForm()) if may_act else None,
        },
    )


@staff_required
@require_GET
def console_run_list(request: HttpRequest) -> HttpResponse:
    """Every settlement run, newest period first: status, total, who calculated and approved
    (a discarded version too, with who discarded it, when and why: the full sequence of a
    period's version numbers); for Billing and Program managers, the form that starts a
    run."""
    _require(request, RUN_VIEW_PERMISSION)
    return _run_list(request)


def _require_settlement_staff(request: HttpRequest) -> None:
    if not is_settlement_staff(request.user):
        raise PermissionDenied("Only Billing and Program managers work on settlement runs.")


@staff_required
@require_POST
def console_run_create(request: HttpRequest) -> HttpResponse:
    """Start a draft run of a program's month or season (Billing and Program managers)."""
    _require_settlement_staff(request)
    form = RunCreateForm(request.POST)
    if form.is_valid():
        try:
            run = settlement_run_create(
                program=form.cleaned_data["program"],
                period_kind=form.cleaned_data["period_kind"],
                period_start=form.cleaned_data["period_start"],
                by=request.user,
            )
        except SettlementError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Run {run.pk} ({run}) created as a draft; calculate it.")
            return redirect("console:settlement_run", run_id=run.pk)
    return _run_list(request, form)


@staff_required
@require_GET
def console_run(request: HttpRequest, run_id: int) -> HttpResponse:
    """One run: its lines, totals per organization, status and who did what; for Billing
    and Program managers, the buttons its status allows (calculate, approve, export,
    restate, discard). A restatement that found no differences says so and offers to
    discard it. A discarded run shows who discarded it, when and why; the period's
    versions, discarded ones included, are listed."""
    _require(request, RUN_VIEW_PERMISSION)
    return _render_run(request, _console_run(run_id))


def _console_run(run_id: int) -> SettlementRun:
    return get_object_or_404(
        SettlementRun.objects.select_related(
            "program", "restates", "created_by", "calculated_by", "approved_by", "discarded_by"
        ),
        pk=run_id,
    )


def _render_run(
    request: HttpRequest, run: SettlementRun, *, discard_form: RunDiscardForm | None = None
) -> HttpResponse:
    lines = list(
        SettlementLine.objects.filter(run=run)
        .select_related("event")
        .annotate(open_disputes=Count("disputes", filter=Q(disputes__status="open")))
        .order_by("sequence")
    )
    # Named as the lines bill them: a locked run as its approval recorded the parties, as
    # the statements and the export do; another run as they stand.
    parties = billed_parties(run)
    for line in lines:
        line.billed_organization = parties.organizations[line.organization_id]
        line.billed_site = parties.sites[line.site_id] if line.site_id is not None else None
    totals = sorted(
        (
            {
                "organization": parties.organizations[row["organization"]],
                "total": row["total"],
                "line_count": row["line_count"],
            }
            for row in SettlementLine.objects.filter(run=run)
            .values("organization")
            .annotate(total=Sum("amount"), line_count=Count("pk"))
            .order_by("organization")
        ),
        key=lambda row: row["organization"].legal_name,
    )
    total = sum((line.amount for line in lines), Decimal("0.00"))
    no_differences = (
        run.restates_id is not None and run.status == SettlementRun.Status.CALCULATED and not lines
    )
    return render(
        request,
        "console/settlements/run.html",
        {
            "run": run,
            "lines": lines,
            "totals": totals,
            "total": total,
            "exports": run.exports.select_related("exported_by").defer("content"),
            "versions": SettlementRun.objects.filter(
                program=run.program, period_start=run.period_start, period_end=run.period_end
            )
            .select_related("discarded_by")
            .defer("billed_parties", "rules", "notes")
            .order_by("version"),
            "may_act": is_settlement_staff(request.user),
            "calculated_by_me": run.calculated_by_id == request.user.pk,
            "may_export_history": request.user.has_perm(EXPORT_VIEW_PERMISSION),
            "stale": calculation_stale(run),
            "time_limit_minutes": CALCULATION_TIME_LIMIT // 60,
            "no_differences": no_differences,
            # "the approved versions" or "version": discarded versions keep their numbers.
            "several_approved": no_differences and approved_versions_before(run) > 1,
            # The accepted disputes this run's lines carry: a discard un-carries them.
            "carried_disputes": [
                line.details["dispute_id"] for line in lines if "dispute_id" in line.details
            ],
            "discard_form": RunDiscardForm() if discard_form is None else discard_form,
        },
    )


@never_cache
@staff_required
@require_GET
def console_run_progress(request: HttpRequest, run_id: int) -> JsonResponse:
    """The run's calculation as JSON, for the run page's polling script: status, whether
    it is still calculating (``finished`` false) or lost its worker (``stale``), sites
    settled of the total and the percentage, then the outcome or the error.

    A discarded run answers ``discarded`` true and, in ``text``, who discarded it and
    when, which the script shows in place of the progress (a run whose row is gone, 404:
    the script shows the page's own "it was discarded")."""
    _require(request, RUN_VIEW_PERMISSION)
    run = get_object_or_404(SettlementRun.objects.select_related("discarded_by"), pk=run_id)
    if run.status == SettlementRun.Status.DISCARDED:
        return JsonResponse(
            {
                "status": run.status,
                "status_label": run.get_status_display(),
                "finished": True,
                "discarded": True,
                "stale": False,
                "text": str(discarded_refusal(run.pk, run)),
            }
        )
    return JsonResponse(
        {
            "status": run.status,
            "status_label": run.get_status_display(),
            "finished": run.status != SettlementRun.Status.CALCULATING,
            "discarded": False,
            "stale": calculation_stale(run),
            "started_at": (
                run.calculation_started_at.isoformat() if run.calculation_started_at else None
            ),
            "sites_done": run.calculation_sites_done,
            "sites_total": run.calculation_sites_total,
            "percent": run.calculation_percent,
            "line_count": run.line_count,
            "total": f"{run.total:.2f}",
            "error": run.calculation_error,
            "text": (
                f"{run.calculation_sites_done:,} of {run.calculation_sites_total:,} sites "
                f"settled ({run.calculation_percent}%)"
                if run.calculation_sites_total
                else "Reading the period's events, performances and nominations…"
            ),
        }
    )


@staff_required
@require_POST
def console_run_action(request: HttpRequest, run_id: int) -> HttpResponse:
    """POST ``action`` = ``calculate``, ``approve``, ``export``, ``restate`` or
    ``discard``: call that service and come back to the run page with what happened, or
    why it was refused (a run in the wrong status or being calculated; four eyes: the one
    who calculated a run does not approve it).

    ``calculate`` only hands the run to a worker (a large program takes longer than a
    request may): the run page then shows the progress, and the outcome once done.
    ``restate`` creates the next version, calculating in a worker the same way, and goes
    to its page. ``discard`` needs a ``reason`` (the run page again with the form's error
    when it is blank); the run stays on record, discarded, and the answer goes to the
    version it restated, or to the run list. A run discarded meanwhile is refused with
    who discarded it, or, when its row is gone, sent to the run list.
    """
    _require_settlement_staff(request)
    run = SettlementRun.objects.filter(pk=run_id).first()
    if run is None:
        # Discarded before discarded runs were kept (or the id is wrong): say so.
        messages.error(request, str(discarded_refusal(run_id)))
        return redirect("console:settlement_runs")
    action = request.POST.get("action")
    user = request.user
    try:
        if action == "calculate":
            run = settlement_run_calculation_request(run=run, by=user)
            messages.info(
                request,
                "Calculating in the background: this page follows the progress and shows the "
                "outcome. Someone other than you approves the run.",
            )
        elif action == "approve":
            run = settlement_run_approve(run=run, by=user)
            messages.success(
                request,
                "Approved: the lines are locked and participants see their statements.",
            )
        elif action == "export":
            export = billing_export_create(run=run, by=user)
            messages.success(
                request,
                f"Exported {export.file_name}: {export.row_count} "
                f"row{'s' if export.row_count != 1 else ''}, sha256 {export.sha256}.",
            )
        elif action == "restate":
            restatement = settlement_run_restatement_request(run=run, by=user)
            messages.info(
                request,
                f"Restating in the background: this page follows the progress of version "
                f"{restatement.version} and shows the differences from the approved version "
                "when it is done. Someone other than you approves it.",
            )
            return redirect("console:settlement_run", run_id=restatement.pk)
        elif action == "discard":
            form = RunDiscardForm(request.POST)
            if not form.is_valid():
                return _render_run(request, _console_run(run.pk), discard_form=form)
            run = settlement_run_discard(run=run, by=user, reason=form.cleaned_data["reason"])
            count = run.line_count
            lines = f", its {count} line{'s' if count != 1 else ''} deleted" if count else ""
            if run.restates is None:
                messages.success(
                    request,
                    f"Run {run.pk} ({run}) is discarded{lines}; it stays on record with your "
                    "reason. The period has no run now.",
                )
                return redirect("console:settlement_runs")
            messages.success(
                request,
                f"Version {run.version} (run {run.pk}) is discarded{lines}; it stays on record "
                "with your reason, and its number is not used again. Version "
                f"{run.restates.version} stands as the period's approved settlement.",
            )
            return redirect("console:settlement_run", run_id=run.restates_id)
        else:
            raise Http404("No such action.")
    except (SettlementError, PermissionDenied) as error:
        # The caller is settlement staff (checked above): a PermissionDenied here is the
        # four-eyes rule, which the clerk must read, not a bare 403 page.
        messages.error(request, str(error))
        if not SettlementRun.objects.filter(pk=run.pk).exists():  # gone meanwhile
            return redirect("console:settlement_runs")
    return redirect("console:settlement_run", run_id=run.pk)


@staff_required
@require_GET
def console_export_list(request: HttpRequest) -> HttpResponse:
    """Billing export history, newest first: run, version, file, sha256, rows, who, when."""
    _require(request, EXPORT_VIEW_PERMISSION)
    exports = (
        BillingExport.objects.select_related("run__program", "exported_by")
        .defer("content")
        .order_by("-exported_at", "-pk")
    )
    page = Paginator(exports, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "console/settlements/export_list.html", {"page_obj": page})


@staff_required
@require_GET
def console_export_download(request: HttpRequest, export_id: int) -> HttpResponse:
    """The exported file's bytes exactly as handed to billing."""
    _require(request, EXPORT_VIEW_PERMISSION)
    export = get_object_or_404(BillingExport, pk=export_id)
    return _download(bytes(export.content), "text/csv; charset=utf-8", export.file_name)


@staff_required
@require_GET
def console_dispute_queue(request: HttpRequest) -> HttpResponse:
    """Open disputes, oldest first, each with its line, history and the decision forms;
    then the latest decisions."""
    _require_manager(request)
    return render(
        request,
        "console/settlements/dispute_queue.html",
        {
            "queue": disputes.dispute_queue(),
            "decided": disputes.disputes_recently_decided(),
            "accept_form": DisputeAcceptForm(),
            "reject_form": DisputeRejectForm(),
            "comment_form": CommentForm(),
        },
    )


def _console_dispute(dispute_id: int) -> Dispute:
    queryset = Dispute.objects.select_related(
        "line__run__program", "line__site", "line__event", "organization", "raised_by",
        "decided_by",
    )  # fmt: skip
    return get_object_or_404(queryset, pk=dispute_id)


def _decision_refused(
    request: HttpRequest, dispute: Dispute, error: ValidationError
) -> HttpResponse:
    """Show why a decision was refused (decided meanwhile) above the decision that stands."""
    for message in error.messages:
        messages.error(request, message)
    return redirect("console:dispute", dispute_id=dispute.pk)


@staff_required
def console_dispute(request: HttpRequest, dispute_id: int) -> HttpResponse:
    """One dispute: the line, the history, and (while open) accept / reject / comment.

    POST with ``action`` = ``accept``, ``reject`` or ``comment`` calls that service.
    """
    _require_manager(request)
    dispute = _console_dispute(dispute_id)
    accept_form, reject_form, comment_form = DisputeAcceptForm(), DisputeRejectForm(), CommentForm()
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "accept":
            accept_form = DisputeAcceptForm(request.POST)
            if accept_form.is_valid():
                try:
                    disputes.dispute_accept(
                        dispute=dispute,
                        by=request.user,
                        adjustment_amount=accept_form.cleaned_data["adjustment_amount"],
                        reason=accept_form.cleaned_data["reason"],
                    )
                except ValidationError as error:
                    if not hasattr(error, "error_dict"):
                        return _decision_refused(request, dispute, error)
                    _add_service_errors(accept_form, error)
                else:
                    messages.success(
                        request,
                        f"Dispute accepted; the adjustment goes into the next settlement run "
                        f"of {dispute.line.run.program}.",
                    )
                    return redirect("console:dispute_queue")
        elif action == "reject":
            reject_form = DisputeRejectForm(request.POST)
            if reject_form.is_valid():
                try:
                    disputes.dispute_reject(
                        dispute=dispute, by=request.user, reason=reject_form.cleaned_data["reason"]
                    )
                except ValidationError as error:
                    if not hasattr(error, "error_dict"):
                        return _decision_refused(request, dispute, error)
                    _add_service_errors(reject_form, error)
                else:
                    messages.success(request, "Dispute rejected; the participant sees why.")
                    return redirect("console:dispute_queue")
        elif action == "comment":
            comment_form = CommentForm(request.POST)
            if comment_form.is_valid():
                disputes.dispute_comment(
                    dispute=dispute, by=request.user, text=comment_form.cleaned_data["text"]
                )
                messages.success(request, "Comment added; the participant sees it.")
                return redirect("console:dispute", dispute_id=dispute.pk)
        else:
            raise Http404("No such action.")
    return render(
        request,
        "console/settlements/dispute.html",
        {
            "dispute": dispute,
            "entries": dispute.entries.select_related("author"),
            "accept_form": accept_form,
            "reject_form": reject_form,
            "comment_form": comment_form,
        },
    )
