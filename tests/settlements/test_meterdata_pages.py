"""The console upload page, import detail, progress and error report, and the data quality
pages (console for staff, portal for participants' own meters only)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from settlements.models import MeterDataImport, MeterReading
from tests.enrollment.factories import EnrollmentFactory, MeterFactory, ProgramFactory, SiteFactory
from tests.settlements.test_import_helpers import canonical, import_text

pytestmark = pytest.mark.django_db
NY = "America/New_York"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def meter_a(organization_a):
    site = SiteFactory(organization=organization_a, peak_demand_kw=Decimal("100"))
    EnrollmentFactory(site=site, program=ProgramFactory(time_zone=NY))
    return MeterFactory(site=site, meter_id="A-1")


@pytest.fixture
def meter_b(organization_b):
    return MeterFactory(site=SiteFactory(organization=organization_b), meter_id="B-1")


def _upload(client, content: str, **options) -> object:
    data = {"file": SimpleUploadedFile("readings.csv", content.encode(), "text/csv"), **options}
    return client.post(reverse("console:meterdata_imports"), data)


def test_a_manager_uploads_a_file_and_lands_on_its_outcome(client, manager, meter_a):
    client.force_login(manager)
    response = _upload(client, canonical([("A-1", "2026-01-01T00:00:00Z", 1.5)]))
    record = MeterDataImport.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("console:meterdata_import", args=[record.pk])
    assert record.status == "succeeded" and record.created_by == manager
    page = client.get(response.url)
    assert page.status_code == 200
    assert b"1 readings stored" in page.content or b"readings stored" in page.content
    listing = client.get(reverse("console:meterdata_imports"))
    assert b"readings.csv" in listing.content and manager.username.encode() in listing.content


def test_upload_options_are_validated(client, manager, meter_a):
    client.force_login(manager)
    response = _upload(client, "x", meter="NOPE", time_zone="Mars/Base")
    assert response.status_code == 200
    assert b"No meter has the id" in response.content
    assert b"is not an IANA time zone" in response.content
    assert not MeterDataImport.objects.exists()


def test_a_large_upload_is_queued_for_the_worker(
    client, manager, meter_a, monkeypatch, django_capture_on_commit_callbacks
):
    from settlements import services

    sent: list[tuple] = []
    monkeypatch.setattr(services, "BACKGROUND_THRESHOLD_BYTES", 10)
    monkeypatch.setattr(
        "settlements.tasks.meter_data_import_task.apply_async",
        lambda args, queue: sent.append((args, queue)),
    )
    client.force_login(manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = _upload(client, canonical([("A-1", "2026-01-01T00:00:00Z", 1.5)]))
    record = MeterDataImport.objects.get()
    assert record.status == "pending"
    assert sent == [((record.pk,), "meterdata")]
    detail = client.get(response.url)
    assert b"import-progress" in detail.content and b"progress.json" in detail.content
    assert b"js/progress.js" in detail.content
    progress = client.get(reverse("console:meterdata_import_progress", args=[record.pk])).json()
    assert progress["status"] == "pending" and progress["finished"] is False
    assert progress["text"] == "0 rows read, 0% (Pending)"
    assert progress["bytes_total"] == record.file_size


def test_the_detail_page_lists_problems_and_serves_the_error_report(client, manager, meter_a):
    record = import_text(
        canonical([("A-1", "2026-01-01T00:00:00Z", -4), ("Z-9", "2026-01-01T00:15:00Z", 1)])
    )
    client.force_login(manager)
    page = client.get(reverse("console:meterdata_import", args=[record.pk]))
    assert b"negative_kwh" in page.content and b"unknown_meter" in page.content
    report = client.get(reverse("console:meterdata_import_errors", args=[record.pk]))
    assert report.status_code == 200
    assert report["Content-Type"] == "text/csv"
    body = b"".join(report.streaming_content).decode()
    assert body.splitlines()[0] == "line,severity,code,message,meter,interval_start,kwh"
    assert "2,error,negative_kwh" in body and "3,error,unknown_meter" in body


def test_participants_and_auditors_cannot_upload(
    client, participant_a, auditor, billing_clerk, meter_a
):
    client.force_login(participant_a)
    assert _upload(client, "x").status_code == 403
    client.force_login(auditor)
    assert client.get(reverse("console:meterdata_imports")).status_code == 403
    client.force_login(billing_clerk)
    assert client.get(reverse("console:meterdata_imports")).status_code == 200
    assert _upload(client, "x").status_code == 403
    assert not MeterDataImport.objects.exists()


def test_the_history_page_needs_few_queries(
    client, manager, meter_a, django_assert_max_num_queries
):
    for day in range(1, 6):
        import_text(canonical([("A-1", f"2026-01-0{day}T00:00:00Z", 1)]))
    client.force_login(manager)
    with django_assert_max_num_queries(12):
        assert client.get(reverse("console:meterdata_imports")).status_code == 200


# --- data quality ------------------------------------------------------------------------


def _day_of_readings(meter, day: dt.date, skip: int = 0) -> None:
    """Store every quarter-hour of local day ``day`` in New York, minus the last ``skip``."""
    import pandas as pd

    starts = pd.date_range(
        pd.Timestamp(day, tz=NY),
        pd.Timestamp(day + dt.timedelta(days=1), tz=NY),
        freq="15min",
        inclusive="left",
    )
    MeterReading.objects.bulk_create(
        MeterReading(meter=meter, interval_start=start.to_pydatetime(), kwh=5.0)
        for start in starts[: len(starts) - skip]
    )


def test_the_quality_page_counts_dst_days_gaps_and_flags(client, participant_a, meter_a):
    _day_of_readings(meter_a, dt.date(2026, 3, 8))  # 92 quarter-hours
    _day_of_readings(meter_a, dt.date(2026, 3, 9), skip=4)  # one hour missing
    _day_of_readings(meter_a, dt.date(2026, 11, 1))  # 100 quarter-hours
    MeterReading.objects.filter(
        meter=meter_a, interval_start=dt.datetime(2026, 3, 9, 5, tzinfo=dt.UTC)
    ).update(kwh=80.0)  # 320 kW
    from settlements.selectors import meter_quality

    spring = meter_quality(meter_a, last_day=dt.date(2026, 3, 9), days=2)
    assert [(d.date.day, d.present, d.expected) for d in spring.days] == [(8, 92, 92), (9, 92, 96)]
    assert [(g.start.isoformat(), g.intervals) for g in spring.gaps] == [
        ("2026-03-10T03:00:00+00:00", 4)
    ]
    assert spring.flagged_count == 1 and spring.flagged[0].kw == 320.0
    fall = meter_quality(meter_a, last_day=dt.date(2026, 11, 1), days=1)
    assert [(d.present, d.expected) for d in fall.days] == [(100, 100)]

    client.force_login(participant_a)
    url = reverse("portal:meter_quality", args=[meter_a.pk])
    page = client.get(url, {"until": "2026-03-09", "days": 14})
    assert page.status_code == 200
    assert b"92" in page.content and b"320.0" in page.content
    assert client.get(reverse("portal:meter_list")).content.count(b"A-1") == 1


def test_a_participant_gets_404_for_another_organizations_meter(client, participant_a, meter_b):
    client.force_login(participant_a)
    assert client.get(reverse("portal:meter_quality", args=[meter_b.pk])).status_code == 404
    assert client.get(reverse("portal:meter_quality", args=[999999])).status_code == 404
    assert b"B-1" not in client.get(reverse("portal:meter_list")).content


def test_a_manager_sees_every_meters_quality_in_the_console(client, manager, meter_a, meter_b):
    client.force_login(manager)
    for meter in (meter_a, meter_b):
        url = reverse("console:meterdata_meter_quality", args=[meter.pk])
        assert client.get(url).status_code == 200
    listing = client.get(reverse("console:meterdata_meters"))
    assert b"A-1" in listing.content and b"B-1" in listing.content
