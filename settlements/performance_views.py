"""Event performance and baseline accuracy pages.

Portal (participants, their own organization's sites only; 404 for anything else): the
organization's past events with their performance, and one participation's performance
page. Console (staff holding ``settlements.view_eventperformance``): completed events, an
event's summary with totals and a recompute button (``settlements.change_eventperformance``:
program managers), any participation's performance page, and the baseline accuracy pages.

Views validate input, read through the access helpers and render; computation happens in
``settlements.performance`` (stored performances) and ``settlements.baselines`` (accuracy,
computed on request and bounded per page).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Max, Prefetch, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from dr_platform.selectors import get_for_member
from dr_platform.views import staff_required
from enrollment.models import Enrollment, Meter, Organization, Program
from events.models import Event, Participation
from settlements.baselines import (
    ACCURACY_FLAG_THRESHOLD,
    PRESETS,
    AccuracyResult,
    BaselineSpec,
    Recommendation,
    compare_presets,
    nerc_holidays,
    recommend,
    spec_from_preset,
)
from settlements.charts import Series, load_chart
from settlements.models import EventPerformance, MeterReading
from settlements.performance import (
    adjustment_text,
    event_method,
    is_weekend_or_holiday,
    site_readings,
)

VIEW_PERMISSION = "settlements.view_eventperformance"
RECOMPUTE_PERMISSION = "settlements.change_eventperformance"
PAGE_SIZE = 50
#: Accuracy back-testing: readings looked at per site, days tested per preset, and how many
#: sites one program page computes (each site runs every preset: about a second).
ACCURACY_DAYS = 60
ACCURACY_TEST_DAYS = 20
ACCURACY_PAGE_SIZE = 20
ACCURACY_SECONDS_PER_SITE = 0.7
#: Enrollment statuses whose sites are on the program's accuracy table.
ENROLLED = (Enrollment.Status.APPROVED, Enrollment.Status.ACTIVE, Enrollment.Status.SUSPENDED)

ACTUAL_COLOUR = "#b3261e"
BASELINE_COLOUR = "#0b5cad"
UNADJUSTED_COLOUR = "#5b6575"


def _require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied("Your staff role does not allow this.")


def _current_performances() -> Prefetch:
    return Prefetch(
        "performances",
        queryset=EventPerformance.objects.filter(is_current=True),
        to_attr="current_performances",
    )


def _with_current(participations: Iterable[Participation]) -> list[Participation]:
    rows = list(participations)
    for participation in rows:
        found = participation.current_performances
        participation.performance = found[0] if found else None
    return rows


# --- one participation's performance ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class IntervalRow:
    """One event interval as the page shows it (kW; ``reduction_kw`` = baseline - actual)."""

    starts_at: dt.datetime
    baseline_kw: float
    unadjusted_kw: float
    actual_kw: float | None
    reduction_kw: float | None


@dataclasses.dataclass(frozen=True)
class SelectedDay:
    """A selected baseline day and its event-window mean kW from the readings stored now
    (None when the day has no reading in the window)."""

    date: dt.date
    mean_kw: float | None
    intervals: int


def _parse(moment: str) -> dt.datetime:
    return dt.datetime.fromisoformat(moment)


def _adjustment_window(
    performance: EventPerformance, event: Event
) -> tuple[dt.datetime, dt.datetime] | None:
    """The adjustment window the method read: ``adjustment_hours`` long, ending
    ``adjustment_gap_hours`` before the event start (real elapsed time, like the engine)."""
    parameters = performance.parameters or {}
    hours = float(parameters.get("adjustment_hours") or 0)
    if parameters.get("adjustment", "none") == "none" or hours <= 0:
        return None
    end = event.starts_at - dt.timedelta(hours=float(parameters.get("adjustment_gap_hours") or 0))
    return end - dt.timedelta(hours=hours), end


def _selected_days(
    performance: EventPerformance, participation: Participation, zone: ZoneInfo
) -> list[SelectedDay]:
    """Each selected day's mean kW over the event's wall-clock window: one readings query."""
    days = [dt.date.fromisoformat(day) for day in performance.selected_days]
    if not days:
        return []
    event = participation.event
    site_id = participation.enrollment.site_id
    meters = list(Meter.objects.filter(site_id=site_id).values_list("pk", flat=True))
    local_start = timezone.localtime(event.starts_at, zone)
    local_end = timezone.localtime(event.ends_at, zone)
    span = local_end.date() - local_start.date()
    windows = {
        day: (
            dt.datetime.combine(day, local_start.time(), zone).astimezone(dt.UTC),
            dt.datetime.combine(day + span, local_end.time(), zone).astimezone(dt.UTC),
        )
        for day in days
    }
    first = min(start for start, _ in windows.values())
    last = max(end for _, end in windows.values())
    frame = site_readings({site_id: meters}, first, last)
    stamps = pd.DatetimeIndex(frame["interval_start"]) if len(frame) else pd.DatetimeIndex([])
    kwh = frame["kwh"].to_numpy(dtype=float) if len(frame) else []
    per_hour = 60 / (performance.interval_minutes or 15)
    result = []
    for day in days:
        start, end = windows[day]
        inside = (stamps >= pd.Timestamp(start)) & (stamps < pd.Timestamp(end))
        values = kwh[inside] if len(frame) else []
        mean = float(values.mean()) * per_hour if len(values) else None
        result.append(SelectedDay(date=day, mean_kw=mean, intervals=len(values)))
    return result


def performance_chart(
    performance: EventPerformance,
    participation: Participation,
    zone: ZoneInfo,
    *,
    site_name: str | None = None,
):
    """The event day's baseline and actual load as an accessible SVG chart (pages, statements).

    ``site_name`` names the site in the title and description (a statement passes the name
    its run billed); by default the site's current name."""
    event = participation.event
    day = timezone.localtime(event.starts_at, zone).date()
    day_start = dt.datetime.combine(day, dt.time(), zone)
    day_end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
    start = min(day_start, event.starts_at)
    end = max(day_end, event.ends_at)
    series = [
        Series(
            label="Actual",
            points=[(_parse(at), kw) for at, kw in performance.day_actual],
            colour=ACTUAL_COLOUR,
            key="actual",
        )
    ]
    if performance.intervals:
        series.append(
            Series(
                label="Baseline",
                points=[(_parse(row[0]), row[1]) for row in performance.intervals],
                colour=BASELINE_COLOUR,
                key="baseline",
            )
        )
        series.append(
            Series(
                label="Unadjusted baseline",
                points=[(_parse(row[0]), row[2]) for row in performance.intervals],
                colour=UNADJUSTED_COLOUR,
                dash="4 3",
                key="unadjusted",
            )
        )
    adjustment = _adjustment_window(performance, event)
    site = participation.enrollment.site.name if site_name is None else site_name
    description = [
        f"Load of {site} on {day:%A %d %B %Y} in kW, by local time ({zone.key}).",
        f"The event ran {timezone.localtime(event.starts_at, zone):%H:%M} to "
        f"{timezone.localtime(event.ends_at, zone):%H:%M} (shaded).",
    ]
    if adjustment:
        description.append(
            f"The adjustment window, {timezone.localtime(adjustment[0], zone):%H:%M} to "
            f"{timezone.localtime(adjustment[1], zone):%H:%M}, is marked."
        )
    if performance.average_reduction_kw is not None and performance.intervals:
        baseline_mean = sum(row[1] for row in performance.intervals) / len(performance.intervals)
        description.append(
            f"Over the event the baseline averages {baseline_mean:.1f} kW and the load was "
            f"{performance.average_reduction_kw:.1f} kW below it on average."
        )
    description.append("The table below the chart lists the same values.")
    return load_chart(
        series=series,
        start=start,
        end=end,
        zone=zone,
        title=f"Baseline and actual load, {site}, {day:%Y-%m-%d}",
        description=" ".join(description),
        event_window=(event.starts_at, event.ends_at),
        adjustment_window=adjustment,
        chart_id=f"performance-{performance.pk}",
    )


