"""What a settlement line points at stays there.

PostgreSQL checks only the line's run (per statement, migration 0009's triggers); the site, event,
performance, organization and installment a line points at are protected by the ORM
(``on_delete=PROTECT`` without a database constraint), so deleting any of them through
Django is refused while lines of a run point at it.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError

from settlements.models import SettlementLine
from tests.settlements.settlement_helpers import calculated, enroll, event, installment, participate


@pytest.fixture
def run(july_program):
    enrollment = enroll(july_program, "100")
    the_event = event(july_program, dt.date(2026, 7, 14))
    participate(the_event, enrollment, average_kw="80")
    installment(enrollment.site, july_program, amount="5000.00")
    return calculated(july_program)


@pytest.mark.parametrize("name", ["site", "event", "performance", "organization", "installment"])
def test_deleting_a_row_a_line_points_at_is_refused(run, name):
    line = run.lines.filter(**{f"{name}__isnull": False}).select_related(name).first()
    assert line is not None
    target = getattr(line, name)

    with pytest.raises(ProtectedError) as refused:
        target.delete()

    assert line in refused.value.protected_objects
    assert type(target).objects.filter(pk=target.pk).exists()


def test_deleting_a_run_with_lines_is_refused(run):
    with pytest.raises(ProtectedError):
        run.delete()
    assert SettlementLine.objects.filter(run=run).count() == run.line_count == 3


postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the run check is PostgreSQL's (migration 0009)"
)

_INSERT_LINE = (
    "INSERT INTO settlements_settlementline (run_id, sequence, organization_id, site_id, "
    "kind, reference, quantity, unit, rate, amount, explanation, details, locked) "
    "VALUES (%s, %s, %s, %s, 'capacity', '', 1, 'kW-month', 1, 1, '', '{}', false)"
)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_postgresql_refuses_a_statement_with_a_line_of_a_missing_run(july_program):
    enrollment = enroll(july_program, "100")
    run = calculated(july_program)
    line = run.lines.get()
    missing_run = run.pk + 1000
    values = [line.organization_id, enrollment.site_id]

    with pytest.raises(IntegrityError, match=f"settlement run {missing_run} does not exist"):
        with transaction.atomic(), connection.cursor() as cursor:
            # One statement, a good line and a bad one: the whole statement is refused.
            cursor.execute(
                _INSERT_LINE.replace(
                    "false)",
                    "false), (%s, %s, %s, %s, 'capacity', '', "
                    "1, 'kW-month', 1, 1, '', '{}', false)",
                ),
                [run.pk, 2, *values, missing_run, 1, *values],
            )
    assert SettlementLine.objects.filter(run_id=missing_run).count() == 0
    assert list(run.lines.values_list("pk", flat=True)) == [line.pk]

    # A line of an existing run is accepted (the check refuses only what it should).
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_INSERT_LINE, [run.pk, 2, *values])
    assert run.lines.count() == 2


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_postgresql_refuses_moving_a_line_to_a_missing_run(july_program):
    enroll(july_program, "100")
    run = calculated(july_program)
    line = run.lines.get()

    with pytest.raises(IntegrityError, match=f"line {line.pk} cannot move"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "UPDATE settlements_settlementline SET run_id = %s WHERE id = %s",
                [run.pk + 1000, line.pk],
            )
    assert SettlementLine.objects.get(pk=line.pk).run_id == run.pk


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_postgresql_refuses_deleting_a_run_with_lines_whatever_the_client(july_program):
    enroll(july_program, "100")
    run = calculated(july_program)

    with pytest.raises(IntegrityError, match=f"settlement run {run.pk} has lines: DELETE"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM settlements_settlementrun WHERE id = %s", [run.pk])
    assert type(run).objects.filter(pk=run.pk).exists()

    # Once its lines are gone (a draft recalculated to nothing, say), the run may go.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM settlements_settlementline WHERE run_id = %s", [run.pk])
        cursor.execute("DELETE FROM settlements_settlementrun WHERE id = %s", [run.pk])
    assert not type(run).objects.filter(pk=run.pk).exists()


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_postgresql_holds_the_run_of_new_lines_until_their_commit(july_program):
    """Another session cannot delete the run between the lines' insert and their commit."""
    import psycopg

    enrollment = enroll(july_program, "100")
    run = calculated(july_program)
    line = run.lines.get()
    settings = connection.settings_dict
    dsn = {
        "dbname": settings["NAME"],
        "user": settings["USER"],
        "password": settings["PASSWORD"],
        "host": settings["HOST"],
        "port": settings["PORT"] or 5432,
    }
    with psycopg.connect(**dsn) as writer, psycopg.connect(**dsn, autocommit=True) as other:
        writer.execute(_INSERT_LINE, [run.pk, 2, line.organization_id, enrollment.site_id])
        other.execute("SET lock_timeout = '200ms'")
        other.execute(
            "DELETE FROM settlements_settlementline WHERE run_id = %s AND sequence = 1", [run.pk]
        )
        with pytest.raises(psycopg.errors.LockNotAvailable):
            other.execute("DELETE FROM settlements_settlementrun WHERE id = %s", [run.pk])
        writer.commit()
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="has lines"):
            other.execute("DELETE FROM settlements_settlementrun WHERE id = %s", [run.pk])
    assert list(run.lines.values_list("sequence", flat=True)) == [2]
