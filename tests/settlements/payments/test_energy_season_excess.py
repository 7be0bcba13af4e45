"""Energy payments, season pay-for-performance and firm-service-level excess charges."""

from __future__ import annotations

from decimal import Decimal

import pytest

from settlements.payments import (
    EventOutcome,
    energy_lines,
    excess_energy_lines,
    season_line,
    settle_site,
)
from tests.settlements.payments.helpers import JULY, JUNE, amounts, event, rules, site


def test_energy_is_paid_per_kwh_reduced_in_each_event() -> None:
    # E1: 80 kW x 2 h = 160 kWh x $0.125 = $20.00; E2: 45 kW x 3 h = 135 kWh = $16.875 -> $16.88
    period = site(event("E1", "80"), event("E2", "45", hours="3"))

    lines = energy_lines(period, rules(energy_rate=Decimal("0.125")))

    assert [(line.event_key, line.quantity, line.unit, line.amount) for line in lines] == [
        ("E1", Decimal("160"), "kWh", Decimal("20.00")),
        ("E2", Decimal("135"), "kWh", Decimal("16.88")),
    ]
    assert lines[1].explanation == "Reduction 135.000 kWh × $0.125/kWh = $16.88"


def test_an_events_energy_payment_is_capped() -> None:
    # 160 kWh x $0.50 = $80.00, capped at $50.00 per event.
    period = site(event("E1", "80"))

    (line,) = energy_lines(period, rules(energy_rate=Decimal("0.50"), energy_cap_per_event="50"))

    assert line.amount == Decimal("50.00")
    assert line.explanation == (
        "Reduction 160.000 kWh × $0.50/kWh = $80.00, capped at $50.00 per event = $50.00"
    )
    assert line.details["unlimited_amount"] == "80.00"


def test_a_capped_line_of_a_treated_event_states_its_settled_ratio_before_the_cap() -> None:
    # 60-minute intervals on 100 kW committed: 90, -30, 90 kW floored to 90, 0, 90:
    # 180 kWh x $0.50 = $90.00, capped at $50.00; ratio (90 + 0 + 90) / 3 / 100 = 0.6
    # (0.5 measured, net).
    outcome = EventOutcome(
        event_key="E1",
        event_date=JULY.replace(day=14),
        committed_kw=Decimal("100"),
        reduction_kw=(Decimal("90"), Decimal("-30"), Decimal("90")),
        interval_minutes=60,
    )
    program = rules(
        energy_rate=Decimal("0.50"),
        energy_cap_per_event="50",
        negative_reductions="floor_interval",
    )

    (line,) = energy_lines(site(outcome), program)

    assert line.explanation == (
        "Reduction 180.000 kWh (3 intervals of 60 min; 1 negative interval(s) floored at 0 kW; "
        "performance ratio 0.600 as settled) × $0.50/kWh = $90.00, capped at $50.00 per event "
        "= $50.00"
    )
    assert line.details["performance_ratio"] == "0.6"


def test_an_energy_lines_details_hold_its_own_inputs_and_only_the_flags_that_apply() -> None:
    # The rules and the event are recorded once by the caller, not on every line.
    plain, capped = (
        energy_lines(site(event("E1", "80", **changes)), rules(energy_rate=Decimal("0.50"), **cap))[
            0
        ]
        for changes, cap in (({}, {}), ({"opted_out": True}, {"energy_cap_per_event": "50"}))
    )

    assert plain.details == {
        "committed_kw": "100",
        "treatment": "counted",
        "reduction_kwh": "160",
        "average_kw": "80",
        "performance_ratio": "0.8",
    }
    assert capped.details == {
        "committed_kw": "100",
        "treatment": "counted",
        "reduction_kwh": "160",
        "average_kw": "80",
        "performance_ratio": "0.8",
        "opted_out": True,
        "unlimited_amount": "80.00",
    }


def test_an_events_energy_payment_is_floored() -> None:
    # Net -10 kW x 2 h = -20 kWh x $0.50 = -$10.00, raised to the floor $0.00.
    period = site(event("E1", "-10"))

    (line,) = energy_lines(period, rules(energy_rate=Decimal("0.50"), energy_floor_per_event="0"))

    assert (line.quantity, line.amount) == (Decimal("-20"), Decimal("0.00"))
    assert "raised to the floor $0.00 per event" in line.explanation


