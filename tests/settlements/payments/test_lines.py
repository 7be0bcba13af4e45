"""Line shape, rounding at the line only, totals and restatement differences."""

from __future__ import annotations

from decimal import Decimal

import pytest

from settlements.payments import (
    LineItem,
    adjustment_line,
    capacity_line,
    clawback_line,
    difference,
    enablement_line,
    energy_lines,
    total,
)
from tests.settlements.payments.helpers import event, rules, site


def test_a_line_rounds_its_amount_to_cents_half_up() -> None:
    # 10.5 kWh x $0.25 = $2.625 -> $2.63 (half up; half-even would give $2.62).
    (line,) = energy_lines(site(event("E1", "5.25")), rules(energy_rate=Decimal("0.25")))

    assert line.quantity == Decimal("10.5")
    assert line.amount == Decimal("2.63")


def test_intermediate_kwh_is_not_rounded_before_the_amount() -> None:
    # 3.0045 kWh x $1.00 = $3.0045 -> $3.00. Rounding the kWh first (3.005) would give $3.01.
    (line,) = energy_lines(site(event("E1", "1.50225", hours="2")), rules(energy_rate=Decimal("1")))

    assert line.quantity == Decimal("3.0045")
    assert line.amount == Decimal("3.00")


def test_the_performance_ratio_is_rounded_for_display_only() -> None:
    # Ratio 100 / 120 = 5/6. 120 kW x $18.00 x 5/6 = $1,800.00 exactly;
    # with the displayed 0.833 it would be 120 x 18 x 0.833 = $1,799.28.
    period = site(event("E1", "100", committed_kw="120"), committed_kw="120")

    line = capacity_line(period, rules(capacity_rate=Decimal("18")))

    assert line is not None
    assert line.amount == Decimal("1800.00")
    assert "factor ≈0.833333 (average performance ratio ≈0.833333 over 1 event" in (
        line.explanation
    )


def test_the_total_is_the_sum_of_the_rounded_lines() -> None:
    # Three events of 0.01 kWh x $0.50 = $0.005 each -> $0.01 each -> total $0.03,
    # whereas rounding the unrounded sum ($0.015) would give $0.02.
    period = site(*(event(f"E{i}", "0.005") for i in range(3)))

    lines = energy_lines(period, rules(energy_rate=Decimal("0.50")))

    assert [line.amount for line in lines] == [Decimal("0.01")] * 3
    assert total(lines) == Decimal("0.03")
    assert total([]) == Decimal("0.00")


def test_amounts_computed_elsewhere_get_the_same_line_shape() -> None:
    installment = enablement_line(
        site_key="S1", amount=Decimal("12500.00"), explanation="50% after verification", reference=3
    )
    clawback = clawback_line(
        site_key="S1", amount="-4166.67", explanation="Left 4 of 12 months early", reference=4
    )
    adjustment = adjustment_line(site_key="S1", amount=Decimal("-15.005"), explanation="Meter fix")

    assert [
        (line.kind, line.quantity, line.unit, line.rate, line.amount)
        for line in (installment, clawback, adjustment)
    ] == [
        ("enablement", Decimal(1), "installment", Decimal("12500.00"), Decimal("12500.00")),
        ("clawback", Decimal(1), "installment", Decimal("-4166.67"), Decimal("-4166.67")),
        ("adjustment", Decimal(1), "adjustment", Decimal("-15.005"), Decimal("-15.01")),
    ]
    assert installment.explanation == "50% after verification = $12,500.00"
    assert installment.key == ("enablement", "S1", None, 3)


def test_enablement_and_clawback_amounts_have_their_own_sign() -> None:
    with pytest.raises(ValueError, match="not negative"):
        enablement_line(site_key="S1", amount="-1", explanation="")
    with pytest.raises(ValueError, match="negative"):
        clawback_line(site_key="S1", amount="1", explanation="")
    with pytest.raises(TypeError, match="float"):
        enablement_line(site_key="S1", amount=0.1, explanation="")  # type: ignore[arg-type]


