"""Reads of meter data: meters' time zones, import history, and per-meter data quality.

Access: participants reach a meter only through their organizations' sites
(``meter_for_user`` answers 404 for another organization's meter, as for a missing one);
staff holding ``settlements.view_meterreading`` reach every meter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404

from dr_platform.selectors import User, get_for_member
from enrollment.models import Enrollment, Meter, Program
from settlements.meterdata import find_gaps
from settlements.models import ImportProblem, MeterDataImport, MeterReading

#: Staff permission that opens every meter's data quality page.
VIEW_READINGS_PERMISSION = "settlements.view_meterreading"
#: A reading is flagged when its power exceeds this multiple of the site's peak demand.
IMPLAUSIBLE_PEAK_FACTOR = 2.0


def meter_time_zones(meter_ids: Iterable[int]) -> dict[int, str]:
    """Return ``{meter pk: IANA zone}`` for the given meters.

    A meter's zone is the program zone of its site's enrollment (the most recent one, open
    enrollments first), else ``settings.TIME_ZONE``. Two queries whatever the number of meters.
    """
    meter_ids = list(meter_ids)
    site_of = dict(Meter.objects.filter(pk__in=meter_ids).values_list("pk", "site_id"))
    zones: dict[int, str] = {}
    enrollments = (
        Enrollment.objects.filter(site_id__in=set(site_of.values()))
        .order_by("site_id", "applied_at")
        .values_list("site_id", "status", "program__time_zone")
    )
    for site_id, status, zone in enrollments:
        # Later rows win; an open enrollment wins over a closed one.
        if status in Enrollment.OPEN_STATUSES or site_id not in zones:
            zones[site_id] = zone
    return {pk: zones.get(site_id, settings.TIME_ZONE) for pk, site_id in site_of.items()}


def meter_time_zone(meter: Meter) -> str:
    """Return the IANA zone of ``meter``'s local days (see ``meter_time_zones``)."""
    return meter_time_zones([meter.pk]).get(meter.pk, settings.TIME_ZONE)


def default_time_zone() -> str:
    """The zone to read a wall-clock file in when no meter is chosen: the only program zone
    in use, else ``settings.TIME_ZONE``."""
    zones = list(Program.objects.values_list("time_zone", flat=True).distinct()[:2])
    return zones[0] if len(zones) == 1 else settings.TIME_ZONE


def import_history() -> QuerySet[MeterDataImport]:
    """All imports, newest first, with their uploader and meter (for the history table)."""
    return MeterDataImport.objects.select_related("created_by", "meter").order_by(
        "-created_at", "-pk"
    )


def import_problems(data_import: MeterDataImport) -> QuerySet[ImportProblem]:
    """The stored problems of one import in line order (at most the importer's cap)."""
    return data_import.problems.order_by("line", "pk")


def meter_for_user(user: User, meter_id: int) -> Meter:
    """Return the meter with pk ``meter_id`` if ``user`` may see its readings.

    Staff with the readings view permission see every meter; participants only the meters of
    their organizations' sites. Raises Http404 for a missing meter and for another
    organization's meter alike.
    """
    queryset = Meter.objects.select_related("site", "site__organization")
    if user.is_authenticated and user.is_staff and user.has_perm(VIEW_READINGS_PERMISSION):
        try:
            return queryset.get(pk=meter_id)
        except Meter.DoesNotExist:
            raise Http404("No such object.") from None
    return get_for_member(queryset, user, path="site__organization", pk=meter_id)


def meters_for_user(user: User) -> QuerySet[Meter]:
    """The meters whose data quality ``user`` may see, ordered by meter id."""
    from dr_platform.selectors import scope_to_member

    queryset = Meter.objects.select_related("site", "site__organization").order_by("meter_id")
    if user.is_authenticated and user.is_staff and user.has_perm(VIEW_READINGS_PERMISSION):
        return queryset
    return scope_to_member(queryset, user, path="site__organization")


