"""Participant statements: one organization's lines of one settlement run, and their files.

A statement is read only from runs whose lines never change again (approved, exported or
superseded; never a draft, a calculation under review or a discarded version), so what a
participant sees, downloads and disputes is what billing pays. A restatement (version 2
and later) holds only its differences, so each version's statement shows its own lines;
a line that a later version corrected points to that version's line, which is the one to
dispute (``settlements.disputes.lines_corrected_later``).

Reads: :func:`statement_runs` (the list page), :func:`statement_run` (404 unless
visible), :func:`statement_later_versions` (the versions that corrected a superseded
statement for the organization), :func:`statement_status` (the status the organization
sees), :func:`statement_build` (lines grouped by site with the path from kW to dollars
and, for the page, each event line's load chart). Files:
:func:`statement_csv` and :func:`statement_pdf`, both deterministic for a given statement
(the same bytes every time).

A statement names the program, the organization and its sites as the run's approval
recorded them (``settlements.runs.parties``), not as they stand now: a renamed site or a
new billing account number changes neither the page nor the files of an approved run.
Nor does the run's later workflow (exported, superseded) or the server's time zone
change the files.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db.models import Count, Exists, OuterRef, Sum
from django.http import Http404
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.text import slugify

from enrollment.models import Organization, Site
from events.models import Participation
from settlements.disputes import disputes_for_lines, lines_corrected_later
from settlements.models import Dispute, EventPerformance, SettlementLine, SettlementRun
from settlements.performance import adjustment_text
from settlements.runs.parties import BilledOrganization, BilledSite, billed_parties

#: Run statuses a participant sees (never ``discarded``: a discarded version settled
#: nothing, and later versions of its period are never "corrections" of it).
VISIBLE_STATUSES = tuple(SettlementRun.LOCKED_STATUSES)
#: What a list of runs leaves unread: a season run's record of who it bills holds a
#: thousand sites.
UNLISTED = ("billed_parties", "restates__billed_parties")
CURRENCY = "USD"
ZERO = Decimal("0.00")


# --- the list -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """One run on an organization's statement list: its lines' count and total ($), and
    its status as the organization sees it (:func:`statement_status`)."""

    run: SettlementRun
    line_count: int
    total: Decimal
    status: SettlementRun.Status

    @property
    def total_text(self) -> str:
        return dollars(self.total)


def statement_runs(organization: Organization) -> list[RunSummary]:
    """The runs with lines of ``organization`` that participants may see, newest period
    first and, within a period, newest version first; two queries.

    The list holds every visible version with lines of the organization, so a superseded
    run is superseded for it exactly when a later version of the same program and period
    is on the list (what :func:`statement_later_versions` finds): no further query.
    """
    totals = {
        row["run"]: row
        for row in SettlementLine.objects.filter(
            organization=organization, run__status__in=VISIBLE_STATUSES
        )
        .values("run")
        .annotate(total=Sum("amount"), line_count=Count("pk"))
    }
    runs = (
        SettlementRun.objects.filter(pk__in=totals)
        .select_related("program", "restates")
        .defer(*UNLISTED)
        .order_by("-period_start", "program__name", "-version")
    )
    # Newest version first within a period: the first run of each period is its latest.
    latest_version: dict[tuple, int] = {}
    summaries = []
    for run in runs:
        latest = latest_version.setdefault(
            (run.program_id, run.period_start, run.period_end), run.version
        )
        summaries.append(
            RunSummary(
                run=run,
                line_count=totals[run.pk]["line_count"],
                total=totals[run.pk]["total"] or ZERO,
                status=statement_status(run, superseded=latest > run.version),
            )
        )
    return summaries


def statement_run(organization: Organization, run_id: int) -> SettlementRun:
    """The run ``run_id`` if ``organization`` has lines in it and participants may see it.

    Raises Http404 otherwise: a draft or calculated run answers like a missing one.
    """
    run = (
        SettlementRun.objects.filter(
            pk=run_id,
            status__in=VISIBLE_STATUSES,
            lines__organization=organization,
        )
        .select_related("program", "restates", "approved_by")
        .distinct()
        .first()
    )
    if run is None:
        raise Http404("No such statement.")
    return run


def statement_later_versions(organization: Organization, run: SettlementRun) -> list[SettlementRun]:
    """The later approved, exported or superseded versions of ``run``'s program and period
    that hold lines of ``organization``, oldest first: the statements of that organization
    that corrected this one. One query; none, and no query, unless ``run`` is superseded
    (a later version is locked only once it superseded this one).

    A later version without a line of ``organization`` left all its lines of this run as
    they stand; it is not this organization's statement (it answers 404 for it), so it is
    not listed.
    """
    if run.status != SettlementRun.Status.SUPERSEDED:
        return []
    return list(
        SettlementRun.objects.filter(
            Exists(SettlementLine.objects.filter(run=OuterRef("pk"), organization=organization)),
            program_id=run.program_id,
            period_start=run.period_start,
            period_end=run.period_end,
            version__gt=run.version,
            status__in=VISIBLE_STATUSES,
        )
        .defer("billed_parties")
        .order_by("version")
    )


def statement_status(run: SettlementRun, *, superseded: bool) -> SettlementRun.Status:
    """The status of ``run``'s statement as an organization sees it, ``superseded`` saying
    whether a later version holds lines of the organization (:func:`statement_later_versions`
    is not empty).

    The run's own status, except for a superseded run that no later version holds lines of
    the organization in: its lines stand for the organization as they are, the statement
    still in force, so it is ``exported`` if the run went to billing (before or after it
    was superseded), else ``approved``. The console keeps the run's real status.
    """
    if run.status != SettlementRun.Status.SUPERSEDED or superseded:
        return SettlementRun.Status(run.status)
    if run.exported_at is not None:
        return SettlementRun.Status.EXPORTED
    return SettlementRun.Status.APPROVED


# --- one statement --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PerformanceSummary:
    """How an event line's kW were measured (from its EventPerformance): kW, kWh, ratios."""

    performance: EventPerformance
    participation_id: int
    method: str
    selected_days: list[str]
    adjustment: str
    committed_kw: Decimal
    average_reduction_kw: float | None
    reduction_kwh: float | None
    performance_ratio: float | None
    status: str

    @classmethod
    def of(cls, performance: EventPerformance) -> PerformanceSummary:
        return cls(
            performance=performance,
            participation_id=performance.participation_id,
            method=performance.method,
            selected_days=list(performance.selected_days or []),
            adjustment=adjustment_text(performance),
            committed_kw=performance.committed_kw,
            average_reduction_kw=performance.average_reduction_kw,
            reduction_kwh=performance.reduction_kwh,
            performance_ratio=performance.performance_ratio,
            status=performance.get_status_display(),
        )

    @property
    def ratio_percent(self) -> float | None:
        return None if self.performance_ratio is None else self.performance_ratio * 100


