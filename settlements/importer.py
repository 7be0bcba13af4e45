"""The meter data importer: from a parsed file to stored readings, all or nothing.

``run_import(data_import)`` reads the file of a ``MeterDataImport`` with the streaming
parsers (``settlements.meterdata``) and works in three steps:

1. **Stage.** Each parsed chunk is checked row by row with numpy against the meters it
   names (unknown meter, interval length and alignment, negative or exported energy,
   non-finite values) and its good rows are appended to a temporary staging table: by
   binary ``COPY`` on PostgreSQL, by batched ``executemany`` on SQLite. This runs in
   autocommit, outside any transaction, so the progress written after each chunk is
   visible to the page polling it, and it touches no real table.
2. **Validate** what only the whole file can tell, with set-based SQL on the staging table:
   intervals given twice in the file, and values that differ from stored readings.
3. **Merge** in one transaction: ``INSERT ... SELECT`` from the staging table (with
   ``ON CONFLICT ... DO UPDATE`` and revision rows for a correction), together with the
   import record's final status. Either all of it is stored or nothing is.

A file with any rejected row stores nothing, unless the import was asked to keep the valid
rows (``valid_rows_only``); every rejected row is then listed in the error report (CSV).
Memory stays bounded whatever the file size: one parsed chunk at a time, capped problem
lists, and one bit-per-interval coverage array per meter for the gap report.

Times: readings are keyed by UTC interval start. The wall-clock formats (utility, wide) are
read in the import's ``time_zone``: the one given, else the program zone of the chosen meter
(of a utility download: of its account's meter), else the only program zone in use, else
``settings.TIME_ZONE``.

Units: readings are stored in kWh. A file that states its unit is read in it (canonical's
``kwh`` column, a utility download's UNITS, Green Button's ReadingType); the wide CSV states
none, so its values are in the unit of each row's meter (``Meter.unit``: Wh is divided by
1000).
"""

from __future__ import annotations

import abc
import csv
import datetime as dt
import hashlib
import logging
import math
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
from django.core.files import File
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from enrollment.models import Meter
from settlements.meterdata import (
    DELIVERED,
    RECEIVED,
    SCOPE_DAY,
    SCOPE_ROW,
    MeterDataFile,
    UnknownFormatError,
    detect_format,
    find_gaps,
    parse,
)
from settlements.meterdata.detect import GREENBUTTON, UTILITY, WIDE
from settlements.meterdata.values import aligned
from settlements.models import ImportProblem, MeterDataImport, MeterReading, ReadingRevision
from settlements.selectors import default_time_zone, meter_time_zones

logger = logging.getLogger(__name__)

#: Problems stored as rows per import (the error report lists all rejected rows).
MAX_STORED_PROBLEMS = 1_000
#: Gaps and flagged values listed on the import record (their counts are complete).
MAX_LISTED_GAPS = 500
MAX_LISTED_FLAGS = 200
#: A value is implausible when its power exceeds this multiple of the site's peak demand.
IMPLAUSIBLE_PEAK_FACTOR = 2.0
#: Stored and incoming values closer than this (kWh) are the same reading.
SAME_KWH = 1e-9
#: Values per kWh, by ``Meter.unit``, in a file that states no unit of its own (the wide
#: CSV); files that do (canonical's kwh column, a utility download's UNITS, Green Button's
#: ReadingType) are read in their own unit.
BARE_VALUES_PER_KWH = {Meter.Unit.KWH: 1.0, Meter.Unit.WH: 1000.0}
#: Rows per staging batch on SQLite.
SQLITE_BATCH_ROWS = 50_000
#: Quality flags longer than this do not fit ``MeterReading.quality``.
MAX_QUALITY_LENGTH = MeterReading._meta.get_field("quality").max_length

NS_PER_MINUTE = 60_000_000_000
NS_PER_SECOND = 1_000_000_000
# PostgreSQL's binary timestamptz counts microseconds from 2000-01-01T00:00Z.
PG_EPOCH_US = 946_684_800 * 1_000_000

# Importer problem codes (the parser's own are listed in settlements.meterdata).
UNKNOWN_METER = "unknown_meter"
OTHER_METER = "other_meter"
INTERVAL_MISMATCH = "interval_mismatch"
MISALIGNED_FOR_METER = "misaligned_for_meter"
INVALID_KWH = "invalid_kwh"
NEGATIVE_KWH = "negative_kwh"
RECEIVED_ENERGY = "received_energy"
UNSUPPORTED_DIRECTION = "unsupported_direction"
QUALITY_TOO_LONG = "quality_too_long"
DUPLICATE_INTERVAL = "duplicate_interval"
CONFLICTING_READING = "conflicting_reading"
ZONE_MISMATCH = "zone_mismatch"

#: Parser problems that do not reject the file: the rows are kept (a short or long day) or
#: the data is not electricity (a gas series in a combined download).
WARNING_CODES = frozenset({"day_interval_count", "skipped_series"})

ERROR_REPORT_COLUMNS = ["line", "severity", "code", "message", "meter", "interval_start", "kwh"]

_DIRECTION_CODES = {DELIVERED: 0, RECEIVED: 1}


class ImportRefused(Exception):
    """The file cannot be imported at all (unknown format, no meter for a utility download).

    The message is for the person who uploaded it; ``code`` names the reason.
    """

    def __init__(self, message: str, *, code: str = "file_refused") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class MeterFacts:
    """What the row checks need to know about one meter."""

    pk: int
    meter_id: str
    interval_minutes: int
    records_net_energy: bool
    peak_kw: float  # the site's peak demand; 0 when unknown (nothing is flagged then)
    time_zone: str
    zone_known: bool  # time_zone is the meter's program zone, not the settings default
    # Values per kWh in a file that states no unit (the wide CSV): 1000 for a Wh meter.
    bare_values_per_kwh: float


@dataclass(frozen=True, slots=True)
class Progress:
    """How far an import got: rows parsed, and bytes of the file read of ``bytes_total``."""

    rows: int
    bytes_done: int
    bytes_total: int
    phase: str  # "reading", "validating", "storing", "done"


ProgressCallback = Callable[[Progress], None]


# --- per-meter coverage: gaps (and the meters and span of the file) -----------------------


class Coverage:
    """One meter's intervals seen in the file, one byte per interval between the first and
    the last, so memory depends on the span covered, not on the number of rows."""

    __slots__ = ("base", "minutes", "present")

    def __init__(self, minutes: int) -> None:
        self.minutes = minutes
        self.base = 0  # interval number (UTC epoch minutes // minutes) of present[0]
        self.present = np.zeros(0, dtype=bool)

    def add(self, interval_numbers: np.ndarray) -> None:
        """Mark interval numbers (UTC epoch minutes // interval minutes) as present."""
        low, high = int(interval_numbers.min()), int(interval_numbers.max())
        if not len(self.present):
            self.base = low
            self.present = np.zeros(high - low + 1, dtype=bool)
        elif low < self.base or high >= self.base + len(self.present):
            new_base = min(low, self.base)
            new_end = max(high + 1, self.base + len(self.present))
            grown = np.zeros(new_end - new_base, dtype=bool)
            grown[self.base - new_base : self.base - new_base + len(self.present)] = self.present
            self.base, self.present = new_base, grown
        self.present[interval_numbers - self.base] = True

    def starts(self) -> pd.DatetimeIndex:
        """The UTC starts of the present intervals, ascending."""
        numbers = (np.flatnonzero(self.present) + self.base) * self.minutes * NS_PER_MINUTE
        return pd.DatetimeIndex(numbers.astype("datetime64[ns]")).tz_localize("UTC")