def _weekend_or_holiday_event(event: Event, zone: ZoneInfo) -> str | None:
    """The kind of day of an event that starts on a Saturday, a Sunday or a NERC holiday
    (the program's local day, as for its weekend and holiday method): "Saturday",
    "Sunday" or "holiday"; None for any other day."""
    day = timezone.localtime(event.starts_at, zone).date()
    if not is_weekend_or_holiday(day):
        return None
    return f"{day:%A}" if day.weekday() >= 5 else "holiday"


def _performance_context(request: HttpRequest, participation: Participation) -> dict:
    """Everything the performance page shows for ``participation`` (the version asked for
    with ``?version=N``, else the current one)."""
    versions = list(
        participation.performances.only(
            "pk", "version", "is_current", "status", "computed_at", "average_reduction_kw",
            "performance_ratio", "participation_id",
        ).order_by("-version")
    )  # fmt: skip
    wanted = request.GET.get("version")
    chosen = next((row for row in versions if row.is_current), None)
    if wanted:
        chosen = next((row for row in versions if str(row.version) == wanted), None)
        if chosen is None:
            raise Http404("No such version.")
    context: dict = {
        "participation": participation,
        "event": participation.event,
        "program": participation.event.program,
        "site": participation.enrollment.site,
        "versions": versions,
        "performance": None,
        "event_day_kind": _weekend_or_holiday_event(
            participation.event, ZoneInfo(participation.event.program.time_zone)
        ),
    }
    if chosen is None:
        return context
    performance = EventPerformance.objects.get(pk=chosen.pk)
    zone = ZoneInfo(participation.event.program.time_zone)
    rows = [
        IntervalRow(
            starts_at=_parse(at).astimezone(zone),
            baseline_kw=baseline,
            unadjusted_kw=unadjusted,
            actual_kw=actual,
            reduction_kw=None if actual is None else baseline - actual,
        )
        for at, baseline, unadjusted, actual in performance.intervals
    ]
    baseline_at = {row[0]: row[1] for row in performance.intervals}
    day_rows = [
        (_parse(at).astimezone(zone), kw, baseline_at.get(at)) for at, kw in performance.day_actual
    ]
    adjustment = _adjustment_window(performance, participation.event)
    context.update(
        performance=performance,
        zone=zone,
        chart=performance_chart(performance, participation, zone)
        if performance.day_actual
        else None,
        interval_rows=rows,
        day_rows=day_rows,
        adjustment_text=adjustment_text(performance),
        adjustment_window=(
            tuple(moment.astimezone(zone) for moment in adjustment) if adjustment else None
        ),
        parameters=sorted((performance.parameters or {}).items()),
        selected_days=(
            _selected_days(performance, participation, zone)
            if performance.status == EventPerformance.Status.COMPUTED
            else []
        ),
        ratio_percent=(
            performance.performance_ratio * 100
            if performance.performance_ratio is not None
            else None
        ),
    )
    return context


