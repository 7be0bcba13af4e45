"""A run's lines computed from the database: its inputs read in bulk, then the calculator.

One query per kind of input, whatever the number of sites: events, participations,
current performances, enrollments, nominations, installments, disputes. Everything else
happens in Python with ``settlements.payments`` (which rounds amounts, at the line only).

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
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.db.models import Q

from enrollment.models import EnablementInstallment, Enrollment, Nomination
from enrollment.selectors import payable_installments
from events.models import Event, Participation
from settlements.models import Dispute, EventPerformance, SettlementRun
from settlements.payments import (
    EventOutcome,
    LineItem,
    PaymentRules,
    SitePeriod,
    adjustment_line,
    clawback_line,
    enablement_line,
    settle_site,
)
from settlements.payments.lines import LineKey

#: Enrollment statuses whose commitments are paid for the time they were in effect.
SETTLED_STATUSES = (
    Enrollment.Status.ACTIVE,
    Enrollment.Status.SUSPENDED,
    Enrollment.Status.WITHDRAWN,
    Enrollment.Status.TERMINATED,
)

#: Columns of a current performance a run reads (``intervals`` only for floor_interval).
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

_NEVER = dt.datetime.min.replace(tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True)
class LineSource:
    """Where a computed line comes from: the rows it points at, and text for its explanation."""

    organization_id: int
    site_id: int | None
    event_id: int | None = None
    event_start: dt.datetime | None = None
    performance_id: int | None = None
    installment_id: int | None = None
    dispute_id: int | None = None
    note: str = ""
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Calculation:
    """A run's full lines (before any restatement difference) and what was left out."""

    rules: PaymentRules
    items: list[LineItem]
    sources: dict[LineKey, LineSource]
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
    :data:`PERFORMANCE_COLUMNS` (plus ``intervals`` when asked). One query."""
    columns = (*PERFORMANCE_COLUMNS, "intervals") if with_intervals else PERFORMANCE_COLUMNS
    return list(
        EventPerformance.objects.filter(
            participation__event_id__in=event_ids, is_current=True
        ).values_list(*columns)
    )


class _Commitments:
    """Each enrollment's nomination steps, for "kW at a moment" and time-weighted means."""

    def __init__(self, program_id: int) -> None:
        self.steps: dict[int, tuple[list[dt.datetime], list[Decimal]]] = {}
        rows = (
            Nomination.objects.filter(
                enrollment__program_id=program_id, enrollment__status__in=SETTLED_STATUSES
            )
            .order_by("enrollment_id", "effective_from", "pk")
            .values_list("enrollment_id", "effective_from", "committed_kw")
        )
        for enrollment_id, effective_from, committed_kw in rows:
            starts, values = self.steps.setdefault(enrollment_id, ([], []))
            starts.append(effective_from)
            values.append(committed_kw)

    def at(self, enrollment_id: int, moment: dt.datetime) -> Decimal | None:
        """kW in effect at ``moment`` (the latest nomination from on or before it)."""
        starts, values = self.steps.get(enrollment_id, ([], []))
        index = bisect.bisect_right(starts, moment)
        return values[index - 1] if index else None

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