# --- the staging table, per database ---------------------------------------------------------


class _Stage(abc.ABC):
    """A temporary table holding the checked rows of one import (one subclass a database).

    Columns: ``meter_id``, ``start`` (the interval start), ``kwh`` (signed: exported energy
    is negative), ``quality_code`` (index into the import's list of quality flags),
    ``direction`` (0 delivered, 1 received) and ``line`` (source line).
    """

    def __init__(self, import_pk: int) -> None:
        self.name = connection.ops.quote_name(f"mdi_stage_{import_pk}")

    @abc.abstractmethod
    def create(self) -> None:
        """Create the empty table."""

    @abc.abstractmethod
    def load(self, columns: dict[str, np.ndarray]) -> None:
        """Append the checked rows."""

    @abc.abstractmethod
    def start_sql(self, alias: str) -> str:
        """SQL for the stored ``interval_start`` value of staged row ``alias``."""

    @abc.abstractmethod
    def quality_sql(self, alias: str, qualities: list[str]) -> tuple[str, list[Any]]:
        """SQL (and its parameters) for the quality text of staged row ``alias``."""

    @abc.abstractmethod
    def to_datetime(self, value: Any) -> dt.datetime:
        """The stored interval start read back as an aware datetime."""

    def drop(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.name}")


class _PostgresStage(_Stage):
    """Loaded by binary COPY straight from numpy arrays: no text formatting on either side."""

    # Each row: field count, then (length, big-endian value) per column.
    ROW = np.dtype(
        [
            ("fields", ">i2"),
            ("meter_len", ">i4"),
            ("meter", ">i8"),
            ("start_len", ">i4"),
            ("start", ">i8"),
            ("kwh_len", ">i4"),
            ("kwh", ">f8"),
            ("quality_len", ">i4"),
            ("quality", ">i2"),
            ("direction_len", ">i4"),
            ("direction", ">i2"),
            ("line_len", ">i4"),
            ("line", ">i8"),
        ]
    )
    HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
    TRAILER = (-1).to_bytes(2, "big", signed=True)

    def create(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.name}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {self.name} (meter_id bigint, start timestamptz, "
                "kwh double precision, quality_code smallint, direction smallint, line bigint)"
            )

    def load(self, columns: dict[str, np.ndarray]) -> None:
        rows = np.empty(len(columns["line"]), dtype=self.ROW)
        for name, size in (
            ("meter", 8),
            ("start", 8),
            ("kwh", 8),
            ("quality", 2),
            ("direction", 2),
            ("line", 8),
        ):
            rows[f"{name}_len"] = size
        rows["fields"] = 6
        rows["meter"] = columns["meter_id"]
        rows["start"] = columns["start_ns"] // 1000 - PG_EPOCH_US
        rows["kwh"] = columns["kwh"]
        rows["quality"] = columns["quality_code"]
        rows["direction"] = columns["direction"]
        rows["line"] = columns["line"]
        # One COPY per chunk: the connection is free between chunks for progress updates.
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY {self.name} FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(self.HEADER)
                copy.write(rows.data)
                copy.write(self.TRAILER)

    def start_sql(self, alias: str) -> str:
        return f"{alias}.start"

    def quality_sql(self, alias: str, qualities: list[str]) -> tuple[str, list[Any]]:
        return f"(%s::text[])[{alias}.quality_code + 1]", [qualities]

    def to_datetime(self, value: Any) -> dt.datetime:
        return value


