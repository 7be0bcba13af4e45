"""Demo meter data, event performance and a settled month.

**Meter data.** About 120 days (more when a past event's baseline reaches further back) of
realistic 15-minute load for every demo meter. The readings go in through the real importer
(a canonical CSV written to a temporary file, then ``meter_data_import_create`` and
``meter_data_import_run``), so the demo's history page shows the import that brought them.
Loading twice adds nothing: the loader skips when the meters already have readings.

The load of each site: a base load, an occupied-hours plateau on weekdays with an afternoon
peak scaled to the site's peak demand, a lower weekend shape, a day-to-day weather factor
(warm spells raise the afternoon cooling load), and noise. Times of day are local to the
meter's program zone; daylight-saving days have 92 or 100 quarter-hours like real data.

The events demo runs first and leaves a completed summer event: every site that
acknowledged it sheds load during the event window (``demo_past_event_windows``), the
sites that opted out or never answered do not, so the baselines measure real differences.

**The settled month** (``load_settlement_demo``): the performance of the demo's completed
events is computed from those readings, the summer program gets its payment rules, and the
month of its past event is settled as billing does it: the demo manager calculates the run,
the demo billing clerk approves it (four eyes) and exports it to billing; then Harbor
disputes one line of its statement. Every step goes through the services and is skipped
when already done, so loading twice changes nothing.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from django.contrib.auth import get_user_model
from django.db.models import F
from django.utils import timezone

from enrollment.models import (
    ConsentRecord,
    Enrollment,
    EnrollmentTransition,
    Meter,
    Nomination,
    Program,
)
from events.models import Event, Participation
from settlements import services
from settlements.baselines import spec_from_preset
from settlements.billing import billing_export_create
from settlements.disputes import dispute_raise
from settlements.models import (
    BillingExport,
    Dispute,
    MeterDataImport,
    MeterReading,
    PaymentRuleVersion,
    SettlementLine,
    SettlementRun,
)
from settlements.payments import PaymentRules
from settlements.performance import performance_compute_event, reading_window
from settlements.runs import (
    payment_rules_add,
    settlement_run_approve,
    settlement_run_calculate,
    settlement_run_create,
)
from settlements.selectors import meter_time_zones

logger = logging.getLogger(__name__)

DEMO_DAYS = 120
DEMO_FILE_NAME = "demo-interval-readings.csv"


@dataclass(frozen=True)
class PastEventWindow:
    """A past curtailment at one site: load drops by ``reduction_kw`` (kW, average) from
    ``start`` to ``end`` (aware datetimes); :func:`demo_past_event_windows` builds them from
    the completed events."""

    site_id: int
    start: dt.datetime
    end: dt.datetime
    reduction_kw: float


def demo_load_kw(
    *,
    starts_utc: pd.DatetimeIndex,
    time_zone: str,
    peak_kw: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Return a plausible average kW per interval for a commercial site.

    ``starts_utc`` are tz-aware interval starts; the daily shape follows the local clock of
    ``time_zone``. The hottest weekday afternoons reach about 85-95% of ``peak_kw``.
    """
    local = starts_utc.tz_convert(time_zone)
    hour = local.hour.to_numpy() + local.minute.to_numpy() / 60.0
    weekday = local.day_of_week.to_numpy() < 5
    day_number = (local.normalize().asi8 // 86_400_000_000_000).astype(np.int64)
    days = np.unique(day_number)
    # Weather: a seasonal curve (warmest late July) plus a few-day random walk.
    day_of_year = pd.to_datetime(days * 86_400, unit="s").day_of_year.to_numpy()
    seasonal = np.cos((day_of_year - 205) / 365.0 * 2 * np.pi)
    spell = np.convolve(rng.normal(0, 0.35, len(days) + 4), np.ones(5) / 5, mode="valid")
    warmth = np.clip(0.55 + 0.35 * seasonal + spell, 0.0, 1.0)
    warmth_of_row = warmth[np.searchsorted(days, day_number)]

    base_share = rng.uniform(0.25, 0.4)
    occupied = 1.0 / (1 + np.exp(-(hour - 7.0) * 2.5)) * (1 / (1 + np.exp((hour - 19.0) * 2.0)))
    afternoon = np.exp(-(((hour - 15.0) / 2.8) ** 2))
    weekday_shape = base_share + 0.35 * occupied + 0.3 * afternoon * warmth_of_row
    weekend_shape = base_share + 0.12 * occupied + 0.12 * afternoon * warmth_of_row
    shape = np.where(weekday, weekday_shape, weekend_shape)
    noise = rng.normal(1.0, 0.03, len(shape))
    return np.clip(shape * noise, 0.05, None) * peak_kw * rng.uniform(0.9, 0.98)


def write_demo_csv(
    path: Path,
    meters: list[Meter],
    *,
    first_day: dt.date,
    days: int,
    past_event_windows: Iterable[PastEventWindow] = (),
    seed: int = 20260601,
) -> int:
    """Write a canonical CSV of 15-minute readings for ``meters`` over ``days`` local days
    starting ``first_day``; return the number of rows. kWh per interval = kW × 0.25."""
    windows: dict[int, list[PastEventWindow]] = {}
    for window in past_event_windows:
        windows.setdefault(window.site_id, []).append(window)
    zones = meter_time_zones([meter.pk for meter in meters])
    rng = np.random.default_rng(seed)
    rows = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("meter_id,interval_start,kwh,interval_minutes,quality\n")
        for meter in meters:
            zone = zones[meter.pk]
            minutes = meter.interval_minutes
            first = pd.Timestamp(first_day, tz=zone)
            last = pd.Timestamp(first_day + dt.timedelta(days=days), tz=zone)
            starts = pd.date_range(
                first.tz_convert("UTC"),
                last.tz_convert("UTC"),
                freq=f"{minutes}min",
                inclusive="left",
            )
            kw = demo_load_kw(
                starts_utc=starts,
                time_zone=zone,
                peak_kw=float(meter.site.peak_demand_kw or 500),
                rng=rng,
            )
            for window in windows.get(meter.site_id, []):
                during = (starts >= window.start) & (starts < window.end)
                kw[during] = np.maximum(kw[during] - window.reduction_kw, 0.05 * kw[during])
            kwh = np.round(kw * minutes / 60.0, 3)
            stamps = starts.strftime("%Y-%m-%dT%H:%M:%SZ")
            out.write(
                "".join(
                    f"{meter.meter_id},{stamp},{value},{minutes},A\n"
                    for stamp, value in zip(stamps, kwh.tolist(), strict=True)
                )
            )
            rows += len(starts)
    return rows


def demo_past_event_windows(*, seed: int = 20260826) -> list[PastEventWindow]:
    """A load reduction at every site that acknowledged a completed event that pays
    (not a test): over the event's window, by 75% to 120% of the participation's committed
    kW (drawn per participation from ``seed``, so the same demo every time).

    Sites that opted out or never answered keep their usual load: their performance is
    measured as what it was, about nothing.
    """
    rng = np.random.default_rng(seed)
    rows = (
        Participation.objects.filter(
            event__status=Event.Status.COMPLETED,
            removed_at=None,
            status=Participation.Status.ACKNOWLEDGED,
        )
        .exclude(event__kind=Event.Kind.TEST)
        .order_by("event__starts_at", "enrollment__site__service_account_number", "pk")
        .values_list("enrollment__site_id", "event__starts_at", "event__ends_at", "committed_kw")
    )
    return [
        PastEventWindow(
            site_id=site_id,
            start=starts_at,
            end=ends_at,
            reduction_kw=round(float(committed_kw) * float(rng.uniform(0.75, 1.2)), 1),
        )
        for site_id, starts_at, ends_at, committed_kw in rows
    ]


def demo_days_needed(*, last_day: dt.date, minimum: int = DEMO_DAYS) -> int:
    """Days of readings ending ``last_day`` (inclusive) that cover the baseline window of
    every completed event (its lookback days and the event day); at least ``minimum``."""
    days = minimum
    for event in Event.objects.filter(status=Event.Status.COMPLETED).select_related("program"):
        program = event.program
        spec = spec_from_preset(program.baseline_preset, program.baseline_overrides)
        first, _ = reading_window(event, int(spec.lookback_days))
        first_day = first.astimezone(program.zone).date()
        days = max(days, (last_day - first_day).days + 1)
    return days


def load_meter_data_demo(
    *, days: int | None = None, past_event_windows: Iterable[PastEventWindow] | None = None
) -> MeterDataImport | None:
    """Import ``days`` days (ending yesterday) of readings for every meter; return the import.

    ``days`` left out: :data:`DEMO_DAYS`, or more when a completed event's baseline needs
    older days (:func:`demo_days_needed`). ``past_event_windows`` left out: the reductions
    of the completed events in the database (:func:`demo_past_event_windows`).

    Returns None, doing nothing, when the meters already have readings (loaded before) or
    there are no meters. Raises RuntimeError when the import does not succeed.
    """
    meters = list(Meter.objects.select_related("site").order_by("meter_id"))
    if not meters or MeterReading.objects.filter(meter__in=meters).exists():
        return None
    last_day = timezone.localdate() - dt.timedelta(days=1)
    if days is None:
        days = demo_days_needed(last_day=last_day)
    if past_event_windows is None:
        past_event_windows = demo_past_event_windows()
    first_day = last_day - dt.timedelta(days=days - 1)
    with tempfile.TemporaryDirectory(prefix="demo-meterdata-") as folder:
        path = Path(folder) / DEMO_FILE_NAME
        rows = write_demo_csv(
            path, meters, first_day=first_day, days=days, past_event_windows=past_event_windows
        )
        with path.open("rb") as stream:
            record = services.meter_data_import_create(
                stream=stream, file_name=DEMO_FILE_NAME, by=None
            )
        if record.status == MeterDataImport.Status.PENDING:
            record = services.meter_data_import_run(data_import_id=record.pk) or record
    if record.status != MeterDataImport.Status.SUCCEEDED:
        raise RuntimeError(f"the demo meter data import ended {record.status}: {record.message}")
    logger.info("demo meter data: %s readings for %s meters", rows, len(meters))
    return record


# --- the settled month ---------------------------------------------------------------------

SETTLED_PROGRAM_NAME = "Summer Peak Rewards"
HARBOR_ACCOUNT = "BA-100001"
NORTHSIDE_ACCOUNT = "BA-100002"
#: The participants' demo logins, by billing account (``dr_platform.demo.load_foundation``).
PARTICIPANT_LOGINS = {HARBOR_ACCOUNT: "harbor", NORTHSIDE_ACCOUNT: "northside"}
#: Version label of the payment rules the loader gives a program that has none.
DEMO_RULES_VERSION = "demo-1"
NO_RESPONSE_DISPUTE = (
    "Our chief engineer shed the compressor load at this site at 14:00, as the pager notice "
    "asked, but did not reply to it, so the site is listed as not responding and the capacity "
    "payment is cut. Please check the site's meter data for the event afternoon before this "
    "payment stands."
)
GENERAL_DISPUTE = (
    "The baseline for this site looks too low: two of the selected days fell in the week our "
    "warehouse ran half empty, so it understates our normal afternoon load. Please review "
    "the baseline days for this line."
)


@dataclass(frozen=True)
class SettlementDemo:
    """What :func:`load_settlement_demo` left in place (found or created)."""

    run: SettlementRun
    export: BillingExport
    dispute: Dispute | None


def _staff_user(username: str):
    return get_user_model().objects.get(username=username)


def _ensure_performance(event: Event) -> None:
    """Compute the event's performance unless every participation already has one."""
    missing = (
        event.participations.filter(removed_at=None).exclude(performances__is_current=True).exists()
    )
    if missing:
        performance_compute_event(event=event)


def demo_payment_rules(program: Program) -> PaymentRules:
    """The rules the demo gives a program without stored ones, from the season's start.

    The program's own rates (capacity $/kW-month with the linear performance factor, energy
    $/kWh), read the way such programs pay: an allowed opt-out is left out of the
    performance rather than counted as zero, a test event is not paid, and an event where
    the load rose above the baseline counts as no reduction, not as a charge.
    """
    capacity = program.capacity_rate_per_kw_month or Decimal(0)
    energy = program.energy_rate_per_kwh or Decimal(0)
    return PaymentRules(
        effective_from=program.season_start,
        version=DEMO_RULES_VERSION,
        capacity_rate=capacity if capacity > 0 else None,
        capacity_unit="kW-month",
        factor_method="linear",
        energy_rate=energy if energy > 0 else None,
        negative_reductions="floor_event",
        opted_out_events="exclude",
        test_events="exclude",
    )


def _add_months(day: dt.date, months: int) -> dt.date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return day.replace(
        year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1])
    )


