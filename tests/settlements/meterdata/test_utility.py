"""Utility "download my data" CSV: preamble, header variants, units, both DST days."""

from __future__ import annotations

import io

import pytest

from settlements.meterdata import SCOPE_DAY, parse

from .conftest import problem_codes, read_all, utc

NY = "America/New_York"
PREAMBLE = (
    "Name,JANE DOE\n"
    'Address,"12 ELM ST, SPRINGFIELD"\n'
    "Account Number,'0123456789'\n"
    "Service,Service 1\n"
    "\n"
)
HEADER = "TYPE,DATE,START TIME,END TIME,USAGE,UNITS,COST,NOTES\n"  # line 6 after PREAMBLE


def _hourly_day(date: str, hours: list[int], usage: str = "1.00", units: str = "kWh") -> str:
    return "".join(
        f"Electric usage,{date},{h:02d}:00,{h:02d}:59,{usage},{units},$0.10,\n" for h in hours
    )


def _parse(text: str, **kwargs: object):
    file = parse(io.BytesIO(text.encode()), tz=NY, meter_ref="MTR-1", **kwargs)
    return file, read_all(file)


def test_it_reads_preamble_account_and_15_minute_rows_with_inclusive_end():
    file, rows = _parse(
        PREAMBLE
        + HEADER
        + "Electric usage,2026-01-15,00:00,00:14,0.25,kWh,$0.03,\n"
        + "Electric usage,2026-01-15,00:15,00:29,300,Wh,$0.04,\n"
    )
    assert file.format == "utility"
    assert file.account_number == "0123456789"
    assert file.interval_minutes == 15
    assert rows.meter_ref.tolist() == ["MTR-1", "MTR-1"]
    assert list(rows.interval_start) == [utc("2026-01-15T05:00Z"), utc("2026-01-15T05:15Z")]
    assert rows.kwh.tolist() == [0.25, 0.3]
    assert rows.line.tolist() == [7, 8]
    assert rows.interval_minutes.tolist() == [15, 15]
    # The partial day is reported, its rows kept.
    assert [(p.line, p.code, p.scope) for p in file.problems] == [
        (7, "day_interval_count", SCOPE_DAY)
    ]


def test_fall_back_day_reads_the_repeated_hour_as_daylight_then_standard_time():
    hours = [0, 1, 1] + list(range(2, 24))  # 25 hourly rows on 2026-11-01
    file, rows = _parse(HEADER + _hourly_day("2026-11-01", hours))
    assert file.problems == []
    assert len(rows) == 25
    assert list(rows.interval_start[:4]) == [
        utc("2026-11-01T04:00Z"),  # 00:00 EDT
        utc("2026-11-01T05:00Z"),  # 01:00 EDT, first occurrence
        utc("2026-11-01T06:00Z"),  # 01:00 EST, second occurrence
        utc("2026-11-01T07:00Z"),  # 02:00 EST
    ]
    assert rows.interval_start.is_unique


def test_fall_back_day_without_the_repeated_hour_is_a_day_problem():
    file, rows = _parse(HEADER + _hourly_day("2026-11-01", list(range(24))))
    assert len(rows) == 24
    assert [(p.line, p.code) for p in file.problems] == [(2, "day_interval_count")]
    assert "24 intervals" in file.problems[0].message and "expected 25" in file.problems[0].message


def test_spring_forward_day_has_23_hours_and_a_row_in_the_gap_is_a_problem():
    good = [h for h in range(24) if h != 2]
    file, rows = _parse(HEADER + _hourly_day("2026-03-08", good))
    assert file.problems == []
    assert len(rows) == 23
    assert rows.interval_start[2] == utc("2026-03-08T07:00Z")  # 03:00 EDT after 01:00 EST

    file, rows = _parse(HEADER + _hourly_day("2026-03-08", list(range(24))))
    assert problem_codes(file) == [(4, "nonexistent_local_time")]
    assert len(rows) == 23


def test_it_reads_a_usage_kwh_header_without_units_and_without_end_time():
    text = (
        '"TYPE","DATE","START TIME","USAGE (kWh)","COST"\n'
        '"Electric usage","01/15/2026","12:00 AM","0.50","$0.10"\n'
        '"Electric usage","01/15/2026","1:00 AM","0.75","$0.10"\n'
    )
    file, rows = _parse(text)
    assert file.account_number is None
    assert file.interval_minutes == 60
    assert list(rows.interval_start) == [utc("2026-01-15T05:00Z"), utc("2026-01-15T06:00Z")]
    assert rows.kwh.tolist() == [0.5, 0.75]
    assert rows.interval_minutes.tolist() == [60, 60]


def test_it_reports_bad_rows_of_a_utility_file_with_their_lines():
    file, rows = _parse(
        PREAMBLE
        + HEADER
        + "Electric usage,2026-01-15,00:00,00:14,0.25,kWh,,\n"  # 7 fine
        + "Electric usage,2026-01-15,00:15,00:29,0.25,therms,,\n"  # 8 unit
        + "Electric usage,2026-01-15,00:30,00:44,n/a,kWh,,\n"  # 9 usage
        + "Electric usage,someday,00:45,00:59,0.25,kWh,,\n"  # 10 date
        + "Electric usage,2026-01-15,25:00,25:14,0.25,kWh,,\n"  # 11 time
        + "Electric usage,2026-01-15,01:05,01:19,0.25,kWh,,\n"  # 12 misaligned
    )
    row_problems = [(p.line, p.code) for p in file.problems if p.code != "day_interval_count"]
    assert row_problems == [
        (8, "unsupported_unit"),
        (9, "invalid_usage"),
        (10, "invalid_date"),
        (11, "invalid_time"),
        (12, "misaligned_interval"),
    ]
    assert rows.line.tolist() == [7]


def test_it_refuses_a_utility_file_without_zone_or_meter():
    data = (HEADER + _hourly_day("2026-01-15", [0])).encode()
    with pytest.raises(ValueError, match="tz"):
        parse(io.BytesIO(data), meter_ref="M")
    with pytest.raises(ValueError, match="meter_ref"):
        parse(io.BytesIO(data), tz=NY)


def test_a_utility_file_larger_than_one_chunk_gives_the_same_rows():
    hours = [0, 1, 1] + list(range(2, 24))
    text = HEADER + _hourly_day("2026-10-31", list(range(24))) + _hourly_day("2026-11-01", hours)
    file_one, one = _parse(text)
    file_many, many = _parse(text, chunk_rows=2)
    assert one.equals(many)
    assert file_one.problems == file_many.problems == []
