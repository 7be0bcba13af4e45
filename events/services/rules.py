"""A program's event rules, checked before an event is scheduled or changed.

:func:`event_rule_errors` returns every broken rule at once, each as a sentence a program
manager can act on; ``event_create`` and ``event_modify`` raise them together.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from django.db.models import Count

from enrollment.models import Program, Site
from events.models import Event, Participation

#: The years the platform accepts in event and unavailability times. Far enough inside
#: Python's datetime range (years 1 to 9999) that moving a time between zones, or adding
#: the day margins rules and calendars use, never overflows.
FIRST_YEAR, LAST_YEAR = 1900, 8999


def time_range_error(moment: dt.datetime) -> str | None:
    """Why ``moment`` (a naive wall-clock time or an aware one) is out of range, or None.

    Its own date is checked, before any conversion between zones (which could overflow).
    """
    if FIRST_YEAR <= moment.year <= LAST_YEAR:
        return None
    return (
        f"{moment:%Y-%m-%d %H:%M} is out of range: "
        f"give a time between the years {FIRST_YEAR} and {LAST_YEAR}."
    )


def _local_midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone)


def _minutes(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() // 60)


def _hours(value: float) -> str:
    return f"{value:g}"


def _counted_events(program: Program, exclude_event_id: int | None):
    # Test events (drills) do not use up the program's dispatch limits, as in most tariffs:
    # a utility must be able to test its call tree without costing participants an event.
    queryset = Event.objects.filter(program=program, status__in=Event.COUNTED_STATUSES).exclude(
        kind=Event.Kind.TEST
    )
    if exclude_event_id is not None:
        queryset = queryset.exclude(pk=exclude_event_id)
    return queryset


def _limit_errors(
    *,
    program: Program,
    label: str,
    period_start: dt.datetime,
    period_end: dt.datetime,
    max_events: int | None,
    max_hours: int | None,
    hours: float,
    exclude_event_id: int | None,
) -> list[str]:
    if max_events is None and max_hours is None:
        return []
    spans = list(
        _counted_events(program, exclude_event_id)
        .filter(starts_at__gte=period_start, starts_at__lt=period_end)
        .values_list("starts_at", "ends_at")
    )
    errors = []
    if max_events is not None and len(spans) + 1 > max_events:
        errors.append(
            f"The {label} allows {max_events} event(s) and {len(spans)} are already called; "
            "none is left."
        )
    if max_hours is not None:
        used = sum((end - start).total_seconds() for start, end in spans) / 3600
        if used + hours > max_hours + 1e-9:
            errors.append(
                f"The {label} allows {max_hours} event hour(s); {_hours(round(used, 2))} are "
                f"used and this event needs {_hours(round(hours, 2))}."
            )
    return errors


def event_rule_errors(
    *,
    program: Program,
    kind: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    site_ids: Iterable[int],
    now: dt.datetime,
    exclude_event_id: int | None = None,
    check_notice: bool = True,
) -> list[str]:
    """Every rule of ``program`` an event from ``starts_at`` to ``ends_at`` would break.

    Returns an empty list when the event is allowed. The rules: start in the future and
    end after it; minimum notice (waived for emergencies only where the program says so;
    ``check_notice=False`` skips it, for changes that keep the start); allowed weekdays
    and local hours; minimum and maximum length; within the season; events and hours left
    in the season and in the month (test events neither count nor are limited); at most
    ``max_events_per_site_per_day`` events per targeted site and local day.
    ``exclude_event_id`` leaves an event being changed out of the counts.
    """
    errors: list[str] = []
    out_of_range = [e for e in (time_range_error(starts_at), time_range_error(ends_at)) if e]
    if out_of_range:
        return out_of_range
    if ends_at <= starts_at:
        return ["The event must end after it starts."]
    zone = program.zone
    local_start, local_end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    length = _minutes(ends_at - starts_at)
    hours = (ends_at - starts_at).total_seconds() / 3600

    if check_notice:
        if starts_at <= now:
            errors.append("The event must start in the future.")
        else:
            notice = _minutes(starts_at - now)
            waived = kind == Event.Kind.EMERGENCY and program.emergency_overrides_notice
            if notice < program.min_notice_minutes and not waived:
                why = (
                    " (this program does not let emergency events override it)"
                    if kind == Event.Kind.EMERGENCY
                    else ""
                )
                errors.append(
                    f"Events need at least {program.min_notice_minutes} minutes' notice; this "
                    f"one gives {notice}{why}."
                )

    if local_start.weekday() not in program.allowed_weekdays:
        errors.append(
            f"Events may only fall on "
            f"{', '.join(calendar.day_name[day] for day in sorted(program.allowed_weekdays))}; "
            f"{local_start:%Y-%m-%d} is a {calendar.day_name[local_start.weekday()]}."
        )
    window = f"{program.event_window_start:%H:%M}-{program.event_window_end:%H:%M}"
    if (
        local_start.date() != local_end.date()
        or local_start.time() < program.event_window_start
        or local_end.time() > program.event_window_end
    ):
        errors.append(
            f"Events must run within {window} local time ({program.time_zone}); this one "
            f"runs {local_start:%Y-%m-%d %H:%M}-{local_end:%H:%M}."
        )
    if length < program.min_event_minutes:
        errors.append(
            f"An event lasts at least {program.min_event_minutes} minutes; this one lasts {length}."
        )
    if length > program.max_event_minutes:
        errors.append(
            f"An event lasts at most {program.max_event_minutes} minutes; this one lasts {length}."
        )
    if not (program.season_start <= local_start.date() <= program.season_end) or not (
        program.season_start <= local_end.date() <= program.season_end
    ):
        errors.append(
            f"The event falls outside the season ({program.season_start:%Y-%m-%d} to "
            f"{program.season_end:%Y-%m-%d})."
        )

    if kind != Event.Kind.TEST:
        errors += _limit_errors(
            program=program,
            label="season",
            period_start=_local_midnight(program.season_start, zone),
            period_end=_local_midnight(program.season_end + dt.timedelta(days=1), zone),
            max_events=program.max_events_per_season,
            max_hours=program.max_hours_per_season,
            hours=hours,
            exclude_event_id=exclude_event_id,
        )
        month_start = local_start.date().replace(day=1)
        next_month = (month_start + dt.timedelta(days=32)).replace(day=1)
        errors += _limit_errors(
            program=program,
            label=f"month of {month_start:%B %Y}",
            period_start=_local_midnight(month_start, zone),
            period_end=_local_midnight(next_month, zone),
            max_events=program.max_events_per_month,
            max_hours=program.max_hours_per_month,
            hours=hours,
            exclude_event_id=exclude_event_id,
        )

    site_ids = list(site_ids)
    if site_ids:
        day = local_start.date()
        same_day = (
            Participation.objects.filter(
                enrollment__site_id__in=site_ids,
                removed_at__isnull=True,
                event__program=program,
                event__status__in=Event.COUNTED_STATUSES,
                event__starts_at__gte=_local_midnight(day, zone),
                event__starts_at__lt=_local_midnight(day + dt.timedelta(days=1), zone),
            )
            .exclude(event_id=exclude_event_id)
            .values("enrollment__site_id")
            .annotate(events=Count("event", distinct=True))
            .filter(events__gte=program.max_events_per_site_per_day)
        )
        busy = {row["enrollment__site_id"]: row["events"] for row in same_day}
        for site in Site.objects.filter(pk__in=busy).order_by("name"):
            errors.append(
                f"{site.name} already has {busy[site.pk]} event(s) on {day:%Y-%m-%d}; the "
                f"program allows {program.max_events_per_site_per_day} per site and day."
            )
    return errors
