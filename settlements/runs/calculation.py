"""A run's lines computed from the database: its inputs read in bulk, then the calculator.

One query per kind of input, whatever the number of sites: events, participations with
their current performances (one joined query), enrollments, nominations, installments,
disputes. Everything else happens in Python with ``settlements.payments`` (which rounds
amounts, at the line only).

Choices (documented for the statements pages built on top):

- Events: the program's *completed* events whose start falls in the period (local days
  of the program's zone), and their participations not removed by a modification.
- Committed kW of an event: the nomination in effect at the event's start (the rule of
  ``enrollment.selectors.committed_kw_at``, read for all enrollments at once), else the
  participation's own committed kW.
- Committed kW of the capacity payment: per month of the period, the nominations
  time-weighted over the part of the month inside the period and inside the enrollment
  (from ``active_from`` to ``ended_at``); the site's ``SitePeriod.committed_kw`` is the
  mean over the months, so committed × months is the sum of the monthly weights.
  Enrollments in the statuses active, suspended, withdrawn and terminated count.
- A participation without a usable current performance (none computed yet, or
  insufficient data) is left out of the lines and listed in the run's notes; a
  restatement picks it up once its performance exists. An opt-out or a test event that
  the rules do not measure anyway (excluded, or opt-outs counted as 0 kW) needs no
  performance.
- Enablement installments and clawbacks due in the period (``payable_installments``):
  one line each, reference ``installment:<id>``.
- Accepted disputes of the program's lines with an adjustment amount, not carried yet
  (or carried by an approved earlier version of this period, so a restatement keeps
  them): one adjustment line each, reference ``dispute:<id>``.
- Excess energy (rules with an ``excess_energy_rate``): per measured participation, the
  kWh of the actual load above the enrollment's firm service level in the performance's
  intervals (:func:`excess_above`). The level is the one in effect at the event's start
  (the rule of ``enrollment.selectors.firm_service_level_at``, read for all enrollments
  at once), so a restatement calculated after a later change keeps each event's level. A
  participation without a level in effect then gets no excess line, and its enrollment is
  named in the notes with those events. Rules without an excess rate read neither
  intervals nor firm levels for it.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import NamedTuple

from django.db.models import FilteredRelation, Q, TextField
from django.db.models.functions import Cast

from enrollment.models import EnablementInstallment, Enrollment, Nomination
from enrollment.selectors import payable_installments
from events.models import Event, Participation
from settlements.models import Dispute, EventPerformance, SettlementLine, SettlementRun
from settlements.payments import (
    EventOutcome,
    LineItem,
    PaymentRules,
    SitePeriod,
    adjustment_line,
    clawback_line,
    enablement_line,
    settle_sites,
)

#: Enrollment statuses whose commitments are paid for the time they were in effect.
SETTLED_STATUSES = (
    Enrollment.Status.ACTIVE,
    Enrollment.Status.SUSPENDED,
    Enrollment.Status.WITHDRAWN,
    Enrollment.Status.TERMINATED,
)

#: Columns of a current performance (:func:`current_performances`; the settlement benchmark's
#: reference read). A run reads the same measurement joined onto the participations
#: (:data:`PARTICIPATION_COLUMNS`).
PERFORMANCE_COLUMNS = (
    "pk",
    "participation_id",
    "version",
    "status",
    "method",
    "selected_days",
    "adjustment",
    "reduction_kwh",
    "average_reduction_kw",
    "performance_ratio",
    "interval_minutes",
)

#: What a run reads of each participation of its events, and of the participation's current
#: performance (all ``None`` without one), in one query: the participation's enrollment,
#: site and organization, its status and committed kW; the performance's id, version,
#: status, method, selected days (as the jsonb text, see :func:`_days_text`), adjustment,
#: reduction kWh, average kW, ratio and interval minutes (``intervals`` is added for
#: floor_interval and for excess energy).
PARTICIPATION_COLUMNS = (
    "pk",
    "event_id",
    "enrollment_id",
    "enrollment__site_id",
    "enrollment__site__organization_id",
    "status",
    "committed_kw",
    "current_performance__id",
    "current_performance__version",
    "current_performance__status",
    "current_performance__method",
    "selected_days_text",
    "current_performance__adjustment",
    "current_performance__reduction_kwh",
    "current_performance__average_reduction_kw",
    "current_performance__performance_ratio",
    "current_performance__interval_minutes",
)

_NEVER = dt.datetime.min.replace(tzinfo=dt.UTC)
_KIND_ORDER = {kind: index for index, kind in enumerate(SettlementLine.Kind.values)}


class LineSource(NamedTuple):
    """Where a computed line comes from: the rows it points at, and text for its explanation
    (``note``: the measurement behind an event line). A named tuple: a season run makes one
    per line."""

    organization_id: int
    site_id: int | None
    event_id: int | None = None
    event_start: dt.datetime | None = None
    performance_id: int | None = None
    installment_id: int | None = None
    dispute_id: int | None = None
    note: str = ""


def storage_order(line: tuple[LineItem, LineSource]) -> tuple:
    """Sort key of a run's lines: organization, site, kind, event start, reference, event."""
    item, source = line
    return (
        source.organization_id,
        source.site_id or 0,
        _KIND_ORDER[item.kind],
        source.event_start or _NEVER,
        str(item.reference or ""),
        source.event_id or 0,
    )


