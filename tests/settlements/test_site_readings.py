"""site_readings: the sites' readings in a range, meters summed per site, ordered.

Runs on the database under test: SQLite by default, PostgreSQL (the array read) with
DATABASE_URL set.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from settlements.models import MeterReading
from settlements.performance import site_readings
from tests.enrollment.factories import MeterFactory, SiteFactory

T0 = dt.datetime(2026, 7, 15, 18, 0, tzinfo=dt.UTC)


def at(quarter: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=15 * quarter)


def store(meter, values: dict[int, float]) -> None:
    MeterReading.objects.bulk_create(
        MeterReading(meter=meter, interval_start=at(quarter), kwh=kwh)
        for quarter, kwh in values.items()
    )


@pytest.mark.django_db
def test_it_sums_a_site_s_meters_and_orders_by_site_then_time() -> None:
    two_meters, one_meter, silent = SiteFactory(), SiteFactory(), SiteFactory()
    first, second = MeterFactory(site=two_meters), MeterFactory(site=two_meters)
    only = MeterFactory(site=one_meter)
    quiet = MeterFactory(site=silent)
    store(first, {0: 1.25, 1: 2.5, 2: 4.0, 8: 99.0})  # quarter 8 is the range's end
    store(second, {1: 0.5, 2: 0.25, 3: 3.0, -1: 99.0})  # quarter -1 is before its start
    store(only, {3: 7.0, 1: 6.0, 2: 6.5})  # stored out of time order

    frame = site_readings(
        {one_meter.pk: [only.pk], two_meters.pk: [first.pk, second.pk], silent.pk: [quiet.pk]},
        at(0),
        at(8),
    )

    assert list(frame.columns) == ["site", "interval_start", "kwh"]
    assert str(frame["interval_start"].dt.tz) == "UTC"
    expected = sorted(
        [
            (two_meters.pk, at(0), 1.25),  # before the second meter's first reading
            (two_meters.pk, at(1), 3.0),  # 2.5 + 0.5
            (two_meters.pk, at(2), 4.25),  # 4.0 + 0.25
            (two_meters.pk, at(3), 3.0),  # after the first meter's last reading
            (one_meter.pk, at(1), 6.0),
            (one_meter.pk, at(2), 6.5),
            (one_meter.pk, at(3), 7.0),
        ],
        key=lambda row: (row[0], row[1]),
    )
    got = [
        (int(site), stamp.to_pydatetime(), float(kwh))
        for site, stamp, kwh in frame.itertuples(index=False)
    ]
    assert got == expected  # the silent site has no rows at all


@pytest.mark.django_db
def test_a_reading_missing_from_one_of_a_site_s_meters_is_a_gap_of_the_site() -> None:
    site = SiteFactory()
    first, second = MeterFactory(site=site), MeterFactory(site=site)
    store(first, {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0})
    store(second, {0: 2.0, 1: 2.0, 3: 2.0})  # quarter 2 is missing, inside its span
    frame = site_readings({site.pk: [first.pk, second.pk]}, at(0), at(8))
    got = [(stamp.to_pydatetime(), float(kwh)) for _, stamp, kwh in frame.itertuples(index=False)]
    # Quarter 2 would read 1 kWh (the first meter alone) for a site using 3 kWh.
    assert got == [(at(0), 3.0), (at(1), 3.0), (at(3), 3.0)]


@pytest.mark.django_db
def test_a_replaced_meter_hands_over_to_the_new_one_without_a_gap() -> None:
    site = SiteFactory()
    old, new = MeterFactory(site=site), MeterFactory(site=site)
    store(old, {0: 1.0, 1: 1.0})
    store(new, {2: 1.5, 3: 1.5})
    frame = site_readings({site.pk: [old.pk, new.pk]}, at(0), at(8))
    got = [(stamp.to_pydatetime(), float(kwh)) for _, stamp, kwh in frame.itertuples(index=False)]
    assert got == [(at(0), 1.0), (at(1), 1.0), (at(2), 1.5), (at(3), 1.5)]


@pytest.mark.django_db
def test_meters_of_different_interval_lengths_are_summed_per_longest_interval() -> None:
    site = SiteFactory()
    quarterly = MeterFactory(site=site, interval_minutes=15)
    hourly = MeterFactory(site=site, interval_minutes=60)
    # Hour 0: four quarters 1 + 2 + 3 + 4 = 10 kWh, and 20 kWh hourly: 30 kWh.
    # Hour 1: quarter 5 is missing, so the hour is incomplete and left out.
    # Hour 2: four quarters of 0.5 kWh, and 8 kWh hourly: 10 kWh.
    store(quarterly, {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 1.0, 6: 1.0, 7: 1.0})
    store(quarterly, {8: 0.5, 9: 0.5, 10: 0.5, 11: 0.5})
    store(hourly, {0: 20.0, 4: 5.0, 8: 8.0})

    frame = site_readings({site.pk: [quarterly.pk, hourly.pk]}, at(0), at(12))

    got = [(stamp.to_pydatetime(), float(kwh)) for _, stamp, kwh in frame.itertuples(index=False)]
    assert got == [(at(0), 30.0), (at(8), 10.0)]


@pytest.mark.django_db
def test_sites_without_meters_or_readings_give_an_empty_frame() -> None:
    site = SiteFactory()
    meter = MeterFactory(site=site)
    assert site_readings({}, at(0), at(8)).empty
    assert site_readings({site.pk: []}, at(0), at(8)).empty
    frame = site_readings({site.pk: [meter.pk]}, at(0), at(8))
    assert frame.empty and list(frame.columns) == ["site", "interval_start", "kwh"]


@pytest.mark.django_db
def test_interval_starts_keep_their_instant() -> None:
    site = SiteFactory()
    meter = MeterFactory(site=site)
    store(meter, {0: 1.0})
    frame = site_readings({site.pk: [meter.pk]}, at(0), at(1))
    assert frame["interval_start"].tolist() == [pd.Timestamp(at(0))]