@dataclasses.dataclass(frozen=True)
class StatementLine:
    """One line as the statement shows it, with its measurement, its disputes, the line of
    a later version that corrected it (``corrected_by``, its run fetched; None when none
    did) and (event lines measured from interval data, when asked for) the event's load
    chart as SVG."""

    line: SettlementLine
    event_label: str
    performance: PerformanceSummary | None
    disputes: list[Dispute]
    chart: SafeString | None = None
    corrected_by: SettlementLine | None = None

    @property
    def disputable(self) -> bool:
        """Whether the line may be disputed here: no later version corrected it."""
        return self.corrected_by is None

    @property
    def open_dispute(self) -> Dispute | None:
        return next((d for d in self.disputes if d.status == Dispute.Status.OPEN), None)

    @property
    def quantity_text(self) -> str:
        return _plain(self.line.quantity)

    @property
    def rate_text(self) -> str:
        return rate_text(self.line.rate)

    @property
    def amount_text(self) -> str:
        return dollars(self.line.amount)


@dataclasses.dataclass(frozen=True)
class SiteGroup:
    """A site's lines (``site`` None: lines of the whole organization) and their total;
    ``billed_site`` is the site's name and service account as the lines bill them."""

    site: Site | None
    billed_site: BilledSite | None
    lines: list[StatementLine]
    total: Decimal

    @property
    def total_text(self) -> str:
        return dollars(self.total)


