"""A large upload is imported by a real Celery worker process on the "meterdata" queue."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from settlements import services
from settlements.models import MeterDataImport, MeterReading
from tests.enrollment.factories import MeterFactory
from tests.settlements.test_import_helpers import canonical

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.worker


def _database_url() -> str:
    """The URL of this test run's database, for a worker process to use the same one."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    return (
        f"postgres://{settings['USER']}:{settings.get('PASSWORD') or ''}@{settings['HOST']}:"
        f"{settings['PORT'] or 5432}/{settings['NAME']}"
    )


def _worker(environment: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "dr_platform", "worker", "--pool", "solo",
            "--loglevel", "WARNING", "-Q", "meterdata",
            "--hostname", f"test-meterdata-{uuid.uuid4().hex[:8]}@%h",
        ],
        cwd=ROOT,
        env=environment,
    )  # fmt: skip


def test_a_background_import_runs_in_a_worker_and_reports_progress(
    transactional_db, worker_environment, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    meter = MeterFactory(meter_id="M-BG")
    rows = [
        ("M-BG", f"2026-01-{1 + i // 96:02d}T{(i % 96) // 4:02d}:{(i % 4) * 15:02d}:00Z", 1.5)
        for i in range(96 * 7)
    ]
    record = services.meter_data_import_create(
        stream=io.BytesIO(canonical(rows).encode()), file_name="week.csv", by=None
    )
    services.meter_data_import_submit(data_import=record, background=True)
    assert MeterDataImport.objects.get(pk=record.pk).status == "pending"

    worker = _worker(
        {
            **worker_environment,
            "DATABASE_URL": _database_url(),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        }
    )
    try:
        deadline = time.monotonic() + 90
        record.refresh_from_db()
        while not record.finished and time.monotonic() < deadline:
            assert worker.poll() is None, "the worker exited"
            time.sleep(0.5)
            record.refresh_from_db()
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    assert record.status == "succeeded", record.message
    assert record.rows_accepted == len(rows)
    assert record.bytes_processed == record.file_size
    assert record.progress_percent == 100
    assert MeterReading.objects.filter(meter=meter).count() == len(rows)


def test_a_redelivered_task_does_nothing(transactional_db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    MeterFactory(meter_id="M-RE")
    record = services.meter_data_import_create(
        stream=io.BytesIO(canonical([("M-RE", "2026-01-01T00:00:00Z", 1)]).encode()),
        file_name="one.csv",
        by=None,
    )
    from settlements.tasks import meter_data_import_task

    assert meter_data_import_task.run(record.pk) == "succeeded"
    assert meter_data_import_task.run(record.pk) is None
    assert MeterReading.objects.count() == 1
