"""Format detection from the first bytes of a meter data file."""

from __future__ import annotations

import csv
import re

from settlements.meterdata.base import UnknownFormatError

CANONICAL = "canonical"
UTILITY = "utility"
WIDE = "wide"
GREENBUTTON = "greenbutton"
FORMATS: tuple[str, ...] = (CANONICAL, UTILITY, WIDE, GREENBUTTON)

CANONICAL_REQUIRED = ("meter_id", "interval_start", "kwh")
_WIDE_INTERVAL_LABEL = re.compile(r"^(?:\d{1,2}:\d{2}\*?|\d{1,3})$")


def head_text(head: bytes) -> str:
    """Decode the first bytes of a CSV file as UTF-8 (BOM dropped, bad bytes replaced)."""
    return head.decode("utf-8-sig", errors="replace")


def raw_csv_fields(line: str) -> list[str]:
    """Split one CSV line into fields as pandas names them (quotes honoured, not stripped)."""
    return next(csv.reader([line]), [])


def split_csv_line(line: str) -> list[str]:
    """Split one CSV line into stripped fields (quotes honoured)."""
    return [field.strip() for field in raw_csv_fields(line)]


def find_utility_header(lines: list[str]) -> int | None:
    """Return the 0-based index of the utility ``TYPE,DATE,START TIME,...`` header, or None."""
    for index, line in enumerate(lines):
        if "DATE" not in line.upper():
            continue
        fields = [field.upper() for field in split_csv_line(line)]
        if (
            "DATE" in fields
            and "START TIME" in fields
            and any(field.startswith("USAGE") for field in fields)
        ):
            return index
    return None


def detect_format(head: bytes) -> str:
    """Return the format name of a meter data file from its first bytes.

    ``head`` should be the first few kilobytes (64 KiB is plenty; a utility preamble must fit).
    Returns one of ``"canonical"``, ``"utility"``, ``"wide"`` or ``"greenbutton"``; raises
    ``UnknownFormatError`` when none matches. Nothing about time zones is decided here.
    """
    text = head_text(head).lstrip()
    if text.startswith("<"):
        return GREENBUTTON
    lines = text.splitlines()
    if not lines:
        raise UnknownFormatError("the file is empty")
    first = [field.lower() for field in split_csv_line(lines[0])]
    if all(name in first for name in CANONICAL_REQUIRED):
        return CANONICAL
    if (
        len(first) >= 3
        and first[:2] == ["meter_id", "date"]
        and all(_WIDE_INTERVAL_LABEL.match(label) for label in first[2:])
    ):
        return WIDE
    if find_utility_header(lines[:200]) is not None:
        return UTILITY
    raise UnknownFormatError(
        "unrecognised meter data file: expected a canonical CSV header "
        "(meter_id,interval_start,kwh), a wide CSV header (meter_id,date,00:00,...), "
        "a utility download header (TYPE,DATE,START TIME,...) or Green Button XML"
    )