def test_a_line_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown line kind"):
        LineItem(
            kind="bonus",  # type: ignore[arg-type]
            site_key="S1",
            quantity=Decimal(1),
            unit="each",
            rate=Decimal(1),
            amount=Decimal(1),
            explanation="",
        )


def line(kind: str, event_key: str | None, amount: str, quantity: str = "1") -> LineItem:
    return LineItem(
        kind=kind,  # type: ignore[arg-type]
        site_key="S1",
        event_key=event_key,
        quantity=Decimal(quantity),
        unit="kWh",
        rate=Decimal("0.50"),
        amount=Decimal(amount),
        explanation=f"{kind} {event_key}",
    )


def test_a_restatement_gives_deltas_reversals_and_new_lines() -> None:
    approved = [
        line("capacity", None, "1000.00"),
        line("energy", "E1", "50.00", quantity="100"),
        line("energy", "E2", "30.00", quantity="60"),
    ]
    corrected = [
        line("capacity", None, "1100.00"),
        line("energy", "E1", "50.00", quantity="100"),
        line("energy", "E3", "20.00", quantity="40"),
    ]

    lines = difference(approved, corrected)

    # capacity +$100.00; E1 unchanged (no line); E3 new $20.00; E2 reversed -$30.00.
    assert [(item.kind, item.event_key, item.quantity, item.amount) for item in lines] == [
        ("capacity", None, Decimal("0"), Decimal("100.00")),
        ("energy", "E3", Decimal("40"), Decimal("20.00")),
        ("energy", "E2", Decimal("-60"), Decimal("-30.00")),
    ]
    assert lines[0].explanation == (
        "Restatement: now $1,100.00 (capacity None); was $1,000.00 (capacity None); "
        "difference $100.00"
    )
    assert lines[0].details["restatement"] == "delta"
    assert lines[1] == corrected[2]
    assert lines[2].details["restatement"] == "reversal"
    assert total(approved) + total(lines) == total(corrected)


def test_a_restatement_matches_a_capacity_line_that_became_a_penalty_by_kind() -> None:
    approved = [line("capacity", None, "300.00")]
    corrected = [line("penalty", None, "-200.00")]

    lines = difference(approved, corrected)

    assert [(item.kind, item.amount) for item in lines] == [
        ("penalty", Decimal("-200.00")),
        ("capacity", Decimal("-300.00")),
    ]


def test_an_unchanged_run_restates_nothing() -> None:
    approved = [line("capacity", None, "1000.00"), line("energy", "E1", "50.00")]

    assert difference(approved, list(approved)) == []


def test_a_restatement_refuses_two_lines_with_one_key() -> None:
    with pytest.raises(ValueError, match="share the key"):
        difference([], [line("energy", "E1", "1.00"), line("energy", "E1", "2.00")])


def test_a_line_is_json_ready() -> None:
    item = line("energy", "E1", "2.50", quantity="5")

    assert item.to_dict()["amount"] == "2.50"
    assert item.to_dict()["quantity"] == "5"


def test_installments_of_one_site_are_told_apart_by_their_reference() -> None:
    first = enablement_line(site_key="S1", amount="5000", explanation="Installed", reference=1)
    second = enablement_line(site_key="S1", amount="5000", explanation="Verified", reference=2)
    clawed = clawback_line(site_key="S1", amount="-2500", explanation="Left early", reference=3)

    # Installment 2 was cancelled and a clawback added: -$5,000.00 and -$2,500.00.
    lines = difference([first, second], [first, clawed])

    assert [(item.kind, item.reference, item.amount) for item in lines] == [
        ("clawback", 3, Decimal("-2500.00")),
        ("enablement", 2, Decimal("-5000.00")),
    ]
    assert lines[1].explanation == (
        "Restatement: reverses $5,000.00 (Verified = $5,000.00) = -$5,000.00"
    )