class _SqliteStage(_Stage):
    """Loaded by ``executemany`` in batches; interval starts staged as UTC epoch seconds."""

    def create(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.name}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {self.name} (meter_id integer, start integer, "
                "kwh real, quality_code integer, direction integer, line integer)"
            )

    def load(self, columns: dict[str, np.ndarray]) -> None:
        rows = zip(
            columns["meter_id"].tolist(),
            (columns["start_ns"] // NS_PER_SECOND).tolist(),
            columns["kwh"].tolist(),
            columns["quality_code"].tolist(),
            columns["direction"].tolist(),
            columns["line"].tolist(),
            strict=True,
        )
        sql = f"INSERT INTO {self.name} VALUES (%s, %s, %s, %s, %s, %s)"  # noqa: S608
        with connection.cursor() as cursor:
            while batch := list(_take(rows, SQLITE_BATCH_ROWS)):
                cursor.executemany(sql, batch)

    def start_sql(self, alias: str) -> str:
        # Django stores aware datetimes on SQLite as UTC text in this layout.
        return f"strftime('%%Y-%%m-%%d %%H:%%M:%%S', {alias}.start, 'unixepoch')"

    def quality_sql(self, alias: str, qualities: list[str]) -> tuple[str, list[Any]]:
        if len(qualities) == 1:
            return "%s", [qualities[0]]
        cases = " ".join("WHEN %s THEN %s" for _ in qualities)
        params: list[Any] = []
        for code, text in enumerate(qualities):
            params += [code, text]
        return f"CASE {alias}.quality_code {cases} END", params

    def to_datetime(self, value: Any) -> dt.datetime:
        return dt.datetime.fromtimestamp(int(value), tz=dt.UTC)


def _take(iterator: Iterator[Any], count: int) -> Iterator[Any]:
    for _, item in zip(range(count), iterator, strict=False):
        yield item


# --- the importer ------------------------------------------------------------------------


@dataclass
class _Outcome:
    """Counts and lists gathered while importing one file."""

    rows_read: int = 0
    rows_rejected: int = 0
    error_count: int = 0
    warning_count: int = 0
    problems: list[ImportProblem] = field(default_factory=list)
    flagged: list[dict[str, Any]] = field(default_factory=list)
    flagged_count: int = 0


class _StoredMeanwhile(Exception):  # noqa: N818 - a signal, not an error
    """A reading stored since the validation differs from the file's: validate again."""


class _FallBack(Exception):
    """The direct path cannot store this file as it is: import it through the staging table
    (which says exactly which rows are at fault, or nets, or merges)."""


class _Importer:
    def __init__(
        self,
        data_import: MeterDataImport,
        on_progress: ProgressCallback | None,
        *,
        direct: bool,
        zone_given: bool | None = None,
    ):
        self.record = data_import
        self.on_progress = on_progress
        self.direct = direct
        # Whether the uploader gave the zone of the file's wall clock (``_open`` fills in
        # the record's zone when not, so a retry on the staging path is told).
        self.zone_given = bool(data_import.time_zone) if zone_given is None else zone_given
        self.wall_clock_zone: str | None = None  # a zone the file was read in by default
        self._copy_rows: Callable[[dict[str, np.ndarray]], None] | None = None
        self._side: Any = None  # a second connection: progress and stored-reading probes
        self._problems_seen = 0
        self._locked_meters: set[int] = set()
        self.outcome = _Outcome()
        self.stage: _Stage = (
            _PostgresStage(data_import.pk)
            if connection.vendor == "postgresql"
            else _SqliteStage(data_import.pk)
        )
        self.meters_by_ref: dict[str, MeterFacts | None] = {}
        self.meter_ids: dict[int, str] = {}
        self.coverage: dict[int, Coverage] = {}
        self.qualities: dict[str, int] = {}
        self.netting = False  # the file carries received energy: net it per interval
        self.staging = True  # False after a file problem: nothing more to stage
        self.fatal = False  # the file could not be read to its end
        self.greenbutton = False
        # The file's values are bare numbers in each row's meter's unit (``Meter.unit``).
        self.bare_values = False
        self.series_meters: dict[str, MeterFacts | None] = {}
        self.series_labels: dict[str, str] = {}
        self._report_file: IO[str] | None = None
        self._report_writer: Any = None

    # The public entry --------------------------------------------------------------------

    def run(self) -> MeterDataImport:
        if self.direct:
            try:
                return self._run_direct()
            except _FallBack as reason:
                logger.info("import %s: staging path (%s)", self.record.pk, reason)
                self._close_report()
                return _Importer(
                    self.record, self.on_progress, direct=False, zone_given=self.zone_given
                ).run()
        return self._run_staged()

    def _refuse(self, refusal: ImportRefused) -> None:
        self._error(0, refusal.code, str(refusal))
        self._finish(MeterDataImport.Status.REJECTED, str(refusal))

    def _close_report(self) -> None:
        if self._report_file is not None:
            self._report_file.close()
            self._report_file = self._report_writer = None

    def _run_direct(self) -> MeterDataImport:
        """PostgreSQL, a strict import: binary COPY of each checked chunk straight into the
        readings table inside one transaction, with the record's outcome. The first sign of
        trouble (a rejected row, an interval already stored, one given twice, exported
        energy to net) rolls everything back and raises _FallBack."""
        from django.db import DEFAULT_DB_ALIAS, connections

        record = self.record
        path = Path(record.file.path)
        record.file_size = path.stat().st_size
        readings = connection.ops.quote_name(MeterReading._meta.db_table)
        self._side = connections.create_connection(DEFAULT_DB_ALIAS)
        try:
            with open(path, "rb") as stream:
                try:
                    parsed = self._open(stream)
                except ImportRefused as refusal:
                    self._refuse(refusal)
                    return record
                copy_sql = (
                    f"COPY {readings} (meter_id, interval_start, kwh, quality) "
                    "FROM STDIN (FORMAT BINARY)"
                )
                accepted = 0

                def copy_rows(columns: dict[str, np.ndarray]) -> None:
                    nonlocal accepted
                    pieces = _binary_readings(columns, self._quality_list())
                    with connection.cursor() as cursor:
                        with cursor.copy(copy_sql) as copy:
                            copy.write(_PostgresStage.HEADER)
                            for piece in pieces:
                                copy.write(piece)
                            copy.write(_PostgresStage.TRAILER)
                    accepted += len(columns["line"])

                self._copy_rows = copy_rows
                try:
                    with transaction.atomic():
                        self._read(parsed, stream)
                        self._after_parse(parsed)
                        if self.outcome.error_count or self.fatal:
                            raise _FallBack("the file has problems")
                        self._finish(MeterDataImport.Status.SUCCEEDED, "", accepted=accepted)
                except IntegrityError as error:
                    # An interval given twice, or this file succeeded meanwhile elsewhere.
                    raise _FallBack(f"integrity: {error}") from None
                except Exception as error:
                    if _unique_violation(error):
                        raise _FallBack("an interval is given twice") from None
                    raise
        finally:
            self._side.close()
            self._close_report()
        return record

    def _quality_list(self) -> list[str]:
        return sorted(self.qualities, key=self.qualities.__getitem__)

    def _run_staged(self) -> MeterDataImport:
        record = self.record
        path = Path(record.file.path)
        record.file_size = path.stat().st_size
        try:
            with open(path, "rb") as stream:
                parsed = self._open(stream)
                self.stage.create()
                try:
                    self._read(parsed, stream)
                    self._after_parse(parsed)
                    if self.fatal:
                        self._finish(MeterDataImport.Status.REJECTED, self._rejection_message())
                        return record
                    self._progress("validating")
                    fresh = self._fresh()
                    # The common case, new readings in a strict import, needs no validation
                    # query: the primary key rejects an interval given twice, and then the
                    # staging table is searched to say which rows.
                    optimistic = (
                        fresh
                        and not record.correction
                        and not record.valid_rows_only
                        and not self.outcome.error_count
                    )
                    if not optimistic or not self._merge(plain_insert=True):
                        check_stored = not fresh
                        while True:
                            self._validate(check_stored=check_stored)
                            if self._rejected():
                                self._finish(
                                    MeterDataImport.Status.REJECTED, self._rejection_message()
                                )
                                return record
                            self._progress("storing")
                            if self._merge(plain_insert=False):
                                break
                            # Another import stored differing values meanwhile: report them.
                            check_stored = True
                finally:
                    self.stage.drop()
        except ImportRefused as refusal:
            self._refuse(refusal)
        finally:
            if self._report_file is not None:
                self._report_file.close()
        return record

    # Opening -----------------------------------------------------------------------------

    def _open(self, stream: IO[bytes]) -> MeterDataFile:
        record = self.record
        head = stream.read(64 * 1024)
        stream.seek(0)
        try:
            detected = record.requested_format or detect_format(head)
        except UnknownFormatError as error:
            raise ImportRefused(str(error), code="unknown_format") from None
        chosen = owner = self._chosen_meter()
        if detected == UTILITY and owner is None:
            # The account's meter owns the file as a meter chosen at upload would: its
            # program's zone is the zone of the file's wall clock.
            account_meter = Meter.objects.filter(meter_id=self._utility_meter_ref(head))
            owner = next(iter(self._meter_facts(account_meter).values()))
        zone = record.time_zone or (owner.time_zone if owner else default_time_zone())
        try:
            parsed = parse(
                stream,
                format=detected,
                tz=zone,
                meter_ref=owner.meter_id if owner else None,
                interval_minutes=chosen.interval_minutes if chosen else None,
            )
        except (UnknownFormatError, ValueError) as error:
            raise ImportRefused(str(error), code="unknown_format") from None
        record.format = parsed.format
        record.time_zone = zone
        if parsed.format in (UTILITY, WIDE) and not self.zone_given:
            self.wall_clock_zone = zone
        # Only the wide CSV leaves the unit to the meter (see BARE_VALUES_PER_KWH).
        self.bare_values = parsed.format == WIDE
        if parsed.format == GREENBUTTON:
            self.greenbutton = True
            self._map_series(parsed)
        return parsed

    def _chosen_meter(self) -> MeterFacts | None:
        if self.record.meter_id is None:
            return None
        facts = self._meter_facts(Meter.objects.filter(pk=self.record.meter_id))
        return next(iter(facts.values()))

    def _utility_meter_ref(self, head: bytes) -> str:
        from settlements.meterdata.utility import find_account_number

        account = find_account_number(head)
        meters = list(
            Meter.objects.filter(site__service_account_number=account).values_list(
                "meter_id", flat=True
            )[:2]
            if account
            else []
        )
        if len(meters) == 1:
            return meters[0]
        if not account:
            raise ImportRefused(
                "This utility download names no account number: choose the meter it belongs to.",
                code="meter_needed",
            )
        raise ImportRefused(
            f"This utility download is for account {account}, which matches "
            f"{'no site with one meter' if not meters else 'a site with several meters'}: "
            "choose the meter it belongs to.",
            code="meter_needed",
        )

    def _map_series(self, parsed: MeterDataFile) -> None:
        """Map each Green Button series to a meter: the chosen one, or the meter whose
        ``usage_point`` is the series' usage point href (scheme and host ignored) or title.

        Raises ImportRefused when a meter is chosen for a file of several electric usage
        points."""
        chosen = self._chosen_meter()
        points = {
            series.usage_point_href: series.usage_point_title or series.usage_point_href
            for series in parsed.series
            if not series.skipped_reason
        }
        if chosen is not None and len(points) > 1:
            # Merged into one meter, several premises' readings would read as one site's load.
            raise ImportRefused(
                f"This Green Button file holds {len(points)} electric usage points "
                f"({', '.join(sorted(points.values()))}); a meter chosen at upload takes one. "
                "Set each meter's usage point (its href or title) and import the file without "
                "choosing a meter.",
                code="several_usage_points",
            )
        wanted: set[str] = set()
        for series in parsed.series:
            wanted.update(
                {series.usage_point_href, _href_key(series.usage_point_href)}
                | ({series.usage_point_title} if series.usage_point_title else set())
            )
        by_usage_point: dict[str, MeterFacts] = {}
        if chosen is None:
            usage_points = dict(
                Meter.objects.exclude(usage_point="")
                .filter(usage_point__in=sorted(wanted | {f"/{w}" for w in wanted}))
                .values_list("pk", "usage_point")
            )
            facts = self._meter_facts(Meter.objects.filter(pk__in=list(usage_points)))
            for pk, usage_point in usage_points.items():
                by_usage_point[usage_point] = facts[pk]
                by_usage_point[_href_key(usage_point)] = facts[pk]
        for series in parsed.series:
            label = series.usage_point_title or series.usage_point_href
            self.series_labels[series.key] = label
            if chosen is not None:
                self.series_meters[series.key] = chosen
                continue
            self.series_meters[series.key] = (
                by_usage_point.get(series.usage_point_href)
                or by_usage_point.get(_href_key(series.usage_point_href))
                or by_usage_point.get(series.usage_point_title or "\0")
            )

    def _meter_facts(self, meters: Any) -> dict[int, MeterFacts]:
        rows = list(
            meters.values_list(
                "pk",
                "meter_id",
                "interval_minutes",
                "records_net_energy",
                "site__peak_demand_kw",
                "unit",
            )
        )
        pks = [row[0] for row in rows]
        zones = meter_time_zones(pks)
        enrolled = set(
            Meter.objects.filter(pk__in=pks, site__enrollments__isnull=False).values_list(
                "pk", flat=True
            )
        )
        facts = {}
        for pk, meter_id, minutes, net, peak, unit in rows:
            facts[pk] = MeterFacts(
                pk,
                meter_id,
                int(minutes),
                bool(net),
                float(peak or 0),
                zones[pk],
                pk in enrolled,
                BARE_VALUES_PER_KWH[unit],
            )
            self.meter_ids[pk] = meter_id
        return facts

    # Reading and row checks ---------------------------------------------------------------

    def _read(self, parsed: MeterDataFile, stream: IO[bytes]) -> None:
        for chunk in parsed.chunks():
            self.outcome.rows_read += len(chunk)
            self._check_chunk(chunk)
            if self.direct and self._new_parser_errors(parsed):
                raise _FallBack("the parser rejected rows")
            self._progress("reading", bytes_done=stream.tell())

    def _resolve(self, refs: list[str]) -> list[MeterFacts | None]:
        """Return the meter of each reference (a meter id, or a Green Button series key)."""
        if self.greenbutton:
            return [self.series_meters.get(ref) for ref in refs]
        chosen = self.record.meter_id
        missing = [ref for ref in refs if ref not in self.meters_by_ref]
        if missing:
            found = self._meter_facts(Meter.objects.filter(meter_id__in=missing))
            by_id = {facts.meter_id: facts for facts in found.values()}
            for ref in missing:
                facts = by_id.get(ref)
                self.meters_by_ref[ref] = facts
        resolved = []
        for ref in refs:
            facts = self.meters_by_ref[ref]
            if facts is not None and chosen is not None and facts.pk != chosen:
                facts = None  # reported as another meter than the chosen one
            resolved.append(facts)
        return resolved

    def _check_chunk(self, chunk: pd.DataFrame) -> None:
        """Check one chunk's rows against their meters; stage the good ones, report the rest.

        Bare values (a wide file's) are converted to kWh by their meter's unit first, so the
        checks, the flags, the stored readings and the report all read kWh."""
        n = len(chunk)
        codes, uniques = pd.factorize(chunk["meter_ref"])
        categories = [str(value) for value in uniques]
        resolved = self._resolve(categories)
        known = np.array([facts is not None for facts in resolved] + [False], dtype=bool)
        codes = np.where(codes < 0, len(resolved), codes).astype(np.int64)
        per_ref = {
            "pk": [f.pk if f else 0 for f in resolved] + [0],
            "minutes": [f.interval_minutes if f else 1 for f in resolved] + [1],
            "net": [f.records_net_energy if f else False for f in resolved] + [False],
            "peak": [f.peak_kw if f else 0.0 for f in resolved] + [0.0],
            "per_kwh": [f.bare_values_per_kwh if f else 1.0 for f in resolved] + [1.0],
        }
        meter_pk = np.asarray(per_ref["pk"], dtype=np.int64)[codes]
        meter_minutes = np.asarray(per_ref["minutes"], dtype=np.int64)[codes]
        net = np.asarray(per_ref["net"], dtype=bool)[codes]
        peak = np.asarray(per_ref["peak"], dtype=np.float64)[codes]
        start_ns = _start_ns(chunk)
        minutes = chunk["interval_minutes"].to_numpy(dtype=np.int64)
        kwh = chunk["kwh"].to_numpy(dtype=np.float64)
        if self.bare_values:
            # Divided, not multiplied by 0.001: 333 Wh is stored as 0.333, not 0.33299...
            kwh = kwh / np.asarray(per_ref["per_kwh"], dtype=np.float64)[codes]
        flows = chunk["direction"].cat
        flow_names = [str(name) for name in flows.categories]
        flow_codes = flows.codes.to_numpy()
        line = chunk["line"].to_numpy(dtype=np.int64)

        error = np.zeros(n, dtype=np.int8)  # 0 = fine, else 1 + index into checks
        checks: list[tuple[str, np.ndarray]] = []

        def check(code: str, failing: np.ndarray) -> None:
            failing = failing & (error == 0)
            checks.append((code, failing))
            error[failing] = len(checks)

        unknown = ~known[codes]
        if self.record.meter_id and not self.greenbutton:
            # Rows naming a registered meter other than the one chosen for this import.
            exists = np.array(
                [self.meters_by_ref.get(ref) is not None for ref in categories] + [False]
            )
            check(OTHER_METER, unknown & exists[codes])
        check(UNKNOWN_METER, unknown)
        if self.wall_clock_zone is not None:
            # Wall-clock times read in a default zone are another instant for a meter whose
            # program keeps another zone's time: refuse them rather than shift them.
            other_zone = np.array(
                [f is not None and f.zone_known and f.time_zone != self.wall_clock_zone
                 for f in resolved] + [False]
            )  # fmt: skip
            check(ZONE_MISMATCH, other_zone[codes])
        check(INTERVAL_MISMATCH, minutes != meter_minutes)
        check(MISALIGNED_FOR_METER, ~self._aligned(start_ns, meter_minutes, codes, resolved))
        check(INVALID_KWH, ~np.isfinite(kwh))
        received = _flow(flow_codes, flow_names, RECEIVED)
        delivered = _flow(flow_codes, flow_names, DELIVERED)
        check(UNSUPPORTED_DIRECTION, ~(received | delivered))
        check(RECEIVED_ENERGY, received & ~net)
        check(NEGATIVE_KWH, delivered & (kwh < 0) & ~net)
        quality_values = pd.unique(chunk["quality"])
        if any(len(str(value)) > MAX_QUALITY_LENGTH for value in quality_values):
            lengths = chunk["quality"].str.len().to_numpy(dtype=np.int64)
            check(QUALITY_TOO_LONG, lengths > MAX_QUALITY_LENGTH)

        bad = error > 0
        received_any = bool(received.any())
        if self.direct and (bad.any() or received_any):
            raise _FallBack("rejected rows" if bad.any() else "exported energy to net")
        if bad.any():
            # Even when the file will be rejected, its good rows are staged so that the
            # duplicates and conflicts among them are reported in the same go.
            self._report_rows(chunk, kwh, np.flatnonzero(bad), error, checks, resolved, codes)
        good = ~bad
        signed = np.where(received, -kwh, kwh)
        self._flag(good, signed, meter_minutes, peak, meter_pk, start_ns, line)
        if not self.staging or not good.any():
            return
        if received_any:
            self.netting = True
        self._cover(meter_pk[good], start_ns[good], meter_minutes[good])
        quality_codes = self._quality_codes(chunk["quality"], good)
        if self.direct:
            assert self._copy_rows is not None
            self._lock_meters(np.unique(meter_pk))
            if self._stored_overlap(meter_pk, start_ns):
                raise _FallBack("the file overlaps stored readings")
            self._copy_rows(
                {
                    "meter_id": meter_pk,
                    "start_ns": start_ns,
                    "kwh": kwh,
                    "quality_code": quality_codes,
                    "line": line,
                }
            )
            return
        self.stage.load(
            {
                "meter_id": meter_pk[good],
                "start_ns": start_ns[good],
                "kwh": signed[good],
                "quality_code": quality_codes,
                "direction": received[good].astype(np.int16),
                "line": line[good],
            }
        )

    def _lock_meters(self, meter_pks: np.ndarray) -> None:
        """Hold the lock a foreign key check would take (FOR KEY SHARE) on each meter written,
        once per meter, until the import's transaction ends: no meter can be deleted under
        its new readings."""
        new = [pk for pk in meter_pks.tolist() if pk not in self._locked_meters]
        if not new:
            return
        meters = connection.ops.quote_name(Meter._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM {meters} WHERE id = ANY(%s) FOR KEY SHARE",  # noqa: S608
                [new],
            )
            if len(cursor.fetchall()) != len(new):
                raise _FallBack("a meter was deleted during the import")
        self._locked_meters.update(new)

    def _stored_overlap(self, meter_pk: np.ndarray, start_ns: np.ndarray) -> bool:
        """True when a stored (committed) reading of these meters lies in the chunk's span.

        Asked on the side connection, which does not see this import's own rows."""
        readings = connection.ops.quote_name(MeterReading._meta.db_table)
        low = pd.Timestamp(int(start_ns.min()), tz="UTC").to_pydatetime()
        high = pd.Timestamp(int(start_ns.max()), tz="UTC").to_pydatetime()
        with self._side.cursor() as cursor:
            cursor.execute(
                f"SELECT 1 FROM {readings} WHERE meter_id = ANY(%s) "  # noqa: S608
                "AND interval_start >= %s AND interval_start <= %s LIMIT 1",
                [np.unique(meter_pk).tolist(), low, high],
            )
            return cursor.fetchone() is not None

    def _aligned(
        self,
        start_ns: np.ndarray,
        meter_minutes: np.ndarray,
        codes: np.ndarray,
        resolved: list[MeterFacts | None],
    ) -> np.ndarray:
        """True where a start is on a boundary of its meter's interval (on the meter's local
        wall clock for 30- and 60-minute meters, so hourly data in a +05:30 zone aligns)."""
        result = np.ones(len(start_ns), dtype=bool)
        zones = {facts.time_zone for facts in resolved if facts is not None}
        if (meter_minutes <= 15).all() or len(zones) <= 1:
            zone = next(iter(zones), None)
            return aligned(start_ns, meter_minutes, zone)
        zone_of_code = np.array(
            [facts.time_zone if facts else "" for facts in resolved] + [""], dtype=object
        )[codes]
        for zone in zones:
            rows = zone_of_code == zone
            result[rows] = aligned(start_ns[rows], meter_minutes[rows], zone)
        return result

    def _quality_codes(self, quality: pd.Series, good: np.ndarray) -> np.ndarray:
        """Code each row's quality flag by its position in the import's list of flags."""
        codes, values = pd.factorize(quality)
        mapping = np.array(
            [self.qualities.setdefault(str(value), len(self.qualities)) for value in values]
            + [self.qualities.setdefault("", len(self.qualities))],
            dtype=np.int16,
        )
        return mapping[np.where(codes < 0, len(values), codes)][good]

    def _cover(self, meter_pk: np.ndarray, start_ns: np.ndarray, minutes: np.ndarray) -> None:
        numbers = start_ns // (minutes * NS_PER_MINUTE)
        order = np.argsort(meter_pk, kind="stable")
        pks, first = np.unique(meter_pk[order], return_index=True)
        for position, pk in enumerate(pks.tolist()):
            end = first[position + 1] if position + 1 < len(first) else len(order)
            rows = order[first[position] : end]
            coverage = self.coverage.get(pk)
            if coverage is None:
                coverage = self.coverage[pk] = Coverage(int(minutes[rows[0]]))
            coverage.add(numbers[rows])

    def _flag(
        self,
        good: np.ndarray,
        kwh: np.ndarray,
        minutes: np.ndarray,
        peak: np.ndarray,
        meter_pk: np.ndarray,
        start_ns: np.ndarray,
        line: np.ndarray,
    ) -> None:
        """Flag (never reject) values whose power is far above the site's peak demand."""
        kw = np.abs(kwh) * 60.0 / np.maximum(minutes, 1)
        flagged = good & (peak > 0) & (kw > IMPLAUSIBLE_PEAK_FACTOR * peak)
        count = int(flagged.sum())
        if not count:
            return
        self.outcome.flagged_count += count
        room = MAX_LISTED_FLAGS - len(self.outcome.flagged)
        for i in np.flatnonzero(flagged)[: max(room, 0)].tolist():
            self.outcome.flagged.append(
                {
                    "meter": self.meter_ids.get(int(meter_pk[i]), ""),
                    "interval_start": _iso(int(start_ns[i])),
                    "kwh": float(kwh[i]),
                    "kw": round(float(kw[i]), 3),
                    "peak_kw": float(peak[i]),
                    "line": int(line[i]),
                }
            )

    def _report_rows(
        self,
        chunk: pd.DataFrame,
        kwh: np.ndarray,
        rows: np.ndarray,
        error: np.ndarray,
        checks: list[tuple[str, np.ndarray]],
        resolved: list[MeterFacts | None],
        codes: np.ndarray,
    ) -> None:
        refs = chunk["meter_ref"].to_numpy(dtype=object)
        start_ns = _start_ns(chunk)
        minutes = chunk["interval_minutes"].to_numpy(dtype=np.int64)
        line = chunk["line"].to_numpy(dtype=np.int64)
        quality = chunk["quality"].to_numpy(dtype=object)
        self.outcome.rows_rejected += len(rows)
        for i in rows.tolist():
            code = checks[error[i] - 1][0]
            facts = resolved[codes[i]] if codes[i] < len(resolved) else None
            ref = str(refs[i])
            meter = facts.meter_id if facts else self.series_labels.get(ref, ref)
            message = _row_message(
                code,
                meter,
                facts,
                int(minutes[i]),
                float(kwh[i]),
                str(quality[i]),
                self.wall_clock_zone or "",
            )
            self._error(int(line[i]), code, message, meter, int(start_ns[i]), float(kwh[i]))

    # Problems and the error report ---------------------------------------------------------

    def _writer(self) -> Any:
        if self._report_writer is None:
            self._report_file = tempfile.TemporaryFile("w+", encoding="utf-8", newline="")  # noqa: SIM115 - closed in run()
            self._report_writer = csv.writer(self._report_file)
            self._report_writer.writerow(ERROR_REPORT_COLUMNS)
        return self._report_writer

    def _error(
        self,
        line: int,
        code: str,
        message: str,
        meter: str = "",
        start_ns: int | None = None,
        kwh: float | None = None,
        *,
        severity: str = ImportProblem.Severity.ERROR,
    ) -> None:
        """Record one rejected row (or file problem, or warning) in the report and, while
        there is room, as an ImportProblem row."""
        outcome = self.outcome
        if severity == ImportProblem.Severity.ERROR:
            outcome.error_count += 1
        else:
            outcome.warning_count += 1
        start_text = _iso(start_ns) if start_ns is not None else ""
        kwh_text = "" if kwh is None or not math.isfinite(kwh) else repr(kwh)
        self._writer().writerow([line, severity, code, message, meter, start_text, kwh_text])
        if len(outcome.problems) < MAX_STORED_PROBLEMS:
            outcome.problems.append(
                ImportProblem(
                    severity=severity,
                    line=max(line, 0),
                    code=code,
                    message=message[:2000],
                    meter_ref=meter[:300],
                    interval_start=(
                        pd.Timestamp(start_ns, tz="UTC").to_pydatetime()
                        if start_ns is not None
                        else None
                    ),
                )
            )

    def _new_parser_errors(self, parsed: MeterDataFile) -> bool:
        new = parsed.problems[self._problems_seen :]
        self._problems_seen = len(parsed.problems)
        return any(p.scope != SCOPE_DAY and p.code not in WARNING_CODES for p in new)

    def _after_parse(self, parsed: MeterDataFile) -> None:
        """Add the parser's problems to the report: row and file problems are errors, short
        and long local days and skipped non-electric series are warnings."""
        for problem in parsed.problems:
            warning = problem.scope == SCOPE_DAY or problem.code in WARNING_CODES
            if problem.scope == SCOPE_ROW:
                self.outcome.rows_rejected += 1
            self._error(
                problem.line,
                problem.code,
                problem.message,
                severity=(
                    ImportProblem.Severity.WARNING if warning else ImportProblem.Severity.ERROR
                ),
            )
        unlisted = parsed.problem_count - len(parsed.problems)
        if unlisted > 0:
            # The parser keeps the first problems only; the rest were row problems too.
            self.outcome.rows_rejected += unlisted
            self._error(0, "more_problems", f"{unlisted} further problems are not listed")
            self.outcome.error_count += unlisted - 1
        if parsed.fatal:
            self.fatal = True
            self.staging = False

    def _rejected(self) -> bool:
        if self.outcome.error_count == 0:
            return False
        # A file problem rejects even in valid-rows mode: the rest of the file was never read.
        return not self.record.valid_rows_only or self.fatal

    def _rejection_message(self) -> str:
        errors = self.outcome.error_count
        return (
            f"Rejected: {errors} problem{'s' if errors != 1 else ''} found; nothing was stored. "
            "Fix the file (or import the valid rows only) and upload it again."
        )

    # Validation on the staging table ----------------------------------------------------

    def _incoming_sql(self) -> str:
        """The rows to store, one per (meter, interval): exported energy netted when the
        file carries both directions for an interval."""
        if not self.netting:
            return f"SELECT meter_id, start, kwh, quality_code, line FROM {self.stage.name}"  # noqa: S608
        return (
            "SELECT meter_id, start, SUM(kwh) AS kwh, MIN(quality_code) AS quality_code, "  # noqa: S608
            f"MIN(line) AS line FROM {self.stage.name} GROUP BY meter_id, start"
        )

    def _conflict_sql(self, condition: str) -> str:
        readings = connection.ops.quote_name(MeterReading._meta.db_table)
        return (
            f"FROM ({self._incoming_sql()}) i JOIN {readings} r "
            f"ON r.meter_id = i.meter_id AND r.interval_start = {self.stage.start_sql('i')} "
            f"WHERE {condition}"
        )

    def _validate(self, *, check_stored: bool) -> None:
        """Find duplicate intervals and (with ``check_stored``) conflicts with stored
        readings; in valid-rows mode take those rows out of the staging table."""
        stage = self.stage.name
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {stage}")
        duplicates = (
            f"SELECT meter_id, start, direction FROM {stage} "  # noqa: S608
            "GROUP BY meter_id, start, direction HAVING COUNT(*) > 1"
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT s.line, s.meter_id, s.start, s.kwh FROM {stage} s "  # noqa: S608
                f"JOIN ({duplicates}) d ON d.meter_id = s.meter_id AND d.start = s.start "
                "AND d.direction = s.direction ORDER BY s.line",
                [],
            )
            found = self._report_query(
                cursor,
                DUPLICATE_INTERVAL,
                "the file gives meter {meter}'s interval {start} more than once",
            )
        if found and self.record.valid_rows_only:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"DELETE FROM {stage} WHERE (meter_id, start, direction) IN ({duplicates})",  # noqa: S608
                    [],
                )
        if self.record.correction or not check_stored:
            return
        differs = f"abs(r.kwh - i.kwh) > {SAME_KWH!r}"
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT i.line, i.meter_id, i.start, i.kwh, r.kwh {self._conflict_sql(differs)} "
                "ORDER BY i.line",
                [],
            )
            found = self._report_query(
                cursor,
                CONFLICTING_READING,
                "meter {meter}'s interval {start} is stored as {stored} kWh; the file says "
                "{kwh} kWh (import it as a correction to replace it)",
            )
        if found and self.record.valid_rows_only:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"DELETE FROM {stage} WHERE (meter_id, start) IN "  # noqa: S608
                    f"(SELECT i.meter_id, i.start {self._conflict_sql(differs)})",
                    [],
                )

    def _report_query(self, cursor: Any, code: str, template: str) -> int:
        found = 0
        while rows := cursor.fetchmany(10_000):
            for row in rows:
                line, meter_pk, start, kwh = row[:4]
                stored = row[4] if len(row) > 4 else None
                meter = self.meter_ids.get(int(meter_pk), str(meter_pk))
                start_ns = _to_ns(self.stage.to_datetime(start))
                message = template.format(
                    meter=meter, start=_iso(start_ns), kwh=_number(kwh), stored=_number(stored)
                )
                self._error(int(line), code, message, meter, start_ns, float(kwh))
                found += 1
        self.outcome.rows_rejected += found
        return found

    # Merging ---------------------------------------------------------------------------

    def _merge(self, *, plain_insert: bool) -> bool:
        """Store the staged rows and the import's outcome in one transaction.

        With ``plain_insert`` (nothing of the file's span is stored yet) the rows go in by a
        plain INSERT; returns False, having changed nothing, when the primary key refuses
        one (an interval given twice). Otherwise the file's meters are locked against other
        imports and, unless correcting, the stored readings checked again: returns False,
        having changed nothing, when one stored since the validation differs from the
        file's (``ON CONFLICT DO NOTHING`` would keep it and drop the file's value). Returns
        True once the outcome is recorded.
        """
        readings = connection.ops.quote_name(MeterReading._meta.db_table)
        revisions = connection.ops.quote_name(ReadingRevision._meta.db_table)
        qualities = sorted(self.qualities, key=self.qualities.__getitem__) or [""]
        quality_sql, quality_params = self.stage.quality_sql("i", qualities)
        start_sql = self.stage.start_sql("i")
        now = timezone.now()
        select = (
            f"SELECT i.meter_id, {start_sql}, i.kwh, {quality_sql} "  # noqa: S608
            f"FROM ({self._incoming_sql()}) i WHERE 1 = 1"
        )
        insert = f"INSERT INTO {readings} (meter_id, interval_start, kwh, quality) {select}"
        differs = f"abs(r.kwh - i.kwh) > {SAME_KWH!r}"
        accepted = replaced = unchanged = 0
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    if not plain_insert:
                        self._lock_staged_meters(cursor)
                    if not plain_insert and not self.record.correction:
                        # (With parameters, even none: SQLite's start_sql escapes its "%".)
                        cursor.execute(f"SELECT 1 {self._conflict_sql(differs)} LIMIT 1", [])  # noqa: S608
                        if cursor.fetchone() is not None:
                            raise _StoredMeanwhile
                    if self.record.correction:
                        cursor.execute(
                            f"INSERT INTO {revisions} (meter_id, interval_start, old_kwh, "
                            "new_kwh, old_quality, data_import_id, revised_at) "
                            f"SELECT i.meter_id, r.interval_start, r.kwh, i.kwh, r.quality, "
                            f"%s, %s {self._conflict_sql(differs)}",
                            [self.record.pk, connection.ops.adapt_datetimefield_value(now)],
                        )
                        replaced = max(cursor.rowcount, 0)
                        cursor.execute(
                            f"{insert} ON CONFLICT (meter_id, interval_start) DO UPDATE "
                            "SET kwh = excluded.kwh, quality = excluded.quality "
                            f"WHERE abs({readings}.kwh - excluded.kwh) > {SAME_KWH!r}",
                            quality_params,
                        )
                        accepted = max(cursor.rowcount, 0) - replaced
                    elif plain_insert:
                        try:
                            with transaction.atomic():
                                cursor.execute(insert, quality_params)
                        except IntegrityError:
                            return False
                        accepted = max(cursor.rowcount, 0)
                    else:
                        cursor.execute(f"{insert} ON CONFLICT DO NOTHING", quality_params)
                        accepted = max(cursor.rowcount, 0)
                    if not plain_insert:
                        cursor.execute(f"SELECT COUNT(*) FROM ({self._incoming_sql()}) x")  # noqa: S608
                        unchanged = int(cursor.fetchone()[0]) - accepted - replaced
                self._finish(
                    MeterDataImport.Status.SUCCEEDED,
                    "",
                    accepted=accepted,
                    replaced=replaced,
                    unchanged=unchanged,
                )
        except _StoredMeanwhile:
            return False
        except IntegrityError:
            # Another import of the same file (for the same chosen meter) stored all of it
            # while this one ran.
            original = complete_import_of(
                sha256=self.record.sha256,
                meter_id=self.record.meter_id,
                other_than=self.record.pk,
            )
            if original is None:
                raise
            self.record.duplicate_of = original
            self._finish(MeterDataImport.Status.DUPLICATE, duplicate_message(original))
        return True

    def _lock_staged_meters(self, cursor: Any) -> None:
        """PostgreSQL: lock the staged meters' rows until the merge commits. Another import
        writing readings of one of them waits (its foreign key check, or the direct path's
        FOR KEY SHARE, conflicts with FOR UPDATE), so the conflict check and the insert see
        the same stored readings."""
        if connection.vendor != "postgresql":
            return
        meters = connection.ops.quote_name(Meter._meta.db_table)
        cursor.execute(
            f"SELECT id FROM {meters} WHERE id IN "  # noqa: S608
            f"(SELECT DISTINCT meter_id FROM {self.stage.name}) ORDER BY id FOR UPDATE"
        )

    def _fresh(self) -> bool:
        """True when no staged interval can already be stored (a plain INSERT is enough)."""
        if not self.coverage:
            return True
        lowest = min(c.base * c.minutes for c in self.coverage.values())
        highest = max((c.base + len(c.present)) * c.minutes for c in self.coverage.values())
        return not MeterReading.objects.filter(
            meter_id__in=list(self.coverage),
            interval_start__gte=dt.datetime.fromtimestamp(lowest * 60, tz=dt.UTC),
            interval_start__lt=dt.datetime.fromtimestamp(highest * 60, tz=dt.UTC),
        ).exists()

    # Finishing ---------------------------------------------------------------------------

    def _finish(
        self,
        status: str,
        message: str,
        *,
        accepted: int = 0,
        replaced: int = 0,
        unchanged: int = 0,
    ) -> None:
        record, outcome = self.record, self.outcome
        record.status = status
        record.message = message
        record.finished_at = timezone.now()
        record.rows_processed = outcome.rows_read
        record.bytes_processed = record.file_size
        record.rows_accepted = accepted
        record.rows_replaced = replaced
        record.rows_unchanged = unchanged
        record.rows_rejected = outcome.rows_rejected
        record.error_count = outcome.error_count
        record.warning_count = outcome.warning_count
        record.flagged = outcome.flagged
        record.flagged_count = outcome.flagged_count
        record.meters = len(self.coverage)
        self._gaps()
        if self._report_file is not None and outcome.error_count:
            self._report_file.flush()
            self._report_file.seek(0)
            encoded = _EncodedReader(self._report_file)
            record.error_report.save(f"import-{record.pk}-errors.csv", File(encoded), save=False)
        record.save()
        ImportProblem.objects.filter(data_import=record).delete()
        for problem in outcome.problems:
            problem.data_import = record
        ImportProblem.objects.bulk_create(outcome.problems, batch_size=500)
        self._progress("done")

    def _gaps(self) -> None:
        """Missing stretches per meter within the span the file covers (never filled)."""
        record = self.record
        listed: list[dict[str, Any]] = []
        count = 0
        first: pd.Timestamp | None = None
        last: pd.Timestamp | None = None
        for pk, coverage in sorted(self.coverage.items(), key=lambda i: self.meter_ids.get(i[0])):
            starts = coverage.starts()
            if not len(starts):
                continue
            first = starts[0] if first is None else min(first, starts[0])
            end = starts[-1] + pd.Timedelta(minutes=coverage.minutes)
            last = end if last is None else max(last, end)
            for gap_start, gap_end in find_gaps(starts, coverage.minutes):
                count += 1
                if len(listed) < MAX_LISTED_GAPS:
                    listed.append(
                        {
                            "meter": self.meter_ids.get(pk, str(pk)),
                            "start": gap_start.isoformat(),
                            "end": gap_end.isoformat(),
                            "intervals": int(
                                (gap_end - gap_start) / pd.Timedelta(minutes=coverage.minutes)
                            ),
                        }
                    )
        record.gaps = listed
        record.gap_count = count
        record.first_interval = first.to_pydatetime() if first is not None else None
        record.last_interval = last.to_pydatetime() if last is not None else None

    def _progress(self, phase: str, *, bytes_done: int | None = None) -> None:
        record = self.record
        now = timezone.now()
        done = record.file_size if phase in ("validating", "storing", "done") else bytes_done
        record.rows_processed = self.outcome.rows_read
        record.bytes_processed = done or 0
        if phase != "done":
            if self._side is not None:
                # The import's own transaction is open: write progress where the page
                # polling it can see it.
                table = connection.ops.quote_name(MeterDataImport._meta.db_table)
                with self._side.cursor() as cursor:
                    cursor.execute(
                        f"UPDATE {table} SET rows_processed = %s, bytes_processed = %s, "  # noqa: S608
                        "heartbeat_at = %s WHERE id = %s",
                        [record.rows_processed, record.bytes_processed, now, record.pk],
                    )
            else:
                MeterDataImport.objects.filter(pk=record.pk).update(
                    rows_processed=record.rows_processed,
                    bytes_processed=record.bytes_processed,
                    heartbeat_at=now,
                )
        if self.on_progress is not None:
            self.on_progress(
                Progress(record.rows_processed, record.bytes_processed, record.file_size, phase)
            )