def date_back_demo_enrollments(program: Program, events: list[Event]) -> int:
    """Move the history of the enrollments that took part in ``events`` before the season.

    The enrollment demo enrolls every site today (its services take no clock), while the
    events demo replays an event of last summer: without this, the sites would have been
    called in August for a commitment that only starts today, and the month would settle
    to nothing. Each such enrollment's application, consent, transitions and nominations
    keep their order and spacing and are shifted so the first application falls a month
    before ``program.season_start``; ``active_from`` and ``commitment_ends`` follow its
    activation. Enrollments already active from the first event's month are left alone,
    so a second call changes nothing. Returns the number of enrollments moved.
    """
    first_month = min(
        timezone.localtime(event.starts_at, program.zone).date() for event in events
    ).replace(day=1)
    enrollments = Enrollment.objects.filter(
        program=program,
        participations__event__in=events,
        participations__removed_at=None,
        active_from__gt=first_month,
    ).distinct()
    enrollment_ids = list(enrollments.values_list("pk", flat=True))
    if not enrollment_ids:
        return 0
    earliest = (
        Enrollment.objects.filter(pk__in=enrollment_ids).order_by("applied_at").first().applied_at
    )
    target = dt.datetime.combine(
        program.season_start - dt.timedelta(days=30), dt.time(10, 0), program.zone
    )
    shift = earliest - target
    Enrollment.objects.filter(pk__in=enrollment_ids).update(applied_at=F("applied_at") - shift)
    EnrollmentTransition.objects.filter(enrollment_id__in=enrollment_ids).update(at=F("at") - shift)
    ConsentRecord.objects.filter(enrollment_id__in=enrollment_ids).update(
        accepted_at=F("accepted_at") - shift
    )
    Nomination.objects.filter(enrollment_id__in=enrollment_ids).update(
        effective_from=F("effective_from") - shift, created_at=F("created_at") - shift
    )
    activations = dict(
        EnrollmentTransition.objects.filter(
            enrollment_id__in=enrollment_ids, to_status=Enrollment.Status.ACTIVE
        )
        .order_by("enrollment_id", "-at")
        .values_list("enrollment_id", "at")
    )
    for enrollment in Enrollment.objects.filter(pk__in=enrollment_ids):
        activated = activations.get(enrollment.pk, enrollment.applied_at)
        enrollment.active_from = timezone.localtime(activated, program.zone).date()
        enrollment.commitment_ends = _add_months(enrollment.active_from, program.commitment_months)
        enrollment.save(update_fields=["active_from", "commitment_ends"])
    return len(enrollment_ids)