def _participation_queryset():
    return Participation.objects.select_related(
        "event", "event__program", "enrollment", "enrollment__site",
        "enrollment__site__organization",
    )  # fmt: skip


@login_required
@require_GET
def portal_performance(
    request: HttpRequest, organization_id: int, participation_id: int
) -> HttpResponse:
    """One of the organization's participations: chart, numbers, flags, versions.

    404 unless the user is a member of the organization and the participation is of one
    of its sites.
    """
    organization = get_for_member(
        Organization.objects.all(), request.user, path="", pk=organization_id
    )
    participation = get_object_or_404(
        _participation_queryset(),
        pk=participation_id,
        enrollment__site__organization=organization,
        event__status=Event.Status.COMPLETED,
    )
    context = _performance_context(request, participation)
    context["organization"] = organization
    return render(request, "portal/performance/performance.html", context)


@login_required
@require_GET
def portal_performance_list(request: HttpRequest, organization_id: int) -> HttpResponse:
    """The organization's completed events, one row per site taking part, newest first."""
    organization = get_for_member(
        Organization.objects.all(), request.user, path="", pk=organization_id
    )
    participations = (
        _participation_queryset()
        .filter(
            enrollment__site__organization=organization,
            event__status=Event.Status.COMPLETED,
            removed_at=None,
        )
        .prefetch_related(_current_performances())
        .order_by("-event__starts_at", "enrollment__site__name")
    )
    page = Paginator(participations, PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = _with_current(page.object_list)
    return render(
        request,
        "portal/performance/list.html",
        {"organization": organization, "page_obj": page},
    )


@staff_required
@require_GET
def console_performance(request: HttpRequest, participation_id: int) -> HttpResponse:
    """Any participation's performance page, for staff who may view performance."""
    _require(request, VIEW_PERMISSION)
    participation = get_object_or_404(_participation_queryset(), pk=participation_id)
    context = _performance_context(request, participation)
    context["may_recompute"] = request.user.has_perm(RECOMPUTE_PERMISSION)
    return render(request, "console/performance/performance.html", context)


# --- events ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EventTotals:
    """An event's totals. ``measured_*`` cover the participations with a computed average
    reduction; the ratio is their reduction over their commitment (None without any)."""

    participations: int
    committed_kw: Decimal
    measured: int
    measured_committed_kw: Decimal
    reduction_kw: float
    reduction_kwh: float
    ratio: float | None
    insufficient: int
    not_computed: int
    flagged: int


def event_totals(participations: Iterable[Participation]) -> EventTotals:
    """Totals of participations that carry ``performance`` (the current one or None)."""
    rows = list(participations)
    measured = [
        p
        for p in rows
        if p.performance is not None and p.performance.average_reduction_kw is not None
    ]
    measured_committed = sum((p.committed_kw for p in measured), Decimal("0"))
    reduction = sum(p.performance.average_reduction_kw for p in measured)
    return EventTotals(
        participations=len(rows),
        committed_kw=sum((p.committed_kw for p in rows), Decimal("0")),
        measured=len(measured),
        measured_committed_kw=measured_committed,
        reduction_kw=float(reduction),
        reduction_kwh=float(sum(p.performance.reduction_kwh or 0 for p in measured)),
        ratio=float(reduction) / float(measured_committed) if measured_committed > 0 else None,
        insufficient=sum(
            1
            for p in rows
            if p.performance is not None
            and p.performance.status == EventPerformance.Status.INSUFFICIENT_DATA
        ),
        not_computed=sum(1 for p in rows if p.performance is None),
        flagged=sum(1 for p in rows if p.performance is not None and p.performance.flags),
    )


@staff_required
@require_GET
def console_event_list(request: HttpRequest) -> HttpResponse:
    """Completed events, newest first, with how many participations have performance."""
    _require(request, VIEW_PERMISSION)
    events = (
        Event.objects.filter(status=Event.Status.COMPLETED)
        .select_related("program")
        .annotate(
            participation_count=Count(
                "participations", filter=Q(participations__removed_at=None), distinct=True
            ),
            computed_count=Count(
                "participations__performances",
                filter=Q(
                    participations__removed_at=None,
                    participations__performances__is_current=True,
                    participations__performances__status=EventPerformance.Status.COMPUTED,
                ),
                distinct=True,
            ),
            last_computed=Max("participations__performances__computed_at"),
        )
        .order_by("-starts_at", "-pk")
    )
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "console/performance/event_list.html", {"page_obj": page})