class _EncodedReader:
    """A binary view of a text temp file, for ``FieldFile.save``."""

    def __init__(self, text: IO[str]) -> None:
        self._text = text
        self.name = "errors.csv"

    def read(self, size: int = -1) -> bytes:
        return self._text.read(size if size and size > 0 else -1).encode("utf-8")

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._text.seek(offset, whence)

    def tell(self) -> int:
        return self._text.tell()

    def __iter__(self) -> Iterator[bytes]:
        while block := self.read(64 * 1024):
            yield block


_SCHEME_HOST = re.compile(r"^[a-z][a-z0-9+.-]*://[^/]*", re.I)


def _href_key(href: str) -> str:
    """An href without scheme, host and surrounding slashes (how the parser compares them)."""
    return _SCHEME_HOST.sub("", href.strip()).strip("/")


def _binary_readings(columns: dict[str, np.ndarray], qualities: list[str]) -> list[memoryview]:
    """Encode rows as PostgreSQL binary COPY tuples of (meter_id bigint, interval_start
    timestamptz, kwh double precision, quality varchar), in slices of about 1 MB.

    The quality text has a different width per value, so rows are encoded per quality flag
    (a file has few); the order of rows in a COPY does not matter.
    """
    pieces: list[memoryview] = []
    codes = columns["quality_code"]
    for code in np.unique(codes).tolist():
        rows = codes == code
        text = qualities[code].encode("utf-8")
        fields = [
            ("fields", ">i2"),
            ("meter_len", ">i4"),
            ("meter", ">i8"),
            ("start_len", ">i4"),
            ("start", ">i8"),
            ("kwh_len", ">i4"),
            ("kwh", ">f8"),
            ("quality_len", ">i4"),
        ]
        if text:
            fields.append(("quality", f"S{len(text)}"))
        encoded = np.empty(int(rows.sum()), dtype=np.dtype(fields))
        encoded["fields"] = 4
        encoded["meter_len"] = encoded["start_len"] = encoded["kwh_len"] = 8
        encoded["meter"] = columns["meter_id"][rows]
        encoded["start"] = columns["start_ns"][rows] // 1000 - PG_EPOCH_US
        encoded["kwh"] = columns["kwh"][rows]
        encoded["quality_len"] = len(text)
        if text:
            encoded["quality"] = text
        data = memoryview(encoded).cast("B")
        step = 1 << 20
        pieces.extend(data[offset : offset + step] for offset in range(0, len(data), step))
    return pieces


