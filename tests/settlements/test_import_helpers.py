"""Helpers shared by the importer tests (no tests here): run a file through the services.

Kept in a test module because the importer's tests own only ``test_import*`` files.
"""

from __future__ import annotations

import io

from settlements import services
from settlements.models import MeterDataImport, MeterReading

CANONICAL_HEADER = "meter_id,interval_start,kwh,interval_minutes,quality\n"


def import_bytes(
    content: bytes, *, name: str = "readings.csv", by=None, **options
) -> MeterDataImport:
    """Store ``content`` as an upload and import it in the foreground; return the record."""
    record = services.meter_data_import_create(
        stream=io.BytesIO(content), file_name=name, by=by, **options
    )
    return services.meter_data_import_submit(data_import=record, background=False)


def import_text(text: str, **options) -> MeterDataImport:
    return import_bytes(text.encode(), **options)


def canonical(
    rows: list[tuple[str, str, float | str]], minutes: int = 15, quality: str = ""
) -> str:
    """A canonical CSV from (meter_id, interval_start ISO, kWh) rows."""
    return CANONICAL_HEADER + "".join(
        f"{meter},{start},{kwh},{minutes},{quality}\n" for meter, start, kwh in rows
    )


def stored(meter) -> list[tuple[str, float]]:
    """(ISO UTC start, kWh) of a meter's stored readings, ascending."""
    return [
        (start.strftime("%Y-%m-%dT%H:%MZ"), kwh)
        for start, kwh in MeterReading.objects.filter(meter=meter)
        .order_by("interval_start")
        .values_list("interval_start", "kwh")
    ]


def codes(record: MeterDataImport) -> list[tuple[int, str]]:
    """(line, code) of the import's stored problems, in line order."""
    return list(record.problems.order_by("line", "pk").values_list("line", "code"))
