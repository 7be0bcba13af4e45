"""Entry points: ``parse`` and the ``MeterDataFile`` it returns."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd

from settlements.meterdata.base import SCOPE_FILE, Problem, Series, UnknownFormatError
from settlements.meterdata.detect import (
    CANONICAL,
    FORMATS,
    GREENBUTTON,
    UTILITY,
    WIDE,
    detect_format,
)
from settlements.meterdata.sources import Opened, Source

DEFAULT_CHUNK_ROWS = 250_000
DEFAULT_MAX_PROBLEMS = 10_000


class MeterDataFile:
    """One meter data file being parsed; built by ``parse``.

    Facts known at once: ``format``, ``account_number`` (utility preamble), ``series`` (Green
    Button). ``interval_minutes`` (the most common interval length) is set by the first chunk.
    ``problems`` fills up while ``chunks()`` runs and is complete once it is exhausted; at most
    ``max_problems`` are kept, ``problem_count`` counts them all. ``rows`` counts rows yielded.
    """

    def __init__(
        self,
        opened: Opened,
        *,
        format: str,
        tz: str | None,
        meter_ref: str | None,
        chunk_rows: int,
        interval_minutes: int | None,
        max_problems: int,
    ) -> None:
        self._opened = opened
        self.head: bytes = opened.head
        self.format = format
        self.tz = tz
        self.meter_ref = meter_ref
        self.chunk_rows = chunk_rows
        self.interval_minutes = interval_minutes
        self.max_problems = max_problems
        self.account_number: str | None = None
        self.series: list[Series] = []
        self.problems: list[Problem] = []
        self.problem_count = 0
        self.rows = 0
        self._started = False
        self._catalog: Any = None
        if format == UTILITY:
            from settlements.meterdata.utility import find_account_number

            self.account_number = find_account_number(self.head)
        elif format == GREENBUTTON:
            from settlements.meterdata.greenbutton import read_catalog

            self._catalog = read_catalog(self)

    @property
    def fatal(self) -> bool:
        """True when the file could not be read to its end (a ``file`` scope problem)."""
        return any(problem.scope == SCOPE_FILE for problem in self.problems)

    def report(self, problem: Problem) -> None:
        """Record one problem (kept while fewer than ``max_problems`` are stored)."""
        self.problem_count += 1
        if len(self.problems) < self.max_problems or problem.scope == SCOPE_FILE:
            self.problems.append(problem)

    def report_all(self, problems: list[Problem]) -> None:
        """Record problems in line order."""
        for problem in sorted(problems, key=lambda p: p.line):
            self.report(problem)

    def chunks(self) -> Iterator[pd.DataFrame]:
        """Yield the readings as DataFrames of at most about ``chunk_rows`` rows.

        Columns and dtypes are those of ``COLUMNS`` (see the package docstring): UTC interval
        starts, kWh per interval, the source line of each row. Rows with problems are left
        out and listed in ``problems``, which is in line order once the iteration ends.
        Can be called once per ``MeterDataFile``.
        """
        if self._started:
            raise RuntimeError("chunks() can be iterated only once per parse()")
        self._started = True
        if self.fatal:
            return
        try:
            with self._opened.open() as stream:
                for chunk in self._format_chunks(stream):
                    self.rows += len(chunk)
                    yield chunk
        finally:
            # Day problems surface when the day ends; present everything in line order.
            self.problems.sort(key=lambda problem: problem.line)

    def _format_chunks(self, stream: Any) -> Iterator[pd.DataFrame]:
        if self.format == CANONICAL:
            from settlements.meterdata.canonical import canonical_chunks

            return canonical_chunks(stream, self)
        if self.format == UTILITY:
            from settlements.meterdata.utility import utility_chunks

            return utility_chunks(stream, self)
        if self.format == WIDE:
            from settlements.meterdata.wide import wide_chunks

            return wide_chunks(stream, self)
        from settlements.meterdata.greenbutton import greenbutton_chunks

        return greenbutton_chunks(stream, self, self._catalog)


def parse(
    source: Source,
    *,
    format: str | None = None,
    tz: str | None = None,
    meter_ref: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    interval_minutes: int | None = None,
    max_problems: int = DEFAULT_MAX_PROBLEMS,
) -> MeterDataFile:
    """Open a meter data file and return a ``MeterDataFile`` whose ``chunks()`` streams rows.

    ``source`` is a path, ``bytes`` or a binary stream (a seekable one can be parsed twice).
    ``format`` overrides detection (one of ``FORMATS``). ``tz`` is the program's IANA zone:
    required by the local wall-clock formats (utility, wide), optional for canonical (it only
    refines the alignment check of 30- and 60-minute data). ``meter_ref`` names the meter of a
    utility download (which names an account, not a meter). ``interval_minutes`` is used by a
    canonical file without that column. Raises ``UnknownFormatError`` when the format can be
    neither detected nor overridden, and ``ValueError`` for a missing ``tz``/``meter_ref``.
    """
    if format is not None and format not in FORMATS:
        raise UnknownFormatError(f"unknown format {format!r}; expected one of {FORMATS}")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be positive")
    opened = Opened(source, rewindable=format in (None, GREENBUTTON))
    detected = format or detect_format(opened.head)
    if detected in (UTILITY, WIDE) and not tz:
        raise ValueError(f"the {detected} format is in local time: pass the program's tz")
    if detected == UTILITY and not meter_ref:
        raise ValueError("a utility download names no meter: pass meter_ref")
    return MeterDataFile(
        opened,
        format=detected,
        tz=tz,
        meter_ref=meter_ref,
        chunk_rows=chunk_rows,
        interval_minutes=interval_minutes,
        max_problems=max_problems,
    )