def test_the_season_pays_the_average_event_reduction() -> None:
    # (80 + 60 + 100) / 3 = 80 kW-season x $40.00 = $3,200.00
    period = site(
        event("E1", "80", day=JUNE.replace(day=9)),
        event("E2", "60"),
        event("E3", "100"),
        months=(JUNE, JULY),
    )

    line = season_line(period, rules(season_rate=Decimal("40")))

    assert line is not None
    assert (line.kind, line.quantity, line.unit, line.amount) == (
        "season",
        Decimal("80"),
        "kW-season",
        Decimal("3200.00"),
    )
    assert line.explanation == (
        "Average event reduction 80.000 kW over 3 events (E1: 80.000 kW, E2: 60.000 kW, "
        "E3: 100.000 kW) × $40.00/kW-season = $3,200.00"
    )


@pytest.mark.parametrize(
    ("averages_kw", "limits", "expected"),
    [
        # 80 kW x $40.00 = $3,200.00, capped at $3,000.00
        (("80",), {"season_cap": "3000"}, Decimal("3000.00")),
        # (10 - 30) / 2 = -10 kW x $40.00 = -$400.00, raised to the floor $0.00
        (("10", "-30"), {"season_floor": "0"}, Decimal("0.00")),
    ],
)
def test_the_season_payment_is_held_within_its_floor_and_cap(
    averages_kw: tuple[str, ...], limits: dict, expected: Decimal
) -> None:
    period = site(*(event(f"E{i}", kw) for i, kw in enumerate(averages_kw)))

    line = season_line(period, rules(season_rate=Decimal("40"), **limits))

    assert line is not None
    assert line.amount == expected


def test_there_is_no_season_line_without_events() -> None:
    assert season_line(site(), rules(season_rate=Decimal("40"))) is None


def test_energy_above_the_firm_service_level_is_charged() -> None:
    # 12.5 kWh above the firm level x $2.00 = -$25.00 (a charge); no excess, no line.
    period = site(
        event("E1", "80", excess_kwh=Decimal("12.5")),
        event("E2", "90", excess_kwh=Decimal("0")),
    )

    (line,) = excess_energy_lines(period, rules(excess_energy_rate=Decimal("2")))

    assert (line.kind, line.event_key, line.quantity, line.unit, line.rate, line.amount) == (
        "excess_energy",
        "E1",
        Decimal("12.5"),
        "kWh",
        Decimal("-2"),
        Decimal("-25.00"),
    )
    assert line.explanation == (
        "Excess 12.500 kWh above the firm service level × $2.00/kWh charge = -$25.00"
    )


def test_an_excess_charge_is_capped_per_event() -> None:
    # 12.5 kWh x $2.00 = -$25.00, limited to -$20.00.
    period = site(event("E1", "80", excess_kwh=Decimal("12.5")))

    (line,) = excess_energy_lines(
        period, rules(excess_energy_rate=Decimal("2"), excess_charge_cap_per_event="20")
    )

    assert line.amount == Decimal("-20.00")
    assert line.explanation.endswith("= -$25.00, limited to -$20.00 per event = -$20.00")


def test_a_zero_performance_opt_out_is_still_charged_its_excess() -> None:
    period = site(event("E1", "80", excess_kwh=Decimal("5"), opted_out=True))
    program = rules(
        energy_rate=Decimal("0.50"),
        excess_energy_rate=Decimal("2"),
        opted_out_events="zero_performance",
    )

    # Energy counted as 0 kWh -> $0.00; excess 5 kWh x $2.00 -> -$10.00
    assert amounts(settle_site(period, program)) == {
        ("energy", "E1"): Decimal("0.00"),
        ("excess_energy", "E1"): Decimal("-10.00"),
    }


def test_settle_site_writes_only_the_kinds_the_rules_pay_in_a_fixed_order() -> None:
    period = site(
        event("E1", "80", excess_kwh=Decimal("1")),
        event("E2", "60"),
    )
    program = rules(
        capacity_rate=Decimal("10"),
        energy_rate=Decimal("0.50"),
        season_rate=Decimal("40"),
        excess_energy_rate=Decimal("2"),
    )

    lines = settle_site(period, program)

    assert [(line.kind, line.event_key) for line in lines] == [
        ("capacity", None),
        ("season", None),
        ("energy", "E1"),
        ("excess_energy", "E1"),
        ("energy", "E2"),
    ]
    assert settle_site(period, rules(energy_rate=Decimal("0.50")))[0].kind == "energy"
    assert settle_site(period, rules()) == []
