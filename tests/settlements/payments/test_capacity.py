"""Capacity payments: committed kW x rate x performance factor, by each factor method."""

from __future__ import annotations

from decimal import Decimal

import pytest

from settlements.payments import (
    capacity_line,
    factor_from_ratio,
    performance_factor,
    settle_site,
)
from tests.settlements.payments.helpers import (
    AUGUST,
    JULY,
    JUNE,
    SEPTEMBER,
    amounts,
    event,
    rules,
    site,
)

# A capacity-bidding style schedule: full pay at 100%, nothing at 50%, a penalty below.
SCHEDULE = (("0", "-0.5"), ("0.5", "0"), ("0.75", "0.75"), ("1", "1"))


def test_it_pays_committed_kw_times_rate_times_the_average_performance_ratio() -> None:
    # Ratios 108 / 120 = 0.900 and 102 / 120 = 0.850; average 0.875 (linear factor).
    # 120 kW x 1 month x $18.00 x 0.875 = $1,890.00
    period = site(
        event("E1", "108", committed_kw="120"),
        event("E2", "102", committed_kw="120"),
        committed_kw="120",
    )

    line = capacity_line(period, rules(capacity_rate=Decimal("18")))

    assert line is not None
    assert (line.kind, line.quantity, line.unit, line.rate) == (
        "capacity",
        Decimal("120"),
        "kW-month",
        Decimal("18"),
    )
    assert line.amount == Decimal("1890.00")
    assert line.explanation == (
        "Committed 120.000 kW × 1 month = 120.000 kW-month × $18.00/kW-month × factor 0.875 "
        "(average performance ratio 0.875 over 2 events: event E1: 0.900, event E2: 0.850) "
        "= $1,890.00"
    )
    assert line.details["factor"] == "0.875"
    assert line.details["event_ratios"] == [
        {"event_key": "E1", "performance_ratio": "0.9"},
        {"event_key": "E2", "performance_ratio": "0.85"},
    ]


def test_it_pays_every_month_of_the_period() -> None:
    # 100 kW x 3 months = 300 kW-month x $10.00 x 0.8 = $2,400.00
    period = site(event("E1", "80"), months=(JUNE, JULY, AUGUST))

    line = capacity_line(period, rules(capacity_rate=Decimal("10")))

    assert line is not None
    assert line.quantity == Decimal("300")
    assert line.amount == Decimal("2400.00")


def test_with_no_events_the_factor_is_one() -> None:
    # 100 kW x 3 months x $10.00 x 1 = $3,000.00
    period = site(months=(JUNE, JULY, AUGUST))

    line = capacity_line(period, rules(capacity_rate=Decimal("10"), factor_method="linear"))

    assert line is not None
    assert line.amount == Decimal("3000.00")
    assert "factor 1.000 (no events in the period)" in line.explanation


def test_with_only_excluded_events_the_factor_is_one() -> None:
    period = site(event("T1", "10", is_test=True))

    factor = performance_factor(period, rules(capacity_rate=Decimal("10"), test_events="exclude"))

    assert factor.factor == Decimal(1)
    assert factor.average_ratio is None
    assert factor.excluded == (("T1", "test event, excluded by the program's rules"),)


@pytest.mark.parametrize(
    ("averages_kw", "expected"),
    [
        # (120 + 100) / 2 / 100 = 1.1, capped at 1: 100 kW x $10.00 x 1 = $1,000.00
        (("120", "100"), Decimal("1000.00")),
        # -10 / 100 = -0.1, floored at 0: $0.00 (linear never charges)
        (("-10",), Decimal("0.00")),
    ],
)
def test_the_linear_factor_is_the_ratio_between_zero_and_one(
    averages_kw: tuple[str, ...], expected: Decimal
) -> None:
    period = site(*(event(f"E{i}", kw) for i, kw in enumerate(averages_kw)))

    line = capacity_line(period, rules(capacity_rate=Decimal("10")))

    assert line is not None
    assert line.kind == "capacity"
    assert line.amount == expected
    assert "linear factor limited to" in line.explanation


def test_each_event_ratio_uses_that_events_committed_kw() -> None:
    # A nomination changed between events: 90 / 100 = 0.9 and 90 / 150 = 0.6; average 0.75.
    # Period commitment 120 kW (time-weighted): 120 x $10.00 x 0.75 = $900.00
    period = site(
        event("E1", "90", committed_kw="100"),
        event("E2", "90", committed_kw="150"),
        committed_kw="120",
    )

    line = capacity_line(period, rules(capacity_rate=Decimal("10")))

    assert line is not None
    assert line.amount == Decimal("900.00")