def calculate_lines(run: SettlementRun, rules: PaymentRules) -> Calculation:
    """Every line ``rules`` give the run's program for its period, with their sources.

    Lines are not stored here, and not yet differenced for a restatement (see
    ``settlements.runs.services``). Raises ``ValueError`` from the calculator for an
    outcome the rules cannot treat.
    """
    program = run.program
    zone = program.zone
    notes: list[str] = []
    events = completed_events(run)
    event_info = {pk: (kind, starts_at) for pk, kind, starts_at in events}
    participations = list(
        Participation.objects.filter(event_id__in=list(event_info), removed_at=None)
        .order_by("event_id", "pk")
        .values_list(
            "pk",
            "event_id",
            "enrollment_id",
            "enrollment__site_id",
            "enrollment__site__organization_id",
            "status",
            "committed_kw",
        )
    )
    needs_intervals = rules.negative_reductions == "floor_interval"
    performances = {
        row[1]: row
        for row in current_performances(list(event_info), with_intervals=needs_intervals)
    }
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
    sources: dict[LineKey, LineSource] = {}
    event_notes: dict[tuple[int, int], tuple[str, dict[str, Any], int | None]] = {}
    # Per event, once: its start, whether it is a test, and its local date.
    event_facts = {
        pk: (starts_at, kind == Event.Kind.TEST, starts_at.astimezone(zone).date())
        for pk, (kind, starts_at) in event_info.items()
    }
    opted_out_status, computed = Participation.Status.OPTED_OUT, EventPerformance.Status.COMPUTED
    for pk, event_id, enrollment_id, site_id, organization_id, status, committed in participations:
        starts_at, is_test, event_date = event_facts[event_id]
        site_org.setdefault(site_id, organization_id)
        committed_kw = commitments.at(enrollment_id, starts_at) or committed
        opted_out = status == opted_out_status
        if not committed_kw or committed_kw <= 0:
            notes.append(
                f"Participation {pk} (site {site_id}, event {event_id}): no committed kW at "
                "the event's start; left out."
            )
            continue
        performance = performances.get(pk)
        usable = (
            performance is not None
            and performance[3] == computed
            and performance[7] is not None
            and performance[8] is not None
        )
        unmeasured = (is_test and rules.test_events == "exclude") or (
            opted_out and rules.opted_out_events != "as_measured"
        )
        common = {
            "event_key": event_id,
            "event_date": event_date,
            "committed_kw": committed_kw,
            "is_test": is_test,
            "opted_out": opted_out,
        }
        if usable:
            assert performance is not None
            if needs_intervals:
                reductions = tuple(
                    None if actual is None else Decimal(repr(baseline)) - Decimal(repr(actual))
                    for _, baseline, _, actual in performance[11]
                )
                outcome = EventOutcome(
                    **common, reduction_kw=reductions, interval_minutes=performance[10]
                )
            else:
                outcome = EventOutcome(
                    **common,
                    reduction_kwh=performance[7],
                    average_reduction_kw=performance[8],
                )
            event_notes[(site_id, event_id)] = _performance_text(performance)
        elif unmeasured:
            outcome = EventOutcome(
                **common, reduction_kwh=Decimal(0), average_reduction_kw=Decimal(0)
            )
        else:
            reason = (
                "no performance computed yet"
                if performance is None
                else f"performance v{performance[2]} has insufficient data"
            )
            notes.append(
                f"Participation {pk} (site {site_id}, event {event_id} on {event_date}): "
                f"{reason}; left out of this run (a restatement includes it once measured)."
            )
            continue
        outcomes[site_id].append(outcome)

    items: list[LineItem] = []
    for site_id in sorted(set(site_kw_months) | set(outcomes)):
        kw_months = site_kw_months.get(site_id, Decimal(0))
        if kw_months <= 0:
            notes.append(f"Site {site_id}: no committed kW in the period; its events are left out.")
            continue
        site = SitePeriod(
            site_key=site_id,
            committed_kw=kw_months / len(months),
            months=tuple(months),
            events=tuple(outcomes.get(site_id, ())),
        )
        for item in settle_site(site, rules):
            event_id = item.event_key
            text, details, performance_id = event_notes.get((site_id, event_id), ("", {}, None))
            sources[item.key] = LineSource(
                organization_id=site_org[site_id],
                site_id=site_id,
                event_id=event_id,
                event_start=event_info[event_id][1] if event_id is not None else None,
                performance_id=performance_id if event_id is not None else None,
                note=text if event_id is not None else "",
                details={"performance": details} if event_id is not None and details else {},
            )
            items.append(item)

    for installment in payable_installments(
        start=run.period_start, end=run.period_end, program_id=program.pk
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
        sources[item.key] = LineSource(
            organization_id=site.organization_id, site_id=site.pk, installment_id=installment.pk
        )
        items.append(item)

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
        sources[item.key] = LineSource(
            organization_id=dispute.organization_id,
            site_id=line.site_id,
            event_id=line.event_id,
            event_start=line.event.starts_at if line.event_id else None,
            dispute_id=dispute.pk,
        )
        items.append(item)
    return Calculation(rules=rules, items=items, sources=sources, notes=notes)


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


def _performance_text(row: tuple) -> tuple[str, dict[str, Any], int]:
    pk, _, version, _, method, selected_days, adjustment, _, _, ratio, _ = row[:11]
    days = ", ".join(selected_days) if selected_days else "none"
    adjustment_text = "none" if adjustment is None else f"{adjustment:.3f}"
    ratio_text = "n/a" if ratio is None else f"{ratio:.3f}"
    text = (
        f"Baseline {method} (performance v{version}): selected days {days}; "
        f"adjustment {adjustment_text}; performance ratio {ratio_text}."
    )
    details = {
        "id": pk,
        "version": version,
        "method": method,
        "selected_days": list(selected_days or []),
        "adjustment": adjustment,
        "performance_ratio": ratio,
    }
    return text, details, pk


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
