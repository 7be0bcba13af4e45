"""Firm service level and meter before / meter after."""

from __future__ import annotations

import pandas as pd
import pytest

from settlements.baselines import InsufficientData, firm_service_level, meter_before_after
from tests.settlements.baselines.helpers import TZ, local

START, END = local("2026-06-17 14:00"), local("2026-06-17 15:00")


def quarter_hours(first: str, kw: list[float]) -> pd.Series:
    """15-minute kWh readings from ``first`` holding the given kW levels."""
    index = pd.date_range(local(first), periods=len(kw), freq="15min")
    return pd.Series([level * 0.25 for level in kw], index=index)


def test_firm_service_level_reports_excess_energy_above_the_level() -> None:
    readings = quarter_hours("2026-06-17 13:00", [500, 500, 500, 500, 80, 100, 90, 120, 500])

    result = firm_service_level(readings, START, END, firm_kw=90)

    assert list(result.actual_kw) == pytest.approx([80, 100, 90, 120])
    assert list(result.excess_kw) == pytest.approx([0, 10, 0, 30])
    assert list(result.excess_kwh) == pytest.approx([0, 2.5, 0, 7.5])
    assert result.total_excess_kwh == pytest.approx(10.0)
    assert list(result.interval_compliant) == [True, False, True, False]
    assert result.compliant is False
    assert result.average_kw == pytest.approx(97.5)
    assert result.actual_kw.index[0] == START


def test_firm_service_level_is_compliant_when_every_interval_is_at_or_below() -> None:
    readings = quarter_hours("2026-06-17 14:00", [80, 90, 60, 70])

    result = firm_service_level(readings, START, END, firm_kw=90)

    assert result.compliant is True
    assert result.total_excess_kwh == 0.0


def test_firm_service_level_counts_a_missing_interval_as_not_compliant() -> None:
    readings = quarter_hours("2026-06-17 14:00", [80, 90, 60, 70]).drop(local("2026-06-17 14:30"))

    result = firm_service_level(readings, START, END, firm_kw=90, interval_minutes=15)

    assert result.missing_intervals == 1
    assert result.compliant is False
    assert result.total_excess_kwh == 0.0


def test_firm_service_level_rejects_a_negative_level() -> None:
    with pytest.raises(ValueError, match="firm_kw"):
        firm_service_level(quarter_hours("2026-06-17 14:00", [1, 1]), START, END, firm_kw=-1)


def test_meter_before_after_is_the_drop_from_the_hour_before() -> None:
    readings = quarter_hours("2026-06-17 13:00", [100, 100, 100, 100, 60, 70, 60, 70])

    result = meter_before_after(readings, START, END)

    assert (result.before_kw, result.during_kw) == pytest.approx((100.0, 65.0))
    assert result.reduction_kw == pytest.approx(35.0)
    assert result.warnings == ()


def test_meter_before_after_uses_the_requested_number_of_hours_before() -> None:
    readings = quarter_hours("2026-06-17 12:00", [80] * 4 + [100] * 4 + [60, 70, 60, 70])

    result = meter_before_after(readings, START, END, before_hours=2)

    assert result.before_kw == pytest.approx(90.0)
    assert result.reduction_kw == pytest.approx(25.0)


def test_meter_before_after_warns_about_missing_intervals_and_keeps_a_rise_negative() -> None:
    readings = quarter_hours("2026-06-17 13:00", [100, 100, 100, 100, 110, 130, 120, 120])
    readings = readings.drop(local("2026-06-17 13:15"))

    result = meter_before_after(readings, START, END)

    assert result.reduction_kw == pytest.approx(100 - 120)
    assert result.missing_before == 1
    assert result.warnings == ("1 interval(s) missing before the event",)


def test_meter_before_after_needs_a_reading_before_the_event() -> None:
    readings = quarter_hours("2026-06-17 14:00", [60, 70, 60, 70])

    with pytest.raises(InsufficientData, match="found 0 readings before the event"):
        meter_before_after(readings, START, END)


def test_meter_before_after_counts_both_fall_back_hours_in_real_time() -> None:
    # 01:00 EDT to 01:00 EST: the hour before the event is the first 01:xx.
    start = pd.Timestamp("2026-11-01 06:00", tz="UTC").tz_convert(TZ)
    index = pd.date_range(pd.Timestamp("2026-11-01 05:00", tz="UTC"), periods=8, freq="15min")
    readings = pd.Series([25.0] * 4 + [10.0] * 4, index=index.tz_convert(TZ))

    result = meter_before_after(readings, start, start + pd.Timedelta(hours=1))

    assert result.before_kw == pytest.approx(100.0)
    assert result.during_kw == pytest.approx(40.0)