@staff_required
@require_GET
def console_event_summary(request: HttpRequest, event_id: int) -> HttpResponse:
    """One event: each participation's committed kW, average reduction, ratio, status and
    flags, and the totals (kW reduced against committed)."""
    _require(request, VIEW_PERMISSION)
    event = get_object_or_404(Event.objects.select_related("program"), pk=event_id)
    zone = ZoneInfo(event.program.time_zone)
    participations = _with_current(
        _participation_queryset()
        .filter(event=event, removed_at=None)
        .prefetch_related(_current_performances())
        .order_by("enrollment__site__organization__legal_name", "enrollment__site__name")
    )
    return render(
        request,
        "console/performance/event_summary.html",
        {
            "event": event,
            "zone": zone,
            "method": event_method(event),
            "event_day_kind": _weekend_or_holiday_event(event, zone),
            "participations": participations,
            "totals": event_totals(participations),
            "may_recompute": request.user.has_perm(RECOMPUTE_PERMISSION),
            "is_completed": event.status == Event.Status.COMPLETED,
        },
    )


@staff_required
@require_POST
def console_event_recompute(request: HttpRequest, event_id: int) -> HttpResponse:
    """Queue the event's performance computation (program managers); unchanged inputs write
    nothing new, so pressing twice is harmless."""
    _require(request, RECOMPUTE_PERMISSION)
    event = get_object_or_404(Event, pk=event_id)
    if event.status != Event.Status.COMPLETED:
        messages.error(request, "Performance is computed for completed events only.")
    else:
        from settlements.tasks import performance_compute_event_task

        performance_compute_event_task.delay_on_commit(event.pk)
        messages.info(
            request,
            f"Event {event.pk}'s performance is being computed; reload this page in a moment.",
        )
    return redirect("console:performance_event", event_id=event.pk)


