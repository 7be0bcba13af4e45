"""Every participation's baseline and performance for one event, from PostgreSQL, against
merely reading the same readings into pandas.

BENCH_SITES sites (default 1,000), one meter each, hold BENCH_DAYS days (60) of
15-minute readings, loaded once by binary COPY; all are enrolled in one program (America/
New_York, CAISO 10 of 10 with its load point adjustment) and take part in one completed
four-hour event on the last day. A few sites have gaps, an inflated baseline day or a
pre-event load drop, so the data quality and gaming flags are computed too. Each round
times:

(a) the platform: ``settlements.performance.performance_compute_event`` for the event,
    as the performance task runs it: its queries (participations, meters, readings of the
    method's 47-day reading window, other events, current performances), every site's
    baseline, performance and flags, and the transaction writing the EventPerformance
    rows. The rows of the previous round are deleted first (untimed), so every round
    computes and writes them all;
(b) merely reading: the same rows (same meters, same reading window) read into a pandas
    DataFrame [meter, interval_start (UTC), kwh] on a plain psycopg connection, the fastest
    way found: one row per meter holding ``array_agg`` arrays in binary, decoded by numpy.
    The common ways build a Python object per reading and take several times as long
    (the rows through a binary cursor's ``fetchall``, measured once and printed for
    comparison; ``pandas.read_sql`` or a ``COPY ... TO STDOUT`` read row by row are slower
    still), which would flatter the ratio.

Rounds alternate (a) and (b) after one untimed read that warms the caches; the best of
BENCH_ROUNDS rounds (3) of each is reported. Prints both times, sites per second and the
ratio (a) / (b) (goal <= 2), and checks that every participation was computed.

Environment: DATABASE_URL (default postgres://postgres:postgres@127.0.0.1:5432/
dr_platform_bench, created and migrated when missing; the benchmark's own rows carry the
``BASELINES-`` prefix and are reused between runs, its readings reloaded when missing, its
earlier events deleted), BENCH_SITES (1000), BENCH_DAYS (60), BENCH_ROUNDS (3).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks._support import ensure_database  # noqa: E402 (after the path)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dr_platform.settings")
os.environ.setdefault(
    "DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/dr_platform_bench"
)

SITES = int(os.environ.get("BENCH_SITES", "1000"))
DAYS = int(os.environ.get("BENCH_DAYS", "60"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PREFIX = "BASELINES-"
PROGRAM_NAME = "BASELINES-benchmark program"
TIME_ZONE = "America/New_York"
# The last day of data is the event day: a Thursday, 14:00-18:00 local.
EVENT_DAY = dt.date(2026, 7, 16)
EVENT_START, EVENT_END = dt.time(14, 0), dt.time(18, 0)
QUARTER_NS = 15 * 60 * 1_000_000_000


# --- setup ---------------------------------------------------------------------------


def prepare():
    """Migrate; create (once) the program, sites, meters and enrollments; load the readings
    when they are not all there; delete earlier benchmark events.

    Returns ``(program, manager, enrollments, meter_ids)``.
    """
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import transaction

    from dr_platform.roles import PROGRAM_MANAGERS
    from enrollment.models import Enrollment, Meter, Organization, Program, Site
    from events.models import Event
    from settlements.models import EventPerformance

    call_command("migrate", verbosity=0)
    manager, created = get_user_model().objects.get_or_create(
        username="baselines-bench-manager", defaults={"is_staff": True}
    )
    if created:
        manager.groups.add(Group.objects.get(name=PROGRAM_MANAGERS))
    program, _ = Program.objects.get_or_create(
        name=PROGRAM_NAME,
        defaults={
            "time_zone": TIME_ZONE,
            "season_start": EVENT_DAY - dt.timedelta(days=DAYS),
            "season_end": EVENT_DAY + dt.timedelta(days=30),
            "baseline_preset": "caiso_10_of_10",
            "terms_text": "Benchmark terms.",
            "terms_version": "bench",
            "exclusive": False,
        },
    )
    EventPerformance.objects.filter(participation__event__program=program).delete()
    Event.objects.filter(program=program).delete()  # participations cascade

    enrollments = list(
        Enrollment.objects.filter(program=program, status=Enrollment.Status.ACTIVE).order_by(
            "site__service_account_number"
        )
    )
    if len(enrollments) not in (0, SITES):
        raise SystemExit(
            f"the benchmark database holds {len(enrollments)} benchmark enrollments, not "
            f"{SITES}; delete the {PREFIX} rows or use another DATABASE_URL"
        )
    if not enrollments:
        with transaction.atomic():
            organization, _ = Organization.objects.get_or_create(
                billing_account_number=f"{PREFIX}BA",
                defaults={"legal_name": f"{PREFIX}Holdings"},
            )
            sites = Site.objects.bulk_create(
                [
                    Site(
                        organization=organization,
                        name=f"{PREFIX}site {number:05d}",
                        street="1 Bench Way",
                        city="Albany",
                        state="NY",
                        postal_code="12207",
                        service_account_number=f"{PREFIX}{number:05d}",
                        peak_demand_kw=Decimal("400"),
                        audited_curtailable_kw=Decimal("100"),
                    )
                    for number in range(SITES)
                ],
                batch_size=2000,
            )
            Meter.objects.bulk_create(
                [Meter(site=site, meter_id=site.service_account_number) for site in sites],
                batch_size=2000,
            )
            enrollments = Enrollment.objects.bulk_create(
                [
                    Enrollment(
                        site=site,
                        program=program,
                        status=Enrollment.Status.ACTIVE,
                        committed_kw=Decimal("40"),
                        applied_by=manager,
                        active_from=EVENT_DAY - dt.timedelta(days=DAYS),
                    )
                    for site in sites
                ],
                batch_size=2000,
            )
    meter_ids = list(
        Meter.objects.filter(site__enrollments__in=enrollments)
        .order_by("meter_id")
        .values_list("pk", flat=True)
    )
    load_readings(meter_ids)
    return program, manager, enrollments, meter_ids


def data_range() -> tuple[int, int]:
    """UTC ns of the first interval start and the end of the readings: BENCH_DAYS local
    days ending with the event day."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(TIME_ZONE)
    first = dt.datetime.combine(EVENT_DAY - dt.timedelta(days=DAYS - 1), dt.time(), zone)
    end = dt.datetime.combine(EVENT_DAY + dt.timedelta(days=1), dt.time(), zone)
    return int(first.timestamp()) * 1_000_000_000, int(end.timestamp()) * 1_000_000_000