def _settled_run(program: Program, month: dt.date, manager, clerk) -> SettlementRun:
    """The month's latest run, taken as far as exported: created and calculated by the
    manager, approved and exported by the billing clerk (whatever is done already stays)."""
    run = (
        SettlementRun.objects.filter(
            program=program, period_kind=SettlementRun.PeriodKind.MONTH, period_start=month
        )
        .exclude(status__in=(SettlementRun.Status.SUPERSEDED, SettlementRun.Status.DISCARDED))
        .order_by("-version")
        .first()
    )
    if run is None:
        run = settlement_run_create(
            program=program,
            period_kind=SettlementRun.PeriodKind.MONTH,
            period_start=month,
            by=manager,
        )
    if run.status == SettlementRun.Status.DRAFT:
        run = settlement_run_calculate(run=run, by=manager)
    if run.status == SettlementRun.Status.CALCULATED:
        approver = manager if run.calculated_by_id == clerk.pk else clerk
        run = settlement_run_approve(run=run, by=approver)
    if not run.exports.exists():
        billing_export_create(run=run, by=clerk)
    run.refresh_from_db()
    return run


def _line_to_dispute(run: SettlementRun) -> tuple[SettlementLine, str] | None:
    """Harbor's capacity line of the site that never answered the event (the statement a
    participant would question), else Harbor's or Northside's first capacity line, else
    their first line; with the comment that fits. None when neither has a line."""
    lines = SettlementLine.objects.filter(
        run=run, organization__billing_account_number__in=list(PARTICIPANT_LOGINS)
    ).select_related("organization")
    silent_sites = Participation.objects.filter(
        event__in=run.lines.exclude(event=None).values("event"),
        status=Participation.Status.NO_RESPONSE,
        removed_at=None,
    ).values("enrollment__site_id")
    silent = (
        lines.filter(
            organization__billing_account_number=HARBOR_ACCOUNT,
            kind=SettlementLine.Kind.CAPACITY,
            site_id__in=silent_sites,
        )
        .order_by("sequence")
        .first()
    )
    if silent is not None:
        return silent, NO_RESPONSE_DISPUTE
    ordered = lines.order_by("organization__billing_account_number", "sequence")
    line = ordered.filter(kind=SettlementLine.Kind.CAPACITY).first() or ordered.first()
    return (line, GENERAL_DISPUTE) if line is not None else None


