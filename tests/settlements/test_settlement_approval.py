"""Approving a settlement run: four eyes, compare-and-set statuses, and lines that never
change afterwards (in the model layer, and on PostgreSQL in the database itself)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError

from settlements.billing import billing_export_create
from settlements.models import LockedLineError, SettlementLine, SettlementRun
from settlements.runs import (
    SettlementError,
    settlement_run_approve,
    settlement_run_calculate,
    settlement_run_create,
)
from tests.factories import staff_user
from tests.settlements.settlement_helpers import (
    JULY,
    amounts,
    approved,
    calculated,
    enroll,
    event,
    participate,
)


@pytest.fixture
def july_run(july_program, manager):
    """A calculated July run of two sites, calculated by ``manager``.

    Site one: 100 kW, 80 kW in the event of July 14 (ratio 0.8): capacity 100 kW × $8 ×
    0.8 = $640.00, energy 160 kWh × $0.50 = $80.00. Site two: 50 kW, no event: $400.00.
    """
    first, second = enroll(july_program, "100"), enroll(july_program, "50")
    participate(event(july_program, dt.date(2026, 7, 14)), first, average_kw="80", kwh="160")
    run = calculated(july_program, by=manager)
    assert first.site.organization_id < second.site.organization_id
    assert [amount for _, _, amount in amounts(run)] == ["640.00", "80.00", "400.00"]
    return run


# --- four eyes ---------------------------------------------------------------------------


def test_the_user_who_calculated_a_run_cannot_approve_it(july_run, manager):
    with pytest.raises(PermissionDenied, match="Four eyes: .*someone other than the person"):
        settlement_run_approve(run=july_run, by=manager)

    july_run.refresh_from_db()
    assert july_run.status == SettlementRun.Status.CALCULATED
    assert july_run.approved_by is None and july_run.approved_at is None
    assert not july_run.lines.filter(locked=True).exists()


def test_a_user_without_the_billing_or_manager_role_cannot_approve(
    july_run, auditor, participant_a
):
    for outsider in (auditor, participant_a):
        with pytest.raises(PermissionDenied, match="Only members of Billing or Program managers"):
            settlement_run_approve(run=july_run, by=outsider)
    inactive_clerk = staff_user("Billing", is_active=False)
    with pytest.raises(PermissionDenied):
        settlement_run_approve(run=july_run, by=inactive_clerk)

    july_run.refresh_from_db()
    assert july_run.status == SettlementRun.Status.CALCULATED


@pytest.mark.parametrize("group", ["Billing", "Program managers"])
def test_another_billing_or_manager_user_approves_and_every_line_is_locked(july_run, group):
    approver = staff_user(group)

    run = settlement_run_approve(run=july_run, by=approver)

    assert run.status == SettlementRun.Status.APPROVED
    assert run.approved_by == approver and run.approved_at is not None
    stored = SettlementRun.objects.get(pk=july_run.pk)
    assert (stored.status, stored.approved_by_id) == (SettlementRun.Status.APPROVED, approver.pk)
    assert list(stored.lines.values_list("locked", flat=True)) == [True, True, True]
    # Approval changes no amount: the total is still the sum of the lines.
    assert stored.total == Decimal("1120.00") == sum(line.amount for line in stored.lines.all())


def test_the_last_calculation_decides_who_may_not_approve(july_run, manager, billing_clerk):
    """Four eyes is about the numbers being approved: whoever calculated them last."""
    run = settlement_run_calculate(run=july_run, by=billing_clerk)

    with pytest.raises(PermissionDenied, match="Four eyes"):
        settlement_run_approve(run=run, by=billing_clerk)
    run = settlement_run_approve(run=run, by=manager)
    assert run.status == SettlementRun.Status.APPROVED


# --- compare-and-set statuses --------------------------------------------------------------


def test_statuses_go_draft_calculated_approved_exported(july_program, manager, billing_clerk):
    enroll(july_program, "100")
    run = settlement_run_create(
        program=july_program, period_kind="month", period_start=JULY, by=manager
    )
    assert (run.status, run.version, run.line_count) == (SettlementRun.Status.DRAFT, 1, 0)

    run = settlement_run_calculate(run=run, by=manager)
    assert run.status == SettlementRun.Status.CALCULATED
    run = settlement_run_approve(run=run, by=billing_clerk)
    assert run.status == SettlementRun.Status.APPROVED
    billing_export_create(run=run, by=billing_clerk)

    run.refresh_from_db()
    assert run.status == SettlementRun.Status.EXPORTED
    assert run.exported_at is not None and run.exported_at >= run.approved_at


def test_a_draft_cannot_be_approved(july_program, manager, billing_clerk):
    run = settlement_run_create(
        program=july_program, period_kind="month", period_start=JULY, by=manager
    )
    with pytest.raises(SettlementError, match="is draft; only a calculated run can be approved"):
        settlement_run_approve(run=run, by=billing_clerk)
    run.refresh_from_db()
    assert run.status == SettlementRun.Status.DRAFT


def test_approving_twice_is_refused_even_from_a_stale_copy(july_run, billing_clerk):
    stale = SettlementRun.objects.get(pk=july_run.pk)  # still says "calculated" in memory
    first = settlement_run_approve(run=july_run, by=billing_clerk)
    second_approver = staff_user("Program managers")

    with pytest.raises(SettlementError, match="is approved; only a calculated run"):
        settlement_run_approve(run=stale, by=second_approver)

    stored = SettlementRun.objects.get(pk=july_run.pk)
    assert stored.approved_by_id == billing_clerk.pk
    assert stored.approved_at == first.approved_at


def test_an_exported_run_cannot_be_approved_or_recalculated(july_run, billing_clerk, manager):
    run = settlement_run_approve(run=july_run, by=billing_clerk)
    billing_export_create(run=run, by=billing_clerk)

    with pytest.raises(SettlementError, match="is exported; only a calculated run"):
        settlement_run_approve(run=run, by=staff_user("Billing"))
    with pytest.raises(SettlementError, match="is exported: its lines never change"):
        settlement_run_calculate(run=run, by=manager)
    assert SettlementRun.objects.get(pk=run.pk).status == SettlementRun.Status.EXPORTED


# --- locked lines in the model layer -------------------------------------------------------


def _snapshot(run: SettlementRun) -> list[tuple]:
    return list(
        SettlementLine.objects.filter(run=run)
        .order_by("sequence")
        .values_list("pk", "amount", "quantity", "explanation", "locked")
    )


def test_lines_of_a_calculated_run_are_not_locked_yet(july_run):
    """The refusals below are about approval: before it, a bulk change goes through."""
    assert july_run.lines.update(explanation="Recomputed") == 3
    line = july_run.lines.first()
    line.explanation = "Edited before approval"
    line.save()
    assert SettlementLine.objects.get(pk=line.pk).explanation == "Edited before approval"


def test_a_locked_line_refuses_save_and_delete(july_run, billing_clerk):
    run = approved(july_run, by=billing_clerk)
    before = _snapshot(run)
    line = run.lines.order_by("sequence").first()

    line.amount = Decimal("9999.99")
    with pytest.raises(LockedLineError, match=f"line {line.pk} is locked"):
        line.save()
    with pytest.raises(LockedLineError):
        line.save(update_fields=["amount"])
    # An in-memory copy claiming to be unlocked is refused too: the row decides.
    line.locked = False
    with pytest.raises(LockedLineError):
        line.save()
    with pytest.raises(LockedLineError, match="cannot be deleted"):
        line.delete()

    assert _snapshot(run) == before


def test_bulk_updates_and_deletes_of_locked_lines_are_refused(july_run, billing_clerk):
    run = approved(july_run, by=billing_clerk)
    before = _snapshot(run)
    lines = list(run.lines.order_by("sequence"))

    with pytest.raises(LockedLineError, match="cannot be changed"):
        run.lines.update(amount=Decimal("0.00"))
    with pytest.raises(LockedLineError, match="cannot be changed"):
        SettlementLine.objects.filter(run=run).update(locked=False)
    with pytest.raises(LockedLineError, match="cannot be changed"):
        SettlementLine.objects.update(locked=True, amount=Decimal("1.00"))
    with pytest.raises(LockedLineError, match="cannot be deleted"):
        SettlementLine.objects.filter(pk=lines[0].pk).delete()
    with pytest.raises(LockedLineError, match="cannot be deleted"):
        run.lines.all().delete()
    for line in lines:
        line.amount = Decimal("1.00")
    with pytest.raises(LockedLineError, match="cannot be changed"):
        SettlementLine.objects.bulk_update(lines, ["amount"])

    assert _snapshot(run) == before


def test_an_upsert_onto_locked_lines_is_refused(july_run, billing_clerk):
    run = approved(july_run, by=billing_clerk)
    before = _snapshot(run)
    original = run.lines.order_by("sequence").first()
    # Same (run, sequence) as the first line, with another amount.
    replacement = SettlementLine(
        run=run,
        sequence=original.sequence,
        organization_id=original.organization_id,
        site_id=original.site_id,
        kind=original.kind,
        quantity=original.quantity,
        unit=original.unit,
        rate=original.rate,
        amount=Decimal("1.00"),
        explanation="Overwritten",
    )

    with pytest.raises(LockedLineError, match="cannot be overwritten"):
        SettlementLine.objects.bulk_create(
            [replacement],
            update_conflicts=True,
            unique_fields=["run", "sequence"],
            update_fields=["amount", "explanation"],
        )

    assert _snapshot(run) == before


def test_the_run_of_locked_lines_cannot_be_deleted_with_them(july_run, billing_clerk):
    run = approved(july_run, by=billing_clerk)
    with pytest.raises(ProtectedError):
        run.delete()
    assert run.lines.count() == 3


def _extra_line(run: SettlementRun, **fields) -> SettlementLine:
    """A new line for ``run``, like its first one, with sequence 99 and $1,000.00."""
    first = run.lines.order_by("sequence").first()
    return SettlementLine(
        run=run,
        sequence=99,
        organization_id=first.organization_id,
        site_id=first.site_id,
        kind=SettlementLine.Kind.ADJUSTMENT,
        quantity=Decimal(1),
        unit="adjustment",
        rate=Decimal("1000"),
        amount=Decimal("1000.00"),
        explanation="Added after the approval",
        **fields,
    )


@pytest.mark.parametrize("status", ["approved", "exported"])
def test_an_approved_or_exported_run_takes_no_new_line(july_run, billing_clerk, status):
    run = approved(july_run, by=billing_clerk)
    if status == "exported":
        billing_export_create(run=run, by=billing_clerk)
        run.refresh_from_db()
    assert run.status == status
    before = _snapshot(run)

    with pytest.raises(LockedLineError, match=f"run {run.pk} is {status}: .* no new line"):
        _extra_line(run).save()
    with pytest.raises(LockedLineError, match=f"run {run.pk} is {status}"):
        SettlementLine.objects.bulk_create([_extra_line(run)])

    assert _snapshot(run) == before
    assert run.lines.count() == run.line_count == 3


def test_a_calculated_run_still_takes_lines_through_the_model(july_run):
    """The refusal is the approved run's: lines of a calculated run may still be written."""
    _extra_line(july_run).save()
    assert july_run.lines.count() == 4


