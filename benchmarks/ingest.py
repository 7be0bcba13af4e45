"""Meter data import throughput against a plain PostgreSQL COPY of the same file.

Generates a canonical CSV of BENCH_METERS meters x BENCH_DAYS days x 96 quarter-hours
(default 1,000 x 60 x 96 = 5.76 million rows) in a temporary folder, creates the meters, and
imports the file through the real importer (``services.meter_data_import_create`` then
``meter_data_import_run``: hashing, storing the upload, parsing, row checks, staging by
binary COPY, merge) in a subprocess whose peak RSS is read with ``resource.getrusage``.
Then, in the same run, COPYs the same file with ``COPY ... FROM STDIN (FORMAT csv)`` into
a table shaped like the file with the readings' primary key (meter, interval start).
Prints rows per second of both, their ratio (importer / COPY; goal >= 0.5) and the
importer's peak RSS (goal < 300 MB).

Environment: DATABASE_URL (default postgres://postgres:postgres@127.0.0.1:5432/
dr_platform_bench, created when missing; never point it at a database you care about: the
benchmark empties the readings tables), BENCH_METERS (1000), BENCH_DAYS (60).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks._support import ensure_database  # noqa: E402 (after the path)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dr_platform.settings")
os.environ.setdefault(
    "DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/dr_platform_bench"
)
METERS = int(os.environ.get("BENCH_METERS", "1000"))
DAYS = int(os.environ.get("BENCH_DAYS", "60"))
PREFIX = "BENCH-"


def generate(path: Path) -> int:
    """Write the canonical CSV (meter after meter, time ascending); return its row count."""
    import numpy as np

    rng = np.random.default_rng(2026)
    starts = np.datetime64("2026-03-01T05:00") + np.arange(DAYS * 96) * np.timedelta64(15, "m")
    stamps = [f"{text}:00Z" for text in np.datetime_as_string(starts, unit="m")]
    hour = (np.arange(DAYS * 96) % 96) / 4.0
    shape = 1.0 + 0.8 * np.exp(-(((hour - 15.0) / 3.5) ** 2))
    with path.open("w", encoding="ascii") as out:
        out.write("meter_id,interval_start,kwh,interval_minutes,quality\n")
        for number in range(METERS):
            meter = f"{PREFIX}{number:05d}"
            values = np.round(shape * rng.uniform(20, 60) * rng.normal(1, 0.05, len(stamps)), 3)
            out.write(
                "".join(
                    f"{meter},{stamp},{value},15,A\n"
                    for stamp, value in zip(stamps, values.tolist(), strict=True)
                )
            )
    return METERS * DAYS * 96


def prepare() -> None:
    """Migrate, empty the readings tables, and create the meters (one site each)."""
    import django

    django.setup()
    from decimal import Decimal

    from django.core.management import call_command
    from django.db import connection

    from enrollment.models import Meter, Organization, Site

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE settlements_meterreading, settlements_readingrevision, "
            "settlements_importproblem, settlements_meterdataimport"
        )
    organization, _ = Organization.objects.get_or_create(
        billing_account_number="BA-BENCH", defaults={"legal_name": "Benchmark Holdings"}
    )
    have = set(Meter.objects.filter(meter_id__startswith=PREFIX).values_list("meter_id", flat=True))
    sites = [
        Site(
            organization=organization,
            name=f"Bench site {number}",
            street="1 Bench Way",
            city="Albany",
            state="NY",
            postal_code="12207",
            service_account_number=f"SA-BENCH-{number:05d}",
            peak_demand_kw=Decimal("400"),
        )
        for number in range(METERS)
        if f"{PREFIX}{number:05d}" not in have
    ]
    Site.objects.bulk_create(sites, batch_size=1000)
    Meter.objects.bulk_create(
        [Meter(site=site, meter_id=f"{PREFIX}{site.service_account_number[9:]}") for site in sites],
        batch_size=1000,
    )


def child_import(path: str) -> None:
    """Run in a subprocess: import the file, print figures as JSON (peak RSS included)."""
    import resource

    import django

    django.setup()
    from settlements import services

    started = time.perf_counter()
    with open(path, "rb") as stream:
        record = services.meter_data_import_create(
            stream=stream, file_name=Path(path).name, by=None
        )
    stored = time.perf_counter()
    record = services.meter_data_import_run(data_import_id=record.pk)
    finished = time.perf_counter()
    print(
        json.dumps(
            {
                "status": record.status,
                "message": record.message,
                "rows": record.rows_accepted,
                "store_seconds": stored - started,
                "import_seconds": finished - stored,
                "seconds": finished - started,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def reference_copy(path: Path) -> float:
    """COPY the file into a table shaped like it, keyed like the readings; return seconds."""
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS bench_reference")
        connection.execute(
            "CREATE TABLE bench_reference (meter_id text, interval_start timestamptz, "
            "kwh double precision, interval_minutes smallint, quality varchar(16), "
            "PRIMARY KEY (meter_id, interval_start))"
        )
        started = time.perf_counter()
        with connection.cursor() as cursor, path.open("rb") as source:
            with cursor.copy("COPY bench_reference FROM STDIN (FORMAT csv, HEADER true)") as copy:
                while block := source.read(1024 * 1024):
                    copy.write(block)
        elapsed = time.perf_counter() - started
        connection.execute("DROP TABLE bench_reference")
    return elapsed


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--child-import":
        child_import(sys.argv[2])
        return 0
    url = os.environ["DATABASE_URL"]
    if not url.startswith(("postgres://", "postgresql://")):
        print(f"ingest.py needs PostgreSQL; DATABASE_URL={url}")
        return 1
    ensure_database(url)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        csv_path = Path(folder) / "readings.csv"
        started = time.perf_counter()
        rows = generate(csv_path)
        size_mb = csv_path.stat().st_size / 1e6
        print(
            f"generated {rows:,} rows ({size_mb:,.0f} MB) in {time.perf_counter() - started:.1f} s"
        )
        prepare()
        environment = {**os.environ, "MEDIA_ROOT": str(Path(folder) / "media")}
        result = subprocess.run(
            [sys.executable, __file__, "--child-import", str(csv_path)],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        if figures["status"] != "succeeded" or figures["rows"] != rows:
            print(f"the import did not store every row: {figures}")
            return 1
        copy_seconds = reference_copy(csv_path)
    importer_rate = rows / figures["seconds"]
    copy_rate = rows / copy_seconds
    print(
        f"importer: {importer_rate:,.0f} rows/s ({figures['seconds']:.1f} s: "
        f"{figures['store_seconds']:.1f} s hashing and storing the upload, "
        f"{figures['import_seconds']:.1f} s importing)"
    )
    print(f"COPY FROM STDIN reference: {copy_rate:,.0f} rows/s ({copy_seconds:.1f} s)")
    print(f"ratio importer / COPY: {importer_rate / copy_rate:.2f} (goal >= 0.5)")
    print(f"importer peak RSS: {figures['peak_rss_mb']:.0f} MB (goal < 300 MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
