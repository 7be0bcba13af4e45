"""Green Button (NAESB ESPI) XML: an Atom feed of UsagePoint, MeterReading, ReadingType and
IntervalBlock entries tied together by ``link rel="self"/"up"/"related"`` hrefs.

The file is read twice with a hardened streaming SAX parser (defusedxml: no DTD, no entity
declarations, no external references, so nothing is expanded and nothing is fetched). The
first pass keeps only the entries' links and metadata and resolves the series, wherever the
entries sit in the feed; the second pass streams the IntervalReadings into chunks. Memory
stays proportional to the number of entries, never to the number of readings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, BinaryIO
from xml.sax import SAXParseException
from xml.sax.handler import ContentHandler, feature_namespaces

import numpy as np
import pandas as pd
from defusedxml import DefusedXmlException
from defusedxml.expatreader import DefusedExpatParser

from settlements.meterdata.base import (
    DELIVERED,
    RECEIVED,
    SCOPE_FILE,
    SCOPE_SERIES,
    Problem,
    Series,
    make_chunk,
)
from settlements.meterdata.values import ProblemRows, aligned

if TYPE_CHECKING:
    from settlements.meterdata.api import MeterDataFile

_READ_BYTES = 256 * 1024
_NS_PER_SECOND = 1_000_000_000
_WATT_HOUR = "72"
_FLOW_NAMES = {"1": DELIVERED, "19": RECEIVED, "4": "net", "20": "total", "0": "none"}
_GAS_UOMS = {"169": "therm", "119": "cubic feet", "42": "cubic metres", "122": "cubic feet/h"}
_SERVICE_KINDS = {"1": "gas", "2": "water", "3": "time", "4": "heat", "5": "refuse"}
_NON_ELECTRIC_COMMODITIES = {"7": "natural gas", "8": "propane", "9": "potable water"}
_CUMULATIVE = {"1": "bulk quantity", "3": "cumulative"}
_TEXT_UNITS = {"WH": 0.001, "KWH": 1.0}
_READING_TYPE_FIELDS = {
    "uom",
    "powerOfTenMultiplier",
    "flowDirection",
    "intervalLength",
    "commodity",
    "accumulationBehaviour",
}
_SCHEME_HOST = re.compile(r"^[a-z][a-z0-9+.-]*://[^/]*", re.I)


def _href_key(href: str) -> str:
    """Compare hrefs without scheme, host, surrounding slashes or whitespace."""
    return _SCHEME_HOST.sub("", href.strip()).strip("/")


@dataclass
class _Entry:
    index: int
    line: int
    self_href: str = ""  # normalized with _href_key, for matching
    self_raw: str = ""  # as written in the file
    up: str = ""
    related: list[str] = field(default_factory=list)
    title: str = ""
    kind: str = ""  # UsagePoint, MeterReading, ReadingType, IntervalBlock, ...
    fields: dict[str, str] = field(default_factory=dict)
    readings: int = 0


@dataclass
class Catalog:
    """What the first pass learned: the series and which block entries feed which series."""

    series: list[Series]
    block_series: dict[int, int]  # entry index -> position in ``series`` (emitted only)
    kwh_per_unit: list[float]


class _FeedHandler(ContentHandler):
    """Tracks entries and their metadata; in the value pass also collects readings."""

    def __init__(self, parser: DefusedExpatParser, *, collect: dict[int, int] | None) -> None:
        super().__init__()
        self.parser = parser
        self.collect = collect
        self.entries: list[_Entry] = []
        self.stack: list[str] = []
        self.text: list[str] = []
        self.entry: _Entry | None = None
        self.entry_count = 0
        self.content_depth = -1
        # value pass buffers
        self.series_index: list[int] = []
        self.lines: list[int] = []
        self.starts: list[str] = []
        self.durations: list[str] = []
        self.values: list[str] = []
        self.qualities: list[str] = []
        self.reading: dict[str, str] | None = None
        self.reading_line = 0

    def startElementNS(  # SAX API name
        self, name: tuple[str | None, str], qname: str | None, attrs: object
    ) -> None:
        local = name[1]
        depth = len(self.stack)
        self.stack.append(local)
        self.text = []
        if local == "entry":
            self.entry_count += 1
            self.entry = _Entry(self.entry_count, self.parser.getLineNumber())
            return
        entry = self.entry
        if entry is None:
            return
        if local == "link" and self.stack[-2] == "entry":
            get = attrs.get  # type: ignore[attr-defined]
            rel = (get((None, "rel")) or "").strip()
            raw_href = (get((None, "href")) or "").strip()
            href = _href_key(raw_href)
            if rel == "self":
                entry.self_href = href
                entry.self_raw = raw_href
            elif rel == "up":
                entry.up = href
            elif rel == "related":
                entry.related.append(href)
        elif local == "content" and self.stack[-2] == "entry":
            self.content_depth = depth
        elif depth == self.content_depth + 1 and self.content_depth >= 0 and not entry.kind:
            entry.kind = local
        elif local == "IntervalReading":
            entry.readings += 1
            if self.collect is not None and entry.index in self.collect:
                self.reading = {}
                self.reading_line = self.parser.getLineNumber()

    def characters(self, content: str) -> None:
        self.text.append(content)

    def endElementNS(self, name: tuple[str | None, str], qname: str | None) -> None:
        local = name[1]
        self.stack.pop()
        entry = self.entry
        if entry is None:
            return
        text = "".join(self.text).strip() if self.text else ""
        self.text = []
        parent = self.stack[-1] if self.stack else ""
        if local == "entry":
            if self.collect is None:
                self.entries.append(entry)
            self.entry = None
            self.content_depth = -1
        elif local == "content" and parent == "entry":
            self.content_depth = -1
        elif local == "title" and parent == "entry":
            entry.title = text
        elif entry.kind == "ReadingType" and local in _READING_TYPE_FIELDS:
            entry.fields[local] = text
        elif entry.kind == "UsagePoint" and local == "kind" and parent == "ServiceCategory":
            entry.fields["serviceKind"] = text
        elif self.reading is not None:
            if local == "IntervalReading":
                assert self.collect is not None
                self.series_index.append(self.collect[entry.index])
                self.lines.append(self.reading_line)
                self.starts.append(self.reading.get("start", ""))
                self.durations.append(self.reading.get("duration", ""))
                self.values.append(self.reading.get("value", ""))
                self.qualities.append(self.reading.get("quality", ""))
                self.reading = None
            elif parent == "timePeriod" and local in ("start", "duration"):
                self.reading[local] = text
            elif local == "value" and parent == "IntervalReading":
                self.reading["value"] = text
            elif local == "quality" and parent == "ReadingQuality":
                self.reading.setdefault("quality", text)

    def buffered(self) -> int:
        return len(self.lines)


def _new_parser(collect: dict[int, int] | None) -> tuple[DefusedExpatParser, _FeedHandler]:
    """A namespace-aware SAX parser that refuses DTDs, entity declarations and external refs."""
    parser = DefusedExpatParser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    parser.setFeature(feature_namespaces, True)
    handler = _FeedHandler(parser, collect=collect)
    parser.setContentHandler(handler)
    return parser, handler


def _xml_failure(error: Exception, parser: DefusedExpatParser) -> Problem:
    if isinstance(error, DefusedXmlException):
        return Problem(
            parser.getLineNumber() or 1,
            "xml_forbidden",
            "the XML declares a DTD, entities or external references, which Green Button "
            f"files never need; refused for safety ({type(error).__name__})",
            SCOPE_FILE,
        )
    if isinstance(error, SAXParseException):
        return Problem(
            error.getLineNumber() or 1, "xml_syntax", f"malformed XML: {error}", SCOPE_FILE
        )
    return Problem(1, "xml_syntax", f"unreadable XML: {error}", SCOPE_FILE)


def _feed_all(stream: BinaryIO, parser: DefusedExpatParser) -> Iterator[None]:
    """Feed the stream to the parser block by block, yielding after each block."""
    while block := stream.read(_READ_BYTES):
        parser.feed(block)
        yield None
    parser.close()


def read_catalog(file: MeterDataFile) -> Catalog:
    """First pass: collect entries, resolve series, fill ``file.series``; problems reported.

    Returns the ``Catalog`` used by ``greenbutton_chunks``; on an XML error the catalog is
    empty and a ``file`` scope problem is reported.
    """
    parser, handler = _new_parser(None)
    with file._opened.open() as stream:
        try:
            for _ in _feed_all(stream, parser):
                pass
        except (DefusedXmlException, SAXParseException, ValueError) as error:
            file.report(_xml_failure(error, parser))
            return Catalog([], {}, [])
    if not handler.entries:
        file.report(Problem(1, "not_a_feed", "no Atom entry found in the XML", SCOPE_FILE))
        return Catalog([], {}, [])
    catalog = _resolve(handler.entries, file)
    file.series = catalog.series
    lengths = [s.interval_seconds for s in catalog.series if not s.skipped_reason]
    known = [length for length in lengths if length]
    if known:
        file.interval_minutes = max(set(known), key=known.count) // 60
    return catalog


def _resolve(entries: list[_Entry], file: MeterDataFile) -> Catalog:
    usage_points = [e for e in entries if e.kind == "UsagePoint"]
    meter_readings = [e for e in entries if e.kind == "MeterReading"]
    reading_types = {e.self_href: e for e in entries if e.kind == "ReadingType" and e.self_href}
    blocks = [e for e in entries if e.kind == "IntervalBlock"]

    def usage_point_of(reading: _Entry) -> _Entry | None:
        for point in usage_points:
            if reading.up and (
                reading.up in point.related or reading.up == f"{point.self_href}/MeterReading"
            ):
                return point
        for point in usage_points:
            if point.self_href and reading.self_href.startswith(f"{point.self_href}/"):
                return point
        return usage_points[0] if len(usage_points) == 1 else None

    def meter_reading_of(block: _Entry) -> _Entry | None:
        for reading in meter_readings:
            if block.up and (
                block.up in reading.related or block.up == f"{reading.self_href}/IntervalBlock"
            ):
                return reading
        for reading in meter_readings:
            if reading.self_href and block.self_href.startswith(f"{reading.self_href}/"):
                return reading
        return meter_readings[0] if len(meter_readings) == 1 else None

    series: list[Series] = []
    keys: dict[str, int] = {}
    reading_series: dict[int, int] = {}
    for reading in meter_readings:
        point = usage_point_of(reading)
        reading_type = next((reading_types[h] for h in reading.related if h in reading_types), None)
        point_href = point.self_raw if point else ""
        type_href = reading_type.self_raw if reading_type else ""
        key = f"{point_href}#{type_href}"
        if key not in keys:
            keys[key] = len(series)
            series.append(_describe(key, point, reading_type, reading))
        reading_series[reading.index] = keys[key]

    counts = [0] * len(series)
    block_series: dict[int, int] = {}
    for block in blocks:
        reading = meter_reading_of(block)
        if reading is None:
            file.report(
                Problem(
                    block.line,
                    "unlinked_interval_block",
                    f"IntervalBlock {block.self_href or '(no self link)'} links to no "
                    f"MeterReading (up={block.up or 'none'}); its {block.readings} readings "
                    "are left out",
                    SCOPE_SERIES,
                )
            )
            continue
        position = reading_series[reading.index]
        counts[position] += block.readings
        if not series[position].skipped_reason:
            block_series[block.index] = position

    resolved = []
    for position, item in enumerate(series):
        item = _with_readings(item, counts[position])
        resolved.append(item)
        if item.skipped_reason:
            file.report(
                Problem(
                    item.line,
                    "skipped_series",
                    f"series {item.key} ({item.usage_point_title or 'untitled usage point'}, "
                    f"{item.readings} readings) skipped: {item.skipped_reason}",
                    SCOPE_SERIES,
                )
            )
    return Catalog(resolved, block_series, [item.kwh_per_unit for item in resolved])


def _with_readings(item: Series, readings: int) -> Series:
    return replace(item, readings=readings)


def _describe(
    key: str, point: _Entry | None, reading_type: _Entry | None, reading: _Entry
) -> Series:
    fields = reading_type.fields if reading_type else {}
    service_kind = point.fields.get("serviceKind", "") if point else ""
    commodity = fields.get("commodity", "")
    uom = fields.get("uom", "")
    multiplier_text = fields.get("powerOfTenMultiplier", "") or "0"
    flow = fields.get("flowDirection", "")
    interval_text = fields.get("intervalLength", "")
    reason = ""
    multiplier = 0
    kwh_per_unit = 0.0
    try:
        multiplier = int(multiplier_text)
    except ValueError:
        reason = f"powerOfTenMultiplier {multiplier_text!r} is not an integer"
    if service_kind in _SERVICE_KINDS:
        reason = f"{_SERVICE_KINDS[service_kind]} usage point (ServiceCategory kind {service_kind})"
    elif point is None:
        reason = "the MeterReading links to no UsagePoint"
    elif reading_type is None:
        reason = "the MeterReading links to no ReadingType, so the unit is unknown"
    elif commodity in _NON_ELECTRIC_COMMODITIES:
        reason = f"{_NON_ELECTRIC_COMMODITIES[commodity]} (commodity {commodity})"
    elif uom in _GAS_UOMS:
        reason = f"unit is {_GAS_UOMS[uom]} (uom {uom}), a gas measure, not energy in Wh"
    elif not uom:
        reason = "the ReadingType has no uom, so the unit is unknown"
    elif fields.get("accumulationBehaviour", "") in _CUMULATIVE:
        reason = "readings are cumulative register values, not energy per interval"
    elif not reason:
        if uom == _WATT_HOUR:
            kwh_per_unit = 10.0**multiplier / 1000.0
        elif uom.upper() in _TEXT_UNITS:
            kwh_per_unit = 10.0**multiplier * _TEXT_UNITS[uom.upper()]
        else:
            reason = f"uom {uom} is not energy in Wh (72)"
    interval_seconds = int(interval_text) if interval_text.isdigit() else None
    return Series(
        key=key,
        usage_point_href=point.self_raw if point else "",
        usage_point_title=point.title if point else "",
        reading_type_href=reading_type.self_raw if reading_type else "",
        direction=_FLOW_NAMES.get(flow, f"flow {flow}" if flow else DELIVERED),
        uom=uom,
        power_of_ten_multiplier=multiplier,
        interval_seconds=interval_seconds,
        service_kind=service_kind,
        commodity=commodity,
        kwh_per_unit=kwh_per_unit,
        skipped_reason=reason,
        readings=0,
        line=point.line if point else reading.line,
    )


def greenbutton_chunks(
    stream: BinaryIO, file: MeterDataFile, catalog: Catalog
) -> Iterator[pd.DataFrame]:
    """Second pass: yield the readings of the emitted series as output chunks.

    ``meter_ref`` is the series key (see ``Series``), ``interval_start`` the UTC instant of
    ``timePeriod/start`` (epoch seconds), ``interval_minutes`` the reading's ``duration`` / 60,
    ``kwh`` = ``value`` x 10^powerOfTenMultiplier converted from Wh, ``quality`` the ESPI
    ReadingQuality code (empty when absent), ``direction`` from the ReadingType flowDirection
    and ``line`` the line of the ``<IntervalReading>`` tag.
    """
    if not catalog.block_series:
        return
    parser, handler = _new_parser(catalog.block_series)
    try:
        for _ in _feed_all(stream, parser):
            if handler.buffered() >= file.chunk_rows:
                chunk = _flush(handler, file, catalog)
                if len(chunk):
                    yield chunk
    except (DefusedXmlException, SAXParseException, ValueError) as error:
        file.report(_xml_failure(error, parser))
        return
    chunk = _flush(handler, file, catalog)
    if len(chunk):
        yield chunk


def _flush(handler: _FeedHandler, file: MeterDataFile, catalog: Catalog) -> pd.DataFrame:
    line = np.array(handler.lines, dtype=np.int64)
    series_index = np.array(handler.series_index, dtype=np.int64)
    starts = np.array(handler.starts, dtype=object)
    durations = np.array(handler.durations, dtype=object)
    values = np.array(handler.values, dtype=object)
    qualities = np.array(handler.qualities, dtype=object)
    for buffer in (
        handler.lines,
        handler.series_index,
        handler.starts,
        handler.durations,
        handler.values,
        handler.qualities,
    ):
        buffer.clear()
    bad = ProblemRows(line)

    def numbers(text: np.ndarray) -> np.ndarray:
        return pd.to_numeric(pd.Series(text, dtype=object), errors="coerce").to_numpy(
            dtype=np.float64
        )

    start_seconds = numbers(starts)
    bad.flag(
        ~np.isfinite(start_seconds),
        "invalid_start",
        lambda i: f"timePeriod/start {starts[i]!r} is not epoch seconds",
    )
    duration_seconds = numbers(durations)
    default = np.array(
        [float(item.interval_seconds or "nan") for item in catalog.series], dtype=np.float64
    )[series_index]
    duration_seconds = np.where(durations == "", default, duration_seconds)
    bad.flag(
        ~(duration_seconds > 0) | (duration_seconds % 60 != 0),
        "invalid_duration",
        lambda i: f"timePeriod/duration {durations[i]!r} is not a whole number of minutes",
    )
    raw_values = numbers(values)
    bad.flag(values == "", "missing_value", lambda i: "IntervalReading has no value")
    bad.flag(
        np.isnan(raw_values) & (values != ""),
        "invalid_value",
        lambda i: f"value {values[i]!r} is not a number",
    )
    whole_start = np.where(np.isfinite(start_seconds), start_seconds, 0)
    bad.flag(
        whole_start % 60 != 0,
        "not_on_minute",
        lambda i: f"timePeriod/start {starts[i]} is not on a whole minute",
    )
    start_ns = (whole_start.astype(np.int64)) * _NS_PER_SECOND
    minutes = np.where(bad.keep(), duration_seconds // 60, 0).astype(np.int64)
    misaligned = bad.keep() & ~aligned(start_ns, minutes, file.tz)
    bad.flag(
        misaligned,
        "misaligned_interval",
        lambda i: f"timePeriod/start {starts[i]} is not aligned to {minutes[i]}-minute intervals",
    )
    file.report_all(bad.problems)
    keep = bad.keep()
    factor = np.array(catalog.kwh_per_unit, dtype=np.float64)[series_index]
    keys = np.array([item.key for item in catalog.series], dtype=object)
    flows = np.array([item.direction for item in catalog.series], dtype=object)
    return make_chunk(
        meter_ref=keys[series_index[keep]],
        interval_start_ns=start_ns[keep],
        interval_minutes=minutes[keep],
        kwh=(raw_values * factor)[keep],
        quality=qualities[keep],
        direction=flows[series_index[keep]],
        line=line[keep],
    )