# --- locked lines in PostgreSQL ------------------------------------------------------------


@pytest.mark.postgres
def test_the_database_refuses_a_raw_insert_into_an_approved_run(july_run, billing_clerk):
    run = approved(july_run, by=billing_clerk)
    first = run.lines.order_by("sequence").first()
    insert = (
        "INSERT INTO settlements_settlementline (run_id, sequence, organization_id, site_id, "
        "kind, reference, quantity, unit, rate, amount, explanation, details, locked) "
        "VALUES (%s, 99, %s, %s, 'adjustment', '', 1, 'adjustment', 1000, 1000, '', '{}', false)"
    )
    with pytest.raises(IntegrityError, match=f"run {run.pk} is approved: .* new lines are refused"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(insert, [run.pk, first.organization_id, first.site_id])

    # Nor can a line of another, open run be moved into it.
    other = settlement_run_create(
        program=run.program, period_kind="month", period_start=dt.date(2026, 8, 1),
        by=run.calculated_by,
    )  # fmt: skip
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(insert, [other.pk, first.organization_id, first.site_id])
    moved = SettlementLine.objects.get(run=other)
    with pytest.raises(IntegrityError, match=f"run {run.pk} is approved: .* cannot move to it"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "UPDATE settlements_settlementline SET run_id = %s WHERE id = %s",
                [run.pk, moved.pk],
            )
    assert run.lines.count() == 3
    assert SettlementLine.objects.get(pk=moved.pk).run_id == other.pk


@pytest.mark.postgres
def test_the_database_refuses_raw_update_and_delete_of_locked_lines(july_run, billing_clerk):
    run = approved(july_run, by=billing_clerk)
    line = run.lines.order_by("sequence").first()
    assert SettlementLine._meta.db_table == "settlements_settlementline"

    for statement, operation in (
        ("UPDATE settlements_settlementline SET amount = 0 WHERE id = %s", "UPDATE"),
        ("UPDATE settlements_settlementline SET locked = false WHERE id = %s", "UPDATE"),
        ("DELETE FROM settlements_settlementline WHERE id = %s", "DELETE"),
    ):
        with pytest.raises(
            IntegrityError, match=f"line {line.pk} is locked .*: {operation} refused"
        ):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement, [line.pk])

    stored = SettlementLine.objects.get(pk=line.pk)
    assert (stored.amount, stored.locked) == (Decimal("640.00"), True)
    assert run.lines.count() == 3


