"""Chunked reading with pandas' C parser, keeping the source line of every row."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from settlements.meterdata.base import SCOPE_ROW, Problem

_SKIPPED_LINE = re.compile(r"Skipping line (\d+): (.*)")


def read_csv_chunks(
    stream: BinaryIO,
    *,
    header_line: int,
    chunk_rows: int,
    report: Callable[[Problem], None],
    **read_csv_kwargs: Any,
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Yield ``(raw chunk, lines)`` pairs from a CSV whose header is on line ``header_line``.

    ``header_line`` is 1-based; the lines before it are skipped. ``lines`` holds the 1-based
    source line of each raw row. Blank lines are kept as rows of empty strings (so the row to
    line mapping stays exact) and lines with too many fields are reported as
    ``wrong_field_count`` problems and left out. A field holding a quoted line break shifts the
    line numbers of the rows after it in the same file.
    """
    next_line = header_line + 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        options: dict[str, Any] = {
            "engine": "c",
            "na_filter": False,
            "skip_blank_lines": False,
            "on_bad_lines": "warn",
            "encoding": "utf-8",
            "encoding_errors": "replace",
        }
        options.update(read_csv_kwargs)
        reader = pd.read_csv(stream, skiprows=header_line - 1, chunksize=chunk_rows, **options)
        with reader:
            for raw in reader:
                skipped: list[int] = []
                for warning in caught:
                    for match in _SKIPPED_LINE.finditer(str(warning.message)):
                        line = int(match.group(1))
                        skipped.append(line)
                        report(
                            Problem(line, "wrong_field_count", match.group(2).strip(), SCOPE_ROW)
                        )
                caught.clear()
                n = len(raw)
                candidates = np.arange(next_line, next_line + n + len(skipped), dtype=np.int64)
                if skipped:
                    candidates = candidates[~np.isin(candidates, skipped)]
                lines = candidates[:n]
                last = int(lines[-1]) if n else next_line - 1
                next_line = max([last, *skipped]) + 1
                yield raw, lines
