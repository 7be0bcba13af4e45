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
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import psycopg
from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone
from psycopg.adapt import Loader
from psycopg.pq import Format

from enrollment.models import Meter
from events.models import Event, Participation
from settlements.baselines import (
    BaselineResult,
    BaselineSpec,
    compute_many,
    gaming_flags_many,
    measure_many,
    nerc_holidays,
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


@dataclasses.dataclass(frozen=True)
class EventMethod:
    """The baseline method an event is measured with: the program's preset ``name`` (as
    ``EventPerformance.method`` stores it) and ``overrides``, and whether it is the
    program's weekend and holiday method."""

    name: str
    overrides: dict[str, Any]
    weekend: bool

    @property
    def spec(self) -> BaselineSpec:
        """The full method. Raises ValueError (TypeError for a wrong type) when the
        overrides do not make a valid method (see ``spec_from_preset``)."""
        return spec_from_preset(self.name, self.overrides)


def is_weekend_or_holiday(day: dt.date) -> bool:
    """Whether the local date ``day`` is a Saturday, a Sunday or a NERC holiday (see
    ``nerc_holidays``): the days the published methods measure with their weekend and
    holiday variant."""
    return day.weekday() >= 5 or day in nerc_holidays(day.year, day.year)


def event_method(event: Event) -> EventMethod:
    """The method ``event`` is measured with: the program's weekend and holiday method when
    the event starts on a Saturday, a Sunday or a NERC holiday (the program's local day)
    and the program has one; otherwise its main method."""
    program = event.program
    if program.weekend_baseline_preset and is_weekend_or_holiday(
        timezone.localtime(event.starts_at, ZoneInfo(program.time_zone)).date()
    ):
        return EventMethod(
            name=program.weekend_baseline_preset,
            overrides=program.weekend_baseline_overrides,
            weekend=True,
        )
    return EventMethod(
        name=program.baseline_preset, overrides=program.baseline_overrides, weekend=False
    )


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

    A site with several meters has a reading for an interval only when every meter metering
    the site then has one there: one meter's reading is not the site's load, and a missing
    reading is a gap, never a zero. A meter meters the site from its first to its last
    reading in the range (so a meter replaced by another hands over without a gap). Meters
    of different interval lengths are summed per interval of the longest one (an interval of
    a shorter meter counts only when all its readings are there).

    No Python object is built per reading on PostgreSQL: each meter's readings arrive as
    two arrays decoded by numpy (see ``_meter_arrays``). On SQLite interval starts travel
    as epoch seconds.
    """
    meter_site = {meter: site for site, meters in site_meters.items() for meter in meters}
    if not meter_site:
        return _no_readings()
    shared = [meter for meters in site_meters.values() if len(meters) > 1 for meter in meters]
    minutes = dict(
        Meter.objects.filter(pk__in=shared).values_list("pk", "interval_minutes") if shared else ()
    )
    if connection.vendor == "postgresql":
        return _site_frame(site_meters, _meter_arrays(list(meter_site), start, end), minutes)
    table = connection.ops.quote_name(MeterReading._meta.db_table)
    placeholders = ",".join(["%s"] * len(meter_site))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT meter_id, CAST(strftime('%%s', interval_start) AS INTEGER), kwh "  # noqa: S608
            f"FROM {table} WHERE meter_id IN ({placeholders}) "
            "AND interval_start >= %s AND interval_start < %s",
            # As stored (naive UTC text): an aware datetime would compare as other text.
            [*meter_site, *map(connection.ops.adapt_datetimefield_value, (start, end))],
        )
        rows = cursor.fetchall()
    if not rows:
        return _no_readings()
    meters, seconds, kwh = (np.asarray(column) for column in zip(*rows, strict=True))
    meters, micros = meters.astype(np.int64), seconds.astype(np.int64) * 1_000_000
    order = np.lexsort((micros, meters))
    meters, micros, kwh = meters[order], micros[order], kwh.astype(np.float64)[order]
    starts = np.flatnonzero(np.r_[True, meters[1:] != meters[:-1]])
    by_meter = {
        int(meters[first]): (micros[first:stop], kwh[first:stop])
        for first, stop in zip(starts, [*starts[1:], meters.size], strict=True)
    }
    return _site_frame(site_meters, by_meter, minutes)


def _no_readings() -> pd.DataFrame:
    return pd.DataFrame({"site": [], "interval_start": [], "kwh": []})


class _ArrayLoader(Loader):
    """A one-dimensional binary PostgreSQL array of a fixed-width type as a numpy array.

    The binary array format: dimensions, a has-nulls flag and the element type, then per
    dimension its length and lower bound, then per element its byte length and value.
    """

    format = Format.BINARY
    element = ">f8"
    result: type = np.float64

    def load(self, data) -> np.ndarray:
        header = np.frombuffer(data, dtype=">i4", count=3)
        if header[0] == 0:
            return np.empty(0, dtype=self.result)
        if header[0] != 1 or header[1]:
            raise ValueError("expected a one-dimensional array without nulls")
        length = int(np.frombuffer(data, dtype=">i4", count=1, offset=12)[0])
        cells = np.frombuffer(
            data, dtype=[("size", ">i4"), ("value", self.element)], count=length, offset=20
        )
        return cells["value"].astype(self.result)


class _MicrosecondsLoader(_ArrayLoader):
    """timestamptz[]: microseconds since 2000-01-01 UTC, as int64."""

    element = ">i8"
    result = np.int64


class _BinaryCursor(psycopg.Cursor):
    """Parameters bound by the server and results in binary; never a prepared statement,
    which a connection pooler in transaction mode would not keep."""

    def execute(self, query, params=None, *, prepare=False, binary=True):
        return super().execute(query, params, prepare=prepare, binary=binary)


# PostgreSQL's binary timestamptz counts microseconds from 2000-01-01T00:00Z.
_PG_EPOCH_US = 946_684_800 * 1_000_000


def _meter_arrays(
    meters: list[int], start: dt.datetime, end: dt.datetime
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """PostgreSQL: each meter's readings in [start, end) as (UTC microseconds, kWh), time
    ascending.

    One row per meter with ``array_agg`` columns in binary: a few rows to fetch instead of
    millions, each decoded by numpy. The arrays are aggregated without ORDER BY (a sort per
    meter costs the server as much again as the scan); both take the rows in the same
    order, and a meter whose rows came out of time order is sorted here.
    """
    table = connection.ops.quote_name(MeterReading._meta.db_table)
    connection.ensure_connection()
    # Django's cursors bind parameters on the client, which rules out binary results: a
    # server-binding cursor on the same connection (so the same transaction), wrapped as
    # Django wraps its own (query log, database errors).
    raw = _BinaryCursor(connection.connection)
    types = raw.adapters.types
    raw.adapters.register_loader(types["timestamptz"].array_oid, _MicrosecondsLoader)
    raw.adapters.register_loader(types["float8"].array_oid, _ArrayLoader)
    wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
    with wrap(raw) as cursor:
        cursor.execute(
            f"SELECT meter_id, array_agg(interval_start), array_agg(kwh) FROM {table} "  # noqa: S608
            "WHERE meter_id = ANY(%s) AND interval_start >= %s AND interval_start < %s "
            "GROUP BY meter_id",
            [meters, start, end],
        )
        rows = cursor.fetchall()
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for meter, micros, kwh in rows:
        utc = micros + _PG_EPOCH_US
        if utc.size > 1 and (utc[1:] < utc[:-1]).any():
            order = np.argsort(utc, kind="stable")
            utc, kwh = utc[order], kwh[order]
        out[meter] = utc, kwh
    return out


def _site_frame(
    site_meters: dict[int, list[int]],
    by_meter: dict[int, tuple[np.ndarray, np.ndarray]],
    minutes: dict[int, int],
) -> pd.DataFrame:
    """The long frame from each meter's (UTC microseconds, kWh) arrays, time ascending: a
    site with one meter takes its arrays as they are; the meters of a site with several are
    summed by ``_sum_meters`` (``minutes``: their interval lengths)."""
    sites, utc, kwh = [], [], []
    for site in sorted(site_meters):
        metered = [meter for meter in site_meters[site] if meter in by_meter]
        if not metered:
            continue
        if len(metered) == 1:
            site_utc, site_kwh = by_meter[metered[0]]
        else:
            site_utc, site_kwh = _sum_meters(
                [(*by_meter[meter], minutes[meter]) for meter in metered]
            )
        sites.append(np.full(site_utc.size, site, dtype=np.int64))
        utc.append(site_utc)
        kwh.append(site_kwh)
    if not sites:
        return _no_readings()
    # Microseconds: PostgreSQL's resolution, and the unit of the SQLite path's frame. The
    # arrays are new, so the frame need not copy them (copying is most of its cost).
    return pd.DataFrame(
        {
            "site": np.concatenate(sites),
            "interval_start": pd.DatetimeIndex(np.concatenate(utc).view("M8[us]")).tz_localize(
                "UTC"
            ),
            "kwh": np.concatenate(kwh),
        },
        copy=False,
    )


def _sum_meters(
    parts: list[tuple[np.ndarray, np.ndarray, int]],
) -> tuple[np.ndarray, np.ndarray]:
    """One site's load from its meters' (UTC microseconds, kWh, interval minutes), time
    ascending: per interval of the longest length, the sum over the meters, kept only where
    every meter whose span (first to last reading) covers the interval has all its readings
    of it.

    The intervals are laid on the grid of the first reading of a meter of the longest
    length (the importer aligned every meter's readings on its own interval length).
    """
    longest = max(part[2] for part in parts)
    step = longest * 60_000_000
    anchor = int(next(part[0][0] for part in parts if part[2] == longest))
    complete_starts, totals, spans = [], [], []
    for part_utc, part_kwh, part_minutes in parts:
        starts, at, count = np.unique(
            anchor + (part_utc - anchor) // step * step, return_inverse=True, return_counts=True
        )
        complete = count == longest // part_minutes
        complete_starts.append(starts[complete])
        totals.append(np.bincount(at, weights=part_kwh, minlength=starts.size)[complete])
        spans.append((starts[0], starts[-1]))
    starts, at = np.unique(np.concatenate(complete_starts), return_inverse=True)
    summed = np.bincount(at, weights=np.concatenate(totals), minlength=starts.size)
    present = np.bincount(at, minlength=starts.size)
    needed = sum(((starts >= first) & (starts <= last)).astype(np.int64) for first, last in spans)
    every = present == needed
    return starts[every], summed[every]


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


def _holidays(start: dt.datetime, end: dt.datetime, zone: ZoneInfo) -> tuple[dt.date, ...]:
    """The holidays (NERC's, see ``nerc_holidays``) among the local dates of [start, end]:
    never weekday baseline days, and like days of a weekend for "same" methods."""
    first = timezone.localtime(start, zone).date()
    last = timezone.localtime(end, zone).date()
    return tuple(day for day in nerc_holidays(first.year, last.year) if first <= day <= last)


def _fingerprint(parts: dict, utc: np.ndarray, kwh: np.ndarray) -> str:
    """sha256 of the inputs: ``parts`` as JSON, then the readings' interval starts (UTC
    ns in ``utc``, hashed as int64 microseconds, the unit of ``site_readings``' frame) and
    kWh (float64) as raw bytes."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    digest.update((np.asarray(utc, dtype=np.int64) // 1000).tobytes())
    digest.update(np.ascontiguousarray(kwh, dtype=np.float64).tobytes())
    return digest.hexdigest()


def _number(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def performance_compute_event(*, event: Event, now: dt.datetime | None = None) -> PerformanceReport:
    """Compute (or confirm) the performance of every participation of a completed event.

    The baselines use the event's method (``event_method``: the program's weekend and
    holiday method for an event on such a day, when it has one); each performance stores
    that method's name and parameters. Returns which participations got a new version,
    which were unchanged (same fingerprint) and which had insufficient data (stored as such,
    with the reason). Raises ValueError for an event that is not completed or whose method
    is invalid.
    """
    if event.status != Event.Status.COMPLETED:
        raise ValueError(f"Event {event.pk} is {event.status}; performance needs it completed.")
    now = now or timezone.now()
    program = event.program
    method = event_method(event)
    spec = method.spec
    zone = ZoneInfo(program.time_zone)
    participations = list(
        event.participations.filter(removed_at=None).select_related("enrollment__site")
    )
    site_ids = {p.enrollment.site_id for p in participations}
    site_meters: dict[int, list[int]] = defaultdict(list)
    # A site's readings come per interval of its longest meter (see site_readings).
    site_minutes: dict[int, int] = {}
    for meter_id, site_id, minutes in Meter.objects.filter(site_id__in=site_ids).values_list(
        "pk", "site_id", "interval_minutes"
    ):
        site_meters[site_id].append(meter_id)
        site_minutes[site_id] = max(minutes, site_minutes.get(site_id, 0))
    start, end = reading_window(event, int(spec.lookback_days))
    readings = site_readings(site_meters, start, end)
    excluded = _excluded_dates(event, site_ids, zone)
    holidays = _holidays(start, end, zone)
    event_start = pd.Timestamp(event.starts_at).tz_convert(zone)
    event_end = pd.Timestamp(event.ends_at).tz_convert(zone)
    batch = ReadingsBatch.from_frame(readings) if len(readings) else None
    unmeasurable = (
        _unmeasurable(batch, site_minutes, event_start, event_end) if batch is not None else {}
    )
    # The baseline library refuses an event window off a site's interval grid (for the
    # whole batch): such sites are stored with the reason and the others measured.
    measured = batch
    if unmeasurable:
        kept = readings[~readings["site"].isin(list(unmeasurable))]
        measured = ReadingsBatch.from_frame(kept) if len(kept) else None
    baselines = (
        compute_many(measured, event_start, event_end, spec, tz=program.time_zone,
                     excluded_dates_by_site=excluded, holidays=holidays)
        if measured is not None
        else {}
    )  # fmt: skip
    performances = measure_many(baselines, measured, event_start, event_end) if baselines else {}
    day_start = pd.Timestamp(dt.datetime.combine(event_start.date(), dt.time(), zone))
    day_bounds = np.array([day_start.value, (day_start + pd.Timedelta(days=1)).value])
    current = {
        row.participation_id: row
        for row in EventPerformance.objects.filter(
            participation__in=participations, is_current=True
        ).only("participation_id", "fingerprint", "version")
    }
    parameters = spec.to_dict()
    positions = {site: at for at, site in enumerate(batch.keys)} if batch is not None else {}
    no_readings = np.empty(0, dtype=np.int64), np.empty(0)

    def site_arrays(site_id: int) -> tuple[np.ndarray, np.ndarray]:
        """The site's readings: UTC ns and kWh, time ascending (views into the batch)."""
        at = positions.get(site_id)
        if at is None:
            return no_readings
        rows = slice(batch.offsets[at], batch.offsets[at + 1])
        return batch.utc[rows], batch.kwh[rows]

    unchanged, changed = [], []
    for participation in participations:
        site_id = participation.enrollment.site_id
        parts = {
            "spec": parameters,
            # In UTC, as read from the database: the same event, whatever zone the caller's
            # datetimes are in, has one fingerprint.
            "event": [
                event.starts_at.astimezone(dt.UTC).isoformat(),
                event.ends_at.astimezone(dt.UTC).isoformat(),
            ],
            "excluded": sorted(excluded.get(site_id, ())),
            "committed_kw": str(participation.committed_kw),
        }
        if holidays:
            # Only when there is one: a window without a holiday keeps the fingerprint it
            # had before holidays were taken into account, so nothing is rewritten for it.
            parts["holidays"] = [day.isoformat() for day in holidays]
        if method.weekend:
            # The name too, since the performance stores it: a weekend preset resolving to
            # the parameters already used still gets a version that names it. Only for the
            # weekend method, so weekday events keep their fingerprints (as for holidays).
            parts["method"] = method.name
        fingerprint = _fingerprint(parts, *site_arrays(site_id))
        previous = current.get(participation.pk)
        if previous is not None and previous.fingerprint == fingerprint:
            unchanged.append(participation.pk)
        else:
            changed.append((participation, fingerprint, previous))
    # Flags only for the participations that get a new version, all sites at once.
    flags_by_site = (
        gaming_flags_many(
            {p.enrollment.site_id: baselines[p.enrollment.site_id] for p, _, _ in changed
             if p.enrollment.site_id in baselines},
            measured, tz=program.time_zone, event_start=event_start, event_end=event_end,
            # The site's usual load is that of its ordinary days: its curtailed event days
            # would pull the reference down and hide an inflated baseline day.
            excluded_dates_by_site=excluded, holidays=holidays,
        )
        if measured is not None
        else {}
    )  # fmt: skip
    iso = _IsoTimes()
    created, insufficient, rows = [], [], []
    for participation, fingerprint, previous in changed:
        site_id = participation.enrollment.site_id
        baseline = baselines.get(site_id)
        row = EventPerformance(
            participation=participation,
            version=(previous.version + 1) if previous else 1,
            method=method.name,
            parameters=parameters,
            committed_kw=participation.committed_kw,
            fingerprint=fingerprint,
            computed_at=now,
        )
        utc, kwh = site_arrays(site_id)
        if utc.size:
            first, stop = np.searchsorted(utc, day_bounds)
            minutes = (
                baseline.interval_minutes
                if isinstance(baseline, BaselineResult)
                else site_minutes[site_id]
            )
            row.day_actual = [
                [at, round(value * 60 / minutes, 4)]
                for at, value in zip(iso.of(utc[first:stop]), kwh[first:stop].tolist(), strict=True)
            ]
        if not isinstance(baseline, BaselineResult):
            row.status = EventPerformance.Status.INSUFFICIENT_DATA
            row.message = unmeasurable.get(site_id) or (
                str(baseline) if baseline is not None else "No meter readings."
            )
            insufficient.append(participation.pk)
        else:
            _fill(row, baseline, performances[site_id], flags_by_site[site_id], iso)
            created.append(participation.pk)
        rows.append(row)
    with transaction.atomic():
        EventPerformance.objects.filter(
            participation_id__in=[row.participation_id for row in rows], is_current=True
        ).update(is_current=False)
        EventPerformance.objects.bulk_create(rows)
    return PerformanceReport(tuple(created), tuple(unchanged), tuple(insufficient))


def _unmeasurable(
    batch: ReadingsBatch,
    site_minutes: dict[int, int],
    event_start: pd.Timestamp,
    event_end: pd.Timestamp,
) -> dict[int, str]:
    """Sites whose event load cannot be measured interval by interval, with the reason for
    the participant: fewer than two readings (no interval length), or an event that does
    not start and end on the site's interval grid (its meter interval and the spacing of
    its readings, anchored on its first reading, as the baseline library reads them)."""
    start_ns, end_ns = int(event_start.value), int(event_end.value)
    window = f"{event_start:%H:%M}-{event_end:%H:%M}"
    reasons: dict[int, str] = {}
    for at, site in enumerate(batch.keys):
        utc = batch.utc[batch.offsets[at] : batch.offsets[at + 1]]
        if utc.size < 2:
            reasons[site] = "Only one meter reading around the event: nothing to measure."
            continue
        minutes = site_minutes[site]
        steps = {minutes * 60_000_000_000, int(np.diff(utc).min())}
        anchor = int(utc[0])
        if any((start_ns - anchor) % step or (end_ns - anchor) % step for step in steps):
            reasons[site] = (
                f"The event ({window}) does not start and end on this site's {minutes}-minute "
                "meter intervals, so its load cannot be compared with the baseline interval "
                "by interval."
            )
    return reasons


class _IsoTimes:
    """UTC ISO 8601 strings of instants (int64 ns), each formatted once: every site of an
    event shares the event's and the event day's interval starts."""

    def __init__(self) -> None:
        self._text: dict[int, str] = {}
        self._by_index: dict[int, tuple[pd.DatetimeIndex, list[str]]] = {}

    def of(self, utc: np.ndarray) -> list[str]:
        text = self._text
        out = []
        for value in utc.tolist():
            found = text.get(value)
            if found is None:
                found = text[value] = pd.Timestamp(value, tz="UTC").isoformat()
            out.append(found)
        return out

    def of_index(self, index: pd.DatetimeIndex) -> list[str]:
        # compute_many gives every site the same index object.
        cached = self._by_index.get(id(index))
        if cached is None or cached[0] is not index:
            cached = self._by_index[id(index)] = (index, self.of(index.as_unit("ns").asi8))
        return cached[1]


def _fill(row, baseline, performance, gaming, iso: _IsoTimes) -> None:
    row.status = EventPerformance.Status.COMPUTED
    row.candidate_days = [day.isoformat() for day in baseline.candidate_days]
    row.selected_days = [day.isoformat() for day in baseline.selected_days]
    row.adjustment = float(baseline.adjustment)
    row.interval_minutes = baseline.interval_minutes
    row.intervals = [
        [at, round(b, 4), round(u, 4), _number(round(a, 4))]
        for at, b, u, a in zip(
            iso.of_index(baseline.baseline_kw.index), baseline.baseline_kw.to_numpy().tolist(),
            baseline.unadjusted_kw.to_numpy().tolist(), performance.actual_kw.to_numpy().tolist(),
            strict=True,
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
        for flag in gaming
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
        start, end = reading_window(event, int(event_method(event).spec.lookback_days))
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
