"""Payment rule versions: validation, storage as JSON, and the version in effect."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from settlements.payments import PaymentRules, rules_in_effect

V2025 = PaymentRules(effective_from=dt.date(2025, 1, 1), version="2025", capacity_rate="8")
V2026 = PaymentRules(effective_from=dt.date(2026, 6, 1), version="2026", capacity_rate="9.5")


@pytest.mark.parametrize(
    ("on", "version"),
    [
        (dt.date(2025, 1, 1), "2025"),
        (dt.date(2026, 5, 31), "2025"),
        (dt.date(2026, 6, 1), "2026"),
        (dt.date(2027, 3, 1), "2026"),
    ],
)
def test_the_rules_in_effect_are_the_latest_version_on_or_before_the_date(
    on: dt.date, version: str
) -> None:
    assert rules_in_effect([V2026, V2025], on).version == version


def test_there_are_no_rules_in_effect_before_the_first_version() -> None:
    with pytest.raises(LookupError, match="no payment rules in effect on 2024-12-31"):
        rules_in_effect([V2025, V2026], dt.date(2024, 12, 31))


def test_two_versions_on_one_date_are_ambiguous() -> None:
    same_day = PaymentRules(effective_from=dt.date(2026, 6, 1), capacity_rate="10")

    with pytest.raises(ValueError, match="two payment rule versions"):
        rules_in_effect([V2026, same_day], dt.date(2026, 7, 1))


def test_numbers_become_decimals_and_floats_are_refused() -> None:
    assert V2026.capacity_rate == Decimal("9.5")
    with pytest.raises(TypeError, match="float"):
        PaymentRules(effective_from=dt.date(2026, 1, 1), energy_rate=0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"factor_method": "piecewise"}, "needs breakpoints"),
        (
            {"factor_method": "piecewise", "breakpoints": (("0.5", "0"), ("0.5", "1"))},
            "strictly increasing",
        ),
        ({"factor_method": "threshold"}, "needs threshold_ratio"),
        ({"threshold_ratio": "0.5"}, "only used by factor_method 'threshold'"),
        ({"breakpoints": (("0", "0"),)}, "only used by factor_method 'piecewise'"),
        ({"capacity_rate": "-1"}, "must not be negative"),
        ({"capacity_factor_floor": "1", "capacity_factor_cap": "0.5"}, "is above"),
        ({"negative_reductions": "ignore"}, "unknown negative_reductions"),
        ({"opted_out_events": "skip"}, "unknown opted_out_events"),
        ({"capacity_unit": "kW-year"}, "unknown capacity_unit"),
    ],
)
def test_incoherent_rules_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PaymentRules(effective_from=dt.date(2026, 1, 1), **changes)


def test_rules_round_trip_through_a_json_ready_dict() -> None:
    rules = PaymentRules(
        effective_from=dt.date(2026, 6, 1),
        version="cbp-2026",
        capacity_rate=Decimal("18.00"),
        factor_method="piecewise",
        breakpoints=(("0", "-0.5"), ("0.5", "0"), ("1", "1")),
        interpolation="step",
        energy_rate=Decimal("0.125"),
        energy_cap_per_event=Decimal("500"),
        negative_reductions="floor_interval",
        opted_out_events="zero_performance",
        test_events="exclude",
    )

    data = rules.to_dict()

    assert data["effective_from"] == "2026-06-01"
    assert data["capacity_rate"] == "18.00"
    assert data["breakpoints"] == [["0", "-0.5"], ["0.5", "0"], ["1", "1"]]
    assert PaymentRules.from_dict(data) == rules


def test_stored_rules_with_an_unknown_setting_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown payment rule setting"):
        PaymentRules.from_dict({"effective_from": "2026-01-01", "capacity_rat": "10"})


@pytest.mark.parametrize(
    ("changes", "per_season"),
    [
        ({"capacity_rate": Decimal("8"), "capacity_unit": "kW-month"}, False),
        ({"capacity_rate": Decimal("40"), "capacity_unit": "kW-season"}, True),
        ({"energy_rate": Decimal("0.25")}, False),
        ({"energy_rate": Decimal("0.25"), "season_rate": Decimal("10")}, True),
        # A season unit without a capacity rate pays nothing by the season.
        ({"capacity_unit": "kW-season", "energy_rate": Decimal("0.25")}, False),
    ],
)
def test_rules_paying_by_the_season_say_so(changes: dict, per_season: bool) -> None:
    rules = PaymentRules(effective_from=dt.date(2026, 1, 1), **changes)
    assert rules.paid_per_season is per_season
