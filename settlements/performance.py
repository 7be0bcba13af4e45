"""Event performance: each participation's reduction against its baseline, stored.

The platform side of ``settlements.baselines``: it reads the interval readings of every
targeted site (summed over the site's meters) for the event day and the days its baseline
method may look back to, runs the program's method for all sites at once
(``compute_many`` / ``measure_many``), and writes one ``EventPerformance`` per
participation. The same inputs reproduce the same numbers and write nothing new; changed
inputs write a new version and keep the old one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from enrollment.models import Meter
from events.models import Event, Participation
from settlements.baselines import (
    BaselineResult,
    compute_many,
    gaming_flags,
    measure_many,
    spec_from_preset,
)
from settlements.baselines.batch import ReadingsBatch
from settlements.models import EventPerformance, MeterDataImport, MeterReading

# Events whose performance is kept up to date when late meter data arrives.
REFRESH_HORIZON = dt.timedelta(days=180)


@dataclasses.dataclass(frozen=True)
class PerformanceReport:
    """What one computation of an event did, per participation id."""

    created: tuple[int, ...]
    unchanged: tuple[int, ...]
    insufficient: tuple[int, ...]


def reading_window(event: Event, lookback_days: int) -> tuple[dt.datetime, dt.datetime]:
    """UTC range of readings a baseline of ``event`` may read: from local midnight
    ``lookback_days + 1`` days before the event day to the end of the event day."""
    zone = ZoneInfo(event.program.time_zone)
    event_day = timezone.localtime(event.starts_at, zone).date()
    first = dt.datetime.combine(event_day - dt.timedelta(days=lookback_days + 1), dt.time(), zone)
    last = dt.datetime.combine(event_day + dt.timedelta(days=1), dt.time(), zone)
    return first.astimezone(dt.UTC), max(last.astimezone(dt.UTC), event.ends_at)


def site_readings(
    site_meters: dict[int, list[int]], start: dt.datetime, end: dt.datetime
) -> pd.DataFrame:
    """Long frame [site, interval_start (UTC), kwh] of the sites' readings in [start, end),
    each site's meters summed per interval, ordered by site then time.

    Interval starts travel as epoch seconds so that no Python datetime is built per row.
    """
    meter_site = {meter: site for site, meters in site_meters.items() for meter in meters}
    if not meter_site:
        return pd.DataFrame({"site": [], "interval_start": [], "kwh": []})
    epoch = (
        "CAST(EXTRACT(EPOCH FROM interval_start) AS BIGINT)"
        if connection.vendor == "postgresql"
        else "CAST(strftime('%%s', interval_start) AS INTEGER)"
    )
    table = connection.ops.quote_name(MeterReading._meta.db_table)
    placeholders = ",".join(["%s"] * len(meter_site))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT meter_id, {epoch}, kwh FROM {table} "  # noqa: S608 - fixed names
            f"WHERE meter_id IN ({placeholders}) AND interval_start >= %s AND interval_start < %s",
            [*meter_site, start, end],
        )
        rows = cursor.fetchall()
    if not rows:
        return pd.DataFrame({"site": [], "interval_start": [], "kwh": []})
    meters, seconds, kwh = (np.asarray(column) for column in zip(*rows, strict=True))
    sites = np.fromiter((meter_site[int(m)] for m in meters), dtype=np.int64, count=len(meters))
    frame = pd.DataFrame(
        {"site": sites, "seconds": seconds.astype(np.int64), "kwh": kwh.astype(float)}
    )
    frame = frame.groupby(["site", "seconds"], sort=True, as_index=False)["kwh"].sum()
    frame["interval_start"] = pd.to_datetime(frame.pop("seconds"), unit="s", utc=True)
    return frame[["site", "interval_start", "kwh"]]


def _excluded_dates(event: Event, site_ids: Iterable[int], zone: ZoneInfo) -> dict[int, set]:
    """Local dates of the sites' other events: never baseline days (their load was cut)."""
    rows = (
        Participation.objects.filter(enrollment__site_id__in=list(site_ids), removed_at=None)
        .exclude(event=event)
        .exclude(event__status__in=[Event.Status.CANCELLED, Event.Status.DRAFT])
        .values_list("enrollment__site_id", "event__starts_at")
    )
    excluded: dict[int, set] = defaultdict(set)
    for site_id, starts_at in rows:
        excluded[site_id].add(timezone.localtime(starts_at, zone).date())
    return excluded


def _fingerprint(parts: dict, values: pd.DataFrame) -> str:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    digest.update(pd.DatetimeIndex(values["interval_start"]).asi8.tobytes())
    digest.update(values["kwh"].to_numpy(dtype=float).tobytes())
    return digest.hexdigest()


