"""The settlement API for billing systems: list runs, fetch exports byte for byte."""

from __future__ import annotations

import hashlib

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from settlements.billing import billing_export_create
from tests.factories import staff_user
from tests.settlements.settlement_helpers import calculated, enroll, make_program
from tests.settlements.statement_cast import make_cast, member


@pytest.fixture
def cast(july_program):
    return make_cast(july_program)


def _token_client(user) -> APIClient:
    """A billing system's client: token authentication, no session."""
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return api


def test_a_billing_system_lists_runs_and_downloads_an_export_byte_for_byte(cast):
    export = billing_export_create(run=cast.run, by=cast.clerk)
    other = make_program(capacity_rate="5")
    enroll(other, "20")
    draft = calculated(other)
    api = _token_client(staff_user("Billing"))

    listing = api.get("/api/settlement-runs/")

    assert listing.status_code == 200
    runs = {row["id"]: row for row in listing.json()["results"]}
    assert set(runs) == {cast.run.pk, draft.pk}
    row = runs[cast.run.pk]
    assert (row["status"], row["version"], row["total"], row["line_count"]) == (
        "exported",
        1,
        "1150.00",  # Acme $700.00 + Birch $450.00
        5,  # Acme: capacity and two energy lines; Birch: capacity and one
    )
    assert (row["period_start"], row["period_end"]) == ("2026-07-01", "2026-07-31")
    assert row["approved_by"] == cast.clerk.username
    filtered = api.get("/api/settlement-runs/", {"status": "exported"}).json()["results"]
    assert [row["id"] for row in filtered] == [cast.run.pk]
    assert api.get("/api/settlement-runs/", {"status": "nonsense"}).status_code == 400

    detail = api.get(f"/api/settlement-runs/{cast.run.pk}/").json()
    # Capacity $560.00 + $400.00; energy $80.00 + $60.00 + $50.00.
    assert detail["totals_by_kind"] == [
        {"kind": "capacity", "lines": 2, "amount": "960.00"},
        {"kind": "energy", "lines": 3, "amount": "190.00"},
    ]

    exports = api.get(f"/api/settlement-runs/{cast.run.pk}/exports/").json()
    assert [(item["id"], item["sha256"], item["row_count"]) for item in exports] == [
        (export.pk, export.sha256, 5)
    ]
    download = api.get(exports[0]["csv_url"])

    assert download.status_code == 200
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert download["Content-Disposition"] == f'attachment; filename="{export.file_name}"'
    assert download.content == bytes(export.content)
    assert hashlib.sha256(download.content).hexdigest() == export.sha256
    assert download["X-Content-SHA256"] == export.sha256
    lines = download.content.decode("utf-8").splitlines()
    assert len(lines) == 1 + 5 and lines[0].startswith("run_id,run_version,")


def test_the_export_list_serves_every_hand_over(cast):
    first = billing_export_create(run=cast.run, by=cast.clerk)
    second = billing_export_create(run=cast.run, by=cast.clerk)
    api = _token_client(staff_user("Program managers"))

    response = api.get("/api/billing-exports/")

    assert response.status_code == 200
    rows = response.json()["results"]
    assert [row["id"] for row in rows] == [second.pk, first.pk]
    assert {row["sha256"] for row in rows} == {first.sha256}  # the same bytes twice
    assert "content" not in rows[0]
    one = api.get(f"/api/billing-exports/{first.pk}/csv/")
    assert one.content == bytes(first.content)


@pytest.mark.parametrize("who", ["participant", "Auditors", "anonymous", "bad token"])
def test_participants_auditors_and_strangers_are_refused(cast, who):
    export = billing_export_create(run=cast.run, by=cast.clerk)
    if who == "anonymous":
        api = APIClient()
    elif who == "bad token":
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    else:
        api = _token_client(member(cast.acme) if who == "participant" else staff_user(who))

    answers = [
        api.get(url).status_code
        for url in (
            "/api/settlement-runs/",
            f"/api/settlement-runs/{cast.run.pk}/",
            f"/api/settlement-runs/{cast.run.pk}/exports/",
            "/api/billing-exports/",
            f"/api/billing-exports/{export.pk}/csv/",
        )
    ]

    # Unknown callers are asked to authenticate (401, with the Token scheme); known users
    # without the role are refused (403).
    expected = 401 if who in ("anonymous", "bad token") else 403
    assert answers == [expected] * 5
    api_posts = api.post("/api/billing-exports/", {"run": cast.run.pk})
    assert api_posts.status_code == expected  # refused before the method is even looked at


def test_the_api_is_read_only_even_for_billing(cast):
    api = _token_client(staff_user("Billing"))

    assert api.post("/api/billing-exports/", {"run": cast.run.pk}).status_code == 405
    assert api.delete(f"/api/settlement-runs/{cast.run.pk}/").status_code == 405
    assert api.patch(f"/api/settlement-runs/{cast.run.pk}/", {"status": "draft"}).status_code == (
        405
    )
    cast.run.refresh_from_db()
    assert cast.run.status == "approved"