def load_readings(meter_ids: list[int]) -> None:
    """COPY every meter's readings in unless they are all there already.

    Load shapes: an afternoon peak, a level per site, 5% noise, and a cut of about a
    third during the event. So that the flags and gaps are exercised too: every 50th site
    lacks one hour on one day, every 100th one event interval; every 25th site ran twice
    its load through the event hours of the day before (an inflated baseline day), every
    40th cut its load by half through the morning of the event day (a pre-event drop).
    """
    import numpy as np
    from django.db import connection, transaction

    from settlements.importer import _binary_readings, _PostgresStage
    from settlements.models import MeterReading

    first_ns, end_ns = data_range()
    starts = np.arange(first_ns, end_ns, QUARTER_NS, dtype=np.int64)
    gap = np.zeros(starts.size, dtype=bool)
    gap[20 * 96 + 40 : 20 * 96 + 44] = True  # 10:00-11:00 on day 21 (no DST change here)
    event_day_at = (DAYS - 1) * 96  # no DST change in the data: 96 quarter-hours a day
    event_gap = np.zeros(starts.size, dtype=bool)
    event_gap[event_day_at + 14 * 4 + 5] = True  # 15:15 on the event day
    inflated = np.zeros(starts.size, dtype=bool)
    inflated[event_day_at - 96 + 14 * 4 : event_day_at - 96 + 18 * 4] = True
    pre_event = np.zeros(starts.size, dtype=bool)
    pre_event[event_day_at + 6 * 4 : event_day_at + 14 * 4] = True
    expected = (
        len(meter_ids) * starts.size
        - len(meter_ids[::50]) * int(gap.sum())
        - len(meter_ids[::100]) * int(event_gap.sum())
    )
    table = connection.ops.quote_name(MeterReading._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {table} WHERE meter_id = ANY(%s)",  # noqa: S608
            [meter_ids],
        )
        if cursor.fetchone()[0] == expected:
            return
    started = time.perf_counter()
    rng = np.random.default_rng(2026)
    local_hour = ((starts - first_ns) // QUARTER_NS % 96) / 4.0
    shape = 1.0 + 0.8 * np.exp(-(((local_hour - 15.0) / 3.5) ** 2))
    event_ns = (
        np.array(
            [
                dt.datetime.combine(EVENT_DAY, at, _zone()).timestamp()
                for at in (EVENT_START, EVENT_END)
            ]
        ).astype(np.int64)
        * 1_000_000_000
    )
    in_event = (starts >= event_ns[0]) & (starts < event_ns[1])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE meter_id = ANY(%s)", [meter_ids])  # noqa: S608
        copy_sql = (
            f"COPY {table} (meter_id, interval_start, kwh, quality) FROM STDIN (FORMAT BINARY)"
        )
        for chunk in range(0, len(meter_ids), 100):
            meters = np.asarray(meter_ids[chunk : chunk + 100], dtype=np.int64)
            level_kw = rng.uniform(40, 160, size=(meters.size, 1))
            kw = level_kw * shape * rng.normal(1.0, 0.05, size=(meters.size, starts.size))
            kw[:, in_event] *= rng.uniform(0.55, 0.8, size=(meters.size, 1))
            number = chunk + np.arange(meters.size)
            kw[np.ix_(number % 25 == 0, inflated)] *= 2.0
            kw[np.ix_(number % 40 == 0, pre_event)] *= 0.5
            keep = np.ones((meters.size, starts.size), dtype=bool)
            keep[number % 50 == 0] &= ~gap
            keep[number % 100 == 0] &= ~event_gap
            columns = {
                "meter_id": np.repeat(meters, starts.size)[keep.ravel()],
                "start_ns": np.tile(starts, meters.size)[keep.ravel()],
                "kwh": np.round(kw * 0.25, 3).ravel()[keep.ravel()],
                "quality_code": np.zeros(int(keep.sum()), dtype=np.int64),
            }
            with cursor.copy(copy_sql) as copy:
                copy.write(_PostgresStage.HEADER)
                for piece in _binary_readings(columns, [""]):
                    copy.write(piece)
                copy.write(_PostgresStage.TRAILER)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")
    print(f"loaded {expected:,} readings in {time.perf_counter() - started:.1f} s")


def _zone():
    from zoneinfo import ZoneInfo

    return ZoneInfo(TIME_ZONE)


def create_event(program, manager, enrollments):
    """One completed event on the last day of data, every enrollment taking part."""
    from events.models import Event, Participation

    zone = _zone()
    event = Event.objects.create(
        program=program,
        kind=Event.Kind.ECONOMIC,
        status=Event.Status.COMPLETED,
        starts_at=dt.datetime.combine(EVENT_DAY, EVENT_START, zone),
        ends_at=dt.datetime.combine(EVENT_DAY, EVENT_END, zone),
        created_by=manager,
        reason="Baselines benchmark",
    )
    Participation.objects.bulk_create(
        [
            Participation(
                event=event,
                enrollment=enrollment,
                committed_kw=enrollment.committed_kw,
                status=Participation.Status.ACKNOWLEDGED,
            )
            for enrollment in enrollments
        ],
        batch_size=2000,
    )
    return event


# --- the two measurements ------------------------------------------------------------


def platform(event) -> tuple[float, object]:
    """(seconds, report) of computing and storing every participation's performance."""
    from events.models import Event
    from settlements.models import EventPerformance
    from settlements.performance import performance_compute_event

    EventPerformance.objects.filter(participation__event=event).delete()
    event = Event.objects.select_related("program").get(pk=event.pk)
    started = time.perf_counter()
    report = performance_compute_event(event=event)
    return time.perf_counter() - started, report


def read_only(connection, meter_ids: list[int], start: dt.datetime, end: dt.datetime):
    """(seconds, frame) of reading the readings into a DataFrame [meter, interval_start
    (UTC), kwh] on ``connection`` (psycopg), the fastest way found: one row per meter
    holding two binary arrays (``array_agg``), each decoded by numpy, so no Python object
    is built per reading."""
    import numpy as np
    import pandas as pd
    from psycopg.adapt import Loader
    from psycopg.pq import Format

    class FloatArray(Loader):
        format = Format.BINARY
        cell = np.dtype([("size", ">i4"), ("value", ">f8")])
        native = np.float64

        def load(self, data):  # one dimension, no nulls: 20 header bytes, then the cells
            length = int.from_bytes(bytes(data[12:16]), "big")
            cells = np.frombuffer(data, dtype=self.cell, count=length, offset=20)
            return cells["value"].astype(self.native)  # a copy: the buffer is psycopg's

    class TimestampArray(FloatArray):
        cell = np.dtype([("size", ">i4"), ("value", ">i8")])  # microseconds since 2000
        native = np.int64

    started = time.perf_counter()
    with connection.cursor(binary=True) as cursor:
        types = connection.adapters.types
        cursor.adapters.register_loader(types["float8"].array_oid, FloatArray)
        cursor.adapters.register_loader(types["timestamptz"].array_oid, TimestampArray)
        cursor.execute(
            "SELECT meter_id, array_agg(interval_start), array_agg(kwh) "
            "FROM settlements_meterreading WHERE meter_id = ANY(%s) "
            "AND interval_start >= %s AND interval_start < %s GROUP BY meter_id",
            [meter_ids, start, end],
        )
        rows = cursor.fetchall()
    micros = np.concatenate([row[1] for row in rows]) + 946_684_800_000_000
    frame = pd.DataFrame(
        {
            "meter": np.repeat([row[0] for row in rows], [row[1].size for row in rows]),
            "interval_start": pd.DatetimeIndex(micros.view("M8[us]")).tz_localize("UTC"),
            "kwh": np.concatenate([row[2] for row in rows]),
        },
        copy=False,
    )
    return time.perf_counter() - started, frame


def read_row_by_row(connection, meter_ids: list[int], start: dt.datetime, end: dt.datetime):
    """(seconds, rows) of the same read done the common way, for comparison: the rows
    themselves fetched (binary) and put into a DataFrame."""
    import pandas as pd

    started = time.perf_counter()
    with connection.cursor(binary=True) as cursor:
        cursor.execute(
            "SELECT meter_id, interval_start, kwh FROM settlements_meterreading "
            "WHERE meter_id = ANY(%s) AND interval_start >= %s AND interval_start < %s",
            [meter_ids, start, end],
        )
        frame = pd.DataFrame(cursor.fetchall(), columns=["meter", "interval_start", "kwh"])
    return time.perf_counter() - started, len(frame)


def main() -> int:
    url = os.environ["DATABASE_URL"]
    if not url.startswith(("postgres://", "postgresql://")):
        print(f"baselines.py needs PostgreSQL; DATABASE_URL={url}")
        return 1
    ensure_database(url)

    import django
    import psycopg

    django.setup()
    from settlements.baselines import spec_from_preset
    from settlements.models import EventPerformance
    from settlements.performance import reading_window

    setup_started = time.perf_counter()
    program, manager, enrollments, meter_ids = prepare()
    event = create_event(program, manager, enrollments)
    setup_seconds = time.perf_counter() - setup_started
    spec = spec_from_preset(program.baseline_preset, program.baseline_overrides)
    start, end = reading_window(event, int(spec.lookback_days))

    with psycopg.connect(url, autocommit=True) as reference:
        _, frame = read_only(reference, meter_ids, start, end)  # warms the caches, untimed
        rows = len(frame)
        count, total_kwh = reference.execute(
            "SELECT count(*), sum(kwh) FROM settlements_meterreading WHERE meter_id = ANY(%s) "
            "AND interval_start >= %s AND interval_start < %s",
            [meter_ids, start, end],
        ).fetchone()
        if count != rows or not math.isclose(frame["kwh"].sum(), total_kwh, rel_tol=1e-9):
            print(f"the reference read {rows} rows and {frame['kwh'].sum()} kWh, not {count} "
                  f"and {total_kwh}")  # fmt: skip
            return 1
        del frame
        platform_times, read_times = [], []
        for _ in range(ROUNDS):
            seconds, report = platform(event)
            platform_times.append(seconds)
            if len(report.created) != SITES:
                print(
                    f"computed {len(report.created)} of {SITES} participations "
                    f"({len(report.insufficient)} with insufficient data)"
                )
                return 1
            seconds, frame = read_only(reference, meter_ids, start, end)
            read_times.append(seconds)
            if len(frame) != rows:
                print(f"the reference read {rows} rows, then {len(frame)}")
                return 1
            del frame
        row_by_row_seconds, _ = read_row_by_row(reference, meter_ids, start, end)
    stored = EventPerformance.objects.filter(
        participation__event=event, is_current=True, status=EventPerformance.Status.COMPUTED
    )
    flagged = sum(1 for flags in stored.values_list("flags", flat=True) if flags)

    platform_seconds, read_seconds = min(platform_times), min(read_times)
    print(
        f"sites: {SITES}, one meter each, {DAYS} days of 15-minute readings; one "
        f"{EVENT_START:%H:%M}-{EVENT_END:%H:%M} event on {EVENT_DAY} ({TIME_ZONE}), method "
        f"{program.baseline_preset}; its reading window {start:%Y-%m-%d %H:%M} to "
        f"{end:%Y-%m-%d %H:%M} UTC holds {rows:,} readings; database "
        f"{urlparse(url).path.lstrip('/')}"
    )
    print(
        f"setup (migrate, create or reuse sites and readings, create the event): "
        f"{setup_seconds:.1f} s"
    )
    print(
        f"best of {ROUNDS} rounds (platform: {', '.join(f'{s:.2f}' for s in platform_times)} s;"
        f" reading: {', '.join(f'{s:.2f}' for s in read_times)} s)"
    )
    print(
        f"(a) platform, performance_compute_event (its queries, {SITES:,} baselines, "
        f"performances and flags, {stored.count():,} rows written, {flagged} with flags): "
        f"{platform_seconds:.2f} s, {SITES / platform_seconds:,.0f} sites/s"
    )
    print(
        f"(b) merely reading the same {rows:,} readings into pandas (one array_agg row per "
        f"meter in binary, decoded by numpy: the fastest read found): {read_seconds:.2f} s, "
        f"{SITES / read_seconds:,.0f} sites/s"
    )
    print(
        f"    for comparison, the rows fetched one by one (binary cursor, fetchall) into a "
        f"DataFrame: {row_by_row_seconds:.2f} s"
    )
    print(f"ratio (a)/(b): {platform_seconds / read_seconds:.2f} (goal <= 2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