@pytest.mark.parametrize(
    ("ratio", "interpolation", "factor"),
    [
        # Between (0.5, 0) and (0.75, 0.75): 0 + 0.75 x (0.6 - 0.5) / 0.25 = 0.3
        ("0.6", "linear", "0.3"),
        # Between (0, -0.5) and (0.5, 0): -0.5 + 0.5 x 0.3 / 0.5 = -0.2 (a penalty)
        ("0.3", "linear", "-0.2"),
        ("0.75", "linear", "0.75"),
        # Flat outside the schedule: above 1 stays 1, below 0 stays -0.5.
        ("1.3", "linear", "1"),
        ("-0.2", "linear", "-0.5"),
        # Steps: the factor of the last breakpoint at or below the ratio.
        ("0.6", "step", "0"),
        ("0.3", "step", "-0.5"),
        ("0.75", "step", "0.75"),
        ("0.99", "step", "0.75"),
        ("1", "step", "1"),
        ("-0.2", "step", "-0.5"),
    ],
)
def test_the_piecewise_factor_follows_the_schedule(
    ratio: str, interpolation: str, factor: str
) -> None:
    piecewise = rules(
        capacity_rate=Decimal("10"),
        factor_method="piecewise",
        breakpoints=SCHEDULE,
        interpolation=interpolation,
    )

    assert factor_from_ratio(Decimal(ratio), piecewise) == Decimal(factor)


def test_a_piecewise_factor_between_breakpoints_gives_a_partial_payment() -> None:
    # Ratios 0.7 and 0.5, average 0.6, factor 0.3: 100 kW x $10.00 x 0.3 = $300.00
    period = site(event("E1", "70"), event("E2", "50"))
    piecewise = rules(capacity_rate=Decimal("10"), factor_method="piecewise", breakpoints=SCHEDULE)

    line = capacity_line(period, piecewise)

    assert line is not None
    assert (line.kind, line.amount) == ("capacity", Decimal("300.00"))
    assert "schedule (linear interpolation) 0.000 → -0.500, 0.500 → 0.000" in line.explanation


def test_performance_below_the_piecewise_floor_is_a_penalty_line() -> None:
    # Ratio 30 / 100 = 0.3, factor -0.2: 100 kW x $10.00 x -0.2 = -$200.00
    period = site(event("E1", "30"))
    piecewise = rules(capacity_rate=Decimal("10"), factor_method="piecewise", breakpoints=SCHEDULE)

    line = capacity_line(period, piecewise)

    assert line is not None
    assert (line.kind, line.amount) == ("penalty", Decimal("-200.00"))
    assert line.explanation.endswith("gives -0.200) = -$200.00")


def test_the_stepped_schedule_charges_the_full_step_penalty() -> None:
    # Ratio 0.3 falls on the (0, -0.5) step: 100 kW x $10.00 x -0.5 = -$500.00
    period = site(event("E1", "30"))
    stepped = rules(
        capacity_rate=Decimal("10"),
        factor_method="piecewise",
        breakpoints=SCHEDULE,
        interpolation="step",
    )

    line = capacity_line(period, stepped)

    assert line is not None
    assert (line.kind, line.amount) == ("penalty", Decimal("-500.00"))


@pytest.mark.parametrize(
    ("average_kw", "changes", "expected"),
    [
        # Linear 0.3 raised to the floor 0.5: 100 x $10.00 x 0.5 = $500.00
        ("30", {"capacity_factor_floor": "0.5"}, Decimal("500.00")),
        # Linear 1 lowered to the cap 0.9: 100 x $10.00 x 0.9 = $900.00
        ("100", {"capacity_factor_cap": "0.9"}, Decimal("900.00")),
        # Stepped penalty -0.5 limited by the floor -0.25: 100 x $10.00 x -0.25 = -$250.00
        (
            "30",
            {
                "factor_method": "piecewise",
                "breakpoints": SCHEDULE,
                "interpolation": "step",
                "capacity_factor_floor": "-0.25",
            },
            Decimal("-250.00"),
        ),
    ],
)
def test_the_capacity_factor_is_held_within_its_floor_and_cap(
    average_kw: str, changes: dict, expected: Decimal
) -> None:
    line = capacity_line(
        site(event("E1", average_kw)), rules(capacity_rate=Decimal("10"), **changes)
    )

    assert line is not None
    assert line.amount == expected
    assert ("raised to the floor" in line.explanation) or ("lowered to the cap" in line.explanation)