@dataclasses.dataclass(frozen=True)
class Statement:
    """``organization``'s lines of ``run``, grouped by site; ``total`` is their sum ($).
    ``program_name`` and ``billed_organization`` (legal name, billing account) are what
    the lines bill (see ``settlements.runs.parties``); ``organization`` is the current
    row, for links and ids."""

    organization: Organization
    run: SettlementRun
    program_name: str
    billed_organization: BilledOrganization
    groups: list[SiteGroup]
    total: Decimal
    line_count: int

    @property
    def program(self):
        return self.run.program

    @property
    def total_text(self) -> str:
        return dollars(self.total)

    @property
    def disputable(self) -> bool:
        """Whether any of its lines may be disputed here (see ``StatementLine.disputable``)."""
        return any(item.disputable for item in self.lines)

    @property
    def lines(self) -> list[StatementLine]:
        return [item for group in self.groups for item in group.lines]


def event_label(line: SettlementLine, zone: ZoneInfo) -> str:
    """``Event 12, 2026-07-15 14:00–16:00`` in the program's local time; "" for none."""
    event = line.event
    if event is None:
        return ""
    start = timezone.localtime(event.starts_at, zone)
    end = timezone.localtime(event.ends_at, zone)
    return f"Event {event.pk}, {start:%Y-%m-%d %H:%M}–{end:%H:%M}"


def statement_lines(organization: Organization, run: SettlementRun):
    """``organization``'s lines of ``run`` in the run's order, with site, event and
    performance fetched."""
    return (
        SettlementLine.objects.filter(run=run, organization=organization)
        .select_related("site", "event", "performance")
        .order_by("sequence")
    )


def statement_build(
    organization: Organization,
    run: SettlementRun,
    *,
    with_disputes: bool = True,
    with_charts: bool = False,
) -> Statement:
    """The statement of ``organization`` for ``run``: lines grouped by site (sites in
    name order, then lines of the whole organization), each with its performance and,
    with ``with_disputes``, its disputes and their history and the later line that
    corrected it, if any; with ``with_charts``, each event line's chart (baseline and
    actual kW over the event day, see :func:`event_line_charts`). The program,
    organization and sites are named as the run's approval recorded them; a run not
    approved yet names them as they stand. Six queries at most for a locked run, eight
    for another.

    The caller has checked that the run is visible (:func:`statement_run`).
    """
    lines = list(statement_lines(organization, run))
    parties = billed_parties(run, organization_id=organization.pk)
    zone = ZoneInfo(run.program.time_zone)
    disputes = disputes_for_lines(lines) if with_disputes else {}
    corrections = lines_corrected_later(run, lines) if with_disputes else {}
    charts = (
        event_line_charts(lines, zone, {pk: site.name for pk, site in parties.sites.items()})
        if with_charts
        else {}
    )
    by_site: dict[int | None, list[StatementLine]] = {}
    sites: dict[int | None, Site | None] = {}
    for line in lines:
        by_site.setdefault(line.site_id, []).append(
            StatementLine(
                line=line,
                event_label=event_label(line, zone),
                performance=PerformanceSummary.of(line.performance) if line.performance else None,
                disputes=disputes.get(line.pk, []),
                chart=charts.get(line.pk),
                corrected_by=corrections.get(line.pk),
            )
        )
        sites[line.site_id] = line.site
    billed_sites = {key: parties.sites[key] if key is not None else None for key in by_site}
    order = sorted(
        by_site,
        key=lambda key: (key is None, billed_sites[key].name if key is not None else "", key or 0),
    )
    groups = [
        SiteGroup(
            site=sites[key],
            billed_site=billed_sites[key],
            lines=by_site[key],
            total=sum((item.line.amount for item in by_site[key]), ZERO),
        )
        for key in order
    ]
    # An organization without lines in the run is not in its record: named as it stands.
    billed_organization = parties.organizations.get(organization.pk) or BilledOrganization.of(
        organization
    )
    return Statement(
        organization=organization,
        run=run,
        program_name=parties.program,
        billed_organization=billed_organization,
        groups=groups,
        total=sum((group.total for group in groups), ZERO),
        line_count=len(lines),
    )


