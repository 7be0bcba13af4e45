"""Wide CSV: one row per meter and local day, DST days by the documented convention."""

from __future__ import annotations

import io

import pandas as pd

from settlements.meterdata import SCOPE_DAY, SCOPE_FILE, parse

from .conftest import problem_codes, read_all, utc

NY = "America/New_York"
QUARTERS = [f"{m // 60:02d}:{m % 60:02d}" for m in range(0, 1440, 15)]
SECOND_OCCURRENCE = ["01:00*", "01:15*", "01:30*", "01:45*"]
HEADER = "meter_id,date," + ",".join(QUARTERS + SECOND_OCCURRENCE) + "\n"


def _row(meter: str, date: str, cells: list[str]) -> str:
    return ",".join([meter, date, *cells]) + "\n"


def _parse(text: str, **kwargs: object):
    file = parse(io.BytesIO(text.encode()), tz=NY, **kwargs)
    return file, read_all(file)


def test_an_ordinary_day_gives_96_quarter_hours_from_local_midnight():
    cells = [str(i) for i in range(96)] + [""] * 4
    file, rows = _parse(HEADER + _row("M1", "2026-01-15", cells))
    assert file.format == "wide"
    assert file.interval_minutes == 15
    assert file.problems == []
    assert len(rows) == 96
    assert rows.interval_start[0] == utc("2026-01-15T05:00Z")
    assert rows.interval_start[95] == utc("2026-01-16T04:45Z")
    assert rows.kwh.sum() == sum(range(96))
    assert set(rows.line) == {2}


def test_spring_forward_day_has_92_values_with_the_missing_hour_empty():
    cells = ["" if 8 <= i < 12 else "1" for i in range(96)] + [""] * 4
    file, rows = _parse(HEADER + _row("M1", "2026-03-08", cells))
    assert file.problems == []
    assert len(rows) == 92
    starts = rows.interval_start.sort_values()
    assert (starts.diff().dropna() == pd.Timedelta(minutes=15)).all()
    assert starts.iloc[0] == utc("2026-03-08T05:00Z")
    assert starts.iloc[-1] == utc("2026-03-09T03:45Z")


def test_spring_forward_values_in_the_missing_hour_are_problems():
    cells = ["1"] * 96 + [""] * 4
    file, rows = _parse(HEADER + _row("M1", "2026-03-08", cells))
    assert problem_codes(file) == [(2, "nonexistent_local_time")] * 4
    assert "02:00" in file.problems[0].message
    assert len(rows) == 92


def test_fall_back_day_reads_starred_columns_as_the_standard_time_hour():
    cells = [f"{i}" for i in range(96)] + ["100", "101", "102", "103"]
    file, rows = _parse(HEADER + _row("M1", "2026-11-01", cells))
    assert file.problems == []
    assert len(rows) == 100
    by_start = rows.set_index("interval_start").kwh
    assert by_start[utc("2026-11-01T05:00Z")] == 4  # 01:00 EDT, plain column
    assert by_start[utc("2026-11-01T06:00Z")] == 100  # 01:00 EST, column 01:00*
    assert by_start[utc("2026-11-01T06:45Z")] == 103  # 01:45 EST, column 01:45*
    assert by_start[utc("2026-11-01T07:00Z")] == 8  # 02:00 EST
    assert rows.interval_start.is_unique
    starts = rows.interval_start.sort_values()
    assert (starts.diff().dropna() == pd.Timedelta(minutes=15)).all()


def test_fall_back_day_with_96_values_is_a_day_problem():
    file, rows = _parse(HEADER + _row("M1", "2026-11-01", ["1"] * 96 + [""] * 4))
    assert [(p.line, p.code, p.scope) for p in file.problems] == [
        (2, "day_interval_count", SCOPE_DAY)
    ]
    assert len(rows) == 96


def test_a_value_in_a_starred_column_on_an_ordinary_day_is_a_problem():
    file, rows = _parse(HEADER + _row("M1", "2026-01-15", ["1"] * 96 + ["5", "", "", ""]))
    assert problem_codes(file) == [(2, "not_repeated_local_time")]
    assert len(rows) == 96


def test_a_day_with_a_missing_value_and_bad_cells_reports_lines():
    text = (
        HEADER
        + _row("M1", "2026-01-15", ["1"] * 96 + [""] * 4)  # 2 fine
        + _row("M1", "2026-01-16", ["1"] * 95 + [""] + [""] * 4)  # 3 short day
        + _row("M1", "16 Jan", ["1"] * 96 + [""] * 4)  # 4 bad date
        + _row("M2", "2026-01-15", ["x"] + ["1"] * 95 + [""] * 4)  # 5 bad value
    )
    file, rows = _parse(text)
    assert problem_codes(file) == [
        (3, "day_interval_count"),
        (4, "invalid_date"),
        (5, "invalid_kwh"),
        (5, "day_interval_count"),
    ]
    assert sorted(set(rows.line)) == [2, 3, 5]


def test_hourly_numbered_columns_with_25_for_the_repeated_hour():
    header = "meter_id,date," + ",".join(str(n) for n in range(1, 26)) + "\n"
    fall = [str(n) for n in range(1, 26)]
    spring = ["1", "1", ""] + ["1"] * 21 + [""]
    ordinary = ["1"] * 24 + [""]
    text = (
        header
        + _row("M1", "2026-11-01", fall)
        + _row("M1", "2026-03-08", spring)
        + _row("M1", "2026-03-09", ordinary)
    )
    file, rows = _parse(text)
    assert file.interval_minutes == 60
    assert file.problems == []
    fall_rows = rows[rows.line == 2].set_index("interval_start").kwh
    assert len(fall_rows) == 25
    assert fall_rows[utc("2026-11-01T05:00Z")] == 2  # column 2 = 01:00 EDT
    assert fall_rows[utc("2026-11-01T06:00Z")] == 25  # column 25 = 01:00 EST
    assert fall_rows[utc("2026-11-01T07:00Z")] == 3  # column 3 = 02:00 EST
    assert len(rows[rows.line == 3]) == 23
    assert len(rows[rows.line == 4]) == 24


def test_an_unusable_wide_header_is_a_file_problem():
    file = parse(io.BytesIO(b"meter_id,date,00:00,00:07\nM1,2026-01-01,1,1\n"), tz=NY)
    assert read_all(file).empty
    assert [(p.code, p.scope) for p in file.problems] == [("invalid_header", SCOPE_FILE)]


def test_a_wide_file_larger_than_one_chunk_gives_the_same_rows():
    days = pd.date_range("2026-10-25", "2026-11-05", freq="D")
    text = HEADER
    for meter in ("M1", "M2"):
        for day in days:
            extra = ["2"] * 4 if day.date().isoformat() == "2026-11-01" else [""] * 4
            text += _row(meter, day.date().isoformat(), ["1"] * 96 + extra)
    file_one, one = _parse(text)
    file_many, many = _parse(text, chunk_rows=150)  # about one row per chunk
    pd.testing.assert_frame_equal(one, many)
    assert file_one.problems == file_many.problems == []
    assert len(one) == 2 * (len(days) * 96 + 4)
