"""Helpers for the meter data parser tests."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from settlements.meterdata import MeterDataFile, parse


def read_all(file: MeterDataFile) -> pd.DataFrame:
    """Concatenate every chunk of a parsed file (an empty frame when there is none)."""
    chunks = list(file.chunks())
    if not chunks:
        return pd.DataFrame(columns=["meter_ref", "interval_start", "kwh", "line"])
    return pd.concat(chunks, ignore_index=True)


def problem_codes(file: MeterDataFile) -> list[tuple[int, str]]:
    """(line, code) of every problem, in report order."""
    return [(problem.line, problem.code) for problem in file.problems]


@pytest.fixture
def parse_text():
    """Parse CSV text given as str."""

    def _parse(text: str, **kwargs: object) -> tuple[MeterDataFile, pd.DataFrame]:
        file = parse(io.BytesIO(text.encode()), **kwargs)
        return file, read_all(file)

    return _parse


def utc(text: str) -> pd.Timestamp:
    """A UTC timestamp from ISO text."""
    return pd.Timestamp(text).tz_convert("UTC")