def readings_frame(meter: Meter, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """Return one meter's readings with ``start <= interval_start < end`` (both aware).

    Columns ``interval_start`` (UTC, tz-aware) and ``kwh`` (float), ascending; one query on
    the readings' primary key index.
    """
    rows = MeterReading.objects.filter(
        meter=meter, interval_start__gte=start, interval_start__lt=end
    ).order_by("interval_start")
    values = list(rows.values_list("interval_start", "kwh"))
    frame = pd.DataFrame(values, columns=["interval_start", "kwh"])
    frame["interval_start"] = pd.to_datetime(frame["interval_start"], utc=True)
    frame["kwh"] = frame["kwh"].astype(float)
    return frame


@dataclass(frozen=True)
class DayCoverage:
    """One local day of a meter: intervals present of those the day holds (92/96/100 for
    15-minute data on DST days)."""

    date: dt.date
    present: int
    expected: int

    @property
    def percent(self) -> float:
        return 100.0 * self.present / self.expected if self.expected else 0.0


@dataclass(frozen=True)
class Gap:
    """Missing intervals: ``start`` (first missing) to ``end`` (next present), UTC, half-open."""

    start: dt.datetime
    end: dt.datetime
    intervals: int


@dataclass(frozen=True)
class FlaggedReading:
    """A stored reading whose power is implausibly high for its site."""

    interval_start: dt.datetime
    kwh: float
    kw: float


@dataclass(frozen=True)
class MeterQuality:
    """The data quality of one meter over ``days`` local days ending with ``last_day``.

    ``gaps`` lists the missing stretches within the range (UTC, half-open);
    ``flagged`` lists readings above ``IMPLAUSIBLE_PEAK_FACTOR`` × peak demand (newest first,
    at most ``flag_limit``); ``flagged_count`` counts them all.
    """

    meter: Meter
    time_zone: str
    first_day: dt.date
    last_day: dt.date
    days: list[DayCoverage]
    gaps: list[Gap]
    flagged: list[FlaggedReading]
    flagged_count: int
    present: int
    expected: int
    revisions: int

    @property
    def percent(self) -> float:
        return 100.0 * self.present / self.expected if self.expected else 0.0


def meter_quality(
    meter: Meter, *, last_day: dt.date | None = None, days: int = 60, flag_limit: int = 50
) -> MeterQuality:
    """Coverage per local day, gaps and flagged values of ``meter`` over ``days`` local days
    ending with ``last_day`` (default: yesterday in the meter's zone).

    Local days are those of the meter's zone (``meter_time_zone``), so a spring-forward day
    expects 92 quarter-hours and a fall-back day 100. Reads the range once (one indexed
    query); kW = kWh × 60 / interval minutes.
    """
    zone_name = meter_time_zone(meter)
    zone = ZoneInfo(zone_name)
    if last_day is None:
        last_day = dt.datetime.now(zone).date() - dt.timedelta(days=1)
    first_day = last_day - dt.timedelta(days=days - 1)
    bounds = pd.date_range(first_day, last_day + dt.timedelta(days=1), freq="D", tz=zone_name)
    start, end = bounds[0].to_pydatetime(), bounds[-1].to_pydatetime()
    frame = readings_frame(meter, start, end)
    minutes = meter.interval_minutes
    step = pd.Timedelta(minutes=minutes)
    local_dates = frame["interval_start"].dt.tz_convert(zone_name).dt.date
    present_per_day = local_dates.value_counts().to_dict() if len(frame) else {}
    coverage = []
    for day_start, day_end in zip(bounds[:-1], bounds[1:], strict=True):
        expected = int((day_end - day_start) / step)
        coverage.append(
            DayCoverage(day_start.date(), int(present_per_day.get(day_start.date(), 0)), expected)
        )
    found = find_gaps(
        pd.DatetimeIndex(frame["interval_start"]),
        minutes,
        expected_start=bounds[0].tz_convert("UTC"),
        expected_end=bounds[-1].tz_convert("UTC"),
    )
    gaps = [
        Gap(gap_start.to_pydatetime(), gap_end.to_pydatetime(), int((gap_end - gap_start) / step))
        for gap_start, gap_end in found
    ]
    peak = float(meter.site.peak_demand_kw or 0)
    kw = frame["kwh"].abs() * 60.0 / minutes
    flagged_rows = frame[kw > IMPLAUSIBLE_PEAK_FACTOR * peak] if peak > 0 else frame.iloc[0:0]
    flagged = [
        FlaggedReading(
            row.interval_start.to_pydatetime(), float(row.kwh), float(row.kwh) * 60 / minutes
        )
        for row in flagged_rows.iloc[::-1].head(flag_limit).itertuples()
    ]
    return MeterQuality(
        meter=meter,
        time_zone=zone_name,
        first_day=first_day,
        last_day=last_day,
        days=coverage,
        gaps=gaps,
        flagged=flagged,
        flagged_count=len(flagged_rows),
        present=int(np.sum([day.present for day in coverage])),
        expected=int(np.sum([day.expected for day in coverage])),
        revisions=meter.reading_revisions.filter(
            interval_start__gte=start, interval_start__lt=end
        ).count(),
    )
