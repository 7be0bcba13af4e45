"""The billing CSV: its columns and values, byte-identical repeats, restatements exporting
their differences only, and the record of every hand-over."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import importlib
import io
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.exceptions import PermissionDenied
from django.utils.text import slugify

from settlements import billing
from settlements.billing import billing_export_create
from settlements.models import BillingExport, SettlementRun
from settlements.runs import (
    SettlementError,
    settlement_run_approve,
    settlement_run_calculate,
    settlement_run_create,
    settlement_run_restate,
)
from settlements.runs.parties import billed_parties_read
from tests.settlements.settlement_helpers import (
    JULY,
    approved,
    calculated,
    enroll,
    event,
    make_program,
    participate,
    perform,
)


def parsed(export: BillingExport) -> tuple[list[str], list[dict[str, str]]]:
    """The export's header and rows, read back with the csv module."""
    content = bytes(export.content)
    reader = csv.reader(io.StringIO(content.decode("utf-8"), newline=""))
    header, *rows = list(reader)
    return header, [dict(zip(header, row, strict=True)) for row in rows]


@pytest.fixture
def july(july_program, manager, billing_clerk):
    """July v1, approved: sites A and B (100 kW each) in the event of July 14 at 14:00
    New York time (18:00 UTC). A: 80 kW, 160 kWh → capacity $640.00, energy $80.00;
    B: 50 kW, 100 kWh → capacity $400.00, energy $50.00."""
    a, b = enroll(july_program, "100"), enroll(july_program, "100")
    the_event = event(july_program, dt.date(2026, 7, 14))
    part_a = participate(the_event, a, average_kw="80", kwh="160")
    participate(the_event, b, average_kw="50", kwh="100")
    run = approved(calculated(july_program, by=manager), by=billing_clerk)
    return {"run": run, "a": a, "b": b, "event": the_event, "part_a": part_a}


def test_the_csv_has_the_documented_columns_and_one_row_per_line(july, billing_clerk):
    run, a = july["run"], july["a"]

    export = billing_export_create(run=run, by=billing_clerk)

    header, rows = parsed(export)
    assert header == list(billing.COLUMNS)
    lines = list(run.lines.order_by("sequence"))
    assert export.row_count == len(rows) == len(lines) == 4
    for row, line in zip(rows, lines, strict=True):
        assert row["line_id"] == str(line.pk)
        assert row["line_sequence"] == str(line.sequence)
        assert row["line_kind"] == line.kind
        assert Decimal(row["amount"]) == line.amount
        assert row["currency"] == "USD"
    assert [row["amount"] for row in rows] == ["640.00", "80.00", "400.00", "50.00"]
    assert sum(Decimal(row["amount"]) for row in rows) == run.total == Decimal("1170.00")
    energy = rows[1]
    site = a.site
    assert energy == {
        "run_id": str(run.pk),
        "run_version": "1",
        "restates_run_id": "",
        "program": run.program.name,
        "period_kind": "month",
        "period_start": "2026-07-01",
        "period_end": "2026-07-31",
        "billing_account": site.organization.billing_account_number,
        "organization": site.organization.legal_name,
        "site": site.name,
        "service_account": site.service_account_number,
        "line_id": energy["line_id"],
        "line_sequence": "2",
        "line_kind": "energy",
        "event_id": str(july["event"].pk),
        "event_start": "2026-07-14T18:00:00Z",
        "reference": "",
        "quantity": "160",
        "unit": "kWh",
        "rate": "0.5",
        "amount": "80.00",
        "currency": "USD",
    }
    assert rows[0]["event_id"] == rows[0]["event_start"] == ""
    assert (rows[0]["quantity"], rows[0]["unit"], rows[0]["rate"]) == ("100", "kW-month", "8")