def event_line_charts(
    lines: list[SettlementLine], zone: ZoneInfo, site_names: dict[int, str] | None = None
) -> dict[int, SafeString]:
    """The load chart of each line whose performance has the event day's interval data,
    by line id: the same chart as the event performance page (actual, adjusted and
    unadjusted baseline kW over the local event day, the event shaded), so the statement
    and that page never disagree. One query for the participations, whatever the count.

    Lines without performance (capacity, enablement, adjustments) or whose performance
    had too little data to draw get none, and so does a second line of the same event's
    performance (its excess energy charge after its energy line): one chart per event,
    under the first of its lines (a chart's element ids are its performance's).
    ``site_names`` (site id to name) names the sites as the run billed them; a site not in
    it by its current name.
    """
    from settlements.performance_views import performance_chart

    drawn: set[int] = set()
    drawable = []
    for line in lines:
        performance = line.performance
        if performance is None or not performance.day_actual or performance.pk in drawn:
            continue
        drawn.add(performance.pk)
        drawable.append(line)
    if not drawable:
        return {}
    participations = Participation.objects.select_related("event", "enrollment__site").in_bulk(
        {line.performance.participation_id for line in drawable}
    )
    return {
        line.pk: performance_chart(
            line.performance,
            participations[line.performance.participation_id],
            zone,
            site_name=(site_names or {}).get(line.site_id),
        )
        for line in drawable
    }


# --- files ----------------------------------------------------------------------------------

CSV_COLUMNS = (
    "program",
    "period_start",
    "period_end",
    "run",
    "version",
    "restates_version",
    "billing_account",
    "organization",
    "line",
    "site",
    "service_account",
    "kind",
    "event",
    "event_start",
    "quantity",
    "unit",
    "rate",
    "amount",
    "currency",
    "explanation",
)


def statement_file_name(statement: Statement, extension: str) -> str:
    """``statement-BA-100001-summer-peak-2026-07-v1.csv``: account, program, period, version."""
    run = statement.run
    period = f"{run.period_start:%Y-%m}"
    if (run.period_end.year, run.period_end.month) != (
        run.period_start.year,
        run.period_start.month,
    ):
        period += f"-to-{run.period_end:%Y-%m}"
    account = slugify(statement.billed_organization.billing_account_number) or "account"
    program = slugify(statement.program_name)
    return f"statement-{account}-{program}-{period}-v{run.version}.{extension}"


def _plain(value: Decimal) -> str:
    """A Decimal without trailing zeros or exponent: ``120``, ``0.125``."""
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "") else text


