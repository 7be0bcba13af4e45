"""The canonical long CSV: ``meter_id,interval_start,kwh[,interval_minutes][,quality]``.

Every check is vectorized over a chunk; rows with problems are dropped from the chunk and
reported with their line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import pandas as pd

from settlements.meterdata.base import DELIVERED, SCOPE_FILE, Problem, make_chunk
from settlements.meterdata.csvread import read_csv_chunks
from settlements.meterdata.detect import CANONICAL_REQUIRED, head_text, raw_csv_fields
from settlements.meterdata.localtime import NAT, NS_PER_MINUTE
from settlements.meterdata.timestamps import INVALID, NO_OFFSET, parse_iso8601_utc
from settlements.meterdata.values import (
    ProblemRows,
    aligned,
    parse_interval_minutes,
    parse_kwh,
    text_column,
)

if TYPE_CHECKING:
    from settlements.meterdata.api import MeterDataFile


def canonical_chunks(stream: BinaryIO, file: MeterDataFile) -> Iterator[pd.DataFrame]:
    """Yield output chunks of a canonical CSV (see the package docstring for the layout).

    Timestamps must carry ``Z`` or an offset and are converted to UTC. ``interval_minutes``
    comes from the column when present, else from ``file.interval_minutes`` given by the
    caller, else from the spacing of the first chunk's rows.
    """
    lines = head_text(file.head).splitlines()
    in_file = {name.strip().lower(): name for name in raw_csv_fields(lines[0])} if lines else {}
    missing = [name for name in CANONICAL_REQUIRED if name not in in_file]
    if missing:
        file.report(
            Problem(1, "missing_columns", f"missing column(s): {', '.join(missing)}", SCOPE_FILE)
        )
        return
    # Categories parse faster than one string object per row for these repetitive columns.
    as_text = {in_file["interval_start"]: object, in_file["meter_id"]: "category"}
    if "quality" in in_file:
        as_text[in_file["quality"]] = "category"
    for raw, line in read_csv_chunks(
        stream,
        header_line=1,
        chunk_rows=file.chunk_rows,
        report=file.report,
        dtype=as_text,
    ):
        raw.columns = [str(name).strip().lower() for name in raw.columns]
        chunk = _convert(raw, line, file)
        if chunk is not None and len(chunk):
            yield chunk


def _convert(raw: pd.DataFrame, line: np.ndarray, file: MeterDataFile) -> pd.DataFrame | None:
    bad = ProblemRows(line)
    meter = np.asarray(raw["meter_id"].astype(object), dtype=object)
    stamp = raw["interval_start"].to_numpy(dtype=object)
    empty_meter = meter == ""
    if empty_meter.any():
        blank = empty_meter & (stamp == "")
        for name in raw.columns:
            blank &= raw[name].to_numpy(dtype=object) == ""
        bad.drop(blank)  # blank lines are not problems
        bad.flag(empty_meter & ~blank, "missing_meter_id", lambda i: "meter_id is empty")

    kwh = parse_kwh(raw["kwh"], bad)

    if "interval_minutes" in raw.columns:
        minutes = parse_interval_minutes(raw["interval_minutes"], bad)
    else:
        minutes = None

    start_ns, status = parse_iso8601_utc(stamp)
    invalid = start_ns == NAT
    bad.flag(
        status == INVALID,
        "invalid_timestamp",
        lambda i: f"interval_start {stamp[i]!r} is not an ISO 8601 timestamp",
    )
    bad.flag(
        status == NO_OFFSET,
        "missing_offset",
        lambda i: f"interval_start {stamp[i]!r} has no UTC offset or Z",
    )
    off_minute = ~invalid & (start_ns % NS_PER_MINUTE != 0)
    bad.flag(
        off_minute,
        "not_on_minute",
        lambda i: f"interval_start {stamp[i]!r} is not on a whole minute",
    )

    if minutes is None:
        if file.interval_minutes is None:
            file.interval_minutes = _infer_minutes(meter, start_ns, bad.keep())
            if file.interval_minutes is None:
                file.report(
                    Problem(
                        int(line[0]) if len(line) else 1,
                        "interval_unknown",
                        "no interval_minutes column, none given, and the rows are too few "
                        "to infer the interval length",
                        SCOPE_FILE,
                    )
                )
                return None
        minutes = np.full(len(raw), file.interval_minutes, dtype=np.int64)
    elif file.interval_minutes is None:
        good = minutes[bad.keep()]
        if len(good):
            values, counts = np.unique(good, return_counts=True)
            file.interval_minutes = int(values[np.argmax(counts)])

    usable = ~invalid & ~off_minute & (minutes > 0)
    misaligned = usable & ~aligned(start_ns, minutes, file.tz)
    bad.flag(
        misaligned,
        "misaligned_interval",
        lambda i: f"interval_start {stamp[i]!r} is not aligned to {minutes[i]}-minute intervals",
    )
    file.report_all(bad.problems)
    keep = bad.keep()
    quality = text_column(raw, "quality")
    if keep.all():
        return make_chunk(
            meter_ref=meter,
            interval_start_ns=start_ns,
            interval_minutes=minutes,
            kwh=kwh,
            quality=quality,
            direction=DELIVERED,
            line=line,
        )
    return make_chunk(
        meter_ref=meter[keep],
        interval_start_ns=start_ns[keep],
        interval_minutes=minutes[keep],
        kwh=kwh[keep],
        quality=quality if isinstance(quality, str) else quality[keep],
        direction=DELIVERED,
        line=line[keep],
    )


def _infer_minutes(meter: np.ndarray, start_ns: np.ndarray, keep: np.ndarray) -> int | None:
    meter, start_ns = meter[keep], start_ns[keep]
    if len(start_ns) < 2:
        return None
    same_meter = meter[1:] == meter[:-1]
    steps = np.diff(start_ns)[same_meter] // NS_PER_MINUTE
    steps = steps[steps > 0]
    if len(steps) == 0:
        return None
    values, counts = np.unique(steps, return_counts=True)
    return int(values[np.argmax(counts)])
