"""Lines are stored exactly as calculated, whatever characters their texts hold.

On PostgreSQL a run's lines go in through one COPY whose text rows the services write
themselves, so tabs, line breaks and backslashes in a participant-visible explanation
(an enablement project's description, an installment's note) must survive the escaping.
"""

from __future__ import annotations

from decimal import Decimal

from tests.settlements.settlement_helpers import calculated, enroll, installment

AWKWARD = 'Chiller\tcontrols\nphase 2 \\ "east" wing ≈ 50%'


def test_texts_with_tabs_line_breaks_and_backslashes_are_stored_as_written(july_program):
    enrollment = enroll(july_program, "100")
    due = installment(enrollment.site, july_program, amount="5000.00")
    due.explanation = "paid\\after\tverification\r\n"
    due.save(update_fields=["explanation"])
    project = due.project
    project.description = AWKWARD
    project.save(update_fields=["description"])

    run = calculated(july_program)

    line = run.lines.get(kind="enablement")
    assert line.explanation == (
        f"Enablement project {project.pk} ({AWKWARD}), installment 1 due 2026-07-20: "
        "paid\\after\tverification\r\n = $5,000.00"
    )
    assert line.details == {"amount": "5000.00"}
    assert (line.quantity, line.rate, line.amount) == (
        Decimal("1"),
        Decimal("5000.00"),
        Decimal("5000.00"),
    )
    assert (line.reference, line.locked, line.event_id) == (f"installment:{due.pk}", False, None)
    capacity = run.lines.get(kind="capacity")
    assert capacity.amount == Decimal("800.00")  # 100 kW x 1 month x $8, no event: factor 1
    assert run.total == Decimal("5800.00") and run.line_count == 2