def _raise_dispute(run: SettlementRun) -> Dispute | None:
    """The run's demo dispute: the one already raised, or Harbor's (else Northside's) raised
    now by its admin through ``dispute_raise``; None when the run has no line of theirs."""
    existing = Dispute.objects.filter(line__run=run).order_by("pk").first()
    if existing is not None:
        return existing
    choice = _line_to_dispute(run)
    if choice is None:
        return None
    line, comment = choice
    participant = get_user_model().objects.get(
        username=PARTICIPANT_LOGINS[line.organization.billing_account_number]
    )
    return dispute_raise(line=line, by=participant, comment=comment)


def load_settlement_demo() -> SettlementDemo | None:
    """Settle the month of the summer program's latest past event (see the module
    docstring); return the run, its first billing export and the dispute.

    Returns None, doing nothing, when the summer program or a completed event of it is
    missing. Raises what the services raise (a demo that cannot settle should say so).
    """
    program = Program.objects.filter(name=SETTLED_PROGRAM_NAME).first()
    if program is None:
        return None
    events = list(
        Event.objects.filter(program=program, status=Event.Status.COMPLETED)
        .exclude(kind=Event.Kind.TEST)
        .select_related("program")
        .order_by("starts_at")
    )
    if not events:
        return None
    for event in events:
        _ensure_performance(event)
    manager, clerk = _staff_user("manager"), _staff_user("billing")
    if not PaymentRuleVersion.objects.filter(program=program).exists():
        payment_rules_add(program=program, rules=demo_payment_rules(program), by=manager)
    date_back_demo_enrollments(program, events)
    month = timezone.localtime(events[-1].starts_at, program.zone).date().replace(day=1)
    run = _settled_run(program, month, manager, clerk)
    dispute = _raise_dispute(run)
    export = run.exports.order_by("pk").first()
    assert export is not None  # _settled_run exports it
    logger.info(
        "demo settlement: run %s (%s lines, $%s), export %s, dispute %s",
        run.pk, run.line_count, run.total, export.pk, dispute.pk if dispute else None,
    )  # fmt: skip
    return SettlementDemo(run=run, export=export, dispute=dispute)