def _unique_violation(error: BaseException) -> bool:
    """True for PostgreSQL's unique_violation (SQLSTATE 23505), however it is wrapped."""
    while error is not None:
        if getattr(error, "sqlstate", None) == "23505":
            return True
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return False


def _start_ns(chunk: pd.DataFrame) -> np.ndarray:
    """UTC interval starts of a chunk as int64 epoch nanoseconds (no Python objects)."""
    return np.asarray(chunk["interval_start"].array.as_unit("ns").asi8, dtype=np.int64)


def _flow(codes: np.ndarray, names: list[str], name: str) -> np.ndarray:
    if name not in names:
        return np.zeros(len(codes), dtype=bool)
    return codes == names.index(name)


def _iso(start_ns: int) -> str:
    return pd.Timestamp(start_ns, tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _to_ns(value: dt.datetime) -> int:
    return int(pd.Timestamp(value).tz_convert("UTC").value)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _row_message(
    code: str,
    meter: str,
    facts: MeterFacts | None,
    minutes: int,
    kwh: float,
    quality: str,
    zone: str = "",
) -> str:
    if code == UNKNOWN_METER:
        return f"{meter!r} matches no registered meter"
    if code == OTHER_METER:
        return f"row for meter {meter!r}, but this import was for another meter"
    assert facts is not None
    if code == ZONE_MISMATCH:
        return (
            f"meter {meter}'s program keeps {facts.time_zone} time, but no time zone was given "
            f"and the file's wall-clock times were read as {zone}: import it again giving its "
            "time zone"
        )
    if code == INTERVAL_MISMATCH:
        return (
            f"{minutes}-minute interval, but meter {meter} records "
            f"{facts.interval_minutes}-minute intervals"
        )
    if code == MISALIGNED_FOR_METER:
        return f"interval start is not on a {facts.interval_minutes}-minute boundary"
    if code == INVALID_KWH:
        return f"{kwh} is not a finite number of kWh"
    if code == UNSUPPORTED_DIRECTION:
        return "energy flow is neither delivered nor received"
    if code == RECEIVED_ENERGY:
        return (
            f"energy received from the site (exported), but meter {meter} does not record "
            "net energy"
        )
    if code == NEGATIVE_KWH:
        return f"negative energy ({kwh:g} kWh), but meter {meter} does not record net energy"
    if code == QUALITY_TOO_LONG:
        return f"quality flag {quality[:40]!r} is longer than {MAX_QUALITY_LENGTH} characters"
    return code


def run_import(
    data_import: MeterDataImport, *, on_progress: ProgressCallback | None = None
) -> MeterDataImport:
    """Import the stored file of ``data_import`` (status ``running``) and record the outcome.

    Returns the same record, saved with its final status: ``succeeded`` (readings stored),
    ``rejected`` (problems found; nothing stored, see its problems and error report) or
    ``duplicate`` (the same file succeeded in a concurrent import). Unexpected errors
    propagate; the caller marks the import ``failed``. ``on_progress`` is called after each
    chunk and at each phase with a ``Progress``.
    """
    direct = (
        connection.vendor == "postgresql"
        and not data_import.correction
        and not data_import.valid_rows_only
    )
    return _Importer(data_import, on_progress, direct=direct).run()


def complete_import_of(
    *, sha256: str, meter_id: int | None, other_than: int | None = None
) -> MeterDataImport | None:
    """Return the complete import of the file with this SHA-256 for the same chosen meter
    (``meter_id`` None: no meter chosen), other than import ``other_than``; None when there
    is none.

    Complete: succeeded with no error. A valid-rows import that left rows (or a Green Button
    block) out stored only part of the file; importing it again stores the rows now valid
    (a meter registered since, say) and counts the stored ones as unchanged. A file uploaded
    for another meter, or without one, is another import: the same bytes imported for the
    wrong meter can be imported again for the right one. The database holds at most one
    complete import (``meterdataimport_one_complete_import_per_file_meter``).
    """
    imports = MeterDataImport.objects.filter(
        sha256=sha256, status=MeterDataImport.Status.SUCCEEDED, error_count=0
    ).select_related("meter")
    if meter_id is None:
        imports = imports.filter(meter__isnull=True)
    else:
        imports = imports.filter(meter_id=meter_id)
    if other_than is not None:
        imports = imports.exclude(pk=other_than)
    return imports.first()


def duplicate_message(original: MeterDataImport) -> str:
    """What a duplicate import says: which import (and chosen meter) stored the file."""
    meter = f" for meter {original.meter.meter_id}" if original.meter else ""
    return (
        f"This file was imported already{meter} (import #{original.pk} of "
        f"{original.created_at:%Y-%m-%d %H:%M} UTC); nothing was changed."
    )


def sha256_of(chunks: Iterable[bytes]) -> str:
    """Return the hex SHA-256 of the concatenated byte chunks."""
    digest = hashlib.sha256()
    for block in chunks:
        digest.update(block)
    return digest.hexdigest()


__all__ = [
    "IMPLAUSIBLE_PEAK_FACTOR",
    "MAX_STORED_PROBLEMS",
    "Coverage",
    "ImportRefused",
    "MeterFacts",
    "Progress",
    "ProgressCallback",
    "complete_import_of",
    "duplicate_message",
    "run_import",
    "sha256_of",
]