def test_each_export_is_recorded_with_its_sha256_rows_who_and_when(july, billing_clerk):
    run = july["run"]

    export = billing_export_create(run=run, by=billing_clerk)

    stored = BillingExport.objects.get(pk=export.pk)
    content = bytes(stored.content)
    assert stored.sha256 == hashlib.sha256(content).hexdigest()
    assert stored.row_count == 4
    assert stored.exported_by == billing_clerk and stored.exported_at is not None
    assert stored.file_name == f"settlement-{slugify(run.program.name)}-20260701-20260731-v1.csv"
    # UTF-8 without a byte order mark, "\n" line endings, the last row ended too.
    assert not content.startswith(b"\xef\xbb\xbf")
    assert b"\r" not in content and content.endswith(b"\n")
    assert content.count(b"\n") == 5  # header + 4 rows
    run.refresh_from_db()
    assert run.status == SettlementRun.Status.EXPORTED
    assert run.exported_at >= stored.exported_at


def test_exporting_the_same_run_twice_gives_byte_identical_files(july, billing_clerk, manager):
    run = july["run"]
    first = billing_export_create(run=run, by=billing_clerk)
    run.refresh_from_db()
    first_exported_at = run.exported_at

    second = billing_export_create(run=run, by=manager)

    assert bytes(second.content) == bytes(first.content)
    assert second.sha256 == first.sha256
    assert (second.row_count, second.file_name) == (first.row_count, first.file_name)
    assert second.pk != first.pk and second.exported_by == manager
    assert BillingExport.objects.filter(run=run).count() == 2
    run.refresh_from_db()
    assert run.status == SettlementRun.Status.EXPORTED
    assert run.exported_at == first_exported_at  # the first hand-over's time


def _rename(site, *, account: str, legal_name: str, site_name: str, service_account: str):
    """Master data changed after the approval: the site's organization gets another billing
    account and legal name, the site another name and service account."""
    organization = site.organization
    organization.billing_account_number, organization.legal_name = account, legal_name
    organization.save()
    site.name, site.service_account_number = site_name, service_account
    site.save()


def test_the_approval_records_who_the_lines_bill(july):
    run, a, b = july["run"], july["a"].site, july["b"].site

    assert run.billed_parties == {
        "program": run.program.name,
        "organizations": {
            str(site.organization_id): {
                "legal_name": site.organization.legal_name,
                "billing_account_number": site.organization.billing_account_number,
            }
            for site in sorted((a, b), key=lambda site: site.organization_id)
        },
        "sites": {
            str(site.pk): {"name": site.name, "service_account_number": site.service_account_number}
            for site in sorted((a, b), key=lambda site: site.pk)
        },
    }
    assert SettlementRun.objects.get(pk=run.pk).billed_parties == run.billed_parties


def test_the_record_is_read_in_two_queries_whatever_the_number_of_sites(
    july_program, manager, django_assert_num_queries
):
    the_event = event(july_program, dt.date(2026, 7, 14))
    for _ in range(5):
        participate(the_event, enroll(july_program, "100"), average_kw="50")
    run = SettlementRun.objects.select_related("program").get(
        pk=calculated(july_program, by=manager).pk
    )

    with django_assert_num_queries(2):
        parties = billed_parties_read(run)

    assert len(parties.organizations) == len(parties.sites) == 5


def test_a_re_export_after_the_accounts_changed_is_byte_identical_and_bills_the_approved_ones(
    july, billing_clerk
):
    run, site = july["run"], july["a"].site
    approved_for = (
        site.organization.billing_account_number,
        site.organization.legal_name,
        site.name,
        site.service_account_number,
    )
    program_name = run.program.name
    first = billing_export_create(run=run, by=billing_clerk)

    _rename(
        site,
        account="BA-NEW",
        legal_name="Acme Renamed Holdings",
        site_name="Renamed Plant",
        service_account="SA-NEW",
    )
    run.program.name = "Winter Reliability"
    run.program.save()
    second = billing_export_create(run=SettlementRun.objects.get(pk=run.pk), by=billing_clerk)

    assert bytes(second.content) == bytes(first.content)
    assert second.sha256 == first.sha256 and second.file_name == first.file_name
    _, rows = parsed(second)
    a_rows = [row for row in rows if row["service_account"] == approved_for[3]]
    assert len(a_rows) == 2
    for row in a_rows:
        assert (
            row["billing_account"],
            row["organization"],
            row["site"],
            row["service_account"],
        ) == approved_for
    assert {row["program"] for row in rows} == {program_name}
    assert not any("NEW" in value or "Renamed" in value for row in rows for value in row.values())