def _number(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def performance_compute_event(*, event: Event, now: dt.datetime | None = None) -> PerformanceReport:
    """Compute (or confirm) the performance of every participation of a completed event.

    Returns which participations got a new version, which were unchanged (same
    fingerprint) and which had insufficient data (stored as such, with the reason). Raises
    ValueError for an event that is not completed or whose program's method is invalid.
    """
    if event.status != Event.Status.COMPLETED:
        raise ValueError(f"Event {event.pk} is {event.status}; performance needs it completed.")
    now = now or timezone.now()
    program = event.program
    spec = spec_from_preset(program.baseline_preset, program.baseline_overrides)
    zone = ZoneInfo(program.time_zone)
    participations = list(
        event.participations.filter(removed_at=None).select_related("enrollment__site")
    )
    site_ids = {p.enrollment.site_id for p in participations}
    site_meters: dict[int, list[int]] = defaultdict(list)
    for meter_id, site_id in Meter.objects.filter(site_id__in=site_ids).values_list(
        "pk", "site_id"
    ):
        site_meters[site_id].append(meter_id)
    start, end = reading_window(event, int(spec.lookback_days))
    readings = site_readings(site_meters, start, end)
    excluded = _excluded_dates(event, site_ids, zone)
    event_start = pd.Timestamp(event.starts_at).tz_convert(zone)
    event_end = pd.Timestamp(event.ends_at).tz_convert(zone)
    batch = ReadingsBatch.from_frame(readings) if len(readings) else None
    baselines = (
        compute_many(batch, event_start, event_end, spec, tz=program.time_zone,
                     excluded_dates_by_site=excluded)
        if batch is not None
        else {}
    )  # fmt: skip
    performances = measure_many(baselines, batch, event_start, event_end) if baselines else {}
    by_site = {site: frame for site, frame in readings.groupby("site", sort=False)}
    day_start = pd.Timestamp(dt.datetime.combine(event_start.date(), dt.time(), zone))
    day_end = day_start + pd.Timedelta(days=1)
    current = {
        row.participation_id: row
        for row in EventPerformance.objects.filter(
            participation__in=participations, is_current=True
        ).only("participation_id", "fingerprint", "version")
    }
    created, unchanged, insufficient, rows = [], [], [], []
    for participation in participations:
        site_id = participation.enrollment.site_id
        values = by_site.get(site_id, readings.iloc[0:0])
        parts = {
            "spec": spec.to_dict(),
            "event": [event.starts_at.isoformat(), event.ends_at.isoformat()],
            "excluded": sorted(excluded.get(site_id, ())),
            "committed_kw": str(participation.committed_kw),
        }
        fingerprint = _fingerprint(parts, values)
        previous = current.get(participation.pk)
        if previous is not None and previous.fingerprint == fingerprint:
            unchanged.append(participation.pk)
            continue
        baseline = baselines.get(site_id)
        row = EventPerformance(
            participation=participation,
            version=(previous.version + 1) if previous else 1,
            method=program.baseline_preset,
            parameters=spec.to_dict(),
            committed_kw=participation.committed_kw,
            fingerprint=fingerprint,
            computed_at=now,
        )
        series = values.set_index("interval_start")["kwh"] if len(values) else None
        if series is not None:
            day = series[(series.index >= day_start) & (series.index < day_end)]
            minutes = baseline.interval_minutes if isinstance(baseline, BaselineResult) else 15
            row.day_actual = [
                [ts.isoformat(), round(kwh * 60 / minutes, 4)] for ts, kwh in day.items()
            ]
        if not isinstance(baseline, BaselineResult):
            row.status = EventPerformance.Status.INSUFFICIENT_DATA
            row.message = str(baseline) if baseline is not None else "No meter readings."
            insufficient.append(participation.pk)
        else:
            _fill(row, baseline, performances[site_id], series, event_start, event_end, program)
            created.append(participation.pk)
        rows.append(row)
    with transaction.atomic():
        EventPerformance.objects.filter(
            participation_id__in=[row.participation_id for row in rows], is_current=True
        ).update(is_current=False)
        EventPerformance.objects.bulk_create(rows)
    return PerformanceReport(tuple(created), tuple(unchanged), tuple(insufficient))


def _fill(row, baseline, performance, series, event_start, event_end, program) -> None:
    row.status = EventPerformance.Status.COMPUTED
    row.candidate_days = [day.isoformat() for day in baseline.candidate_days]
    row.selected_days = [day.isoformat() for day in baseline.selected_days]
    row.adjustment = float(baseline.adjustment)
    row.interval_minutes = baseline.interval_minutes
    row.intervals = [
        [ts.tz_convert("UTC").isoformat(), round(float(b), 4), round(float(u), 4),
         _number(round(float(a), 4))]
        for ts, b, u, a in zip(
            baseline.baseline_kw.index, baseline.baseline_kw.to_numpy(),
            baseline.unadjusted_kw.to_numpy(), performance.actual_kw.to_numpy(), strict=True,
        )
    ]  # fmt: skip
    row.reduction_kwh = _number(float(performance.reduction_kwh))
    row.average_reduction_kw = _number(float(performance.average_reduction_kw))
    row.max_reduction_kw = _number(float(performance.max_reduction_kw))
    row.missing_intervals = int(performance.missing_intervals)
    committed = float(row.committed_kw)
    if row.average_reduction_kw is not None and committed > 0:
        row.performance_ratio = row.average_reduction_kw / committed
    row.warnings = list(baseline.warnings)
    flags = [
        {"code": flag.code, "message": flag.message, "detail": _jsonable(flag.detail)}
        for flag in gaming_flags(
            series, baseline, tz=program.time_zone, event_start=event_start, event_end=event_end
        )
    ]
    if performance.missing_intervals:
        flags.append(
            {
                "code": "missing_event_intervals",
                "message": (
                    f"{performance.missing_intervals} event interval(s) have no meter reading; "
                    "the reduction counts only the intervals with data."
                ),
                "detail": {},
            }
        )
    row.flags = flags


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def events_needing_performance(*, now: dt.datetime | None = None) -> list[int]:
    """Completed events (within the refresh horizon) whose performance is missing, or older
    than a successful meter import that covers their reading window.

    Recomputing such an event is cheap when nothing changed: the fingerprint keeps it from
    writing a new version.
    """
    now = now or timezone.now()
    events = Event.objects.filter(
        status=Event.Status.COMPLETED, ends_at__gte=now - REFRESH_HORIZON
    ).annotate(
        last_computed=Max("participations__performances__computed_at"),
    )
    due = []
    imports = list(
        MeterDataImport.objects.filter(
            status=MeterDataImport.Status.SUCCEEDED, finished_at__isnull=False
        )
        .filter(Q(last_interval__gte=now - REFRESH_HORIZON - dt.timedelta(days=60)))
        .values_list("finished_at", "first_interval", "last_interval")
    )
    for event in events.select_related("program"):
        if event.last_computed is None:
            due.append(event.pk)
            continue
        program = event.program
        lookback = int(
            spec_from_preset(program.baseline_preset, program.baseline_overrides).lookback_days
        )
        start, end = reading_window(event, lookback)
        if any(
            finished > event.last_computed and first and last and first < end and last >= start
            for finished, first, last in imports
        ):
            due.append(event.pk)
    return due


def performance_for_participation(participation: Participation) -> EventPerformance | None:
    """The current performance of ``participation``, or None before it is computed."""
    return participation.performances.filter(is_current=True).first()


def performance_notify(event: Event) -> list:
    """Send each participant of ``event`` its summary ("you reduced X kW against Y
    committed") from the current computed performances, through events'
    ``event_send_summaries``.

    Participations with insufficient data or no performance get no summary (there is no
    reduction to quote); those already summarised are skipped by events, so calling this
    after every computation sends each summary once. Returns the Notification rows written.
    """
    from decimal import Decimal

    from events.services import event_send_summaries

    reduction_by_participation = {
        participation_id: Decimal(str(round(average_kw, 1)))
        for participation_id, average_kw in EventPerformance.objects.filter(
            participation__event=event,
            participation__removed_at=None,
            is_current=True,
            status=EventPerformance.Status.COMPUTED,
            average_reduction_kw__isnull=False,
        ).values_list("participation_id", "average_reduction_kw")
    }
    if not reduction_by_participation:
        return []
    return event_send_summaries(event, reduction_by_participation)


def adjustment_text(performance: EventPerformance) -> str:
    """The baseline adjustment the method applied, in words: ``none``, ``× 1.0500
    (multiplicative factor)`` or ``+12.000 kW (added to every interval)``."""
    kind = (performance.parameters or {}).get("adjustment", "none")
    if kind == "none" or performance.adjustment is None:
        return "none"
    if kind == "multiplicative":
        return f"× {performance.adjustment:.4f} (multiplicative factor)"
    return f"{performance.adjustment:+.3f} kW (added to every interval)"
