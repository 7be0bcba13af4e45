"""``manage.py import_readings``: progress on stderr, a summary, and the exit status."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from settlements.models import MeterDataImport, MeterReading
from tests.enrollment.factories import MeterFactory
from tests.settlements.test_import_helpers import canonical

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def _run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_readings", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_imports_files_and_prints_a_summary_and_progress(tmp_path):
    MeterFactory(meter_id="M1")
    first = tmp_path / "a.csv"
    first.write_text(
        canonical([("M1", "2026-01-01T00:00:00Z", 1), ("M1", "2026-01-01T01:00:00Z", 2)])
    )
    out, err = _run(str(first))
    assert "a.csv: Succeeded" in out
    assert "2 accepted" in out
    assert "1 gap(s)" in out
    assert "gap: meter M1 2026-01-01T00:15:00+00:00 to 2026-01-01T01:00:00+00:00" in out
    assert "100%" in err and "2 rows" in err
    assert MeterReading.objects.count() == 2

    out, _ = _run(str(first))
    assert "a.csv: Duplicate" in out
    assert MeterDataImport.objects.count() == 2


def test_a_rejected_file_lists_its_errors_and_exits_non_zero(tmp_path):
    MeterFactory(meter_id="M1")
    path = tmp_path / "bad.csv"
    path.write_text(
        canonical([("M1", "2026-01-01T00:00:00Z", -1), ("M7", "2026-01-01T00:15:00Z", 1)])
    )
    with pytest.raises(CommandError) as raised:
        _run(str(path))
    assert raised.value.returncode == 1
    record = MeterDataImport.objects.get()
    assert record.status == "rejected"
    assert MeterReading.objects.count() == 0


def test_the_options_reach_the_import(tmp_path):
    meter = MeterFactory(meter_id="M1", interval_minutes=60, site__service_account_number="77")
    path = tmp_path / "utility.csv"
    path.write_text(
        "TYPE,DATE,START TIME,END TIME,USAGE,UNITS,COST,NOTES\n"
        + "".join(f"Electric usage,2026-01-05,{h:02d}:00,{h:02d}:59,2,kWh,,\n" for h in range(24))
    )
    out, _ = _run(str(path), "--meter", "M1", "--tz", "America/Chicago", "--valid-rows")
    record = MeterDataImport.objects.get()
    assert (record.meter, record.time_zone, record.valid_rows_only) == (
        meter,
        "America/Chicago",
        True,
    )
    first = MeterReading.objects.filter(meter=meter).order_by("interval_start").first()
    assert first.interval_start.isoformat() == "2026-01-05T06:00:00+00:00"  # Chicago midnight

    path.write_text(canonical([("M1", "2026-01-05T06:00:00Z", 3)], minutes=60))
    out, _ = _run(str(path), "--correction")
    assert "1 replaced" in out


def test_an_unknown_meter_option_is_refused():
    with pytest.raises(CommandError, match="no meter"):
        _run("x.csv", "--meter", "nope")
