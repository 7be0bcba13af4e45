"""The batch entry point and the totals constructor give what the one-site calls give."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from settlements.payments import EventOutcome, settle_site, settle_sites
from tests.settlements.payments.helpers import AUGUST, JULY, event, rules, site

VARIED_RULES = [
    rules(capacity_rate="8", energy_rate="0.50"),
    rules(capacity_rate="8", energy_rate="0.50", negative_reductions="floor_event"),
    # A negative factor: a penalty line.
    rules(
        capacity_rate="8",
        factor_method="piecewise",
        breakpoints=[("0", "-0.5"), ("1", "1")],
        energy_rate="0.50",
    ),
    rules(capacity_rate="8", factor_method="threshold", threshold_ratio="0.5", energy_rate="1"),
    rules(energy_rate="0.50", energy_cap_per_event="50", season_rate="3", season_cap="100"),
    rules(energy_rate="0.5", excess_energy_rate="0.2", opted_out_events="zero_performance"),
    rules(capacity_rate="8", capacity_unit="kW-season", test_events="exclude", energy_rate="2"),
]


def sites():
    return [
        site(event("E1", "80"), event("E2", "60", day=dt.date(2026, 7, 21))),
        site(event("E1", "-10"), event("E2", "2", is_test=True), months=(JULY, AUGUST)),
        site(event("E1", "20", opted_out=True, excess_kwh=Decimal("12")), event("E2", "130")),
        site(),
    ]


@pytest.mark.parametrize("payment_rules", VARIED_RULES)
def test_settle_sites_gives_each_site_the_lines_settle_site_gives(payment_rules) -> None:
    batch = list(settle_sites(sites(), payment_rules))

    # Line equality compares every field: amounts, explanations and details too.
    assert batch == [settle_site(period, payment_rules) for period in sites()]


def test_the_varied_rules_cover_every_kind_a_site_settles_into() -> None:
    kinds = {
        line.kind
        for payment_rules in VARIED_RULES
        for lines in settle_sites(sites(), payment_rules)
        for line in lines
    }

    assert kinds == {"capacity", "penalty", "energy", "season", "excess_energy"}


def test_an_outcome_from_totals_is_the_outcome_the_constructor_makes() -> None:
    made = EventOutcome.from_totals(
        7, dt.date(2026, 7, 14), Decimal("150.000"), 301.5017, 0.1, opted_out=True
    )

    assert made == EventOutcome(
        event_key=7,
        event_date=dt.date(2026, 7, 14),
        committed_kw=Decimal("150.000"),
        reduction_kwh=301.5017,
        average_reduction_kw=0.1,
        opted_out=True,
    )
    # Floats by their shortest repr, as everywhere in the library.
    assert made.reduction_kwh == Decimal("301.5017")
    assert made.average_reduction_kw == Decimal("0.1")


def test_an_outcome_from_totals_refuses_a_reduction_that_is_not_finite() -> None:
    with pytest.raises(ValueError, match="reduction_kwh must be finite"):
        EventOutcome.from_totals(1, dt.date(2026, 7, 14), Decimal("100"), float("nan"), 1.0)
