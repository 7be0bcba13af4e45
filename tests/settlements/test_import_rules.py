"""Every validation rule of the importer, all or nothing, valid-rows mode and corrections.

These run on whichever database the suite uses (SQLite by default, PostgreSQL in CI), so
both the staging path and, on PostgreSQL, the direct COPY path with its fallback are held to
the same outcomes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from settlements.importer import Coverage
from settlements.models import MeterDataImport, MeterReading, ReadingRevision
from tests.enrollment.factories import MeterFactory
from tests.settlements.test_import_helpers import (
    CANONICAL_HEADER,
    canonical,
    codes,
    import_text,
    stored,
)

pytestmark = pytest.mark.django_db

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:15:00Z"
T2 = "2026-01-01T00:30:00Z"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def meter(db):
    return MeterFactory(meter_id="M1", site__peak_demand_kw=Decimal("100"))


def _report_rows(record: MeterDataImport) -> list[dict[str, str]]:
    with record.error_report.open("rb") as handle:
        return list(csv.DictReader(io.StringIO(handle.read().decode())))


# --- one rule at a time: the file is rejected and nothing is stored -----------------------


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([("M9", T0, 1)], [(2, "unknown_meter")]),
        ([("M1", T0, 1), ("M1", "2026-01-01T00:05:00Z", 1)], [(3, "misaligned_interval")]),
        ([("M1", T0, -0.5)], [(2, "negative_kwh")]),
        ([("M1", T0, "inf")], [(2, "invalid_kwh")]),
        (
            [("M1", T0, 1), ("M1", T1, 2), ("M1", T1, 2)],
            [(3, "duplicate_interval"), (4, "duplicate_interval")],
        ),
        ([("M1", T0, "abc")], [(2, "invalid_kwh")]),
    ],
)  # fmt: skip
def test_a_file_with_one_bad_row_is_rejected_whole(meter, rows, expected):
    good = ("M1", "2026-02-01T00:00:00Z", 1)
    record = import_text(canonical([good, *rows]))
    expected = [(line + 1, code) for line, code in expected]
    assert record.status == "rejected"
    assert [(line, code) for line, code in codes(record)] == expected
    assert record.rows_accepted == 0
    assert MeterReading.objects.count() == 0
    assert record.error_report  # every rejected row, downloadable


def test_an_interval_length_other_than_the_meters_is_rejected(meter):
    record = import_text(canonical([("M1", T0, 1)], minutes=5))
    assert record.status == "rejected"
    assert codes(record) == [(2, "interval_mismatch")]
    assert "15-minute" in record.problems.get().message


def test_hourly_data_must_start_on_the_meters_local_hour():
    hourly = MeterFactory(meter_id="H1", interval_minutes=60)
    record = import_text(canonical([("H1", "2026-01-01T05:30:00Z", 1)], minutes=60))
    assert codes(record) == [(2, "misaligned_interval")]
    assert not MeterReading.objects.filter(meter=hourly).exists()


def test_a_quality_flag_too_long_to_store_is_rejected(meter):
    record = import_text(canonical([("M1", T0, 1)], quality="X" * 40))
    assert codes(record) == [(2, "quality_too_long")]


def test_negative_energy_is_stored_on_a_net_meter():
    net = MeterFactory(meter_id="NET", records_net_energy=True)
    record = import_text(canonical([("NET", T0, -2.5)]))
    assert record.status == "succeeded"
    assert stored(net) == [("2026-01-01T00:00Z", -2.5)]


def test_a_stored_value_that_differs_is_a_conflict_unless_correcting(meter):
    assert import_text(canonical([("M1", T0, 1), ("M1", T1, 2)])).status == "succeeded"
    record = import_text(canonical([("M1", T1, 2), ("M1", T2, 3), ("M1", T0, 9)]))
    assert record.status == "rejected"
    assert codes(record) == [(4, "conflicting_reading")]
    message = record.problems.get().message
    assert "stored as 1 kWh" in message and "9 kWh" in message
    assert stored(meter) == [("2026-01-01T00:00Z", 1.0), ("2026-01-01T00:15Z", 2.0)]


def test_an_overlap_with_equal_values_is_not_a_conflict(meter):
    import_text(canonical([("M1", T0, 1), ("M1", T1, 2)]))
    record = import_text(canonical([("M1", T1, 2), ("M1", T2, 3)]))
    assert record.status == "succeeded", codes(record)
    assert (record.rows_accepted, record.rows_unchanged) == (1, 1)
    assert len(stored(meter)) == 3


def test_a_correction_replaces_values_and_keeps_the_old_ones(meter):
    first = import_text(canonical([("M1", T0, 1), ("M1", T1, 2)]))
    record = import_text(
        canonical([("M1", T0, 1.5), ("M1", T1, 2), ("M1", T2, 3)]), correction=True
    )
    assert record.status == "succeeded", codes(record)
    assert (record.rows_accepted, record.rows_replaced, record.rows_unchanged) == (1, 1, 1)
    assert stored(meter) == [
        ("2026-01-01T00:00Z", 1.5),
        ("2026-01-01T00:15Z", 2.0),
        ("2026-01-01T00:30Z", 3.0),
    ]
    revision = ReadingRevision.objects.get()
    assert (revision.meter, revision.old_kwh, revision.new_kwh) == (meter, 1.0, 1.5)
    assert revision.interval_start == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert revision.data_import == record
    assert first.pk != record.pk


def test_a_correction_with_a_rejected_row_changes_nothing(meter):
    import_text(canonical([("M1", T0, 1)]))
    record = import_text(canonical([("M1", T0, 5), ("M9", T1, 1)]), correction=True)
    assert record.status == "rejected"
    assert stored(meter) == [("2026-01-01T00:00Z", 1.0)]
    assert not ReadingRevision.objects.exists()


# --- all or nothing, and the valid-rows mode ----------------------------------------------


def test_a_rejected_row_at_the_end_of_a_large_file_stores_nothing(meter):
    rows = [
        ("M1", f"2026-01-{1 + i // 96:02d}T{(i % 96) // 4:02d}:{(i % 4) * 15:02d}:00Z", 1)
        for i in range(96 * 20)
    ]
    text = canonical(rows) + "M1,2026-03-01T00:00:00Z,-1,15,\n"
    from settlements import importer

    record = None
    original = importer.parse

    def small_chunks(*args, **kwargs):
        return original(*args, **{**kwargs, "chunk_rows": 100})

    importer.parse = small_chunks
    try:
        record = import_text(text)
    finally:
        importer.parse = original
    assert record.status == "rejected"
    assert codes(record) == [(len(rows) + 2, "negative_kwh")]
    assert record.rows_processed == len(rows) + 1
    assert MeterReading.objects.count() == 0


def test_valid_rows_mode_stores_the_rest_and_reports_every_rejected_row(meter):
    import_text(canonical([("M1", T0, 1)]))
    record = import_text(
        canonical(
            [
                ("M1", T0, 7),  # 2 conflicts with the stored 1
                ("M1", T1, 2),  # 3 fine
                ("M9", T1, 2),  # 4 unknown meter
                ("M1", T2, -1),  # 5 negative
                ("M1", "2026-01-01T00:45:00Z", 4),  # 6 duplicate (with 7)
                ("M1", "2026-01-01T00:45:00Z", 5),  # 7
                ("M1", "2026-01-01T01:00:00Z", "x"),  # 8 not a number (parser)
                ("M1", "2026-01-01T01:15:00Z", 6),  # 9 fine
            ]
        ),
        valid_rows_only=True,
    )
    assert record.status == "succeeded"
    assert (record.rows_accepted, record.rows_rejected) == (2, 6)
    assert stored(meter) == [
        ("2026-01-01T00:00Z", 1.0),
        ("2026-01-01T00:15Z", 2.0),
        ("2026-01-01T01:15Z", 6.0),
    ]
    report = _report_rows(record)
    assert sorted((int(r["line"]), r["code"]) for r in report) == [
        (2, "conflicting_reading"),
        (4, "unknown_meter"),
        (5, "negative_kwh"),
        (6, "duplicate_interval"),
        (7, "duplicate_interval"),
        (8, "invalid_kwh"),
    ]
    assert {r["severity"] for r in report} == {"error"}
    assert next(r for r in report if r["line"] == "4")["meter"] == "M9"


def test_a_file_imported_before_does_nothing_and_says_so(meter):
    text = canonical([("M1", T0, 1), ("M1", T1, 2)])
    first = import_text(text)
    again = import_text(text, correction=True)
    assert again.status == "duplicate"
    assert again.duplicate_of == first
    assert "imported already" in again.message
    assert not again.file
    assert MeterReading.objects.count() == 2


def test_a_file_stored_in_part_may_be_imported_again_for_the_rest(meter):
    text = canonical([("M1", T0, 1), ("M2", T0, 2), ("M1", T1, 3), ("M2", T1, 4)])
    partial = import_text(text, valid_rows_only=True)
    assert partial.status == "succeeded"
    assert (partial.rows_accepted, partial.rows_rejected) == (2, 2)

    other = MeterFactory(meter_id="M2")
    record = import_text(text)
    assert record.status == "succeeded", (record.message, codes(record))
    assert (record.rows_accepted, record.rows_unchanged, record.rows_rejected) == (2, 2, 0)
    assert stored(meter) == [("2026-01-01T00:00Z", 1.0), ("2026-01-01T00:15Z", 3.0)]
    assert stored(other) == [("2026-01-01T00:00Z", 2.0), ("2026-01-01T00:15Z", 4.0)]

    again = import_text(text, valid_rows_only=True)
    assert again.status == "duplicate"
    assert again.duplicate_of == record


def test_a_file_still_missing_a_meter_may_be_imported_in_part_again(meter):
    text = canonical([("M1", T0, 1), ("M2", T0, 2)])
    first = import_text(text, valid_rows_only=True)
    second = import_text(text, valid_rows_only=True)
    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert (second.rows_accepted, second.rows_unchanged, second.rows_rejected) == (0, 1, 1)


def test_a_rejected_file_may_be_imported_again_once_fixed(meter):
    text = canonical([("M1", T0, 1), ("M2", T1, 2)])
    assert import_text(text).status == "rejected"
    MeterFactory(meter_id="M2")
    assert import_text(text).status == "succeeded"


def _utility_download(account: str = "") -> str:
    """A utility download of one hour-by-hour day, 1 kWh an hour (its preamble names
    ``account``, or no account)."""
    preamble = f"Account Number,{account}\n\n" if account else ""
    return (
        preamble
        + "TYPE,DATE,START TIME,END TIME,USAGE,UNITS,COST,NOTES\n"
        + "".join(
            f"Electric usage,2026-01-05,{hour:02d}:00,{hour:02d}:59,1.00,kWh,$0.10,\n"
            for hour in range(24)
        )
    )


def test_a_file_imported_for_the_wrong_meter_can_be_imported_for_the_right_one():
    wrong = MeterFactory(meter_id="M-WRONG", interval_minutes=60)
    right = MeterFactory(meter_id="M-RIGHT", interval_minutes=60)
    text = _utility_download()
    first = import_text(text, meter=wrong)
    assert first.status == "succeeded", first.message

    record = import_text(text, meter=right)
    assert record.status == "succeeded", record.message
    assert record.rows_accepted == 24
    assert len(stored(right)) == 24
    # Nothing is undone automatically: the wrong meter keeps its readings until corrected.
    assert len(stored(wrong)) == 24

    again = import_text(text, meter=right)
    assert again.status == "duplicate"
    assert again.duplicate_of == record
    assert "M-RIGHT" in again.message


def test_a_file_imported_without_a_chosen_meter_differs_from_one_with_a_meter(meter):
    text = canonical([("M1", T0, 1), ("M1", T1, 2)])
    first = import_text(text)
    chosen = import_text(text, meter=meter)
    assert chosen.status == "succeeded"
    assert (chosen.rows_accepted, chosen.rows_unchanged) == (0, 2)
    assert import_text(text).duplicate_of == first
    assert import_text(text, meter=meter).duplicate_of == chosen


def test_the_database_holds_one_success_per_file_and_chosen_meter(meter):
    other = MeterFactory(meter_id="M2")

    def succeeded(chosen) -> MeterDataImport:
        return MeterDataImport.objects.create(
            file_name="readings.csv", sha256="ab" * 32, meter=chosen, status="succeeded"
        )

    succeeded(None)
    succeeded(meter)
    succeeded(other)
    for chosen in (None, meter):
        with pytest.raises(IntegrityError), transaction.atomic():
            succeeded(chosen)


def test_the_database_lets_a_file_stored_in_part_succeed_again(meter):
    def succeeded(error_count: int) -> MeterDataImport:
        return MeterDataImport.objects.create(
            file_name="readings.csv",
            sha256="ab" * 32,
            meter=meter,
            status="succeeded",
            valid_rows_only=True,
            error_count=error_count,
        )

    succeeded(error_count=3)
    succeeded(error_count=1)
    succeeded(error_count=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        succeeded(error_count=0)


def test_a_meter_chosen_at_upload_limits_a_canonical_file_to_it(meter):
    MeterFactory(meter_id="M2")
    record = import_text(canonical([("M1", T0, 1), ("M2", T0, 1)]), meter=meter)
    assert codes(record) == [(3, "other_meter")]


# --- warnings: flagged values, gaps, day counts --------------------------------------------


def test_implausible_values_are_flagged_and_stored(meter):
    # 60 kWh in 15 minutes is 240 kW, above 2 x the site's 100 kW peak.
    record = import_text(canonical([("M1", T0, 60), ("M1", T1, 10)]))
    assert record.status == "succeeded"
    assert record.flagged_count == 1
    assert record.flagged == [
        {
            "meter": "M1",
            "interval_start": "2026-01-01T00:00:00Z",
            "kwh": 60.0,
            "kw": 240.0,
            "peak_kw": 100.0,
            "line": 2,
        }
    ]
    assert len(stored(meter)) == 2


def test_gaps_are_reported_per_meter_and_never_filled(meter):
    MeterFactory(meter_id="M2")
    record = import_text(
        canonical(
            [
                ("M1", T0, 1),
                ("M1", "2026-01-01T01:00:00Z", 1),
                ("M2", T0, 1),
                ("M2", T1, 1),
            ]
        )
    )
    assert record.gap_count == 1
    assert record.gaps == [
        {
            "meter": "M1",
            "start": "2026-01-01T00:15:00+00:00",
            "end": "2026-01-01T01:00:00+00:00",
            "intervals": 3,
        }
    ]
    assert len(stored(meter)) == 2


def test_a_short_local_day_is_a_warning_and_its_rows_are_kept():
    meter = MeterFactory(interval_minutes=60, site__service_account_number="42")
    text = "Account Number,42\n\nTYPE,DATE,START TIME,END TIME,USAGE,UNITS,COST,NOTES\n" + "".join(
        f"Electric usage,2026-01-05,{h:02d}:00,{h:02d}:59,1,kWh,,\n" for h in range(20)
    )
    record = import_text(text, time_zone="America/New_York")
    assert record.status == "succeeded"
    assert [(p.severity, p.code) for p in record.problems.all()] == [
        ("warning", "day_interval_count")
    ]
    assert len(stored(meter)) == 20


def test_a_file_that_cannot_be_read_is_rejected_with_its_reason(meter):
    record = import_text("meter_id,kwh\nM1,1\n", format="canonical")
    assert record.status == "rejected"
    assert codes(record) == [(1, "missing_columns")]
    record = import_text("this is not meter data\n")
    assert record.status == "rejected"
    assert codes(record) == [(0, "unknown_format")]
    assert record.message


def test_the_coverage_structure_grows_both_ways_and_lists_present_intervals():
    coverage = Coverage(15)
    import numpy as np

    coverage.add(np.array([10, 12]))
    coverage.add(np.array([8]))
    coverage.add(np.array([20, 9]))
    numbers = coverage.starts().asi8 // (15 * 60 * 10**9)
    assert numbers.tolist() == [8, 9, 10, 12, 20]
    assert len(coverage.present) == 13


def test_the_header_only_file_succeeds_with_nothing_to_store(meter):
    record = import_text(CANONICAL_HEADER)
    assert record.status == "succeeded"
    assert record.rows_accepted == 0


def test_a_reading_stored_by_another_import_meanwhile_is_still_a_conflict(meter, monkeypatch):
    # Between this import's validation and its merge, another import stores meter M1's
    # T1 as 5 kWh; this file says 2 kWh. The merge must not keep 5 kWh and call the file's
    # row "unchanged": it is a conflict, and the file is rejected as if it had been there.
    from settlements import importer

    assert import_text(canonical([("M1", T0, 1)])).status == "succeeded"
    validate = importer._Importer._validate
    calls = []

    def validate_then_race(self, *, check_stored):
        validate(self, check_stored=check_stored)
        if not calls:
            MeterReading.objects.create(
                meter=meter, interval_start=dt.datetime(2026, 1, 1, 0, 15, tzinfo=dt.UTC), kwh=5
            )
        calls.append(check_stored)

    monkeypatch.setattr(importer._Importer, "_validate", validate_then_race)
    record = import_text(canonical([("M1", T0, 1), ("M1", T1, 2)]))
    assert record.status == "rejected"
    assert codes(record) == [(3, "conflicting_reading")]
    assert "stored as 5 kWh" in record.problems.get().message
    assert stored(meter) == [("2026-01-01T00:00Z", 1.0), ("2026-01-01T00:15Z", 5.0)]
