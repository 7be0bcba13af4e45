"""The REST upload for meter data management systems: status codes, permissions, token auth."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from settlements.models import MeterReading
from tests.enrollment.factories import MeterFactory
from tests.settlements.test_import_helpers import canonical

pytestmark = pytest.mark.django_db
URL = "/api/meter-data-imports/"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def _file(text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("mdms.csv", text.encode(), "text/csv")


def test_an_mdms_uploads_with_a_token_and_gets_201_then_200_for_the_same_file(manager):
    meter = MeterFactory(meter_id="M1")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=manager).key}")
    text = canonical([("M1", "2026-01-01T00:00:00Z", 1), ("M1", "2026-01-01T00:15:00Z", 2)])
    created = api.post(URL, {"file": _file(text)}, format="multipart")
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "succeeded"
    assert created.json()["rows_accepted"] == 2
    again = api.post(URL, {"file": _file(text), "correction": "true"}, format="multipart")
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert again.json()["duplicate_of"] == created.json()["id"]
    assert MeterReading.objects.filter(meter=meter).count() == 2
    listed = api.get(URL).json()
    assert [item["status"] for item in listed["results"]] == ["duplicate", "succeeded"]


def test_a_rejected_file_answers_400_with_its_problems(manager):
    MeterFactory(meter_id="M1")
    api = APIClient()
    api.force_authenticate(manager)
    response = api.post(
        URL,
        {"file": _file(canonical([("M1", "2026-01-01T00:00:00Z", -1)])), "meter": "M1"},
        format="multipart",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "rejected"
    assert [(p["line"], p["code"]) for p in body["problems"]] == [(2, "negative_kwh")]
    assert body["error_report_url"].endswith(f"/console/meterdata/{body['id']}/errors.csv")


def test_invalid_options_answer_400_without_an_import(manager):
    api = APIClient()
    api.force_authenticate(manager)
    response = api.post(
        URL, {"file": _file("x"), "meter": "NOPE", "format": "pdf"}, format="multipart"
    )
    assert response.status_code == 400
    assert set(response.json()) == {"meter", "format"}


def test_participants_and_billing_cannot_upload(participant_a, billing_clerk):
    api = APIClient()
    api.force_authenticate(participant_a)
    assert api.post(URL, {"file": _file("x")}, format="multipart").status_code == 403
    assert api.get(URL).status_code == 403
    api.force_authenticate(billing_clerk)
    assert api.get(URL).status_code == 200
    assert api.post(URL, {"file": _file("x")}, format="multipart").status_code == 403
    assert APIClient().post(URL, {"file": _file("x")}, format="multipart").status_code == 401