def statement_csv(statement: Statement) -> bytes:
    """The statement's lines as CSV (UTF-8, header row, one row per line, in the run's
    order; amounts with two decimals). Nothing in it depends on when it is made, on the
    run's later status or on later changes to the organization, its sites or the program,
    so the same statement gives the same bytes every time."""
    run = statement.run
    zone = ZoneInfo(run.program.time_zone)
    billed = statement.billed_organization
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    billed_sites = {group.site.pk: group.billed_site for group in statement.groups if group.site}
    for item in statement.lines:
        line = item.line
        site = billed_sites.get(line.site_id)
        event_start = (
            timezone.localtime(line.event.starts_at, zone).isoformat() if line.event else ""
        )
        writer.writerow(
            [
                statement.program_name,
                run.period_start.isoformat(),
                run.period_end.isoformat(),
                run.pk,
                run.version,
                run.restates.version if run.restates_id else "",
                billed.billing_account_number,
                billed.legal_name,
                line.sequence,
                site.name if site else "",
                site.service_account_number if site else "",
                line.kind,
                line.event_id or "",
                event_start,
                _plain(line.quantity),
                line.unit,
                _plain(line.rate),
                f"{line.amount:.2f}",
                CURRENCY,
                line.explanation,
            ]
        )
    return buffer.getvalue().encode("utf-8")


# Helvetica (a PDF standard font, nothing embedded) writes Windows-1252; these characters
# of the explanations are outside it.
_PDF_REPLACEMENTS = str.maketrans(
    {"≈": "~", "→": "->", "≤": "<=", "≥": ">=", "−": "-", "\u2009": " ", "\u202f": " "}
)


def _pdf_text(value: object) -> str:
    text = str(value).translate(_PDF_REPLACEMENTS)
    return text.encode("cp1252", errors="replace").decode("cp1252")


def dollars(amount: Decimal) -> str:
    """``$1,234.56`` or ``-$25.00``."""
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


def rate_text(rate: Decimal) -> str:
    """A rate with at least two decimals and every further one it has, never rounded:
    ``$8.00``, ``$0.50``, ``$0.125``, ``-$2.50`` (as the lines' explanations write it)."""
    sign = "-" if rate < 0 else ""
    magnitude = abs(rate).normalize()
    places = max(2, -magnitude.as_tuple().exponent)  # type: ignore[operator]
    return f"{sign}${magnitude:,.{places}f}"


