"""Pure, streaming parsers for interval meter data files (no Django, no database).

Entry points
------------
``detect_format(head: bytes) -> str``
    ``"canonical"``, ``"utility"``, ``"wide"`` or ``"greenbutton"`` from the first bytes;
    ``UnknownFormatError`` otherwise.
``parse(source, *, format=None, tz=None, meter_ref=None, chunk_rows=250_000,
interval_minutes=None, max_problems=10_000) -> MeterDataFile``
    ``source`` is a path, bytes or a binary stream. ``tz`` (the program's IANA zone) is
    required for the wall-clock formats (utility, wide); ``meter_ref`` for utility downloads.
``MeterDataFile``
    ``.chunks()`` yields DataFrames of about ``chunk_rows`` rows (one pass); ``.problems``
    (``Problem`` list, complete once ``chunks()`` is exhausted, capped at ``max_problems``;
    ``.problem_count`` counts all) and ``.fatal``. Per-file facts: ``.format``,
    ``.account_number`` (utility preamble), ``.interval_minutes`` (most common length, set by
    the first chunk), ``.series`` (Green Button ``Series`` list, set by ``parse``),
    ``.rows`` (rows yielded).
``find_gaps(interval_starts, minutes) -> list[(gap_start, gap_end)]``
    Half-open UTC gaps in one meter's sorted interval starts; never fills them.

Chunk columns (``COLUMNS``, same for every format)
-------------------------------------------------
``meter_ref`` (str)
    canonical/wide: the file's ``meter_id``; utility: the caller's ``meter_ref``; Green
    Button: the series key ``"<usage point self href>#<reading type self href>"``
    (``Series.key``), which the importer maps to a meter via ``MeterDataFile.series``.
``interval_start`` (datetime64[ns, UTC])
    Start of the interval. Wall-clock formats are converted from ``tz``.
``interval_minutes`` (int64)
    Interval length in minutes.
``kwh`` (float64)
    Energy in the interval, kWh. Negative, infinite and NaN numbers pass through (the importer
    decides per meter); text that is not a number is a problem.
``quality`` (str)
    The file's quality flag (canonical ``quality`` column, ESPI ReadingQuality code); ``""``
    when none.
``direction`` (category of str)
    ``"delivered"`` (consumption; every CSV row, Green Button flowDirection 1), ``"received"``
    (flowDirection 19, energy exported to the grid), or another ESPI flow name.
``line`` (int64)
    1-based line of the source row (wide: the row of the day; Green Button: the line of the
    ``<IntervalReading>`` tag).

Rows with a problem are left out of the chunks. Nothing is sorted, deduplicated or filled.

``Problem(line, code, message, scope)``
---------------------------------------
``scope`` is ``"row"`` (that row or wide cell was left out), ``"day"`` (a local day has the
wrong number of intervals: 92/96/100 quarter-hours or 23/24/25 hours expected for the date;
``line`` is the first row of the day; its rows are kept), ``"series"`` (a Green Button series
or block was skipped) or ``"file"`` (the file could not be read; no more rows).
Codes: ``wrong_field_count``, ``missing_meter_id``, ``missing_kwh``, ``invalid_kwh``,
``missing_usage``, ``invalid_usage``, ``invalid_timestamp``, ``missing_offset``,
``not_on_minute``, ``misaligned_interval``, ``invalid_interval_minutes``, ``invalid_date``,
``invalid_time``, ``invalid_interval``, ``unsupported_unit``, ``nonexistent_local_time``,
``repeated_local_time``, ``not_repeated_local_time``, ``day_interval_count``,
``invalid_start``, ``invalid_duration``, ``missing_value``, ``invalid_value``,
``skipped_series``, ``unlinked_interval_block``, and file scope ``missing_columns``,
``missing_header``, ``missing_units``, ``invalid_header``, ``interval_unknown``,
``xml_forbidden``, ``xml_syntax``, ``not_a_feed``.

Time
----
Canonical timestamps must carry ``Z`` or an offset (without one: ``missing_offset``).
Utility and wide times are wall clock in ``tz``: a repeated fall-back wall time is daylight
time the first time and standard time the second (utility: by row order; wide: plain versus
``*`` columns, see ``settlements.meterdata.wide``); a wall time in the spring-forward gap is a
``nonexistent_local_time`` problem, while its absence is normal. Green Button starts are UTC
epoch seconds. Alignment (``misaligned_interval``) is checked on UTC for lengths dividing 15
minutes and on the wall clock of ``tz`` (when given) for 30/60/1440 minutes.

Performance
-----------
CSV formats are read with pandas' C parser in chunks and checked with numpy, with no Python
loop per valid row; memory is bounded by ``chunk_rows`` whatever the file size. Green Button
XML is read twice by a hardened SAX parser (no DTD, entities or network) without building a
tree.
"""

from settlements.meterdata.api import DEFAULT_CHUNK_ROWS, MeterDataFile, parse
from settlements.meterdata.base import (
    COLUMNS,
    DELIVERED,
    RECEIVED,
    SCOPE_DAY,
    SCOPE_FILE,
    SCOPE_ROW,
    SCOPE_SERIES,
    Problem,
    Series,
    UnknownFormatError,
)
from settlements.meterdata.detect import FORMATS, detect_format
from settlements.meterdata.gaps import find_gaps

__all__ = [
    "COLUMNS",
    "DEFAULT_CHUNK_ROWS",
    "DELIVERED",
    "FORMATS",
    "RECEIVED",
    "SCOPE_DAY",
    "SCOPE_FILE",
    "SCOPE_ROW",
    "SCOPE_SERIES",
    "MeterDataFile",
    "Problem",
    "Series",
    "UnknownFormatError",
    "detect_format",
    "find_gaps",
    "parse",
]