@dataclasses.dataclass
class Calculation:
    """A run's full lines (before any restatement difference) and what was left out.

    ``lines`` yields each line with its source in storage order (:func:`storage_order`),
    computed as it is consumed (once), so that the first lines can be stored while the
    next ones are computed. ``notes`` is complete before the first line.
    """

    rules: PaymentRules
    lines: Iterator[tuple[LineItem, LineSource]]
    notes: list[str]


def period_bounds(run: SettlementRun) -> tuple[dt.datetime, dt.datetime]:
    """UTC [start, end) of the run's period: local midnights of the program's zone."""
    zone = run.program.zone
    start = dt.datetime.combine(run.period_start, dt.time(), zone)
    end = dt.datetime.combine(run.period_end + dt.timedelta(days=1), dt.time(), zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def period_months(start: dt.date, end: dt.date) -> list[dt.date]:
    """First days of the months from ``start``'s to ``end``'s, inclusive."""
    months, month = [], start.replace(day=1)
    while month <= end:
        months.append(month)
        month = (month + dt.timedelta(days=32)).replace(day=1)
    return months


def completed_events(run: SettlementRun) -> list[tuple[int, str, dt.datetime]]:
    """(id, kind, starts_at) of the program's completed events starting in the period."""
    start, end = period_bounds(run)
    return list(
        Event.objects.filter(
            program_id=run.program_id,
            status=Event.Status.COMPLETED,
            starts_at__gte=start,
            starts_at__lt=end,
        )
        .order_by("starts_at", "pk")
        .values_list("pk", "kind", "starts_at")
    )


def current_performances(event_ids: list[int], *, with_intervals: bool = False) -> list[tuple]:
    """The current ``EventPerformance`` rows of the events' participations, as tuples of
    :data:`PERFORMANCE_COLUMNS` (plus ``intervals`` when asked). One query.

    The settlement benchmark's reference ("merely reading the performance rows"); a run
    reads the same measurement with its participations (:func:`participations_measured`).
    """
    columns = (*PERFORMANCE_COLUMNS, "intervals") if with_intervals else PERFORMANCE_COLUMNS
    return list(
        EventPerformance.objects.filter(
            participation__event_id__in=event_ids, is_current=True
        ).values_list(*columns)
    )


def participations_measured(event_ids: list[int], *, with_intervals: bool = False) -> list[tuple]:
    """The events' participations not removed by a modification, each with its current
    performance (``None`` columns without one), as tuples of :data:`PARTICIPATION_COLUMNS`
    (plus ``intervals`` when asked), ordered by event and participation. One query.

    One query, not participations then performances: the rows are read and converted
    once, and the selected days come as the jsonb text (one string, not a list decoded
    from JSON per row).
    """
    columns = (
        (*PARTICIPATION_COLUMNS, "current_performance__intervals")
        if with_intervals
        else PARTICIPATION_COLUMNS
    )
    return list(
        Participation.objects.filter(event_id__in=event_ids, removed_at=None)
        .annotate(
            current_performance=FilteredRelation(
                "performances", condition=Q(performances__is_current=True)
            ),
            selected_days_text=Cast("current_performance__selected_days", TextField()),
        )
        .order_by("event_id", "pk")
        .values_list(*columns)
    )


class _Steps:
    """Effective-dated values per enrollment (each in effect from its start until the
    next one's), added in start order, for "the value at a moment"."""

    def __init__(self) -> None:
        self.steps: dict[int, tuple[list[dt.datetime], list[Decimal | None]]] = {}

    def add(self, enrollment_id: int, effective_from: dt.datetime, value: Decimal | None) -> None:
        starts, values = self.steps.setdefault(enrollment_id, ([], []))
        starts.append(effective_from)
        values.append(value)

    def at(self, enrollment_id: int, moment: dt.datetime) -> Decimal | None:
        """The value in effect at ``moment``: the latest from on or before it; None before
        the first."""
        starts, values = self.steps.get(enrollment_id, ([], []))
        index = bisect.bisect_right(starts, moment)
        return values[index - 1] if index else None


class _Commitments(_Steps):
    """Each enrollment's nomination steps, for "kW at a moment" and time-weighted means."""

    def __init__(self, program_id: int) -> None:
        super().__init__()
        rows = (
            Nomination.objects.filter(
                enrollment__program_id=program_id, enrollment__status__in=SETTLED_STATUSES
            )
            .order_by("enrollment_id", "effective_from", "pk")
            .values_list("enrollment_id", "effective_from", "committed_kw")
        )
        for enrollment_id, effective_from, committed_kw in rows:
            self.add(enrollment_id, effective_from, committed_kw)

    def kw_seconds(self, enrollment_id: int, start: dt.datetime, end: dt.datetime) -> Decimal:
        """Integral of committed kW over [start, end), in kW-seconds."""
        if end <= start:
            return Decimal(0)
        starts, values = self.steps.get(enrollment_id, ([], []))
        total = Decimal(0)
        for index, value in enumerate(values):
            segment_start = max(starts[index], start)
            segment_end = min(starts[index + 1] if index + 1 < len(starts) else end, end)
            if segment_end > segment_start and value:
                total += value * int((segment_end - segment_start).total_seconds())
        return total


class _FirmLevels(_Steps):
    """Each enrollment's firm service level steps, for "the level at a moment" (None also
    after a level that clears it), with its site's name (for the notes). One query for all
    the program's enrollments."""

    def __init__(self, program_id: int) -> None:
        super().__init__()
        self.site_names: dict[int, str] = {}
        # The enrollments joined to their levels (a row with no level for an enrollment
        # without any), so that the notes can name the site without another query.
        levels = "firm_service_levels"
        rows = (
            Enrollment.objects.filter(program_id=program_id)
            .order_by("pk", f"{levels}__effective_from", f"{levels}__pk")
            .values_list("pk", "site__name", f"{levels}__effective_from", f"{levels}__firm_kw")
        )
        for enrollment_id, site_name, effective_from, firm_kw in rows:
            self.site_names[enrollment_id] = site_name
            if effective_from is not None:
                self.add(enrollment_id, effective_from, firm_kw)


#: How many progress reports a calculation makes at most (besides the first, at 0).
PROGRESS_STEPS = 100


def calculate_lines(
    run: SettlementRun,
    rules: PaymentRules,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> Calculation:
    """Every line ``rules`` give the run's program for its period, with their sources.

    The inputs are read here; the lines are computed as ``Calculation.lines`` is consumed,
    in storage order. Lines are not stored here, and not yet differenced for a
    restatement (see ``settlements.runs.services``). Raises ``ValueError`` from the
    calculator (while consuming the lines) for an outcome the rules cannot treat.

    ``on_progress(sites_done, sites_total)``, if given, is called as the lines are
    consumed: once before the first site, then after an organization's sites whenever
    another hundredth of the sites is done, and after the last one; never per line.
    """
    program = run.program
    zone = program.zone
    notes: list[str] = []
    events = completed_events(run)
    event_info = {pk: (kind, starts_at) for pk, kind, starts_at in events}
    needs_intervals = rules.negative_reductions == "floor_interval"
    charges_excess = rules.excess_energy_rate is not None
    # Intervals are read only when the rules need them: most programs settle on totals.
    reads_intervals = needs_intervals or charges_excess
    participations = participations_measured(list(event_info), with_intervals=reads_intervals)
    commitments = _Commitments(program.pk)
    months = period_months(run.period_start, run.period_end)
    site_org: dict[int, int] = {}
    site_kw_months: dict[int, Decimal] = defaultdict(Decimal)
    enrollments = Enrollment.objects.filter(
        program_id=program.pk, status__in=SETTLED_STATUSES
    ).values_list("pk", "site_id", "site__organization_id", "active_from", "ended_at")
    windows = _month_windows(run, months)
    for enrollment_id, site_id, organization_id, active_from, ended_at in enrollments:
        enrolled_from = dt.datetime.combine(active_from, dt.time(), zone) if active_from else _NEVER
        for window_start, window_end in windows:
            seconds = int((window_end - window_start).total_seconds())
            kw_seconds = commitments.kw_seconds(
                enrollment_id,
                max(window_start, enrolled_from),
                min(window_end, ended_at) if ended_at else window_end,
            )
            if kw_seconds:
                site_kw_months[site_id] += kw_seconds / seconds
                site_org[site_id] = organization_id

    outcomes: dict[int, list[EventOutcome]] = defaultdict(list)
    # (site, event) -> the source of its event line: performance id, measurement sentence
    measured: dict[tuple[int, int], LineSource] = {}
    # Excess energy only: each enrollment's firm levels (none read otherwise), the source
    # of each excess line (its own sentence: firm level and intervals above it), and per
    # enrollment the site and the events without a level in effect at their start (for the
    # notes).
    firm_levels = _FirmLevels(program.pk) if charges_excess else None
    excess_measured: dict[tuple[int, int], LineSource] = {}
    without_firm_level: dict[int, tuple[int, list[tuple[dt.date, int]]]] = {}
    # Per event, once: its start, whether it is a test, and its local date.
    event_facts = {
        pk: (starts_at, kind == Event.Kind.TEST, starts_at.astimezone(zone).date())
        for pk, (kind, starts_at) in event_info.items()
    }
    opted_out_status, computed = Participation.Status.OPTED_OUT, EventPerformance.Status.COMPUTED
    test_unmeasured = rules.test_events == "exclude"
    opt_out_unmeasured = rules.opted_out_events != "as_measured"
    committed_at = commitments.at
    for row in participations:
        pk, event_id, enrollment_id, site_id, organization_id, status, committed = row[:7]
        starts_at, is_test, event_date = event_facts[event_id]
        site_org.setdefault(site_id, organization_id)
        committed_kw = committed_at(enrollment_id, starts_at) or committed
        opted_out = status == opted_out_status
        if not committed_kw or committed_kw <= 0:
            notes.append(
                f"Participation {pk} (site {site_id}, event {event_id}): no committed kW at "
                "the event's start; left out."
            )
            continue
        (
            performance_id, version, performance_status, method, days_text, adjustment,
            reduction_kwh, average_kw, ratio, interval_minutes,
        ) = row[7:17]  # fmt: skip
        if performance_status == computed and reduction_kwh is not None and average_kw is not None:
            if reads_intervals:
                intervals = row[17]
                excess_kwh = None
                if firm_levels is not None:
                    firm_kw = firm_levels.at(enrollment_id, starts_at)
                    if firm_kw is None:
                        without_firm_level.setdefault(enrollment_id, (site_id, []))[1].append(
                            (event_date, event_id)
                        )
                    else:
                        excess_kwh, above, with_data = excess_above(
                            intervals, firm_kw, interval_minutes
                        )
                        if not with_data:
                            notes.append(
                                f"Participation {pk} (site {site_id}, event {event_id} on "
                                f"{event_date}): performance v{version} has no interval data; "
                                "no excess energy charge."
                            )
                        excess_measured[(site_id, event_id)] = LineSource(
                            organization_id,
                            site_id,
                            event_id,
                            starts_at,
                            performance_id,
                            note=_excess_text(firm_kw, above, with_data, interval_minutes, version),
                        )
                if needs_intervals:
                    reductions = tuple(
                        None if actual is None else Decimal(repr(baseline)) - Decimal(repr(actual))
                        for _, baseline, _, actual in intervals
                    )
                    outcome = EventOutcome(
                        event_key=event_id,
                        event_date=event_date,
                        committed_kw=committed_kw,
                        is_test=is_test,
                        opted_out=opted_out,
                        reduction_kw=reductions,
                        interval_minutes=interval_minutes,
                        excess_kwh=excess_kwh,
                    )
                else:
                    outcome = EventOutcome(
                        event_key=event_id,
                        event_date=event_date,
                        committed_kw=committed_kw,
                        is_test=is_test,
                        opted_out=opted_out,
                        reduction_kwh=reduction_kwh,
                        average_reduction_kw=average_kw,
                        excess_kwh=excess_kwh,
                    )
            else:
                outcome = EventOutcome.from_totals(
                    event_id,
                    event_date,
                    committed_kw,
                    reduction_kwh,
                    average_kw,
                    is_test=is_test,
                    opted_out=opted_out,
                )
            # The source of the event's line (made here, once): its performance and the
            # measurement sentence.
            measured[(site_id, event_id)] = LineSource(
                organization_id,
                site_id,
                event_id,
                starts_at,
                performance_id,
                None,
                None,
                _performance_text(version, method, days_text, adjustment, ratio),
            )
        elif (is_test and test_unmeasured) or (opted_out and opt_out_unmeasured):
            outcome = EventOutcome(
                event_key=event_id,
                event_date=event_date,
                committed_kw=committed_kw,
                is_test=is_test,
                opted_out=opted_out,
                reduction_kwh=Decimal(0),
                average_reduction_kw=Decimal(0),
            )
        else:
            reason = (
                "no performance computed yet"
                if performance_id is None
                else f"performance v{version} has insufficient data"
            )
            notes.append(
                f"Participation {pk} (site {site_id}, event {event_id} on {event_date}): "
                f"{reason}; left out of this run (a restatement includes it once measured)."
            )
            continue
        outcomes[site_id].append(outcome)
    site_names = firm_levels.site_names if firm_levels is not None else {}
    for enrollment_id, (site_id, unlevelled) in sorted(
        without_firm_level.items(), key=lambda item: (item[1][0], item[0])
    ):
        site_name = site_names.get(enrollment_id, "")
        listed = ", ".join(f"event {event_id} on {day}" for day, event_id in sorted(unlevelled))
        notes.append(
            f"Site {site_id} ({site_name}, enrollment {enrollment_id}): no firm service level "
            f"in effect at the event's start; no excess energy charge ({listed})."
        )

    # Sites settled, by organization; the others named in the notes.
    sites_of: dict[int, list[int]] = defaultdict(list)
    for site_id in sorted(set(site_kw_months) | set(outcomes)):
        if site_kw_months.get(site_id, Decimal(0)) <= 0:
            notes.append(f"Site {site_id}: no committed kW in the period; its events are left out.")
            continue
        sites_of[site_org[site_id]].append(site_id)
    # Installments and carried disputes, by organization.
    others: dict[int, list[tuple[LineItem, LineSource]]] = defaultdict(list)
    for line in (*_installment_lines(run), *_dispute_lines(run)):
        others[line[1].organization_id].append(line)

    organizations = sorted(set(sites_of) | set(others))
    # A site's own lines in storage order: by kind, then event (events are ranked by start
    # and id, the order of ``events``); their organization and site are the same and they
    # have no reference, so this is :func:`storage_order` among them, as one integer.
    event_rank = {pk: rank for rank, (pk, _, _) in enumerate(events, start=1)}
    stride = len(events) + 1

    # Under rules without season or excess lines, and with the events' ids in the order of
    # their starts (as when they are created in turn), a site's lines come from the
    # calculator in storage order already (capacity, then energy per event in id order);
    # only a penalty (a negative factor) moves behind the energy lines.
    in_order = (
        rules.season_rate is None
        and rules.excess_energy_rate is None
        and list(event_rank) == sorted(event_rank)
    )

    def site_order(item: LineItem) -> int:
        return _KIND_ORDER[item.kind] * stride + event_rank.get(item.event_key, 0)  # type: ignore[arg-type]

    def periods() -> Iterator[SitePeriod]:
        month_tuple, month_count = tuple(months), len(months)
        for organization_id in organizations:
            for site_id in sites_of.get(organization_id, ()):
                yield SitePeriod(
                    site_key=site_id,
                    committed_kw=site_kw_months[site_id] / month_count,
                    months=month_tuple,
                    events=tuple(outcomes.get(site_id, ())),
                )

    def lines() -> Iterator[tuple[LineItem, LineSource]]:
        event_start = {pk: starts_at for pk, (_, starts_at) in event_info.items()}
        report = on_progress
        if report is not None:
            sites_total = sum(len(site_ids) for site_ids in sites_of.values())
            sites_done, step = 0, max(1, sites_total // PROGRESS_STEPS)
            next_report = step
            report(0, sites_total)
        # All sites in one batch (settlements.payments.settle_sites), in the order of
        # ``periods``: organization by organization, each one's sites by id.
        settled = settle_sites(periods(), rules)
        for organization_id in organizations:
            found: list[tuple[LineItem, LineSource]] = []
            site_ids = sites_of.get(organization_id, ())
            for site_id in site_ids:
                items = next(settled)
                if not in_order or (items and items[0].kind == "penalty"):
                    items.sort(key=site_order)
                for item in items:
                    event_id = item.event_key
                    if event_id is None:
                        source = LineSource(organization_id, site_id)
                    else:
                        source = measured.get((site_id, event_id))
                        if source is None:  # an opt-out or test event the rules do not measure
                            source = LineSource(
                                organization_id, site_id, event_id, event_start[event_id]
                            )
                    found.append((item, source))
            if excess_measured:
                # An excess line's own source: the same performance, with the firm level and
                # the intervals above it instead of the baseline sentence.
                found = [
                    (item, excess_measured.get((source.site_id, item.event_key), source))  # type: ignore[arg-type]
                    if item.kind == "excess_energy"
                    else (item, source)
                    for item, source in found
                ]
            extra = others.get(organization_id)
            if extra:
                # Installments and carried disputes go among the sites' lines.
                found.extend(extra)
                found.sort(key=storage_order)
            yield from found
            if report is not None and site_ids:
                sites_done += len(site_ids)
                if sites_done >= next_report or sites_done == sites_total:
                    report(sites_done, sites_total)
                    next_report = sites_done + step

    return Calculation(rules=rules, lines=lines(), notes=notes)


def excess_above(
    intervals: list[list], firm_kw: Decimal, interval_minutes: int
) -> tuple[Decimal, int, int]:
    """kWh used above ``firm_kw`` in a performance's ``intervals`` (``[start, baseline kW,
    adjusted kW, actual kW]`` each, actual ``None`` where the meter has no reading), with
    how many intervals were above it and how many had a reading.

    kWh = sum over intervals with a reading of max(actual kW - firm kW, 0) x minutes / 60
    (the sum first, then the one division, as the calculator sums reductions). Floats
    become Decimals by their shortest repr; nothing is rounded.
    """
    total, above, with_data = Decimal(0), 0, 0
    for _, _, _, actual in intervals:
        if actual is None:
            continue
        with_data += 1
        actual_kw = Decimal(repr(actual))
        if actual_kw > firm_kw:
            total += actual_kw - firm_kw
            above += 1
    return total * interval_minutes / 60, above, with_data


def _excess_text(
    firm_kw: Decimal, above: int, with_data: int, interval_minutes: int, version: int
) -> str:
    """The sentence after an excess line's formula: the firm level, and how many of the
    event's intervals went above it (so the kWh can be summed by hand from the event's
    performance)."""
    noun = "interval" if with_data == 1 else "intervals"
    return (
        f"Firm service level {firm_kw:,.3f} kW: actual load above it in {above} of "
        f"{with_data} {noun} of {interval_minutes} min (performance v{version})."
    )


def _installment_lines(run: SettlementRun) -> list[tuple[LineItem, LineSource]]:
    """A line for each enablement installment or clawback of the program due in the period."""
    lines = []
    for installment in payable_installments(
        start=run.period_start, end=run.period_end, program_id=run.program_id
    ):
        site = installment.project.site
        reference = f"installment:{installment.pk}"
        text = (
            f"Enablement project {installment.project_id} "
            f"({installment.project.description[:60]}), "
            f"{installment.get_kind_display().lower()} {installment.sequence} due "
            f"{installment.due_date}"
            + (f": {installment.explanation}" if installment.explanation else "")
        )
        builder = (
            clawback_line
            if installment.kind == EnablementInstallment.Kind.CLAWBACK or installment.amount < 0
            else enablement_line
        )
        item = builder(
            site_key=site.pk, amount=installment.amount, explanation=text, reference=reference
        )
        source = LineSource(
            organization_id=site.organization_id, site_id=site.pk, installment_id=installment.pk
        )
        lines.append((item, source))
    return lines


def _dispute_lines(run: SettlementRun) -> list[tuple[LineItem, LineSource]]:
    """An adjustment line for each accepted dispute the run carries."""
    lines = []
    for dispute in _disputes_to_carry(run):
        line = dispute.line
        item = adjustment_line(
            site_key=line.site_id,
            event_key=line.event_id,
            amount=dispute.adjustment_amount,
            reference=f"dispute:{dispute.pk}",
            explanation=(
                f"Accepted dispute {dispute.pk} of line {line.pk} ({line.get_kind_display()}, "
                f"run {line.run_id} v{line.run.version})"
                + (f": {dispute.decision_reason}" if dispute.decision_reason else "")
            ),
        )
        source = LineSource(
            organization_id=dispute.organization_id,
            site_id=line.site_id,
            event_id=line.event_id,
            event_start=line.event.starts_at if line.event_id else None,
            dispute_id=dispute.pk,
        )
        lines.append((item, source))
    return lines


def _month_windows(
    run: SettlementRun, months: list[dt.date]
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Per month, the UTC [start, end) of the part of it inside the period."""
    zone = run.program.zone
    windows = []
    for month in months:
        next_month = (month + dt.timedelta(days=32)).replace(day=1)
        first = max(month, run.period_start)
        last = min(next_month, run.period_end + dt.timedelta(days=1))
        windows.append(
            (
                dt.datetime.combine(first, dt.time(), zone).astimezone(dt.UTC),
                dt.datetime.combine(last, dt.time(), zone).astimezone(dt.UTC),
            )
        )
    return windows


def _performance_text(
    version: int,
    method: str,
    days_text: str | None,
    adjustment: float | None,
    ratio: float | None,
) -> str:
    """The measurement sentence of an event line, from its performance row (the line points
    at that row for the rest: its parameters, intervals and chart)."""
    adjustment_text = "none" if adjustment is None else f"{adjustment:.3f}"
    ratio_text = "n/a" if ratio is None else f"{ratio:.3f}"
    return (
        f"Baseline {method} (performance v{version}): selected days {_days_text(days_text)}; "
        f"adjustment {adjustment_text}; performance ratio {ratio_text}."
    )


def _days_text(stored: str | None) -> str:
    """The selected days ``2026-07-14, 2026-07-13`` (``none`` for none) from the jsonb text
    of the list, ``["2026-07-14", "2026-07-13"]``: PostgreSQL writes a list of strings with
    ``", "`` between them, so without escapes (no backslash) the quotes and brackets are all
    there is to take away. Anything else (escapes, other spacing) is decoded as JSON."""
    if stored is None:
        return "none"
    if stored.startswith('["') and stored.endswith('"]') and "\\" not in stored:
        joined = stored[2:-2].replace('", "', ", ")
        if '"' not in joined:  # every quote was one between two days
            return joined
    days = json.loads(stored)
    return ", ".join(days) if days else "none"


def _disputes_to_carry(run: SettlementRun) -> list[Dispute]:
    """Accepted disputes of the program's lines to carry into ``run``: not carried yet, or
    carried by an approved earlier version of the same period (a restatement keeps them)."""
    earlier = SettlementRun.objects.filter(
        program_id=run.program_id,
        period_start=run.period_start,
        period_end=run.period_end,
        version__lt=run.version,
        status__in=SettlementRun.LOCKED_STATUSES,
    )
    return list(
        Dispute.objects.filter(
            status=Dispute.Status.ACCEPTED,
            line__run__program_id=run.program_id,
            adjustment_amount__isnull=False,
        )
        .exclude(adjustment_amount=0)
        .filter(Q(adjustment_line__isnull=True) | Q(adjustment_line__run__in=earlier))
        .select_related("line__run", "line__event")
        .order_by("pk")
    )
