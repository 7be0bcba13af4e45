"""A season settlement run and its billing export against merely reading the performance rows.

Builds (once) a program with BENCH_SITES enrolled sites (default 1,000; four per
organization), each with a nomination in effect before the season, stored payment rules
(capacity $/kW-month with the linear performance factor, energy $/kWh), BENCH_EVENTS
completed events in the season (default 10) that every site took part in, and the
performance already computed: one current ``EventPerformance`` row per participation,
as wide as the platform writes them (8 event intervals, the day's 96 actual values, 10
candidate and selected days). A few sites opted out of an event (counted as measured) or
have no usable performance for it (left out and named in the run's notes), as in a real
season.

Then, in the same run, BENCH_ROUNDS rounds (default 3; the earlier round's run forgotten
before the next), each timing one after the other:

- the reference: merely reading the current performance rows of the season's events,
  the columns the calculation reads (``calculation.current_performances``, one query;
  one untimed warm-up read before the first round);
- the season run: ``settlement_run_create`` then ``settlement_run_calculate`` by a
  program manager (every input read, the lines computed and stored, commit included);
- its approval by a billing clerk (``settlement_run_approve``: four eyes, lines locked);
- its billing export (``billing_export_create``: the CSV built and stored).

Prints the best round of each with lines (or rows) per second and this process's CPU
time (the rest is the database, or waiting for a core on a busy machine), and the ratio
season run / read (goal: within 3x), also in client CPU. Checks that the run holds the
expected number of lines, that its total equals the sum of its lines, that the export
has one row per line and that every round gave the same total.

Environment: DATABASE_URL (default postgres://postgres:postgres@127.0.0.1:5432/
dr_bench_settlement, its own database, so that its migrations, ANALYZE and runs never
touch another benchmark's data; created and migrated when missing; its rows carry the
``SETTLEMENT-`` prefix and are reused between runs; the earlier settlement runs of its
program, their lines and exports, are deleted at the start, the lines' lock trigger
disabled for that one transaction), BENCH_SITES (1000), BENCH_EVENTS (10),
BENCH_ROUNDS (3).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks._support import ensure_database  # noqa: E402 (after the path)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dr_platform.settings")
os.environ.setdefault(
    "DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/dr_bench_settlement"
)

SITES = int(os.environ.get("BENCH_SITES", "1000"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "10"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))
SITES_PER_ORGANIZATION = 4
PREFIX = "SETTLEMENT-"
PROGRAM_NAME = "SETTLEMENT-benchmark program"
ZONE = ZoneInfo("America/New_York")
SEASON_START = dt.date(2026, 6, 1)
SEASON_END = dt.date(2026, 9, 30)
COMMITTED_KW = Decimal("150")
GOAL_RATIO = 3.0


# --- setup ---------------------------------------------------------------------------


def event_days() -> list[dt.date]:
    """BENCH_EVENTS weekdays of July and August 2026, a few days apart."""
    days, day = [], dt.date(2026, 7, 1)
    while len(days) < EVENTS:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=3)
    if days[-1] > SEASON_END:
        raise SystemExit(f"BENCH_EVENTS={EVENTS} events do not fit in the season")
    return days


def users():
    """The program manager who calculates, and the billing clerk who approves (four eyes)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from dr_platform.roles import BILLING, PROGRAM_MANAGERS

    people = []
    for username, group in (
        ("settlement-bench-manager", PROGRAM_MANAGERS),
        ("settlement-bench-clerk", BILLING),
    ):
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": True}
        )
        if created:
            user.groups.add(Group.objects.get(name=group))
        people.append(user)
    return people