def test_a_change_before_the_approval_is_what_the_approval_records(
    july_program, manager, billing_clerk
):
    enrollment = enroll(july_program, "100")
    participate(event(july_program, dt.date(2026, 7, 14)), enrollment, average_kw="80")
    run = calculated(july_program, by=manager)
    _rename(
        enrollment.site,
        account="BA-NEW",
        legal_name="Acme Renamed",
        site_name="New Plant",
        service_account="SA-NEW",
    )

    _, rows = parsed(billing_export_create(run=approved(run, by=billing_clerk), by=billing_clerk))

    assert {
        (row["billing_account"], row["organization"], row["site"], row["service_account"])
        for row in rows
    } == {("BA-NEW", "Acme Renamed", "New Plant", "SA-NEW")}


def test_the_migration_records_the_runs_locked_before_it_from_the_current_rows(
    july, manager, billing_clerk
):
    migration = importlib.import_module("settlements.migrations.0010_settlement_run_billed_parties")
    v1 = july["run"]
    perform(july["part_a"], average_kw="90", kwh="180")
    v2 = settlement_run_approve(run=settlement_run_restate(run=v1, by=manager), by=billing_clerk)
    draft = settlement_run_create(
        program=make_program(capacity_rate="5"), period_kind="month", period_start=JULY, by=manager
    )
    # As before the migration: no record on any run.
    SettlementRun.objects.update(billed_parties={})
    _rename(
        july["b"].site,
        account="BA-LATER",
        legal_name="Birch Later",
        site_name="Later Mill",
        service_account="SA-LATER",
    )

    migration.billed_parties_backfill(apps, None)

    for run in (v1, v2):
        run = SettlementRun.objects.select_related("program").get(pk=run.pk)
        assert run.billed_parties == billed_parties_read(run).to_dict()
    v1.refresh_from_db()
    assert v1.billed_parties["sites"][str(july["b"].site_id)] == {
        "name": "Later Mill",
        "service_account_number": "SA-LATER",
    }
    assert len(SettlementRun.objects.get(pk=v2.pk).billed_parties["sites"]) == 1  # A's only
    assert SettlementRun.objects.get(pk=draft.pk).billed_parties == {}
    # The export reads the record from now on.
    first = billing_export_create(run=v1, by=billing_clerk)
    _rename(
        july["b"].site,
        account="BA-3",
        legal_name="Birch 3",
        site_name="Mill 3",
        service_account="SA-3",
    )
    assert bytes(billing_export_create(run=v1, by=billing_clerk).content) == bytes(first.content)


def test_rows_follow_the_run_line_order_whatever_the_creation_order(
    july_program, manager, billing_clerk
):
    enrollments = [enroll(july_program, "100") for _ in range(3)]
    events = [event(july_program, dt.date(2026, 7, day)) for day in (28, 7, 14)]
    for enrollment in reversed(enrollments):
        for the_event in events:
            participate(the_event, enrollment, average_kw="50", kwh="100")
    run = approved(calculated(july_program, by=manager), by=billing_clerk)

    _, rows = parsed(billing_export_create(run=run, by=billing_clerk))

    assert [int(row["line_sequence"]) for row in rows] == list(range(1, 13))
    expected = [
        (str(line.pk), line.site.service_account_number)
        for line in run.lines.select_related("site").order_by("sequence")
    ]
    assert [(row["line_id"], row["service_account"]) for row in rows] == expected
    starts = [row["event_start"] for row in rows if row["service_account"] == expected[0][1]]
    # Per site: capacity first, then its events in time order.
    assert starts == ["", "2026-07-07T18:00:00Z", "2026-07-14T18:00:00Z", "2026-07-28T18:00:00Z"]


