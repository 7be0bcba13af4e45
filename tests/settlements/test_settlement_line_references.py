"""What a settlement line points at stays there.

PostgreSQL checks only the line's run (a foreign key constraint); the site, event,
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


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the constraint is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_postgresql_refuses_a_line_of_a_missing_run(july_program):
    enrollment = enroll(july_program, "100")
    run = calculated(july_program)
    line = run.lines.get()
    missing_run = run.pk + 1000

    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "INSERT INTO settlements_settlementline (run_id, sequence, organization_id, "
            "site_id, kind, reference, quantity, unit, rate, amount, explanation, details, "
            "locked) VALUES (%s, 1, %s, %s, 'capacity', '', 1, 'kW-month', 1, 1, '', '{}', "
            "false)",
            [missing_run, line.organization_id, enrollment.site_id],
        )
    assert SettlementLine.objects.filter(run_id=missing_run).count() == 0
