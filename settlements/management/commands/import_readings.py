"""``manage.py import_readings PATH...``: import meter data files from the command line.

Each file becomes a MeterDataImport (as if uploaded, with no user) and is imported in the
foreground, with a progress line on stderr and a summary on stdout. The exit status is 1
when any file was rejected or failed, 0 otherwise (duplicates included: nothing to do).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from enrollment.models import Meter
from settlements import services
from settlements.importer import Progress
from settlements.meterdata import FORMATS
from settlements.models import MeterDataImport

#: Problems printed per file; the rest are in the import's error report.
PRINTED_PROBLEMS = 20


class _ProgressLine:
    """A one-line text progress bar on stderr, redrawn at most a few times a second (on a
    terminal; elsewhere one line per phase). ``stream`` is the command's OutputWrapper."""

    def __init__(self, stream: OutputWrapper, label: str) -> None:
        self.stream = stream
        self.label = label
        self.interactive = stream.isatty()
        self.last = 0.0

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        final = progress.phase == "done"
        if not final and now - self.last < 0.25:
            return
        self.last = now
        share = progress.bytes_done / progress.bytes_total if progress.bytes_total else 1.0
        filled = int(share * 30)
        bar = "#" * filled + "-" * (30 - filled)
        megabytes = f"{progress.bytes_done / 1e6:,.1f}/{progress.bytes_total / 1e6:,.1f} MB"
        text = (
            f"{self.label} [{bar}] {share:4.0%} {progress.rows:,} rows {megabytes} {progress.phase}"
        )
        if self.interactive:
            self.stream.write("\r" + text, ending="\n" if final else "")
        elif final or progress.phase != "reading":
            self.stream.write(text)
        self.stream.flush()


class Command(BaseCommand):
    help = "Import interval meter data files (canonical, utility, wide CSV or Green Button XML)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
        parser.add_argument("--format", choices=FORMATS, help="Override format detection.")
        parser.add_argument(
            "--meter",
            help="Meter id the file belongs to (utility downloads, Green Button usage points).",
        )
        parser.add_argument(
            "--correction",
            action="store_true",
            help="Replace stored readings that differ (the old values are kept as revisions).",
        )
        parser.add_argument(
            "--valid-rows",
            action="store_true",
            help="Import the valid rows and list the rejected ones, instead of rejecting the file.",
        )
        parser.add_argument(
            "--tz", default="", help="IANA zone of wall-clock files (default: the meter's)."
        )

    def handle(self, *args: Any, paths: list[Path], **options: Any) -> None:
        meter = None
        if options["meter"]:
            meter = Meter.objects.filter(meter_id=options["meter"]).first()
            if meter is None:
                raise CommandError(f"no meter with id {options['meter']!r}")
        for path in paths:
            if not path.is_file():
                raise CommandError(f"{path} is not a file")
        failed = 0
        for path in paths:
            with path.open("rb") as stream:
                record = services.meter_data_import_create(
                    stream=stream,
                    file_name=path.name,
                    by=None,
                    format=options["format"] or "",
                    meter=meter,
                    correction=options["correction"],
                    valid_rows_only=options["valid_rows"],
                    time_zone=options["tz"],
                )
            if record.status == MeterDataImport.Status.PENDING:
                try:
                    services.meter_data_import_run(
                        data_import_id=record.pk, on_progress=_ProgressLine(self.stderr, path.name)
                    )
                except Exception as error:  # noqa: BLE001 - recorded on the import; go on
                    self.stderr.write(f"{path.name}: failed: {error}")
                record.refresh_from_db()
            self._summary(path, record)
            if record.status in (MeterDataImport.Status.REJECTED, MeterDataImport.Status.FAILED):
                failed += 1
        if failed:
            raise CommandError(f"{failed} of {len(paths)} file(s) not imported", returncode=1)

    def _summary(self, path: Path, record: MeterDataImport) -> None:
        style = {
            MeterDataImport.Status.SUCCEEDED: self.style.SUCCESS,
            MeterDataImport.Status.DUPLICATE: self.style.WARNING,
        }.get(record.status, self.style.ERROR)
        self.stdout.write(
            style(f"{path.name}: {record.get_status_display()} (import #{record.pk})")
        )
        if record.message:
            self.stdout.write(f"  {record.message}")
        if record.status == MeterDataImport.Status.DUPLICATE:
            return
        self.stdout.write(
            f"  format {record.format or '?'}; {record.rows_processed:,} rows read; "
            f"{record.rows_accepted:,} accepted, {record.rows_replaced:,} replaced, "
            f"{record.rows_unchanged:,} unchanged, {record.rows_rejected:,} rejected; "
            f"{record.meters} meter(s); {record.flagged_count:,} flagged; "
            f"{record.gap_count:,} gap(s); {record.error_count:,} error(s), "
            f"{record.warning_count:,} warning(s)"
        )
        for problem in record.problems.order_by("line", "pk")[:PRINTED_PROBLEMS]:
            self.stdout.write(
                f"  line {problem.line}: {problem.severity} {problem.code}: {problem.message}"
            )
        shown = min(PRINTED_PROBLEMS, record.error_count + record.warning_count)
        if record.error_count + record.warning_count > shown:
            self.stdout.write(f"  … {record.error_count + record.warning_count - shown} more")
        if record.error_report:
            self.stdout.write(f"  error report: {record.error_report.path}")
        for gap in record.gaps[:5]:
            self.stdout.write(
                f"  gap: meter {gap['meter']} {gap['start']} to {gap['end']} "
                f"({gap['intervals']} intervals missing)"
            )
        for flag in record.flagged[:5]:
            self.stdout.write(
                f"  flagged: meter {flag['meter']} {flag['interval_start']} {flag['kwh']} kWh "
                f"= {flag['kw']} kW, site peak {flag['peak_kw']} kW (line {flag['line']})"
            )
