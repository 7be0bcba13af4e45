"""The utility "download my data" CSV (Green Button CSV as US utilities export it).

A preamble (name, address, account number, blank lines) precedes a header such as
``TYPE,DATE,START TIME,END TIME,USAGE,UNITS,COST,NOTES``. Times are local wall clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import pandas as pd

from settlements.meterdata.base import DELIVERED, SCOPE_FILE, Problem, make_chunk
from settlements.meterdata.csvread import read_csv_chunks
from settlements.meterdata.detect import find_utility_header, head_text, split_csv_line
from settlements.meterdata.localtime import (
    NAT,
    NS_PER_DAY,
    NS_PER_MINUTE,
    DayCounter,
    localize_wall,
    repeated_wall_times,
)
from settlements.meterdata.values import MAX_INTERVAL_MINUTES, ProblemRows, parse_kwh

if TYPE_CHECKING:
    from settlements.meterdata.api import MeterDataFile

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_ACCOUNT_LABEL = re.compile(r"^\s*account\s*(?:number|no\.?|#|id)?\s*[:#]?\s*(.*)$", re.I)
_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y")
_TIME_FORMATS = ("%H:%M", "%H:%M:%S", "%I:%M %p", "%I:%M:%S %p")
_UNIT_KWH = {"KWH": 1.0, "WH": 0.001}
_USAGE_UNIT_IN_HEADER = re.compile(r"^USAGE\s*\((K?WH)\)$", re.I)
_COMMON_LENGTHS = (1, 5, 10, 15, 30, 60)


def preamble_lines(head: bytes) -> list[str]:
    """Return the physical lines of the head of a file (BOM dropped)."""
    return _LINE_BREAK.split(head_text(head))


def find_account_number(head: bytes) -> str | None:
    """Return the account number stated in a utility preamble, or None when there is none.

    Accepts ``Account Number,123``, ``"Account Number","'123'"`` and ``Account #: 123``.
    """
    lines = preamble_lines(head)
    header = find_utility_header(lines)
    for line in lines[: header if header is not None else 50]:
        fields = split_csv_line(line)
        if not fields:
            continue
        match = _ACCOUNT_LABEL.match(fields[0])
        if not match:
            continue
        candidates = [match.group(1), *fields[1:]]
        for candidate in candidates:
            value = candidate.strip().strip("'\"=").strip()
            if value:
                return value
    return None


def _pick_format(values: pd.Series, formats: tuple[str, ...]) -> pd.Series:
    """Parse with whichever format reads the most values; unreadable values become NaT."""
    best: pd.Series | None = None
    best_missing = -1
    for fmt in formats:
        parsed = pd.to_datetime(values, format=fmt, errors="coerce")
        missing = int(parsed.isna().sum())
        if best is None or missing < best_missing:
            best, best_missing = parsed, missing
        if missing == 0:
            break
    assert best is not None
    return best


def _minutes_of_day(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Return (minute of day, parsed) for wall-clock times; unparsed rows give -1."""
    stripped = values.astype(object).map(lambda v: str(v).strip().upper())
    parsed = _pick_format(stripped, _TIME_FORMATS)
    ok = parsed.notna().to_numpy() & (parsed.dt.second.fillna(0).to_numpy() == 0)
    minutes = (parsed.dt.hour * 60 + parsed.dt.minute).fillna(-1).to_numpy(dtype=np.int64)
    return np.where(ok, minutes, -1), ok


