"""Every file format through the importer into stored readings, with independent totals."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET  # noqa: S405 - trusted sample files, independent check
from pathlib import Path

import pytest
from django.db.models import Sum

from settlements.models import MeterReading
from tests.enrollment.factories import EnrollmentFactory, MeterFactory, ProgramFactory
from tests.settlements.test_import_helpers import canonical, codes, import_bytes, import_text

pytestmark = pytest.mark.django_db

SAMPLES = Path("/work/shared/data/greenbutton")
ESPI = "http://naesb.org/espi"
NY = "America/New_York"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def _total(meter) -> float:
    return MeterReading.objects.filter(meter=meter).aggregate(total=Sum("kwh"))["total"] or 0.0


def test_a_canonical_file_is_stored_in_utc_with_its_quality_flags():
    meter = MeterFactory(meter_id="M-CAN")
    record = import_text(
        "meter_id,interval_start,kwh,interval_minutes,quality\n"
        "M-CAN,2026-07-01T00:00:00-04:00,1.25,15,A\n"
        "M-CAN,2026-07-01T04:15:00Z,2.5,15,E\n"
    )
    assert record.status == "succeeded", record.message
    assert record.format == "canonical"
    assert (record.rows_accepted, record.rows_rejected, record.meters) == (2, 0, 1)
    rows = list(
        MeterReading.objects.filter(meter=meter)
        .order_by("interval_start")
        .values_list("interval_start", "kwh", "quality")
    )
    assert rows == [
        (dt.datetime(2026, 7, 1, 4, 0, tzinfo=dt.UTC), 1.25, "A"),
        (dt.datetime(2026, 7, 1, 4, 15, tzinfo=dt.UTC), 2.5, "E"),
    ]
    assert record.first_interval == dt.datetime(2026, 7, 1, 4, 0, tzinfo=dt.UTC)
    assert record.last_interval == dt.datetime(2026, 7, 1, 4, 30, tzinfo=dt.UTC)


def _utility_day(date: str, hours: list[int], usage: float) -> str:
    return "".join(
        f"Electric usage,{date},{hour:02d}:00,{hour:02d}:59,{usage:.2f},kWh,$0.10,\n"
        for hour in hours
    )


def test_a_utility_download_with_both_dst_days_lands_on_the_accounts_meter():
    program = ProgramFactory(time_zone=NY)
    meter = MeterFactory(interval_minutes=60, site__service_account_number="0123456789")
    EnrollmentFactory(site=meter.site, program=program)
    spring = [h for h in range(24) if h != 2]  # 23 hours on 2026-03-08
    fall = [0, 1, 1, *range(2, 24)]  # 25 hours on 2026-11-01
    text = (
        "Name,JANE DOE\nAccount Number,'0123456789'\n\n"
        "TYPE,DATE,START TIME,END TIME,USAGE,UNITS,COST,NOTES\n"
        + _utility_day("2026-03-08", spring, 1.0)
        + _utility_day("2026-11-01", fall, 2.0)
    )
    record = import_text(text)
    assert record.status == "succeeded", (record.message, codes(record))
    assert record.format == "utility"
    assert record.time_zone == NY
    assert record.rows_accepted == 23 + 25
    assert MeterReading.objects.filter(meter=meter).count() == 48
    assert _total(meter) == pytest.approx(23 * 1.0 + 25 * 2.0)
    starts = list(
        MeterReading.objects.filter(meter=meter, kwh=2.0)
        .order_by("interval_start")
        .values_list("interval_start", flat=True)
    )
    # The repeated 01:00 is 05:00Z (daylight time) and then 06:00Z (standard time).
    assert starts[:3] == [
        dt.datetime(2026, 11, 1, 4, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 1, 5, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 1, 6, tzinfo=dt.UTC),
    ]
    assert record.gap_count == 1  # the months between the two days, reported, not filled
    assert codes(record) == []


def test_a_utility_download_naming_no_known_account_needs_a_meter():
    MeterFactory(interval_minutes=60)
    text = (
        "Account Number,999\n\nTYPE,DATE,START TIME,END TIME,USAGE,UNITS,COST,NOTES\n"
        + _utility_day("2026-01-05", list(range(24)), 1.0)
    )
    record = import_text(text)
    assert record.status == "rejected"
    assert "choose the meter" in record.message
    assert MeterReading.objects.count() == 0


def _wide_file(rows: list[tuple[str, str, list[str]]]) -> str:
    quarters = [f"{m // 60:02d}:{m % 60:02d}" for m in range(0, 1440, 15)]
    header = "meter_id,date," + ",".join(quarters + ["01:00*", "01:15*", "01:30*", "01:45*"])
    return header + "\n" + "".join(",".join([m, d, *cells]) + "\n" for m, d, cells in rows)


def test_a_wide_file_with_92_and_100_interval_days_is_stored_whole():
    program = ProgramFactory(time_zone=NY)
    meter = MeterFactory(meter_id="M-WIDE")
    EnrollmentFactory(site=meter.site, program=program)
    spring = ["" if 8 <= i < 12 else "0.5" for i in range(96)] + [""] * 4
    ordinary = ["0.25"] * 96 + [""] * 4
    fall = ["1"] * 96 + ["1"] * 4
    record = import_text(
        _wide_file(
            [
                ("M-WIDE", "2026-03-08", spring),
                ("M-WIDE", "2026-03-09", ordinary),
                ("M-WIDE", "2026-11-01", fall),
            ]
        )
    )
    assert record.status == "succeeded", (record.message, codes(record))
    assert record.format == "wide"
    assert record.rows_accepted == 92 + 96 + 100
    assert _total(meter) == pytest.approx(92 * 0.5 + 96 * 0.25 + 100 * 1.0)
    assert record.warning_count == 0


@pytest.mark.parametrize("valid_rows_only", [False, True])
def test_a_wide_file_for_a_wh_meter_is_read_in_wh(valid_rows_only: bool):
    # The wide CSV states no unit: its cells are in the unit of each row's meter. 250 Wh a
    # quarter-hour is 0.25 kWh (1 kW, well under the site's 100 kW peak: nothing flagged).
    program = ProgramFactory(time_zone=NY)
    wh_meter = MeterFactory(meter_id="M-WH", unit="Wh", site__peak_demand_kw=100)
    kwh_meter = MeterFactory(meter_id="M-KWH", site=wh_meter.site)
    EnrollmentFactory(site=wh_meter.site, program=program)
    cells = ["250"] * 96 + [""] * 4
    record = import_text(
        _wide_file([("M-WH", "2026-03-09", cells), ("M-KWH", "2026-03-09", cells)]),
        valid_rows_only=valid_rows_only,
    )
    assert record.status == "succeeded", (record.message, codes(record))
    assert _total(wh_meter) == pytest.approx(96 * 0.25)
    assert _total(kwh_meter) == pytest.approx(96 * 250.0)
    assert record.flagged_count == 96  # the kWh meter's 1,000 kW only


def test_a_wh_meters_wide_row_is_checked_and_reported_in_kwh():
    program = ProgramFactory(time_zone=NY)
    meter = MeterFactory(meter_id="M-WH", unit="Wh")
    EnrollmentFactory(site=meter.site, program=program)
    record = import_text(_wide_file([("M-WH", "2026-03-09", ["-500"] + [""] * 99)]))
    assert record.status == "rejected"
    problem = record.problems.get(code="negative_kwh")
    assert "-0.5 kWh" in problem.message


def test_files_that_state_their_unit_are_not_scaled_by_the_meters_unit():
    program = ProgramFactory(time_zone=NY)
    meter = MeterFactory(
        meter_id="M-WH", unit="Wh", interval_minutes=60, site__service_account_number="777"
    )
    EnrollmentFactory(site=meter.site, program=program)
    canonical_file = canonical([("M-WH", "2026-01-01T00:00:00Z", 1.5)], minutes=60)
    assert import_text(canonical_file).status == "succeeded"  # a column named kwh
    download = (
        "Account Number,777\n\nTYPE,DATE,START TIME,END TIME,USAGE,UNITS,COST,NOTES\n"
        + _utility_day("2026-01-05", list(range(24)), 2.0)  # UNITS kWh
    )
    record = import_text(download)
    assert record.status == "succeeded", (record.message, codes(record))
    assert _total(meter) == pytest.approx(1.5 + 24 * 2.0)


def _independent_kwh(path: Path) -> tuple[float, int]:
    """(kWh total, readings) of a sample by plain ElementTree: value x 10^multiplier Wh."""
    root = ET.parse(path).getroot()  # noqa: S314 - trusted sample files
    espi = {"espi": ESPI}
    reading_type = root.find(".//espi:ReadingType", espi)
    multiplier = int(reading_type.findtext("espi:powerOfTenMultiplier", namespaces=espi) or 0)
    values = [int(v.text or 0) for v in root.iterfind(".//espi:IntervalReading/espi:value", espi)]
    return sum(values) * 10**multiplier / 1000, len(values)


def _sample(name: str) -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"Green Button samples not available at {SAMPLES}")
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(f"sample {name} not present in {SAMPLES}")
    return path


@pytest.mark.parametrize(
    "name",
    [
        "Coastal_Multi_Family_Jan_1_2011_to_Jan_1_2012_RetailCustomer_5.xml",
        "TestGBDataHourlyNineDaysBinnedDaily.xml",
        "electric_containerized.xml",
    ],
)
def test_each_electric_green_button_sample_totals_an_independent_sum(name: str):
    path = _sample(name)
    from settlements.meterdata import parse

    usage_point = parse(path).series[0].usage_point_href
    meter = MeterFactory(interval_minutes=60, usage_point=usage_point)
    record = import_bytes(path.read_bytes(), name=name)
    assert record.status == "succeeded", (record.message, codes(record))
    assert record.format == "greenbutton"
    expected_kwh, readings = _independent_kwh(path)
    assert record.rows_accepted == readings
    assert MeterReading.objects.filter(meter=meter).count() == readings
    assert _total(meter) == pytest.approx(expected_kwh, rel=1e-9)


def test_a_green_button_usage_point_maps_by_title_or_by_the_meter_chosen_at_upload():
    path = _sample("electric_containerized.xml")
    by_title = MeterFactory(interval_minutes=60, usage_point="Coastal Multi-Family 12hr")
    first = import_bytes(path.read_bytes(), name=path.name)
    assert first.status == "succeeded"
    assert MeterReading.objects.filter(meter=by_title).count() == 8

    chosen = MeterFactory(interval_minutes=60)
    by_title.usage_point = ""
    by_title.save()
    MeterReading.objects.all().delete()
    first.status = "failed"  # let the same file be imported again, for another meter
    first.save()
    second = import_bytes(path.read_bytes(), name=path.name, meter=chosen)
    assert second.status == "succeeded", second.message
    assert MeterReading.objects.filter(meter=chosen).count() == 8


def test_a_green_button_usage_point_mapped_to_no_meter_is_rejected_by_name():
    path = _sample("electric_containerized.xml")
    record = import_bytes(path.read_bytes(), name=path.name)
    assert record.status == "rejected"
    problem = record.problems.first()
    assert problem.code == "unknown_meter"
    assert "Coastal Multi-Family 12hr" in problem.message
    assert MeterReading.objects.count() == 0


def test_the_gas_sample_stores_nothing_and_says_why():
    path = _sample("ngma_gas_provider_2024-07-16.xml")
    record = import_bytes(path.read_bytes(), name=path.name)
    assert record.status == "succeeded"
    assert record.rows_accepted == 0
    assert [(p.severity, p.code) for p in record.problems.all()] == [("warning", "skipped_series")]


def test_a_format_override_is_used_instead_of_detection():
    MeterFactory(meter_id="M-OVR")
    record = import_text(canonical([("M-OVR", "2026-01-01T00:00:00Z", 1)]), format="canonical")
    assert (record.status, record.requested_format, record.format) == (
        "succeeded",
        "canonical",
        "canonical",
    )


def _feed(delivered_wh: list[int], received_kwh: list[int]) -> bytes:
    """A Green Button feed: one usage point with a delivered (Wh) and a received (kWh) series
    of quarter-hours from 2026-01-01T00:00Z."""
    atom = "http://www.w3.org/2005/Atom"

    def entry(self_href: str, up: str, related: list[str], title: str, content: str) -> str:
        links = "".join(f'<link rel="related" href="{href}"/>' for href in related)
        return (
            f'<entry><link rel="self" href="{self_href}"/><link rel="up" href="{up}"/>{links}'
            f"<title>{title}</title><content>{content}</content></entry>"
        )

    def block(values: list[int]) -> str:
        start = 1_767_225_600
        body = "".join(
            f"<IntervalReading><timePeriod><duration>900</duration><start>{start + 900 * i}"
            f"</start></timePeriod><value>{value}</value></IntervalReading>"
            for i, value in enumerate(values)
        )
        return f'<IntervalBlock xmlns="{ESPI}">{body}</IntervalBlock>'

    def reading_type(multiplier: int, flow: int) -> str:
        return (
            f'<ReadingType xmlns="{ESPI}"><flowDirection>{flow}</flowDirection>'
            f"<intervalLength>900</intervalLength><powerOfTenMultiplier>{multiplier}"
            f"</powerOfTenMultiplier><uom>72</uom></ReadingType>"
        )

    entries = [
        entry("UP/7", "UP", ["UP/7/MR"], "Rooftop solar site", f'<UsagePoint xmlns="{ESPI}"/>'),
        entry("UP/7/MR/1", "UP/7/MR", ["UP/7/MR/1/IB", "RT/wh"], "", "<MeterReading/>"),
        entry("UP/7/MR/2", "UP/7/MR", ["UP/7/MR/2/IB", "RT/kwh"], "", "<MeterReading/>"),
        entry("RT/wh", "RT", [], "", reading_type(0, 1)),
        entry("RT/kwh", "RT", [], "", reading_type(3, 19)),
        entry("UP/7/MR/1/IB/1", "UP/7/MR/1/IB", [], "", block(delivered_wh)),
        entry("UP/7/MR/2/IB/1", "UP/7/MR/2/IB", [], "", block(received_kwh)),
    ]
    return (f'<?xml version="1.0"?>\n<feed xmlns="{atom}">' + "".join(entries) + "</feed>").encode()


def test_green_button_exported_energy_is_netted_on_a_net_meter():
    meter = MeterFactory(records_net_energy=True, usage_point="Rooftop solar site")
    record = import_bytes(_feed([1500, 2500], [1, 3]), name="net.xml")
    assert record.status == "succeeded", (record.message, codes(record))
    readings = list(
        MeterReading.objects.filter(meter=meter)
        .order_by("interval_start")
        .values_list("kwh", flat=True)
    )
    assert readings == [pytest.approx(0.5), pytest.approx(-0.5)]


def test_green_button_exported_energy_is_rejected_on_a_meter_without_net_metering():
    MeterFactory(usage_point="Rooftop solar site")
    record = import_bytes(_feed([1500, 2500], [1, 3]), name="net.xml")
    assert record.status == "rejected"
    assert {code for _, code in codes(record)} == {"received_energy"}
    assert MeterReading.objects.count() == 0


def test_a_utility_download_is_read_in_its_accounts_program_zone():
    # Two program zones are in use, so there is no single default: the file matched by its
    # account number belongs to a Los Angeles program's meter, and its wall clock is Los
    # Angeles time. 2026-07-01 00:00 PDT is 07:00Z (not 04:00Z, New York's midnight).
    ProgramFactory(time_zone=NY)
    program = ProgramFactory(time_zone="America/Los_Angeles")
    meter = MeterFactory(interval_minutes=60, site__service_account_number="5550001")
    EnrollmentFactory(site=meter.site, program=program)
    text = (
        "Account Number,5550001\n\nTYPE,DATE,START TIME,END TIME,USAGE,UNITS,COST,NOTES\n"
        + _utility_day("2026-07-01", list(range(24)), 1.0)
    )
    record = import_text(text)
    assert record.status == "succeeded", (record.message, codes(record))
    assert record.time_zone == "America/Los_Angeles"
    first = MeterReading.objects.filter(meter=meter).order_by("interval_start").first()
    assert first.interval_start == dt.datetime(2026, 7, 1, 7, 0, tzinfo=dt.UTC)


def test_a_wide_file_is_not_read_in_another_zone_than_its_meters_program():
    # Programs in two zones, no zone given and no meter chosen: the file would be read in
    # settings.TIME_ZONE (New York) while its meter's program runs on Los Angeles time,
    # storing every reading three hours off. The rows are refused, saying so; given the
    # zone, the same file lands at the right instants (00:00 PDT = 07:00Z).
    ProgramFactory(time_zone=NY)
    program = ProgramFactory(time_zone="America/Los_Angeles")
    meter = MeterFactory(meter_id="M-LA")
    EnrollmentFactory(site=meter.site, program=program)
    text = _wide_file([("M-LA", "2026-07-01", ["0.25"] * 96 + [""] * 4)])

    record = import_text(text)
    assert record.status == "rejected"
    assert codes(record)[0] == (2, "zone_mismatch")
    problem = record.problems.order_by("line").first()
    assert "America/Los_Angeles" in problem.message and NY in problem.message
    assert MeterReading.objects.count() == 0

    record = import_text(text, time_zone="America/Los_Angeles")
    assert record.status == "succeeded", (record.message, codes(record))
    first = MeterReading.objects.filter(meter=meter).order_by("interval_start").first()
    assert first.interval_start == dt.datetime(2026, 7, 1, 7, 0, tzinfo=dt.UTC)


def _two_usage_points_feed() -> bytes:
    """A Green Button feed with two usage points (two premises), each with one hour of
    delivered energy in Wh: "North hall" on 2026-01-01, "South hall" on 2026-01-02."""
    atom = "http://www.w3.org/2005/Atom"

    def entry(self_href: str, up: str, related: list[str], title: str, content: str) -> str:
        links = "".join(f'<link rel="related" href="{href}"/>' for href in related)
        return (
            f'<entry><link rel="self" href="{self_href}"/><link rel="up" href="{up}"/>{links}'
            f"<title>{title}</title><content>{content}</content></entry>"
        )

    def block(start: int) -> str:
        return (
            f'<IntervalBlock xmlns="{ESPI}"><IntervalReading><timePeriod><duration>3600'
            f"</duration><start>{start}</start></timePeriod><value>1000</value>"
            "</IntervalReading></IntervalBlock>"
        )

    reading_type = (
        f'<ReadingType xmlns="{ESPI}"><flowDirection>1</flowDirection><intervalLength>3600'
        "</intervalLength><powerOfTenMultiplier>0</powerOfTenMultiplier><uom>72</uom>"
        "</ReadingType>"
    )
    entries = [entry("RT/1", "RT", [], "", reading_type)]
    premises = [("UP/1", "North hall", 1_767_225_600), ("UP/2", "South hall", 1_767_312_000)]
    for point, title, start in premises:
        entries += [
            entry(point, "UP", [f"{point}/MR"], title, f'<UsagePoint xmlns="{ESPI}"/>'),
            entry(
                f"{point}/MR/1", f"{point}/MR", [f"{point}/MR/1/IB", "RT/1"], "", "<MeterReading/>"
            ),
            entry(f"{point}/MR/1/IB/1", f"{point}/MR/1/IB", [], "", block(start)),
        ]
    return (f'<?xml version="1.0"?>\n<feed xmlns="{atom}">' + "".join(entries) + "</feed>").encode()


def test_a_meter_chosen_for_a_green_button_file_of_several_usage_points_is_refused():
    # One meter cannot take two premises' readings: merged, they would read as one site's
    # load. The file is refused naming the usage points; nothing is stored.
    meter = MeterFactory(interval_minutes=60)
    record = import_bytes(_two_usage_points_feed(), name="two.xml", meter=meter)
    assert record.status == "rejected"
    assert "North hall" in record.message and "South hall" in record.message
    assert MeterReading.objects.count() == 0
    # Mapped by usage point, each premise goes to its own meter.
    north = MeterFactory(interval_minutes=60, usage_point="North hall")
    south = MeterFactory(interval_minutes=60, usage_point="South hall")
    record = import_bytes(_two_usage_points_feed(), name="two.xml")
    assert record.status == "succeeded", (record.message, codes(record))
    assert (_total(north), _total(south)) == (pytest.approx(1.0), pytest.approx(1.0))
