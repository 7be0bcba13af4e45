"""The wide CSV: one row per meter and local day, one column per interval.

Header: ``meter_id,date,`` then the interval columns, labelled by local wall-clock start
(``00:00,00:15,...,23:45``) or numbered (``1..96``; hourly ``1..24`` or ``00:00..23:00``).

Daylight-saving days (the convention):

* Spring forward: the row keeps every column; the cells of the skipped hour (02:00-02:45 in
  America/New_York) stay empty, leaving 92 (or 23) values. A value there is a
  ``nonexistent_local_time`` problem.
* Fall back: the repeated hour is written twice. Plain columns (``01:00``) hold its first,
  daylight-time occurrence; extra columns labelled with a trailing ``*`` (``01:00*,01:15*,
  01:30*,01:45*``, anywhere in the header) hold the second, standard-time occurrence, making
  100 (or 25) values. With numbered headers the extra columns are ``97..100`` (``25``) and
  stand for the repeated wall times of that date in order. On every other day the extra
  columns stay empty; a value there is a ``not_repeated_local_time`` problem.

A row whose number of values differs from its day's number of intervals gets one
``day_interval_count`` problem (scope ``day``) on its line; its values are still yielded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import pandas as pd

from settlements.meterdata.base import DELIVERED, SCOPE_FILE, SCOPE_ROW, Problem, make_chunk
from settlements.meterdata.csvread import read_csv_chunks
from settlements.meterdata.detect import head_text, raw_csv_fields
from settlements.meterdata.localtime import (
    NAT,
    NS_PER_DAY,
    NS_PER_MINUTE,
    DayLengths,
    day_count_problem,
    localize_wall,
    repeated_wall_times,
)
from settlements.meterdata.values import ProblemRows

if TYPE_CHECKING:
    from settlements.meterdata.api import MeterDataFile

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(\*?)$")
_NUMBER = re.compile(r"^\d{1,3}$")
_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y")
_NAN_SPELLINGS = {"nan", "+nan", "-nan"}


@dataclass(frozen=True)
class _Columns:
    """Interval columns of a wide header."""

    names: list[str]  # as pandas names them
    labels: list[str]  # as people read them, for messages
    minute: np.ndarray  # wall-clock minute of day; -1 for numbered extra columns
    second_occurrence: np.ndarray  # True for the repeated hour's standard-time columns
    extra_rank: np.ndarray  # 0.. for numbered extra columns, -1 otherwise
    interval_minutes: int


def _read_header(fields: list[str]) -> _Columns | str:
    """Interpret the interval columns; return an error message when they make no sense."""
    names = fields[2:]
    labels = [name.strip() for name in names]
    if not labels:
        return "no interval columns after meter_id,date"
    clock = [_CLOCK.match(label) for label in labels]
    if all(clock):
        minute = np.array([int(m.group(1)) * 60 + int(m.group(2)) for m in clock if m])
        second = np.array([m.group(3) == "*" for m in clock if m])
        plain = int((~second).sum())
        if plain == 0 or 1440 % plain:
            return f"{plain} interval columns do not divide a day evenly"
        interval = 1440 // plain
        if (minute % interval).any() or (minute >= 1440).any():
            return f"interval column labels are not on {interval}-minute boundaries"
        if len(set(minute[~second].tolist())) != plain:
            return "an interval column label appears twice"
        return _Columns(names, labels, minute, second, np.full(len(names), -1), interval)
    if all(_NUMBER.match(label) for label in labels):
        numbers = [int(label) for label in labels]
        count = len(numbers)
        if sorted(numbers) != list(range(1, count + 1)):
            return "numbered interval columns must run 1..N"
        plain = {100: 96, 25: 24}.get(count, count)
        if 1440 % plain:
            return f"{plain} interval columns do not divide a day evenly"
        interval = 1440 // plain
        number = np.array(numbers)
        extra = number > plain
        minute = np.where(extra, -1, (number - 1) * interval)
        rank = np.where(extra, number - plain - 1, -1)
        return _Columns(names, labels, minute, extra, rank, interval)
    return "interval columns must be all HH:MM labels or all numbers"


def wide_chunks(stream: BinaryIO, file: MeterDataFile) -> Iterator[pd.DataFrame]:
    """Yield output chunks of a wide CSV (see this module's docstring for DST days).

    Each non-empty cell becomes one row: ``meter_ref`` from ``meter_id``, ``interval_start``
    converted from wall clock in ``file.tz`` to UTC, ``kwh`` the cell value, ``line`` the
    row's source line. Rows of one day follow the header's column order.
    """
    assert file.tz is not None
    text = head_text(file.head)
    first_line = text.splitlines()[0] if text else ""
    fields = raw_csv_fields(first_line)
    columns = _read_header(fields)
    if isinstance(columns, str):
        file.report(Problem(1, "invalid_header", columns, SCOPE_FILE))
        return
    file.interval_minutes = columns.interval_minutes
    converter = _WideConverter(file, columns, file.tz)
    for raw, line in read_csv_chunks(
        stream,
        header_line=1,
        chunk_rows=max(1, file.chunk_rows // len(columns.names)),
        report=file.report,
        dtype={fields[0]: object, fields[1]: object},
        na_filter=True,
        keep_default_na=False,
        na_values={name: [""] for name in columns.names},
    ):
        chunk = converter.convert(raw, line, meter_name=fields[0], date_name=fields[1])
        if len(chunk):
            yield chunk


class _WideConverter:
    def __init__(self, file: MeterDataFile, columns: _Columns, tz: str) -> None:
        self.file = file
        self.columns = columns
        self.tz = tz
        self.lengths = DayLengths(tz)
        self._repeated: dict[int, np.ndarray] = {}
        self._text: dict[int, np.ndarray] = {}

    def repeated_minutes(self, day: int) -> np.ndarray:
        """Wall-clock minutes of day ``day`` that occur twice, in order (empty most days)."""
        cached = self._repeated.get(day)
        if cached is None:
            step = self.columns.interval_minutes
            minutes = np.arange(0, 1440, step, dtype=np.int64)
            naive = day * NS_PER_DAY + minutes * NS_PER_MINUTE
            cached = minutes[repeated_wall_times(naive, self.tz)]
            self._repeated[day] = cached
        return cached

    def convert(
        self, raw: pd.DataFrame, line: np.ndarray, *, meter_name: str, date_name: str
    ) -> pd.DataFrame:
        file, columns = self.file, self.columns
        bad = ProblemRows(line)
        meter = raw[meter_name].astype(object).map(lambda v: str(v).strip()).to_numpy(object)
        raw_dates = raw[date_name].astype(object).map(lambda v: str(v).strip())
        values, present = self._values(raw)
        bad.drop((meter == "") & (raw_dates.to_numpy(object) == "") & ~present.any(axis=1))
        bad.flag(meter == "", "missing_meter_id", lambda i: "meter_id is empty")
        dates = pd.Series(pd.NaT, index=raw_dates.index, dtype="datetime64[ns]")
        for fmt in _DATE_FORMATS:
            missing = dates.isna()
            if not missing.any():
                break
            dates[missing] = pd.to_datetime(raw_dates[missing], format=fmt, errors="coerce")
        date_ok = dates.notna().to_numpy()
        date_text = raw_dates.to_numpy(object)
        bad.flag(~date_ok, "invalid_date", lambda i: f"date {date_text[i]!r} is not a date")
        day = np.where(date_ok, dates.to_numpy("datetime64[ns]").view(np.int64), 0) // NS_PER_DAY

        rows_ok = bad.keep()
        present &= rows_ok[:, None]
        row_index, col_index = np.nonzero(present)
        kwh = values[row_index, col_index]
        minute = columns.minute[col_index].copy()
        second = columns.second_occurrence[col_index]
        cell_problems: list[Problem] = []
        cell_ok = np.ones(len(row_index), dtype=bool)

        ranked = np.flatnonzero(columns.extra_rank[col_index] >= 0)
        for k in ranked.tolist():
            repeated = self.repeated_minutes(int(day[row_index[k]]))
            rank = int(columns.extra_rank[col_index[k]])
            minute[k] = repeated[rank] if rank < len(repeated) else -1
        naive = day[row_index] * NS_PER_DAY + np.maximum(minute, 0) * NS_PER_MINUTE
        not_repeated = second & ((minute < 0) | ~repeated_wall_times(naive, self.tz))
        utc = localize_wall(naive, self.tz, ~second)
        nonexistent = (utc == NAT) & ~not_repeated

        def cell_problem(mask: np.ndarray, code: str, why: str) -> None:
            for k in np.flatnonzero(mask & cell_ok).tolist():
                r, c = int(row_index[k]), int(col_index[k])
                cell_problems.append(
                    Problem(
                        int(line[r]),
                        code,
                        f"column {columns.labels[c]} on {date_text[r]}: {why}",
                        SCOPE_ROW,
                    )
                )
            cell_ok[mask] = False

        cell_problem(
            not_repeated,
            "not_repeated_local_time",
            "a second-occurrence column holds a value but that wall time is not repeated "
            "on this date",
        )
        cell_problem(
            nonexistent,
            "nonexistent_local_time",
            f"that wall time does not exist in {self.tz} (skipped by the daylight-saving change)",
        )
        bad_text = np.isnan(kwh)
        nan_cells = np.flatnonzero(bad_text)
        bad_text[nan_cells] = ~self._nan_spelled(row_index[nan_cells], col_index[nan_cells])
        cell_problem(bad_text, "invalid_kwh", "the value is not a number")

        counted = np.bincount(row_index[cell_ok], minlength=len(raw))
        for r in np.flatnonzero(rows_ok).tolist():
            expected = self.lengths.expected_intervals(int(day[r]), columns.interval_minutes)
            if counted[r] != expected:
                cell_problems.append(
                    day_count_problem(
                        line=int(line[r]),
                        label=f"meter {meter[r]}: ",
                        day=int(day[r]),
                        found=int(counted[r]),
                        expected=expected,
                        interval_minutes=columns.interval_minutes,
                    )
                )
        file.report_all(bad.problems + cell_problems)
        return make_chunk(
            meter_ref=meter[row_index[cell_ok]],
            interval_start_ns=utc[cell_ok],
            interval_minutes=columns.interval_minutes,
            kwh=kwh[cell_ok],
            quality="",
            direction=DELIVERED,
            line=line[row_index[cell_ok]],
        )

    def _values(self, raw: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Return (values, present): float cells (NaN when not a number) and non-empty cells."""
        names = self.columns.names
        values = np.empty((len(raw), len(names)), dtype=np.float64)
        present = np.empty((len(raw), len(names)), dtype=bool)
        self._text = {}
        for c, name in enumerate(names):
            column = raw[name]
            if column.dtype.kind in "fiu":
                values[:, c] = column.to_numpy(dtype=np.float64)
                present[:, c] = ~np.isnan(values[:, c])
                continue
            text = column.astype(object).map(lambda v: "" if pd.isna(v) else str(v).strip())
            text_values = text.to_numpy(dtype=object)
            self._text[c] = text_values
            present[:, c] = text_values != ""
            values[:, c] = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
        return values, present

    def _nan_spelled(self, row_index: np.ndarray, col_index: np.ndarray) -> np.ndarray:
        """True where a cell literally says NaN (numeric, kept) rather than holding text."""
        result = np.zeros(len(row_index), dtype=bool)
        for k, (r, c) in enumerate(zip(row_index.tolist(), col_index.tolist(), strict=True)):
            text = self._text.get(c)
            if text is None:
                result[k] = True  # a numeric column: NaN here came from the file as NaN
            else:
                result[k] = str(text[r]).lower() in _NAN_SPELLINGS
        return result