def test_a_restatement_exports_only_its_difference_lines(july, billing_clerk, manager):
    v1 = july["run"]
    billing_export_create(run=v1, by=billing_clerk)
    # Late meter data for A: 90 kW, 180 kWh → capacity $720.00, energy $90.00.
    perform(july["part_a"], average_kw="90", kwh="180")
    v2 = settlement_run_approve(run=settlement_run_restate(run=v1, by=manager), by=billing_clerk)

    export = billing_export_create(run=v2, by=billing_clerk)

    _, rows = parsed(export)
    assert export.row_count == 2
    assert [
        (row["run_version"], row["restates_run_id"], row["line_kind"], row["quantity"])
        for row in rows
    ] == [("2", str(v1.pk), "capacity", "0"), ("2", str(v1.pk), "energy", "20")]
    assert [row["amount"] for row in rows] == ["80.00", "10.00"]
    assert {row["service_account"] for row in rows} == {july["a"].site.service_account_number}
    assert export.file_name.endswith("-v2.csv")


def test_a_version_superseded_before_export_still_reaches_billing(july, billing_clerk, manager):
    """The restatement holds only differences, so the restated version must be exportable
    too, or billing would never receive its lines."""
    v1 = july["run"]
    perform(july["part_a"], average_kw="90", kwh="180")
    v2 = settlement_run_approve(run=settlement_run_restate(run=v1, by=manager), by=billing_clerk)
    v1.refresh_from_db()
    assert v1.status == SettlementRun.Status.SUPERSEDED and v1.exported_at is None

    first = billing_export_create(run=v1, by=billing_clerk)
    second = billing_export_create(run=v2, by=billing_clerk)

    _, v1_rows = parsed(first)
    _, v2_rows = parsed(second)
    # Billing receives $1,170.00 + $90.00: A's corrected $720.00 + $90.00, B's $450.00.
    assert sum(Decimal(row["amount"]) for row in v1_rows + v2_rows) == Decimal("1260.00")
    v1.refresh_from_db()
    assert v1.status == SettlementRun.Status.SUPERSEDED
    assert v1.exported_at is not None


def test_negative_and_half_up_amounts_keep_two_decimals(db, manager, billing_clerk):
    program = make_program(capacity_rate="8", energy_rate="0.125")
    enrollment = enroll(program, "100")
    the_event = event(program, dt.date(2026, 7, 14))
    participation = participate(the_event, enrollment, average_kw="100", kwh="100.2")
    v1 = approved(calculated(program, by=manager), by=billing_clerk)
    # Capacity 100 × $8 × 1.0 = $800.00; energy 100.2 kWh × $0.125 = $12.525 → $12.53.
    _, rows = parsed(billing_export_create(run=v1, by=billing_clerk))
    assert [(row["quantity"], row["rate"], row["amount"]) for row in rows] == [
        ("100", "8", "800.00"),
        ("100.2", "0.125", "12.53"),
    ]
    # Corrected to 70 kW, 70 kWh: capacity $560.00 (-$240.00), energy $8.75 (-$3.78).
    perform(participation, average_kw="70", kwh="70")
    v2 = settlement_run_approve(run=settlement_run_restate(run=v1, by=manager), by=billing_clerk)

    _, rows = parsed(billing_export_create(run=v2, by=billing_clerk))

    assert [(row["quantity"], row["amount"]) for row in rows] == [
        ("0", "-240.00"),
        ("-30.2", "-3.78"),
    ]


def test_a_run_that_is_not_approved_cannot_be_exported(july_program, manager, billing_clerk):
    enroll(july_program, "100")
    draft = settlement_run_create(
        program=july_program, period_kind="month", period_start=JULY, by=manager
    )
    with pytest.raises(SettlementError, match="is draft; only approved runs are exported"):
        billing_export_create(run=draft, by=billing_clerk)

    run = settlement_run_calculate(run=draft, by=manager)
    with pytest.raises(SettlementError, match="is calculated; only approved runs are exported"):
        billing_export_create(run=run, by=billing_clerk)

    assert not BillingExport.objects.exists()
    run.refresh_from_db()
    assert (run.status, run.exported_at) == (SettlementRun.Status.CALCULATED, None)


def test_only_billing_and_program_managers_export(july, auditor, participant_a):
    for outsider in (auditor, participant_a):
        with pytest.raises(PermissionDenied):
            billing_export_create(run=july["run"], by=outsider)
    assert not BillingExport.objects.exists()
    assert SettlementRun.objects.get(pk=july["run"].pk).status == SettlementRun.Status.APPROVED