def _interval_from_bounds(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Interval length from START and END TIME; END is inclusive (00:00-00:14 is 15 min)."""
    span = (end - start) % 1440
    inclusive = np.isin(span + 1, _COMMON_LENGTHS)
    exclusive = np.isin(span, _COMMON_LENGTHS)
    return np.where(inclusive, span + 1, np.where(exclusive, span, 0)).astype(np.int64)


def utility_chunks(stream: BinaryIO, file: MeterDataFile) -> Iterator[pd.DataFrame]:
    """Yield output chunks of a utility download (see the package docstring for the layout).

    Rows get ``file.meter_ref``. DATE + START TIME are wall clock in ``file.tz``: a repeated
    fall-back time is daylight time the first time it appears and standard time the second;
    a time inside the spring-forward gap is a ``nonexistent_local_time`` problem. Usage in Wh
    is converted to kWh. A local day whose interval count does not match its length (92, 96
    or 100 quarter-hours; 23, 24 or 25 hours) gets a ``day_interval_count`` problem.
    """
    assert file.tz is not None and file.meter_ref is not None
    lines = preamble_lines(file.head)
    header_index = find_utility_header(lines)
    if header_index is None:
        file.report(
            Problem(1, "missing_header", "no TYPE,DATE,START TIME,...,USAGE header", SCOPE_FILE)
        )
        return
    header_line = header_index + 1
    names = {field.upper(): field for field in split_csv_line(lines[header_index])}
    usage_name = next(name for name in names if name.startswith("USAGE"))
    unit_in_header = _USAGE_UNIT_IN_HEADER.match(usage_name)
    if "UNITS" not in names and not unit_in_header:
        file.report(
            Problem(
                header_line,
                "missing_units",
                "neither a UNITS column nor a unit in the USAGE header (e.g. USAGE (kWh))",
                SCOPE_FILE,
            )
        )
        return
    state = _UtilityState(file, header_line)
    for raw, line in read_csv_chunks(
        stream,
        header_line=header_line,
        chunk_rows=file.chunk_rows,
        report=file.report,
        dtype=object,
    ):
        raw.columns = [str(name).strip().upper() for name in raw.columns]
        chunk = state.convert(
            raw,
            line,
            usage_name=usage_name,
            header_factor=_UNIT_KWH[unit_in_header.group(1).upper()] if unit_in_header else None,
        )
        if chunk is not None and len(chunk):
            yield chunk
    state.days.finish()


class _UtilityState:
    """What a utility file carries from one chunk to the next."""

    def __init__(self, file: MeterDataFile, header_line: int) -> None:
        self.file = file
        self.header_line = header_line
        self.tz: str = file.tz or "UTC"
        self.seen_repeated: dict[int, int] = {}
        self.days = DayCounter(self.tz, lambda: file.interval_minutes or 15, file.report)

    def convert(
        self,
        raw: pd.DataFrame,
        line: np.ndarray,
        *,
        usage_name: str,
        header_factor: float | None,
    ) -> pd.DataFrame | None:
        file = self.file
        bad = ProblemRows(line)
        text = raw.astype(object)
        blank = np.ones(len(raw), dtype=bool)
        for name in text.columns:
            blank &= text[name].map(lambda v: str(v).strip() == "").to_numpy(dtype=bool)
        bad.drop(blank)

        dates = _pick_format(text["DATE"].map(lambda v: str(v).strip()), _DATE_FORMATS)
        date_ok = dates.notna().to_numpy()
        raw_dates = text["DATE"].to_numpy(dtype=object)
        bad.flag(~date_ok, "invalid_date", lambda i: f"DATE {raw_dates[i]!r} is not a date")
        day = np.where(
            date_ok, dates.to_numpy(dtype="datetime64[ns]").view(np.int64) // NS_PER_DAY, 0
        )

        start, start_ok = _minutes_of_day(text["START TIME"])
        raw_start = text["START TIME"].to_numpy(dtype=object)
        bad.flag(
            ~start_ok,
            "invalid_time",
            lambda i: f"START TIME {raw_start[i]!r} is not a wall-clock time",
        )

        factor = self._unit_factor(text, bad, header_factor)
        usage = parse_kwh(text[usage_name], bad, name="usage") * factor

        if "END TIME" in text.columns:
            end, end_ok = _minutes_of_day(text["END TIME"])
            raw_end = text["END TIME"].to_numpy(dtype=object)
            bad.flag(~end_ok, "invalid_time", lambda i: f"END TIME {raw_end[i]!r} is not a time")
            minutes = _interval_from_bounds(start, end)
            bad.flag(
                minutes <= 0,
                "invalid_interval",
                lambda i: (
                    f"START TIME {raw_start[i]!r} to END TIME {raw_end[i]!r} "
                    "is not a 1, 5, 10, 15, 30 or 60-minute interval"
                ),
            )
        else:
            minutes = None
        naive = day * NS_PER_DAY + start * NS_PER_MINUTE
        if file.interval_minutes is None:
            file.interval_minutes = _detect_minutes(minutes, naive, bad.keep())
        if minutes is None:
            minutes = np.full(len(raw), file.interval_minutes or 0, dtype=np.int64)
            if file.interval_minutes is None:
                file.report(
                    Problem(
                        self.header_line,
                        "interval_unknown",
                        "no END TIME and too few rows to infer the interval length",
                        SCOPE_FILE,
                    )
                )
                return None

        safe = np.where((minutes > 0) & (minutes <= MAX_INTERVAL_MINUTES), minutes, 1)
        bad.flag(
            (start >= 0) & (start % safe != 0),
            "misaligned_interval",
            lambda i: (
                f"START TIME {raw_start[i]!r} is not aligned to {minutes[i]}-minute intervals"
            ),
        )
        utc = self._to_utc(naive, bad, raw_dates, raw_start)
        file.report_all(bad.problems)
        keep = bad.keep()
        self.days.feed(day[keep], line[keep])
        return make_chunk(
            meter_ref=file.meter_ref or "",
            interval_start_ns=utc[keep],
            interval_minutes=minutes[keep],
            kwh=usage[keep],
            quality="",
            direction=DELIVERED,
            line=line[keep],
        )

    def _unit_factor(
        self, text: pd.DataFrame, bad: ProblemRows, header_factor: float | None
    ) -> np.ndarray:
        if header_factor is not None and "UNITS" not in text.columns:
            return np.full(len(text), header_factor)
        units = text["UNITS"].map(lambda v: str(v).strip().upper()).to_numpy(dtype=object)
        factor = np.array([_UNIT_KWH.get(unit, np.nan) for unit in units], dtype=np.float64)
        raw_units = text["UNITS"].to_numpy(dtype=object)
        bad.flag(
            np.isnan(factor),
            "unsupported_unit",
            lambda i: f"UNITS {raw_units[i]!r} is not kWh or Wh",
        )
        return np.where(np.isnan(factor), 0.0, factor)

    def _to_utc(
        self,
        naive: np.ndarray,
        bad: ProblemRows,
        raw_dates: np.ndarray,
        raw_start: np.ndarray,
    ) -> np.ndarray:
        keep = bad.keep()
        dst = np.ones(len(naive), dtype=bool)
        candidates = np.flatnonzero(keep)
        repeated = candidates[repeated_wall_times(naive[candidates], self.tz)]
        duplicate = np.zeros(len(naive), dtype=bool)
        # The repeated fall-back hour is told apart by row order: daylight time comes first.
        for index in repeated.tolist():
            seen = self.seen_repeated.get(int(naive[index]), 0)
            self.seen_repeated[int(naive[index])] = seen + 1
            dst[index] = seen == 0
            duplicate[index] = seen >= 2
        bad.flag(
            duplicate,
            "repeated_local_time",
            lambda i: (
                f"{raw_dates[i]} {raw_start[i]} appears more than twice "
                "(a repeated fall-back time can occur only twice)"
            ),
        )
        utc = localize_wall(np.where(keep, naive, 0), self.tz, dst)
        bad.flag(
            keep & (utc == NAT),
            "nonexistent_local_time",
            lambda i: (
                f"{raw_dates[i]} {raw_start[i]} does not exist in {self.tz} "
                "(skipped by the daylight-saving change)"
            ),
        )
        return utc


def _detect_minutes(minutes: np.ndarray | None, naive: np.ndarray, keep: np.ndarray) -> int | None:
    """Most common interval length: from START/END when present, else from row spacing."""
    if minutes is not None:
        lengths = minutes[keep & (minutes > 0)]
    else:
        steps = np.diff(naive[keep]) // NS_PER_MINUTE
        lengths = steps[(steps > 0) & (steps <= MAX_INTERVAL_MINUTES)]
    if len(lengths) == 0:
        return None
    values, counts = np.unique(lengths, return_counts=True)
    return int(values[np.argmax(counts)])