def test_the_threshold_rule_voids_the_month_of_a_failed_event_and_that_events_energy() -> None:
    # Threshold 0.5. June: ratio 0.8. July: 0.9 and 0.4 (fails). August: no events.
    # Capacity: 100 kW x 2 of 3 months (July voided) x $10.00 x 1 = $2,000.00
    # Energy at $0.50/kWh over 2-hour events: June 80 kW x 2 h = 160 kWh = $80.00;
    # July E2 180 kWh = $90.00; July E3 80 kWh = $40.00 but voided: $0.00.
    period = site(
        event("E1", "80", day=JUNE.replace(day=10)),
        event("E2", "90", day=JULY.replace(day=8)),
        event("E3", "40", day=JULY.replace(day=22)),
        months=(JUNE, JULY, AUGUST),
    )
    threshold = rules(
        capacity_rate=Decimal("10"),
        energy_rate=Decimal("0.50"),
        factor_method="threshold",
        threshold_ratio=Decimal("0.5"),
    )

    lines = settle_site(period, threshold)

    assert amounts(lines) == {
        ("capacity", None): Decimal("2000.00"),
        ("energy", "E1"): Decimal("80.00"),
        ("energy", "E2"): Decimal("90.00"),
        ("energy", "E3"): Decimal("0.00"),
    }
    capacity, _, _, voided = lines
    assert capacity.quantity == Decimal("200")
    assert capacity.details["voided_months"] == ["2026-07-01"]
    assert "2 of 3 months (2026-07 not paid: event E3 ratio 0.400 below the threshold 0.500)" in (
        capacity.explanation
    )
    assert voided.quantity == Decimal("80")
    assert voided.details["voided_by_threshold"] is True
    assert voided.explanation == (
        "Reduction 80.000 kWh × $0.50/kWh = $40.00, not paid: performance ratio 0.400 is "
        "below the threshold 0.500 = $0.00"
    )


def test_an_event_exactly_at_the_threshold_keeps_its_month() -> None:
    # Ratio 50 / 100 = 0.5 is not below 0.5: 100 kW x $10.00 = $1,000.00
    threshold = rules(
        capacity_rate=Decimal("10"), factor_method="threshold", threshold_ratio=Decimal("0.5")
    )

    line = capacity_line(site(event("E1", "50")), threshold)

    assert line is not None
    assert line.amount == Decimal("1000.00")


def test_a_season_rate_is_prorated_over_the_months_a_threshold_failure_leaves() -> None:
    # $40.00/kW-season, 4 months; the July event fails (0.2 < 0.5):
    # 100 kW x 3/4 = 75 kW-season x $40.00 = $3,000.00
    period = site(event("E1", "20"), months=(JUNE, JULY, AUGUST, SEPTEMBER))
    threshold = rules(
        capacity_rate=Decimal("40"),
        capacity_unit="kW-season",
        factor_method="threshold",
        threshold_ratio=Decimal("0.5"),
    )

    line = capacity_line(period, threshold)

    assert line is not None
    assert (line.quantity, line.unit, line.amount) == (
        Decimal("75"),
        "kW-season",
        Decimal("3000.00"),
    )
    assert "3/4 of the season" in line.explanation


def test_a_full_season_is_one_kw_season() -> None:
    # 100 kW x 1 season x $40.00 x 0.8 = $3,200.00
    period = site(event("E1", "80"), months=(JUNE, JULY, AUGUST, SEPTEMBER))

    line = capacity_line(period, rules(capacity_rate=Decimal("40"), capacity_unit="kW-season"))

    assert line is not None
    assert (line.quantity, line.amount) == (Decimal("100"), Decimal("3200.00"))
    assert "Committed 100.000 kW × 1 season = 100.000 kW-season" in line.explanation


def test_without_a_capacity_rate_there_is_no_capacity_line() -> None:
    assert capacity_line(site(event("E1", "80")), rules(energy_rate=Decimal("1"))) is None