def forget_runs(program) -> None:
    """Delete the program's earlier settlement runs, their lines and exports.

    Approved lines are locked, and a trigger refuses to delete them; it is disabled for
    this one transaction only (the ALTER TABLE holds its lock until the commit, so no other
    session ever sees the table without it).
    """
    from django.db import connection, transaction

    runs = "SELECT id FROM settlements_settlementrun WHERE program_id = %s"
    with transaction.atomic(), connection.cursor() as cursor:
        # Foreign keys are checked at each statement, not deferred to the commit: a table
        # with pending checks cannot be altered back.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "ALTER TABLE settlements_settlementline DISABLE TRIGGER settlements_line_locked"
        )
        for table in ("settlements_billingexport", "settlements_settlementline"):
            cursor.execute(f"DELETE FROM {table} WHERE run_id IN ({runs})", [program.pk])  # noqa: S608
        cursor.execute(
            "UPDATE settlements_settlementrun SET restates_id = NULL WHERE program_id = %s",
            [program.pk],
        )
        cursor.execute("DELETE FROM settlements_settlementrun WHERE program_id = %s", [program.pk])
        cursor.execute(
            "ALTER TABLE settlements_settlementline ENABLE TRIGGER settlements_line_locked"
        )


def performance_row(participation, rng: random.Random, day: dt.date, *, usable: bool):
    """A current performance as the platform stores it: 2-hour event, 15-minute intervals."""
    from settlements.models import EventPerformance

    committed = float(participation.committed_kw)
    start = dt.datetime.combine(day, dt.time(14), ZONE).astimezone(dt.UTC)
    candidates = [(day - dt.timedelta(days=offset)).isoformat() for offset in range(1, 15)]
    candidates = [text for text in candidates if dt.date.fromisoformat(text).weekday() < 5][:10]
    baseline = [round(rng.uniform(380, 420), 4) for _ in range(8)]
    average = round(committed * rng.uniform(0.6, 1.15), 4)
    actual = [round(kw - average * rng.uniform(0.9, 1.1), 4) for kw in baseline]
    reduction = [b - a for b, a in zip(baseline, actual, strict=True)]
    row = EventPerformance(
        participation=participation,
        version=1,
        is_current=True,
        method="caiso_10_of_10",
        parameters={"preset": "caiso_10_of_10", "days": 10, "of": 10, "adjustment": "capped"},
        candidate_days=candidates,
        selected_days=candidates,
        interval_minutes=15,
        intervals=[
            [(start + dt.timedelta(minutes=15 * n)).isoformat(), b, round(b / 1.05, 4), a]
            for n, (b, a) in enumerate(zip(baseline, actual, strict=True))
        ],
        day_actual=[
            [
                (dt.datetime.combine(day, dt.time(), ZONE) + dt.timedelta(minutes=15 * n))
                .astimezone(dt.UTC)
                .isoformat(),
                round(rng.uniform(250, 420), 4),
            ]
            for n in range(96)
        ],
        committed_kw=participation.committed_kw,
        fingerprint=f"{PREFIX}{participation.pk}",
        computed_at=dt.datetime(2026, 9, 1, tzinfo=dt.UTC),
    )
    if usable:
        row.status = EventPerformance.Status.COMPUTED
        row.adjustment = round(rng.uniform(0.9, 1.2), 3)
        row.reduction_kwh = round(sum(reduction) * 15 / 60, 4)
        row.average_reduction_kw = round(sum(reduction) / len(reduction), 4)
        row.max_reduction_kw = round(max(reduction), 4)
        row.performance_ratio = row.average_reduction_kw / committed
    else:
        row.status = EventPerformance.Status.INSUFFICIENT_DATA
        row.message = "Fewer than 10 like days with complete readings."
    return row


