"""Format detection and gap finding."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from settlements.meterdata import UnknownFormatError, detect_format, find_gaps, parse

from .conftest import read_all


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"meter_id,interval_start,kwh\n", "canonical"),
        (b"\xef\xbb\xbfmeter_id,interval_start,kwh,interval_minutes,quality\n", "canonical"),
        (b"meter_id,date,00:00,00:15\n", "wide"),
        (b"meter_id,date,1,2,3\n", "wide"),
        (b"meter_id,date,01:00*,00:15\n", "wide"),
        (b"Name,A\nAccount Number,1\n\nTYPE,DATE,START TIME,END TIME,USAGE,UNITS\n", "utility"),
        (b'"TYPE","DATE","START TIME","USAGE (kWh)"\n', "utility"),
        (b'<?xml version="1.0"?>\n<feed xmlns="http://www.w3.org/2005/Atom">', "greenbutton"),
        (b"  \n<atom:feed>", "greenbutton"),
    ],
)
def test_it_detects_the_format_from_the_first_bytes(head: bytes, expected: str):
    assert detect_format(head) == expected


@pytest.mark.parametrize("head", [b"", b"date,value\n2026-01-01,1\n", b"%PDF-1.7"])
def test_it_refuses_an_unknown_format(head: bytes):
    with pytest.raises(UnknownFormatError):
        detect_format(head)


def test_the_format_override_wins_over_detection():
    data = b"meter_id,interval_start,kwh\nM1,2026-01-01T00:00:00Z,1\n"
    file = parse(io.BytesIO(data), format="wide", tz="UTC")
    assert file.format == "wide"
    assert read_all(file).empty
    assert file.fatal
    with pytest.raises(UnknownFormatError):
        parse(io.BytesIO(data), format="excel")


def test_it_parses_a_one_shot_stream_that_cannot_seek():
    class OneShot(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
            chunk = self._data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    data = b"meter_id,interval_start,kwh\nM1,2026-01-01T00:00:00Z,1\nM1,2026-01-01T00:15:00Z,2\n"
    file = parse(io.BufferedReader(OneShot(data)))
    assert read_all(file).kwh.tolist() == [1.0, 2.0]


def _starts(*texts: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([pd.Timestamp(t) for t in texts]).tz_convert("UTC")


def test_find_gaps_reports_half_open_missing_stretches():
    starts = _starts(
        "2026-01-01T00:00Z", "2026-01-01T00:15Z", "2026-01-01T01:00Z", "2026-01-01T01:15Z"
    )
    assert find_gaps(starts, 15) == [
        (pd.Timestamp("2026-01-01T00:30Z"), pd.Timestamp("2026-01-01T01:00Z"))
    ]


def test_find_gaps_sees_no_gap_across_a_dst_change_in_utc():
    local = pd.date_range("2026-11-01 00:00", periods=100, freq="15min", tz="America/New_York")
    assert find_gaps(local.tz_convert("UTC"), 15) == []


def test_find_gaps_reports_missing_edges_of_an_expected_range():
    starts = _starts("2026-01-01T01:00Z")
    gaps = find_gaps(
        starts,
        60,
        expected_start=pd.Timestamp("2026-01-01T00:00Z"),
        expected_end=pd.Timestamp("2026-01-01T04:00Z"),
    )
    assert gaps == [
        (pd.Timestamp("2026-01-01T00:00Z"), pd.Timestamp("2026-01-01T01:00Z")),
        (pd.Timestamp("2026-01-01T02:00Z"), pd.Timestamp("2026-01-01T04:00Z")),
    ]


def test_find_gaps_refuses_unsorted_or_naive_input():
    with pytest.raises(ValueError, match="sorted"):
        find_gaps(_starts("2026-01-01T01:00Z", "2026-01-01T00:00Z"), 15)
    with pytest.raises(ValueError, match="tz-aware"):
        find_gaps(pd.DatetimeIndex(["2026-01-01"]), 15)