# --- baseline accuracy -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PresetAccuracy:
    """One method's back-test on a site, and whether it suits the program's event days."""

    name: str
    result: AccuracyResult
    applies: bool
    is_current: bool

    @property
    def above_threshold(self) -> bool:
        return self.relative_rmse is not None and self.relative_rmse > ACCURACY_FLAG_THRESHOLD

    # The result's figures with None for NaN (no day could be tested), for the templates.
    @property
    def relative_rmse(self) -> float | None:
        return _finite(self.result.relative_rmse)

    @property
    def relative_bias(self) -> float | None:
        return _finite(self.result.relative_bias)

    @property
    def rmse_kw(self) -> float | None:
        return _finite(self.result.rmse_kw)

    @property
    def bias_kw(self) -> float | None:
        return _finite(self.result.bias_kw)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclasses.dataclass(frozen=True)
class SiteAccuracy:
    """A site's accuracy figures: every method (most accurate first), the recommendation
    among the methods that suit the program's event days, and the readings used."""

    site_id: int
    presets: list[PresetAccuracy]
    recommendation: Recommendation
    current: PresetAccuracy | None
    first_reading: dt.datetime | None
    last_reading: dt.datetime | None
    excluded_dates: list[dt.date]


def _methods(program: Program) -> tuple[dict[str, BaselineSpec], str]:
    """Every preset, plus the program's own method when its overrides change its preset;
    returns them and the name of the program's method among them.

    The program's method here is its main (weekday) method only: its weekend and holiday
    method is back-tested as the preset it names (on weekend days and holidays, like every
    weekend method) but not marked as the program's, and its weekend overrides are not
    back-tested.
    """
    methods = dict(PRESETS)
    spec = spec_from_preset(program.baseline_preset, program.baseline_overrides)
    name = program.baseline_preset
    if spec != PRESETS[name]:
        name = f"{name} (program overrides)"
        methods[name] = spec
    return methods, name


def _applies(spec: BaselineSpec, program: Program) -> bool:
    """A weekday method suits a program whose events may fall on weekdays, a weekend method
    one whose events may fall on weekends; "same" and "any" suit every program."""
    weekdays = set(program.allowed_weekdays or [])
    if spec.day_type == "weekday":
        return bool(weekdays & {0, 1, 2, 3, 4})
    if spec.day_type == "weekend":
        return bool(weekdays & {5, 6})
    return True


def sites_accuracy(program: Program, site_ids: list[int]) -> dict[int, SiteAccuracy]:
    """Back-test every method on each site's last ``ACCURACY_DAYS`` days of readings.

    The event window is the program's (``event_window_start`` to ``event_window_end``,
    local); the site's event days are excluded and NERC holidays are holidays, as when
    performance is computed. Three queries (meters, last readings,
    readings) plus one for event days, whatever the number of sites; the work is about
    ``ACCURACY_SECONDS_PER_SITE`` per site, so callers bound ``site_ids``.
    """
    zone = ZoneInfo(program.time_zone)
    methods, current_name = _methods(program)
    site_meters: dict[int, list[int]] = defaultdict(list)
    for meter_id, site_id in Meter.objects.filter(site_id__in=site_ids).values_list(
        "pk", "site_id"
    ):
        site_meters[site_id].append(meter_id)
    meter_site = {meter: site for site, meters in site_meters.items() for meter in meters}
    last_by_site: dict[int, dt.datetime] = {}
    for meter_id, last in (
        MeterReading.objects.filter(meter_id__in=list(meter_site))
        .values("meter_id")
        .annotate(last=Max("interval_start"))
        .values_list("meter_id", "last")
    ):
        site = meter_site[meter_id]
        last_by_site[site] = max(last, last_by_site.get(site, last))
    frame = pd.DataFrame({"site": [], "interval_start": [], "kwh": []})
    holidays: tuple[dt.date, ...] = ()
    if last_by_site:
        end = max(last_by_site.values()) + dt.timedelta(seconds=1)
        start = min(last_by_site.values()) - dt.timedelta(days=ACCURACY_DAYS)
        frame = site_readings({site: site_meters[site] for site in last_by_site}, start, end)
        # A year either side: local dates near New Year differ from UTC ones.
        holidays = nerc_holidays(start.year - 1, end.year + 1)
    by_site = {site: part for site, part in frame.groupby("site", sort=False)} if len(frame) else {}
    event_days: dict[int, set[dt.date]] = defaultdict(set)
    for site_id, starts_at in Participation.objects.filter(
        enrollment__site_id__in=site_ids,
        removed_at=None,
        event__status__in=Event.COUNTED_STATUSES,
    ).values_list("enrollment__site_id", "event__starts_at"):
        event_days[site_id].add(timezone.localtime(starts_at, zone).date())
    window = (program.event_window_start, program.event_window_end)
    results = {}
    for site_id in site_ids:
        part = by_site.get(site_id)
        if part is not None and site_id in last_by_site:
            since = pd.Timestamp(last_by_site[site_id] - dt.timedelta(days=ACCURACY_DAYS))
            part = part[part["interval_start"] >= since]
        readings = (
            part.set_index("interval_start")["kwh"].astype(float)
            if part is not None and len(part)
            else pd.Series([], dtype=float, index=pd.DatetimeIndex([], tz="UTC"))
        )
        excluded = sorted(event_days.get(site_id, ()))
        ranked = (
            compare_presets(
                readings, methods, tz=program.time_zone, event_window=window,
                test_days=ACCURACY_TEST_DAYS, excluded_dates=excluded, holidays=holidays,
            )
            if len(readings) >= 2
            else []
        )  # fmt: skip
        presets = [
            PresetAccuracy(
                name=name,
                result=result,
                applies=_applies(result.spec, program),
                is_current=name == current_name,
            )
            for name, result in ranked
        ]
        results[site_id] = SiteAccuracy(
            site_id=site_id,
            presets=presets,
            recommendation=recommend([(p.name, p.result) for p in presets if p.applies]),
            current=next((p for p in presets if p.is_current), None),
            first_reading=readings.index[0].to_pydatetime() if len(readings) else None,
            last_reading=readings.index[-1].to_pydatetime() if len(readings) else None,
            excluded_dates=excluded,
        )
    return results


