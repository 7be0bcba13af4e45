"""The demo meter data: realistic shapes, DST-correct days, through the importer, loaded once."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from settlements.demo import PastEventWindow, demo_load_kw, load_meter_data_demo
from settlements.models import MeterDataImport, MeterReading
from tests.enrollment.factories import EnrollmentFactory, MeterFactory, ProgramFactory

pytestmark = pytest.mark.django_db
NY = "America/New_York"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def test_the_load_peaks_on_weekday_afternoons_below_the_sites_peak():
    starts = pd.date_range("2026-07-06", "2026-07-20", freq="15min", tz=NY, inclusive="left")
    kw = demo_load_kw(
        starts_utc=starts.tz_convert("UTC"),
        time_zone=NY,
        peak_kw=1000,
        rng=np.random.default_rng(1),
    )
    frame = pd.DataFrame({"kw": kw}, index=starts)
    weekday = frame[frame.index.day_of_week < 5]
    weekend = frame[frame.index.day_of_week >= 5]
    by_hour = weekday.groupby(weekday.index.hour)["kw"].mean()
    assert 13 <= by_hour.idxmax() <= 17
    assert by_hour.max() > 1.5 * by_hour[3]
    assert weekend["kw"].mean() < 0.8 * weekday["kw"].mean()
    assert frame["kw"].max() < 1000 * 1.05


def test_the_demo_loader_imports_once_with_dst_days_and_event_windows():
    program = ProgramFactory(time_zone=NY)
    meter = MeterFactory(site__peak_demand_kw=Decimal("800"))
    EnrollmentFactory(site=meter.site, program=program)
    yesterday = dt.date.today() - dt.timedelta(days=1)
    event_day = pd.Timestamp(yesterday - dt.timedelta(days=2), tz=NY)
    window = PastEventWindow(
        site_id=meter.site_id,
        start=(event_day + pd.Timedelta(hours=14)).to_pydatetime(),
        end=(event_day + pd.Timedelta(hours=18)).to_pydatetime(),
        reduction_kw=300.0,
    )
    record = load_meter_data_demo(days=10, past_event_windows=[window])
    assert record is not None and record.status == "succeeded"
    local = pd.date_range(
        pd.Timestamp(yesterday - dt.timedelta(days=9), tz=NY),
        pd.Timestamp(yesterday + dt.timedelta(days=1), tz=NY),
        freq="15min",
        inclusive="left",
    )
    assert MeterReading.objects.filter(meter=meter).count() == len(local)  # 92/100 on DST days
    during = MeterReading.objects.filter(
        meter=meter, interval_start__gte=window.start, interval_start__lt=window.end
    )
    assert max(during.values_list("kwh", flat=True)) * 4 < 800 - 250

    assert load_meter_data_demo(days=10) is None  # already loaded: nothing happens
    assert MeterDataImport.objects.count() == 1
