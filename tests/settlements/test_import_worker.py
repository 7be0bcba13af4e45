"""Background work of the settlements app in a real Celery worker process: a large upload
imported on the "meterdata" queue, a settlement run calculated on the "settlements" queue
while its console page polls the progress."""

from __future__ import annotations

import io
import time

import pytest
from django.urls import reverse

from settlements import services
from settlements.models import MeterDataImport, MeterReading, SettlementRun
from tests.enrollment.factories import MeterFactory
from tests.factories import staff_user
from tests.settlements.settlement_helpers import JULY, enroll, make_program
from tests.settlements.test_import_helpers import canonical
from tests.workers import database_url, start_celery_worker, stop_celery_worker

pytestmark = pytest.mark.worker


def _worker(environment: dict[str, str], queue: str = "meterdata"):
    return start_celery_worker(environment, [queue], name=f"test-{queue}")


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
            "DATABASE_URL": database_url(),
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
        stop_celery_worker(worker)
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


def test_the_calculate_button_has_a_worker_calculate_the_run_while_the_page_polls(
    transactional_db, worker_environment, client
):
    # Two sites, no events: capacity at factor 1, 100 kW × $8 = $800.00 and 50 kW × $8 =
    # $400.00, $1,200.00 in all.
    program = make_program(capacity_rate="8", energy_rate="0.50")
    enroll(program, "100")
    enroll(program, "50")
    manager = staff_user("Program managers")
    from settlements.runs import settlement_run_create

    run = settlement_run_create(program=program, period_kind="month", period_start=JULY, by=manager)
    client.force_login(manager)
    # The request commits at once (no test transaction here): the message is on the broker.
    response = client.post(
        reverse("console:settlement_run_action", args=[run.pk]), {"action": "calculate"}
    )
    assert response.status_code == 302
    run.refresh_from_db()
    assert (run.status, run.line_count) == ("calculating", 0)
    progress_url = reverse("console:settlement_run_progress", args=[run.pk])
    assert client.get(progress_url).json()["finished"] is False

    worker = _worker({**worker_environment, "DATABASE_URL": database_url()}, queue="settlements")
    try:
        deadline = time.monotonic() + 90
        progress = client.get(progress_url).json()
        while not progress["finished"] and time.monotonic() < deadline:
            assert worker.poll() is None, "the worker exited"
            time.sleep(0.5)
            progress = client.get(progress_url).json()
    finally:
        stop_celery_worker(worker)
    assert progress["finished"] is True, progress
    assert (progress["status"], progress["error"]) == ("calculated", "")
    assert (progress["line_count"], progress["total"]) == (2, "1200.00")
    run = SettlementRun.objects.get(pk=run.pk)
    assert (run.status, run.calculated_by, str(run.total)) == ("calculated", manager, "1200.00")
    assert sorted(str(line.amount) for line in run.lines.all()) == ["400.00", "800.00"]
    page = client.get(reverse("console:settlement_run", args=[run.pk])).content.decode()
    assert "Calculated: 2 lines, total $1,200.00" in page