@pytest.mark.postgres
def test_the_database_lets_unlocked_lines_change(july_run):
    """The trigger refuses only locked rows: a calculated run's lines are still free."""
    line = july_run.lines.order_by("sequence").first()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE settlements_settlementline SET amount = 1.23 WHERE id = %s", [line.pk]
        )
        cursor.execute(
            "UPDATE settlements_settlementline SET locked = true WHERE id = %s", [line.pk]
        )
        assert cursor.rowcount == 1
    assert SettlementLine.objects.get(pk=line.pk).amount == Decimal("1.23")


def test_a_line_of_an_open_run_cannot_be_moved_into_an_approved_run(july_run, billing_clerk):
    run = approved(july_run, by=billing_clerk)
    other = settlement_run_create(
        program=run.program, period_kind="month", period_start=dt.date(2026, 8, 1),
        by=run.calculated_by,
    )  # fmt: skip
    line = _extra_line(run)  # shaped like the approved run's first line
    line.run = other
    line.save()

    line.run = run
    with pytest.raises(LockedLineError, match=f"run {run.pk} is approved"):
        line.save()
    for target in ({"run": run}, {"run_id": run.pk}):
        with pytest.raises(LockedLineError, match=f"run {run.pk} is approved"):
            SettlementLine.objects.filter(pk=line.pk).update(**target)

    assert SettlementLine.objects.get(pk=line.pk).run_id == other.pk
    assert run.lines.count() == 3
