"""Building blocks of the settlement and billing tests (no tests here).

Events are completed and their performance is stored directly, as ``EventPerformance``
rows with hand-picked reductions, so every expected amount can be computed by hand.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from enrollment.models import EnablementInstallment, EnablementProject, Nomination
from events.models import Event, Participation
from settlements.models import EventPerformance, SettlementRun
from settlements.payments import PaymentRules
from settlements.runs import (
    payment_rules_add,
    settlement_run_approve,
    settlement_run_calculate,
    settlement_run_create,
)
from tests.enrollment.factories import EnrollmentFactory, ProgramFactory, SiteFactory
from tests.factories import staff_user

ZONE = ZoneInfo("America/New_York")
JULY = dt.date(2026, 7, 1)


def make_program(**rules: object):
    """A program (season June to September 2026) with one stored rules version."""
    program = ProgramFactory(season_start=dt.date(2026, 6, 1), season_end=dt.date(2026, 9, 30))
    if rules:
        payment_rules_add(
            program=program,
            rules=PaymentRules(effective_from=dt.date(2026, 1, 1), **rules),  # type: ignore[arg-type]
            by=staff_user("Program managers"),
        )
    return program


def enroll(program, committed_kw: str = "100", site=None, **site_fields: object):
    """An active enrollment whose only nomination is in effect since January 2026."""
    enrollment = EnrollmentFactory(
        program=program,
        site=site or SiteFactory(**site_fields),
        committed_kw=Decimal(committed_kw),
    )
    Nomination.objects.filter(enrollment=enrollment).update(
        effective_from=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    return enrollment


def event(program, day: dt.date, *, kind: str = Event.Kind.ECONOMIC, hour: int = 14) -> Event:
    """A completed two-hour event starting at ``hour`` local time on ``day``."""
    return Event.objects.create(
        program=program,
        kind=kind,
        status=Event.Status.COMPLETED,
        starts_at=dt.datetime.combine(day, dt.time(hour), ZONE),
        ends_at=dt.datetime.combine(day, dt.time(hour + 2), ZONE),
        created_by=staff_user("Program managers"),
    )


def participate(
    the_event: Event,
    enrollment,
    *,
    average_kw: str | None = None,
    kwh: str | None = None,
    status: str = Participation.Status.ACKNOWLEDGED,
) -> Participation:
    """A participation, with a current performance when ``average_kw`` is given."""
    participation = Participation.objects.create(
        event=the_event, enrollment=enrollment, committed_kw=enrollment.committed_kw, status=status
    )
    if average_kw is not None:
        perform(participation, average_kw=average_kw, kwh=kwh)
    return participation


def perform(participation: Participation, *, average_kw: str, kwh: str | None = None):
    """Store a new current performance version (a late meter correction makes another)."""
    previous = EventPerformance.objects.filter(participation=participation, is_current=True)
    version = (previous.first().version + 1) if previous.exists() else 1
    previous.update(is_current=False)
    average = float(average_kw)
    committed = participation.committed_kw
    return EventPerformance.objects.create(
        participation=participation,
        version=version,
        status=EventPerformance.Status.COMPUTED,
        method="caiso_10_of_10",
        selected_days=["2026-07-14", "2026-07-13"],
        adjustment=1.05,
        interval_minutes=15,
        committed_kw=committed,
        reduction_kwh=float(kwh) if kwh is not None else average * 2,
        average_reduction_kw=average,
        performance_ratio=average / float(committed),
        fingerprint=f"fp-{participation.pk}-{version}",
        computed_at=dt.datetime(2026, 8, 1, tzinfo=dt.UTC),
    )


def measure_intervals(
    performance: EventPerformance, actual_kw: list[float | None], *, baseline_kw: float = 180.0
) -> EventPerformance:
    """Give ``performance`` its event intervals as the performance calculation stores them,
    ``[start, baseline kW, adjusted kW, actual kW]``, one per ``actual_kw`` (``None``: no
    reading), every ``interval_minutes`` from the event's start; the baseline flat."""
    start = performance.participation.event.starts_at.astimezone(dt.UTC)
    step = dt.timedelta(minutes=performance.interval_minutes)
    performance.intervals = [
        [(start + index * step).isoformat(), baseline_kw, baseline_kw, actual]
        for index, actual in enumerate(actual_kw)
    ]
    performance.save(update_fields=["intervals"])
    return performance


def installment(site, program, *, amount: str, kind: str = "installment", due=dt.date(2026, 7, 20)):
    """A due enablement installment (or clawback) of a project at ``site``."""
    project = EnablementProject.objects.get_or_create(
        site=site,
        program=program,
        defaults={
            "description": "Chiller controls",
            "cost": Decimal("20000"),
            "incentive": Decimal("10000"),
        },
    )[0]
    return EnablementInstallment.objects.create(
        project=project,
        sequence=project.installments.count() + 1,
        kind=kind,
        share=Decimal("0.5"),
        amount=Decimal(amount),
        due_date=due,
        status=EnablementInstallment.Status.DUE,
    )


def calculated(program, *, by=None, period_kind: str = "month", start: dt.date = JULY, end=None):
    """A month (or season) run of ``program``, calculated by a program manager."""
    by = by or staff_user("Program managers")
    run = settlement_run_create(
        program=program, period_kind=period_kind, period_start=start, period_end=end, by=by
    )
    return settlement_run_calculate(run=run, by=by)


def approved(run: SettlementRun, *, by=None) -> SettlementRun:
    return settlement_run_approve(run=run, by=by or staff_user("Billing"))


def amounts(run: SettlementRun) -> list[tuple[str, int | None, str]]:
    """(kind, event id, amount) of each line in sequence; asserts the run total."""
    lines = list(run.lines.order_by("sequence"))
    assert run.total == sum((line.amount for line in lines), Decimal("0.00"))
    assert run.line_count == len(lines)
    return [(line.kind, line.event_id, f"{line.amount:.2f}") for line in lines]
