"""A run's lines in storage order whatever order the events were created in, and the
selected days of the measurement sentence read from the stored list as it is."""

from __future__ import annotations

import datetime as dt

import pytest

from settlements.runs.calculation import _days_text
from tests.settlements.settlement_helpers import (
    amounts,
    calculated,
    enroll,
    event,
    make_program,
    participate,
)


def test_event_lines_follow_the_events_starts_not_their_ids(july_program):
    enrollment = enroll(july_program, "100")
    # Created first, starting last: its id is the smaller one.
    late = event(july_program, dt.date(2026, 7, 21))
    early = event(july_program, dt.date(2026, 7, 14))
    participate(late, enrollment, average_kw="60", kwh="120")
    participate(early, enrollment, average_kw="80", kwh="160")

    run = calculated(july_program)

    # Capacity: 100 kW × 1 month × $8 × (0.8 + 0.6) / 2 = $560.00; energy at $0.50/kWh.
    assert amounts(run) == [
        ("capacity", None, "560.00"),
        ("energy", early.pk, "80.00"),
        ("energy", late.pk, "60.00"),
    ]


def test_a_penalty_line_comes_after_the_sites_energy_lines(db):
    # A ratio of 0.1 gives the factor -0.5 + 1.5 × 0.1 = -0.35 on this schedule.
    program = make_program(
        capacity_rate="8",
        factor_method="piecewise",
        breakpoints=[("0", "-0.5"), ("1", "1")],
        energy_rate="0.50",
    )
    enrollment = enroll(program, "100")
    first, second = event(program, dt.date(2026, 7, 14)), event(program, dt.date(2026, 7, 15))
    participate(first, enrollment, average_kw="10", kwh="20")
    participate(second, enrollment, average_kw="10", kwh="20")

    run = calculated(program)

    # Penalty: 100 kW × 1 month × $8 × -0.35 = -$280.00; energy 20 kWh × $0.50 = $10.00.
    assert amounts(run) == [
        ("energy", first.pk, "10.00"),
        ("energy", second.pk, "10.00"),
        ("penalty", None, "-280.00"),
    ]


@pytest.mark.parametrize(
    ("stored", "text"),
    [
        ('["2026-07-14", "2026-07-13"]', "2026-07-14, 2026-07-13"),
        ('["2026-07-14"]', "2026-07-14"),
        ("[]", "none"),
        ("null", "none"),
        (None, "none"),
        # Other spacing, and escapes: decoded as JSON.
        ('["2026-07-14","2026-07-13"]', "2026-07-14, 2026-07-13"),
        ('["2026-07-14", "a \\"quoted\\" day"]', '2026-07-14, a "quoted" day'),
    ],
)
def test_the_selected_days_are_read_from_the_stored_list(stored, text) -> None:
    assert _days_text(stored) == text