def statement_pdf(statement: Statement, *, compress: bool = True) -> bytes:
    """The statement as a PDF (US Letter): header with organization, billing
    account, program, period, version and the approval's date in the program's time zone;
    one table per site with every line's explanation; site totals and the statement total.
    ``compress=False`` leaves the page streams readable (tests look for the total in them).

    The same bytes every time for a locked run: the file names the parties as approved,
    prints nothing that changes with the run's later status (exported, superseded) or
    the server's time zone, and ``invariant`` fixes the PDF's creation date and id."""
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_RIGHT
    from reportlab.lib.pagesizes import LETTER
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import inch
    from reportlab.platypus import (
        KeepTogether,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    run = statement.run
    billed = statement.billed_organization
    styles = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontSize=9, leading=11)
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=10, textColor=colors.grey)
    right = ParagraphStyle("right", parent=body, alignment=TA_RIGHT)

    def para(text: object, style: ParagraphStyle = body) -> Paragraph:
        from xml.sax.saxutils import escape

        return Paragraph(escape(_pdf_text(text)), style)

    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=LETTER,
        leftMargin=0.7 * inch,
        rightMargin=0.7 * inch,
        topMargin=0.7 * inch,
        bottomMargin=0.7 * inch,
        title=_pdf_text(
            f"Settlement statement {billed.legal_name} {statement.program_name} "
            f"{run.period_start:%Y-%m}–{run.period_end:%Y-%m} v{run.version}"
        ),
        author="dr_platform",
        pageCompression=1 if compress else 0,
        invariant=1,
    )
    story: list = [
        para("Demand response settlement statement", styles["Title"]),
        Spacer(1, 4),
    ]
    version = f"{run.version}"
    if run.restates_id:
        version += f" (restates version {run.restates.version}; lines are differences)"
    facts = [
        ("Organization", billed.legal_name),
        ("Billing account", billed.billing_account_number),
        ("Program", statement.program_name),
        ("Period", f"{run.period_start:%Y-%m-%d} to {run.period_end:%Y-%m-%d}"),
        ("Version", version),
    ]
    # Nothing that moves once the run is approved: not its status (exported, superseded
    # later), not a date in the server's zone.
    if run.approved_at:
        approved_on = timezone.localtime(run.approved_at, run.program.zone)
        facts.append(("Approved on", f"{approved_on:%Y-%m-%d}"))
    header = Table(
        [[para(label, small), para(value)] for label, value in facts],
        colWidths=[1.3 * inch, 5.6 * inch],
        hAlign="LEFT",
    )
    header.setStyle(
        TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 1)])
    )
    story += [header, Spacer(1, 10)]

    widths = [0.35 * inch, 1.35 * inch, 1.9 * inch, 0.9 * inch, 0.8 * inch, 0.8 * inch, 0.9 * inch]
    for group in statement.groups:
        site = group.billed_site
        if site:
            title = f"{site.name} · service account {site.service_account_number}"
        else:
            title = "Organization-wide lines"
        rows: list[list] = [
            [para("#", small), para("Kind", small), para("Event", small),
             para("Quantity", small), para("Unit", small), para("Rate", small),
             para("Amount", small)]
        ]  # fmt: skip
        style = [
            ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("ALIGN", (3, 0), (-1, -1), "RIGHT"),
        ]
        for item in group.lines:
            line = item.line
            rows.append(
                [
                    para(line.sequence),
                    para(line.get_kind_display()),
                    para(item.event_label or "—"),
                    para(_plain(line.quantity), right),
                    para(line.unit),
                    para(rate_text(line.rate), right),
                    para(dollars(line.amount), right),
                ]
            )
            explanation = line.explanation
            if item.performance:
                summary = item.performance
                measured = [f"Baseline {summary.method}"]
                if summary.selected_days:
                    measured.append(f"{len(summary.selected_days)} days selected")
                measured.append(f"adjustment {summary.adjustment}")
                if summary.average_reduction_kw is not None:
                    measured.append(f"average reduction {summary.average_reduction_kw:,.3f} kW")
                if summary.performance_ratio is not None:
                    measured.append(f"performance ratio {summary.performance_ratio:.3f}")
                explanation += "\n" + "; ".join(measured)
            rows.append(["", para(explanation, small), "", "", "", "", ""])
            index = len(rows) - 1
            style += [
                ("SPAN", (1, index), (-1, index)),
                ("LINEBELOW", (0, index), (-1, index), 0.25, colors.lightgrey),
            ]
        rows.append(
            [
                "",
                para(f"Total for {site.name if site else 'the organization'}"),
                "",
                "",
                "",
                "",
                para(dollars(group.total), right),
            ]
        )
        style += [("SPAN", (1, len(rows) - 1), (-2, len(rows) - 1))]
        table = Table(rows, colWidths=widths, repeatRows=1, hAlign="LEFT")
        table.setStyle(TableStyle(style))
        story += [KeepTogether([para(title, styles["Heading3"])]), table, Spacer(1, 8)]

    total = Table(
        [
            [
                para("Statement total", styles["Heading3"]),
                para(
                    dollars(statement.total),
                    ParagraphStyle("total", parent=styles["Heading3"], alignment=TA_RIGHT),
                ),
            ]
        ],
        colWidths=[5.1 * inch, 1.9 * inch],
        hAlign="LEFT",
    )
    total.setStyle(TableStyle([("LINEABOVE", (0, 0), (-1, 0), 1, colors.black)]))
    story += [
        total,
        para(
            f"{statement.line_count} line{'s' if statement.line_count != 1 else ''}. Amounts in "
            f"{CURRENCY}; positive amounts are paid to you, negative amounts are charges. "
            "Each line's explanation shows how it was computed; you can dispute a line from "
            "the statement page in the portal.",
            small,
        ),
    ]
    document.build(story)
    return buffer.getvalue()
