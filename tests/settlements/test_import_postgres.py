"""The PostgreSQL paths: binary COPY straight into the readings, and the staging fallback."""

from __future__ import annotations

import pytest
from django.db import connection

from settlements import importer
from settlements.models import MeterReading
from tests.enrollment.factories import MeterFactory
from tests.settlements.test_import_helpers import canonical, codes, import_text, stored

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def staged(monkeypatch):
    """Count the imports that went through a staging table."""
    created: list[str] = []
    original = importer._PostgresStage.create

    def create(stage):
        created.append(stage.name)
        original(stage)

    monkeypatch.setattr(importer._PostgresStage, "create", create)
    return created


def test_a_clean_file_is_copied_straight_into_the_readings(staged):
    meter = MeterFactory(meter_id="M1")
    rows = [
        ("M1", f"2026-01-01T{h:02d}:{m:02d}:00Z", h + m / 100)
        for h in range(24)
        for m in (0, 15, 30, 45)
    ]
    record = import_text(canonical(rows, quality="A"))
    assert record.status == "succeeded"
    assert staged == []
    assert record.rows_accepted == 96
    assert len(stored(meter)) == 96
    assert set(MeterReading.objects.values_list("quality", flat=True)) == {"A"}
    with connection.cursor() as cursor:  # no staging table left behind
        cursor.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'mdi_stage_%%'")
        assert cursor.fetchone()[0] == 0


def test_mixed_quality_flags_are_copied_with_their_rows(staged):
    meter = MeterFactory(meter_id="M1")
    text = (
        "meter_id,interval_start,kwh,interval_minutes,quality\n"
        f"M1,{T0},1,15,A\nM1,{T1},2,15,ESTIMATED\nM1,{T2},3,15,\n"
    )
    assert import_text(text).status == "succeeded"
    assert staged == []
    assert list(
        MeterReading.objects.filter(meter=meter)
        .order_by("interval_start")
        .values_list("quality", flat=True)
    ) == ["A", "ESTIMATED", ""]


def test_an_interval_given_twice_falls_back_to_staging_which_names_both_lines(staged):
    MeterFactory(meter_id="M1")
    record = import_text(canonical([("M1", T0, 1), ("M1", T1, 2), ("M1", T1, 3)]))
    assert record.status == "rejected"
    assert len(staged) == 1
    assert codes(record) == [(3, "duplicate_interval"), (4, "duplicate_interval")]
    assert MeterReading.objects.count() == 0


def test_a_file_overlapping_stored_readings_is_merged_through_staging(staged):
    meter = MeterFactory(meter_id="M1")
    import_text(canonical([("M1", T0, 1), ("M1", T1, 2)]))
    assert staged == []
    record = import_text(canonical([("M1", T1, 2), ("M1", T2, 3)]))
    assert record.status == "succeeded"
    assert len(staged) == 1
    assert (record.rows_accepted, record.rows_unchanged) == (1, 1)
    assert len(stored(meter)) == 3


def test_the_meters_written_are_locked_as_a_foreign_key_check_would(staged):
    MeterFactory(meter_id="M1")
    statements: list[str] = []
    with connection.execute_wrapper(
        lambda execute, sql, *a: statements.append(sql) or execute(sql, *a)
    ):
        assert import_text(canonical([("M1", T0, 1)])).status == "succeeded"
    assert any("FOR KEY SHARE" in sql for sql in statements)