def _enrolled(program: Program):
    return (
        Enrollment.objects.filter(program=program, status__in=ENROLLED)
        .select_related("site", "site__organization")
        .order_by("site__organization__legal_name", "site__name", "pk")
    )


@staff_required
@require_GET
def console_accuracy(request: HttpRequest) -> HttpResponse:
    """Choose a program; its enrolled sites with their current method's relative RMSE, the
    recommended preset and the flag, computed on request for one page of sites at a time."""
    _require(request, VIEW_PERMISSION)
    programs = list(Program.objects.order_by("name"))
    program = None
    if request.GET.get("program"):
        try:
            program = next(p for p in programs if p.pk == int(request.GET["program"]))
        except (StopIteration, ValueError):
            program = None
    context: dict = {
        "programs": programs,
        "program": program,
        "threshold": ACCURACY_FLAG_THRESHOLD,
    }
    if program is not None:
        page = Paginator(_enrolled(program), ACCURACY_PAGE_SIZE).get_page(request.GET.get("page"))
        enrollments = list(page.object_list)
        context.update(
            page_obj=page,
            enrollments=enrollments,
            estimate_seconds=max(1, math.ceil(len(enrollments) * ACCURACY_SECONDS_PER_SITE)),
            run=request.GET.get("run") == "1",
            current_method=_methods(program)[1],
        )
        if context["run"] and enrollments:
            started = time.perf_counter()
            accuracy = sites_accuracy(program, [e.site_id for e in enrollments])
            for enrollment in enrollments:
                enrollment.accuracy = accuracy[enrollment.site_id]
            context["elapsed_seconds"] = time.perf_counter() - started
    return render(request, "console/performance/accuracy.html", context)


@staff_required
@require_GET
def console_site_accuracy(request: HttpRequest, enrollment_id: int) -> HttpResponse:
    """One enrolled site: every preset's relative RMSE and bias on its recent days, most
    accurate first, the recommendation and the flag."""
    _require(request, VIEW_PERMISSION)
    enrollment = get_object_or_404(
        Enrollment.objects.select_related("site", "site__organization", "program"),
        pk=enrollment_id,
    )
    program = enrollment.program
    started = time.perf_counter()
    accuracy = sites_accuracy(program, [enrollment.site_id])[enrollment.site_id]
    return render(
        request,
        "console/performance/site_accuracy.html",
        {
            "enrollment": enrollment,
            "program": program,
            "site": enrollment.site,
            "accuracy": accuracy,
            "threshold": ACCURACY_FLAG_THRESHOLD,
            "test_days": ACCURACY_TEST_DAYS,
            "days": ACCURACY_DAYS,
            "elapsed_seconds": time.perf_counter() - started,
            "zone": ZoneInfo(program.time_zone),
        },
    )
