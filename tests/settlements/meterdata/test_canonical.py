"""Canonical long CSV: values, every row problem with its line, chunking, speed path."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest

from settlements.meterdata import COLUMNS, SCOPE_FILE, parse
from settlements.meterdata.timestamps import INVALID, NO_OFFSET, OK, parse_iso8601_utc

from .conftest import problem_codes, read_all, utc

HEADER = "meter_id,interval_start,kwh,interval_minutes,quality\n"


def test_it_converts_offsets_to_utc_and_keeps_values(parse_text):
    file, rows = parse_text(
        HEADER
        + "M1,2026-03-08T01:45:00-05:00,1.25,15,A\n"
        + "M1,2026-03-08T03:00:00-04:00,0.5,15,E\n"
        + "M2,2026-03-08T07:00:00Z,2,15,\n"
    )
    assert list(rows.columns) == list(COLUMNS)
    assert list(rows.interval_start) == [
        utc("2026-03-08T06:45Z"),
        utc("2026-03-08T07:00Z"),
        utc("2026-03-08T07:00Z"),
    ]
    assert rows.meter_ref.tolist() == ["M1", "M1", "M2"]
    assert rows.kwh.tolist() == [1.25, 0.5, 2.0]
    assert rows.quality.tolist() == ["A", "E", ""]
    assert rows.line.tolist() == [2, 3, 4]
    assert rows.direction.astype(str).tolist() == ["delivered"] * 3
    assert str(rows.interval_start.dtype) == "datetime64[ns, UTC]"
    assert file.interval_minutes == 15
    assert file.problems == []


def test_it_reports_each_bad_row_with_its_line_and_leaves_it_out(parse_text):
    file, rows = parse_text(
        HEADER
        + "M1,2026-01-01T00:00:00Z,1,15,\n"  # 2 fine
        + "M1,2026-01-01T00:15:00Z,abc,15,\n"  # 3 non-numeric
        + "M1,2026-01-01T00:30:00Z,,15,\n"  # 4 empty kwh
        + "M1,not a time,1,15,\n"  # 5 bad timestamp
        + "M1,2026-01-01T00:45:00,1,15,\n"  # 6 no offset
        + "M1,2026-01-01T01:00:30Z,1,15,\n"  # 7 seconds
        + "M1,2026-01-01T01:07:00Z,1,15,\n"  # 8 misaligned
        + "M1,2026-01-01T01:15:00Z,1,0,\n"  # 9 bad interval
        + ",2026-01-01T01:30:00Z,1,15,\n"  # 10 no meter
        + "M1,2026-01-01T01:45:00Z,1,15,,extra\n"  # 11 too many fields
        + "\n"  # 12 blank line: silently ignored
        + "M1,2026-01-01T02:00:00Z,-0.5,15,\n"  # 13 negative passes
    )
    assert problem_codes(file) == [
        (3, "invalid_kwh"),
        (4, "missing_kwh"),
        (5, "invalid_timestamp"),
        (6, "missing_offset"),
        (7, "not_on_minute"),
        (8, "misaligned_interval"),
        (9, "invalid_interval_minutes"),
        (10, "missing_meter_id"),
        (11, "wrong_field_count"),
    ]
    assert rows.line.tolist() == [2, 13]
    assert rows.kwh.tolist() == [1.0, -0.5]
    assert "'abc'" in file.problems[[p.line for p in file.problems].index(3)].message


def test_it_passes_non_finite_numbers_to_the_importer(parse_text):
    file, rows = parse_text(
        HEADER + "M1,2026-01-01T00:00:00Z,NaN,15,\nM1,2026-01-01T00:15:00Z,inf,15,\n"
    )
    assert file.problems == []
    assert math.isnan(rows.kwh[0])
    assert rows.kwh[1] == math.inf


def test_it_reads_the_minimal_header_and_infers_the_interval(parse_text):
    file, rows = parse_text(
        "meter_id,interval_start,kwh\n"
        "M1,2026-01-01T00:00:00+00:00,1\n"
        "M1,2026-01-01T00:30:00+00:00,1\n"
        "M1,2026-01-01T01:00:00+00:00,1\n"
    )
    assert file.interval_minutes == 30
    assert rows.interval_minutes.tolist() == [30, 30, 30]
    assert rows.quality.tolist() == ["", "", ""]


def test_it_uses_the_callers_interval_when_the_column_is_absent(parse_text):
    file, rows = parse_text(
        "meter_id,interval_start,kwh\nM1,2026-01-01T00:00:00Z,1\n", interval_minutes=60
    )
    assert rows.interval_minutes.tolist() == [60]


def test_it_stops_with_a_file_problem_when_a_required_column_is_missing():
    file = parse(io.BytesIO(b"meter_id,interval_start,kwh_total\nM1,x,1\n"), format="canonical")
    assert read_all(file).empty
    assert [(p.line, p.code, p.scope) for p in file.problems] == [
        (1, "missing_columns", SCOPE_FILE)
    ]
    assert file.fatal


def test_it_checks_hourly_alignment_on_the_program_wall_clock(parse_text):
    text = HEADER + "M1,2026-01-01T00:00:00+05:30,1,60,\nM1,2026-01-01T00:30:00+05:30,1,60,\n"
    file, rows = parse_text(text, tz="Asia/Kolkata")
    assert rows.line.tolist() == [2]
    assert problem_codes(file) == [(3, "misaligned_interval")]


def _generated_csv(rows: int) -> bytes:
    starts = pd.date_range("2026-03-07", periods=rows, freq="15min", tz="America/New_York")
    lines = [HEADER.rstrip("\n")]
    for position, start in enumerate(starts):
        lines.append(f"M{position % 3},{start.isoformat()},{position / 100},15,A")
    lines[50] = "M1,2026-03-07T12:00:00,1,15,A"  # line 51: no offset
    lines[101] = "M1,2026-03-07T12:00:00Z,x,15,A,B"  # line 102: too many fields
    return ("\n".join(lines) + "\n").encode()


def test_a_file_larger_than_one_chunk_gives_the_same_rows_as_one_chunk():
    data = _generated_csv(1000)
    whole = parse(io.BytesIO(data), chunk_rows=10_000)
    small = parse(io.BytesIO(data), chunk_rows=7)
    one, many = read_all(whole), read_all(small)
    assert len(list(parse(io.BytesIO(data), chunk_rows=7).chunks())) > 100
    pd.testing.assert_frame_equal(one, many)
    assert len(one) == 998
    assert (
        problem_codes(whole)
        == problem_codes(small)
        == [
            (51, "missing_offset"),
            (102, "wrong_field_count"),
        ]
    )
    # Lines after the skipped line still point at their own source line.
    assert one.loc[one.line == 103, "kwh"].item() == pytest.approx(1.01)


def test_it_reads_a_path_and_a_utf8_bom(tmp_path):
    path = tmp_path / "readings.csv"
    path.write_bytes(b"\xef\xbb\xbf" + HEADER.encode() + b"M1,2026-01-01T00:00:00Z,1,15,\n")
    file = parse(path)
    assert file.format == "canonical"
    assert read_all(file).meter_ref.tolist() == ["M1"]


def test_the_fast_timestamp_path_agrees_with_pandas():
    rng = np.random.default_rng(7)
    seconds = rng.integers(0, 4_000_000_000, 2000) // 60 * 60
    offsets = rng.choice([-300, -240, 0, 330, 345, 600, -570], len(seconds))
    text = [
        pd.Timestamp(s, unit="s", tz="UTC")
        .tz_convert(f"Etc/GMT{'+' if o < 0 else '-'}{abs(o) // 60}")
        .isoformat()
        if o % 60 == 0
        else (pd.Timestamp(s, unit="s") + pd.Timedelta(minutes=int(o))).isoformat()
        + f"{'+' if o >= 0 else '-'}{abs(o) // 60:02d}:{abs(o) % 60:02d}"
        for s, o in zip(seconds, offsets, strict=True)
    ]
    ns, status = parse_iso8601_utc(np.array(text, dtype=object))
    expected = pd.to_datetime(pd.Series(text), format="ISO8601", utc=True)
    assert (status == OK).all()
    assert (ns == expected.to_numpy("datetime64[ns]").view(np.int64)).all()


def test_the_timestamp_parser_refuses_impossible_dates_and_naive_times():
    values = np.array(
        ["2026-02-29T00:00:00Z", "2024-02-29T00:00:00Z", "2026-01-01T00:00:00", "x"],
        dtype=object,
    )
    ns, status = parse_iso8601_utc(values)
    assert status.tolist() == [INVALID, OK, NO_OFFSET, INVALID]
    assert ns[1] == pd.Timestamp("2024-02-29", tz="UTC").value
