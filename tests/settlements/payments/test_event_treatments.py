"""How events count: negative reductions, opt-outs, test events, missing intervals."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest

from settlements.baselines import PerformanceResult
from settlements.payments import EventOutcome, assess_event, settle_site
from tests.settlements.payments.helpers import amounts, event, rules, site

# 15-minute intervals: 40, -80, 20 kW and one missing. kWh per interval = kW x 15 / 60.
NEGATIVE_INTERVALS = EventOutcome(
    event_key="E1",
    event_date=dt.date(2026, 7, 14),
    committed_kw=Decimal("100"),
    reduction_kw=(Decimal("40"), Decimal("-80"), Decimal("20"), None),
    interval_minutes=15,
)


@pytest.mark.parametrize(
    ("treatment", "kwh", "average_kw", "energy"),
    [
        # net: (40 - 80 + 20) x 15 / 60 = -5 kWh; mean (40 - 80 + 20) / 3 = -20/3 kW;
        # -5 kWh x $0.50 = -$2.50
        ("net", Decimal("-5"), Decimal("-20") / 3, Decimal("-2.50")),
        # floor_interval: (40 + 0 + 20) x 15 / 60 = 15 kWh; mean 60 / 3 = 20 kW; $7.50
        ("floor_interval", Decimal("15"), Decimal("20"), Decimal("7.50")),
        # floor_event: the net -5 kWh and -6.667 kW are floored at 0; $0.00
        ("floor_event", Decimal("0"), Decimal("0"), Decimal("0.00")),
    ],
)
def test_negative_reductions_are_treated_as_the_program_says(
    treatment: str, kwh: Decimal, average_kw: Decimal, energy: Decimal
) -> None:
    program = rules(energy_rate=Decimal("0.50"), negative_reductions=treatment)

    assessment = assess_event(NEGATIVE_INTERVALS, program)
    (line,) = settle_site(site(NEGATIVE_INTERVALS), program)

    assert (assessment.reduction_kwh, assessment.average_kw) == (kwh, average_kw)
    assert assessment.performance_ratio == average_kw / 100
    assert (assessment.intervals, assessment.missing_intervals) == (4, 1)
    assert (line.quantity, line.amount) == (kwh, energy)


def test_floored_intervals_are_named_in_the_explanation() -> None:
    program = rules(energy_rate=Decimal("0.50"), negative_reductions="floor_interval")

    (line,) = settle_site(site(NEGATIVE_INTERVALS), program)

    assert line.explanation == (
        "Reduction 15.000 kWh (4 intervals of 15 min; 1 missing; 1 negative interval(s) "
        "floored at 0 kW; performance ratio 0.200 as settled) × $0.50/kWh = $7.50"
    )
    assert line.details["floored_intervals"] == 1


def test_a_treated_event_states_the_ratio_it_is_settled_at_not_the_measured_one() -> None:
    # 30-minute intervals on 60 kW committed: 50, -70, 10, -30 kW.
    # Measured (net): (50 - 70 + 10 - 30) / 4 = -10 kW, ratio -10 / 60 ≈ -0.166667.
    # Settled (floor_interval): (50 + 0 + 10 + 0) / 4 = 15 kW, ratio 15 / 60 = 0.25;
    # (50 + 10) x 30 / 60 = 30 kWh x $0.50 = $15.00.
    outcome = EventOutcome(
        event_key="E1",
        event_date=dt.date(2026, 7, 14),
        committed_kw=Decimal("60"),
        reduction_kw=(Decimal("50"), Decimal("-70"), Decimal("10"), Decimal("-30")),
        interval_minutes=30,
    )
    program = rules(
        capacity_rate=Decimal("10"),
        energy_rate=Decimal("0.50"),
        negative_reductions="floor_interval",
    )

    capacity, energy = settle_site(site(outcome, committed_kw="60"), program)

    assert energy.explanation == (
        "Reduction 30.000 kWh (4 intervals of 30 min; 2 negative interval(s) floored at 0 kW; "
        "performance ratio 0.250 as settled) × $0.50/kWh = $15.00"
    )
    # The capacity factor lists the same ratio for the event.
    assert capacity.details["event_ratios"] == [{"event_key": "E1", "performance_ratio": "0.25"}]
    assert "event E1: 0.250" in capacity.explanation


def test_an_event_floored_at_zero_states_its_settled_ratio() -> None:
    # Net -10 kW x 2 h = -20 kWh (ratio -0.1), floored at 0 kWh and 0 kW: ratio 0.
    program = rules(energy_rate=Decimal("0.50"), negative_reductions="floor_event")

    (line,) = settle_site(site(event("E1", "-10")), program)

    assert line.explanation == (
        "Reduction 0.000 kWh (net reduction below zero, floored at 0; performance ratio "
        "0.000 as settled) × $0.50/kWh = $0.00"
    )


def test_an_event_the_treatment_left_as_measured_states_no_ratio() -> None:
    # floor_interval with no negative interval, floor_event with a positive reduction: the
    # measured ratio is the settled one, and the text stays as it was.
    no_negatives = EventOutcome(
        event_key="E1",
        event_date=dt.date(2026, 7, 14),
        committed_kw=Decimal("100"),
        reduction_kw=(Decimal("40"), Decimal("20")),
        interval_minutes=15,
    )

    (floored,) = settle_site(
        site(no_negatives), rules(energy_rate=Decimal("0.50"), negative_reductions="floor_interval")
    )
    (positive,) = settle_site(
        site(event("E1", "80")),
        rules(energy_rate=Decimal("0.50"), negative_reductions="floor_event"),
    )

    assert floored.explanation == "Reduction 15.000 kWh (2 intervals of 15 min) × $0.50/kWh = $7.50"
    assert positive.explanation == "Reduction 160.000 kWh × $0.50/kWh = $80.00"


def test_floor_event_applies_to_totals_given_by_the_caller() -> None:
    # -10 kW for 2 hours = -20 kWh, floored at 0.
    program = rules(energy_rate=Decimal("0.50"), negative_reductions="floor_event")

    assessment = assess_event(event("E1", "-10"), program)

    assert (assessment.reduction_kwh, assessment.average_kw) == (Decimal(0), Decimal(0))
    assert assessment.note == "net reduction below zero, floored at 0"


def test_floor_interval_refuses_an_event_given_only_as_totals() -> None:
    program = rules(energy_rate=Decimal("0.50"), negative_reductions="floor_interval")

    with pytest.raises(ValueError, match="per-interval reductions"):
        assess_event(event("E1", "-10"), program)


def test_an_event_with_no_interval_data_counts_as_zero() -> None:
    outcome = EventOutcome(
        event_key="E1",
        event_date=dt.date(2026, 7, 14),
        committed_kw=Decimal("100"),
        reduction_kw=(None, float("nan")),
        interval_minutes=60,
    )

    assessment = assess_event(outcome, rules())

    assert (assessment.reduction_kwh, assessment.average_kw) == (Decimal(0), Decimal(0))
    assert assessment.missing_intervals == 2


def test_float_intervals_are_taken_by_their_shortest_repr() -> None:
    # 0.1 + 0.2 kW for 60 minutes is 0.3 kWh exactly, not 0.30000000000000004.
    outcome = EventOutcome(
        event_key="E1",
        event_date=dt.date(2026, 7, 14),
        committed_kw=Decimal("1"),
        reduction_kw=(0.1, 0.2),
        interval_minutes=60,
    )

    assert assess_event(outcome, rules()).reduction_kwh == Decimal("0.3")


def test_an_outcome_can_come_from_a_baselines_performance_result() -> None:
    index = pd.date_range("2026-07-14 14:00", periods=3, freq="15min", tz="America/New_York")
    reduction = pd.Series([40.0, float("nan"), -20.0], index=index)
    performance = PerformanceResult(
        baseline_kw=reduction,
        actual_kw=reduction,
        reduction_kw=reduction,
        reduction_kwh=5.0,
        average_reduction_kw=10.0,
        max_reduction_kw=40.0,
        missing_intervals=1,
        interval_minutes=15,
    )

    outcome = EventOutcome.from_performance(
        performance, event_key=7, event_date=dt.date(2026, 7, 14), committed_kw=Decimal("50")
    )
    assessment = assess_event(outcome, rules())

    # (40 - 20) x 15 / 60 = 5 kWh; mean of 40 and -20 = 10 kW; ratio 10 / 50 = 0.2
    assert (assessment.reduction_kwh, assessment.average_kw) == (Decimal(5), Decimal(10))
    assert assessment.performance_ratio == Decimal("0.2")
    assert assessment.missing_intervals == 1


# Two 2-hour events on 100 kW committed: E1 delivered 80 kW (ratio 0.8), E2 20 kW (0.2).
# Capacity $10.00/kW-month, energy $0.50/kWh.
PAYING = {"capacity_rate": Decimal("10"), "energy_rate": Decimal("0.50")}


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        # E2 left out: factor 0.8 -> $800.00; E1 160 kWh -> $80.00
        ("exclude", {("capacity", None): Decimal("800.00"), ("energy", "E1"): Decimal("80.00")}),
        # E2 counts as 0: factor (0.8 + 0) / 2 = 0.4 -> $400.00; E2 0 kWh -> $0.00
        (
            "zero_performance",
            {
                ("capacity", None): Decimal("400.00"),
                ("energy", "E1"): Decimal("80.00"),
                ("energy", "E2"): Decimal("0.00"),
            },
        ),
        # E2 as measured: factor (0.8 + 0.2) / 2 = 0.5 -> $500.00; E2 40 kWh -> $20.00
        (
            "as_measured",
            {
                ("capacity", None): Decimal("500.00"),
                ("energy", "E1"): Decimal("80.00"),
                ("energy", "E2"): Decimal("20.00"),
            },
        ),
    ],
)
def test_opted_out_events_count_as_the_program_says(setting: str, expected: dict) -> None:
    period = site(event("E1", "80"), event("E2", "20", opted_out=True))

    lines = settle_site(period, rules(opted_out_events=setting, **PAYING))

    assert amounts(lines) == expected


def test_a_zero_performance_opt_out_says_so_on_its_line() -> None:
    period = site(event("E2", "20", opted_out=True))

    (_, energy) = settle_site(period, rules(opted_out_events="zero_performance", **PAYING))

    assert energy.explanation == (
        "Opted out, counted as 0 kW by the program's rules: 0.000 kWh × $0.50/kWh = $0.00"
    )
    assert energy.details["treatment"] == "zero_performance"


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        # Test event counted: factor (0.8 + 0.2) / 2 = 0.5 -> $500.00; T2 40 kWh -> $20.00
        (
            "include",
            {
                ("capacity", None): Decimal("500.00"),
                ("energy", "E1"): Decimal("80.00"),
                ("energy", "T2"): Decimal("20.00"),
            },
        ),
        # Test event left out: factor 0.8 -> $800.00 and no line for T2
        ("exclude", {("capacity", None): Decimal("800.00"), ("energy", "E1"): Decimal("80.00")}),
    ],
)
def test_test_events_count_as_the_program_says(setting: str, expected: dict) -> None:
    period = site(event("E1", "80"), event("T2", "20", is_test=True))

    lines = settle_site(period, rules(test_events=setting, **PAYING))

    assert amounts(lines) == expected


def test_an_excluded_event_is_named_in_the_capacity_explanation() -> None:
    period = site(event("E1", "80"), event("T2", "20", is_test=True))

    capacity, _ = settle_site(period, rules(test_events="exclude", **PAYING))

    assert (
        "event T2 not counted: test event, excluded by the program's rules" in capacity.explanation
    )
    assert capacity.details["excluded_events"] == [
        {"event_key": "T2", "note": "test event, excluded by the program's rules"}
    ]


def test_an_outcome_needs_exactly_one_form_of_reduction() -> None:
    with pytest.raises(ValueError, match="not both"):
        EventOutcome(
            event_key="E1",
            event_date=dt.date(2026, 7, 14),
            committed_kw=Decimal("100"),
            reduction_kw=(Decimal("1"),),
            interval_minutes=60,
            reduction_kwh=Decimal("1"),
            average_reduction_kw=Decimal("1"),
        )
    with pytest.raises(ValueError, match="reduction_kwh and average_reduction_kw"):
        EventOutcome(
            event_key="E1",
            event_date=dt.date(2026, 7, 14),
            committed_kw=Decimal("100"),
            reduction_kwh=Decimal("1"),
        )


def test_a_site_period_refuses_an_event_outside_its_months() -> None:
    with pytest.raises(ValueError, match="outside the period"):
        site(event("E1", "80", day=dt.date(2026, 8, 3)))