def prepare():
    """Migrate; create (once) the program, its rules, sites, enrollments, nominations,
    events, participations and performances; delete the program's earlier runs.

    Returns ``(program, event_ids, manager, clerk)``.
    """
    from django.core.management import call_command
    from django.db import transaction

    from enrollment.models import Enrollment, Nomination, Organization, Program, Site
    from events.models import Event, Participation
    from settlements.models import EventPerformance
    from settlements.payments import PaymentRules
    from settlements.runs import payment_rules_add

    call_command("migrate", verbosity=0)
    manager, clerk = users()
    program, created = Program.objects.get_or_create(
        name=PROGRAM_NAME,
        defaults={
            "time_zone": str(ZONE),
            "season_start": SEASON_START,
            "season_end": SEASON_END,
            "terms_text": "Benchmark terms.",
            "terms_version": "bench",
            "exclusive": False,
        },
    )
    if created:
        payment_rules_add(
            program=program,
            rules=PaymentRules(
                effective_from=dt.date(2026, 1, 1),
                version="bench-2026",
                capacity_rate=Decimal("8.00"),
                capacity_unit="kW-month",
                factor_method="linear",
                energy_rate=Decimal("0.25"),
                negative_reductions="floor_event",
            ),
            by=manager,
        )
    forget_runs(program)

    days = event_days()
    events = list(
        Event.objects.filter(program=program).order_by("starts_at").values_list("pk", flat=True)
    )
    have = Enrollment.objects.filter(program=program).count()
    performances = EventPerformance.objects.filter(participation__event__program=program).count()
    if (have, len(events), performances) == (SITES, EVENTS, SITES * EVENTS):
        return program, events, manager, clerk
    if have or events:
        raise SystemExit(
            f"the benchmark database holds {have} benchmark enrollments, {len(events)} events "
            f"and {performances} performances, not {SITES}, {EVENTS} and {SITES * EVENTS}; "
            f"delete the {PREFIX} rows or use another DATABASE_URL"
        )

    rng = random.Random(2026)  # noqa: S311 - reproducible test data, not secrets
    with transaction.atomic():
        organizations = Organization.objects.bulk_create(
            [
                Organization(
                    legal_name=f"{PREFIX}Organization {number:05d}",
                    billing_account_number=f"{PREFIX}{number:05d}",
                )
                for number in range(-(-SITES // SITES_PER_ORGANIZATION))
            ],
            batch_size=2000,
        )
        sites = Site.objects.bulk_create(
            [
                Site(
                    organization=organizations[number // SITES_PER_ORGANIZATION],
                    name=f"{PREFIX}site {number:05d}",
                    street="1 Bench Way",
                    city="Albany",
                    state="NY",
                    postal_code="12207",
                    service_account_number=f"{PREFIX}{number:05d}",
                    zone="BENCH",
                    peak_demand_kw=Decimal("800"),
                    audited_curtailable_kw=Decimal("200"),
                )
                for number in range(SITES)
            ],
            batch_size=2000,
        )
        enrollments = Enrollment.objects.bulk_create(
            [
                Enrollment(
                    site=site,
                    program=program,
                    status=Enrollment.Status.ACTIVE,
                    committed_kw=COMMITTED_KW,
                    applied_by=manager,
                    active_from=dt.date(2026, 1, 1),
                    commitment_ends=dt.date(2026, 12, 31),
                )
                for site in sites
            ],
            batch_size=2000,
        )
        Nomination.objects.bulk_create(
            [
                Nomination(
                    enrollment=enrollment,
                    committed_kw=COMMITTED_KW,
                    effective_from=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                    created_by=manager,
                    reason="Benchmark enrollment",
                )
                for enrollment in enrollments
            ],
            batch_size=2000,
        )
        created_events = Event.objects.bulk_create(
            [
                Event(
                    program=program,
                    kind=Event.Kind.ECONOMIC,
                    status=Event.Status.COMPLETED,
                    starts_at=dt.datetime.combine(day, dt.time(14), ZONE),
                    ends_at=dt.datetime.combine(day, dt.time(16), ZONE),
                    target_zones=["BENCH"],
                    reason="Settlement benchmark",
                    created_by=manager,
                )
                for day in days
            ]
        )
        participations = Participation.objects.bulk_create(
            [
                Participation(
                    event=event,
                    enrollment=enrollment,
                    committed_kw=COMMITTED_KW,
                    # About 2% opted out; everyone else acknowledged.
                    status=(
                        Participation.Status.OPTED_OUT
                        if rng.random() < 0.02
                        else Participation.Status.ACKNOWLEDGED
                    ),
                )
                for event in created_events
                for enrollment in enrollments
            ],
            batch_size=5000,
        )
        EventPerformance.objects.bulk_create(
            [
                # About 0.5% lack the readings for a baseline: left out, named in the notes.
                performance_row(participation, rng, day, usable=rng.random() >= 0.005)
                for event, day in zip(created_events, days, strict=True)
                for participation in participations
                if participation.event_id == event.pk
            ],
            batch_size=2000,
        )
    return program, [event.pk for event in created_events], manager, clerk


# --- the run -------------------------------------------------------------------------


class Clock:
    """Wall time and this process's CPU time (the rest of the wall time is the database,
    or waiting for a core on a busy machine)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        lap = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return lap


def one_round(program, event_ids: list[int], manager, clerk) -> dict:
    """Read the performance rows, then run, approve and export the season; time each."""
    from settlements.billing import billing_export_create
    from settlements.models import SettlementRun
    from settlements.runs import (
        settlement_run_approve,
        settlement_run_calculate,
        settlement_run_create,
    )
    from settlements.runs.calculation import current_performances

    clock = Clock()
    rows = current_performances(event_ids)
    read = clock.lap()
    run = settlement_run_create(
        program=program, period_kind=SettlementRun.PeriodKind.SEASON,
        period_start=SEASON_START, period_end=SEASON_END, by=manager,
    )  # fmt: skip
    run = settlement_run_calculate(run=run, by=manager)
    season_run = clock.lap()
    run = settlement_run_approve(run=run, by=clerk)
    approval = clock.lap()
    export = billing_export_create(run=run, by=clerk)
    exported = clock.lap()
    return {
        "rows": len(rows),
        "read": read,
        "run": season_run,
        "approval": approval,
        "export": exported,
        "run_object": run,
        "export_object": export,
    }


def best(rounds: list[dict], name: str) -> tuple[float, float]:
    """The fastest (wall) round's (wall, cpu) of one measure."""
    return min(round_[name] for round_ in rounds)


def main() -> int:
    url = os.environ["DATABASE_URL"]
    if not url.startswith(("postgres://", "postgresql://")):
        print(f"settlement.py needs PostgreSQL; DATABASE_URL={url}")
        return 1
    ensure_database(url)

    import django

    django.setup()
    from django.db import connection

    from settlements.models import SettlementLine
    from settlements.runs.calculation import current_performances

    setup_started = time.perf_counter()
    program, event_ids, manager, clerk = prepare()
    setup_seconds = time.perf_counter() - setup_started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    current_performances(event_ids)  # warm-up: the table's pages cached for every round

    rounds = []
    for number in range(ROUNDS):
        if number:
            forget_runs(program)
        rounds.append(one_round(program, event_ids, manager, clerk))

    last = rounds[-1]
    run, export = last["run_object"], last["export_object"]
    lines, rows = run.line_count, last["rows"]
    stored = list(SettlementLine.objects.filter(run=run).values_list("amount", flat=True))
    left_out = sum(1 for note in run.notes.splitlines() if note.startswith("Participation "))
    # One capacity line per site, one energy line per counted participation.
    expected_lines = SITES + SITES * EVENTS - left_out
    checks = {
        "lines as expected": lines == len(stored) == expected_lines,
        "total = sum of lines": run.total == sum(stored, Decimal("0.00")),
        "one export row per line": export.row_count == lines,
        "same total every round": len({r["run_object"].total for r in rounds}) == 1,
    }
    read, season_run = best(rounds, "read"), best(rounds, "run")
    approval, exported = best(rounds, "approval"), best(rounds, "export")

    def timed(figure: tuple[float, float], count: int, unit: str) -> str:
        wall, cpu = figure
        return (
            f"{wall * 1000:,.1f} ms (client CPU {cpu * 1000:,.1f} ms), {count / wall:,.0f} {unit}/s"
        )

    print(
        f"sites: {SITES}, events: {EVENTS}, performance rows: {rows}, lines: {lines} "
        f"({left_out} participations without a usable performance left out), "
        f"database {urlparse(url).path.lstrip('/')}; best of {ROUNDS} rounds"
    )
    print(f"setup (migrate, bulk-create or reuse data, forget earlier runs): {setup_seconds:.1f} s")
    print(f"read performance rows (reference): {timed(read, rows, 'rows')}")
    print(f"season run (create + calculate, commit included): {timed(season_run, lines, 'lines')}")
    print(f"approval (four eyes, lines locked): {timed(approval, lines, 'lines')}")
    print(
        f"billing export ({export.row_count} rows, {len(export.content):,} bytes): "
        f"{timed(exported, export.row_count, 'rows')}"
    )
    print(
        f"ratio season run/read: {season_run[0] / read[0]:.1f}x (goal <= {GOAL_RATIO:.0f}x); "
        f"client CPU only: {season_run[1] / read[1]:.1f}x"
    )
    print("checks: " + ", ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in checks.items()))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
