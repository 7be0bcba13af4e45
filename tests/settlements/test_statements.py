"""Participant statements in the portal: what each member sees, the page, the CSV and the PDF."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dr_platform.models import Membership
from dr_platform.roles import BILLING
from settlements.billing import billing_export_create
from settlements.models import SettlementRun
from settlements.runs import settlement_run_restate
from settlements.runs.parties import BilledOrganization, BilledSite
from settlements.statements import (
    rate_text,
    statement_build,
    statement_csv,
    statement_later_versions,
    statement_pdf,
)
from tests.factories import staff_user
from tests.settlements.settlement_helpers import (
    approved,
    calculated,
    enroll,
    make_program,
    perform,
)
from tests.settlements.statement_cast import (
    assert_phone_ready,
    make_cast,
    member,
    pdf_text,
)


@pytest.fixture
def cast(july_program):
    return make_cast(july_program)


def _urls(organization, run) -> dict[str, str]:
    args = [organization.pk, run.pk]
    return {
        "page": reverse("portal:statement", args=args),
        "csv": reverse("portal:statement_csv", args=args),
        "pdf": reverse("portal:statement_pdf", args=args),
    }


def test_the_list_shows_only_approved_runs_of_the_members_organization(cast, client):
    # A second program settles Acme too, but its run is only calculated: not a statement yet.
    other = make_program(capacity_rate="5")
    enroll(other, "20", site=cast.acme.sites.get())
    pending = calculated(other)
    assert pending.status == SettlementRun.Status.CALCULATED
    client.force_login(member(cast.acme, Membership.Role.VIEWER))

    response = client.get(reverse("portal:statement_list", args=[cast.acme.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert [summary.run.pk for summary in response.context["runs"]] == [cast.run.pk]
    assert _urls(cast.acme, cast.run)["page"] in html
    assert "$700.00" in html  # Acme's lines only; the run's total is $1,150.00
    assert "$1,150.00" not in html and "$450.00" not in html
    assert reverse("portal:statement", args=[cast.acme.pk, pending.pk]) not in html
    assert_phone_ready(html)
    # The calculated run's statement is not there yet, whatever the URL.
    for url in _urls(cast.acme, pending).values():
        assert client.get(url).status_code == 404


def test_another_organizations_statement_and_files_answer_404_like_a_missing_one(cast, client):
    missing_run = SettlementRun(pk=cast.run.pk + 1000)
    client.force_login(member(cast.birch))

    # Birch's own statement is there.
    assert client.get(_urls(cast.birch, cast.run)["page"]).status_code == 200
    for kind, url in _urls(cast.acme, cast.run).items():
        not_theirs = client.get(url)
        missing = client.get(_urls(cast.birch, missing_run)[kind])
        assert (not_theirs.status_code, missing.status_code) == (404, 404), kind
        assert not_theirs.content == missing.content, kind
        assert b"Acme" not in not_theirs.content
    # Nor does the statement list of an organization they are not a member of exist.
    assert client.get(reverse("portal:statement_list", args=[cast.acme.pk])).status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(cast, client):
    for url in _urls(cast.acme, cast.run).values():
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_the_page_shows_each_lines_path_from_kw_to_dollars_and_a_chart_per_event(
    cast, client, django_assert_max_num_queries
):
    client.force_login(member(cast.acme, Membership.Role.VIEWER))

    with django_assert_max_num_queries(12):
        response = client.get(_urls(cast.acme, cast.run)["page"])

    assert response.status_code == 200
    html = response.content.decode()
    # Capacity: committed kW × months × rate × the factor from the two events' ratios.
    assert (
        "Committed 100.000 kW × 1 month = 100.000 kW-month × $8.00/kW-month × factor 0.700 "
        "(average performance ratio 0.700 over 2 events" in html
    )
    assert "= $560.00" in html
    # Energy: the reduction in kWh × the rate, and where the reduction came from.
    assert "Reduction 160.000 kWh × $0.50/kWh = $80.00" in html
    assert "Reduction 120.000 kWh × $0.50/kWh = $60.00" in html
    assert html.count("baseline method <strong>caiso_10_of_10</strong>") == 2
    assert "2 days selected (2026-07-14, 2026-07-13)" in html
    assert "adjustment × 1.0500 (multiplicative factor)" in html
    assert "average reduction 80.000 kW" in html and "average reduction 60.000 kW" in html
    assert "performance ratio 0.800 (80.0%)" in html and "performance ratio 0.600 (60.0%)" in html
    assert ">$0.50<" in html and ">$8.00<" in html  # the rate column, in dollars and cents
    assert re.search(r'id="statement-total">\$700\.00<', html)
    # One inline SVG chart per event line, each of that line's performance, with the event
    # shaded; the capacity line has none.
    lines = cast.lines(cast.acme)
    event_lines = [line for line in lines if line.event_id]
    assert len(event_lines) == 2
    assert html.count("<svg") == 2
    for line in event_lines:
        chart_id = f'id="performance-{line.performance_id}"'
        assert chart_id in html
        row = html.index(f'id="line-{line.pk}"')
        assert row < html.index(chart_id) < html.index("Total for Acme Plant")
    assert html.count('class="event-window"') == 2
    assert "Baseline and actual load, Acme Plant, 2026-07-14" in html
    # Nothing of Birch's.
    assert "Birch" not in html
    assert_phone_ready(html)


def test_the_csv_lines_sum_to_the_statement_total(cast, client):
    client.force_login(member(cast.acme, Membership.Role.VIEWER))
    url = _urls(cast.acme, cast.run)["csv"]

    response = client.get(url)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="statement-ba-7001-{cast.program.name.lower().replace(" ", "-")}'
        '-2026-07-v1.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))
    assert [(row["kind"], row["amount"]) for row in rows] == [
        ("capacity", "560.00"),
        ("energy", "80.00"),
        ("energy", "60.00"),
    ]
    assert sum(Decimal(row["amount"]) for row in rows) == Decimal("700.00")
    assert {row["organization"] for row in rows} == {"Acme Cold Storage LLC"}
    assert {row["billing_account"] for row in rows} == {"BA-7001"}
    assert [row["event"] for row in rows] == ["", str(cast.events[0].pk), str(cast.events[1].pk)]
    assert rows[1]["explanation"].startswith("Reduction 160.000 kWh × $0.50/kWh = $80.00")
    # The same statement gives the same bytes every time.
    assert client.get(url).content == response.content


def test_the_pdf_is_a_real_pdf_naming_the_organization_and_its_total(cast, client):
    client.force_login(member(cast.acme, Membership.Role.VIEWER))

    response = client.get(_urls(cast.acme, cast.run)["pdf"])

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].endswith('-2026-07-v1.pdf"')
    content = response.content
    assert content.startswith(b"%PDF-")
    assert content.rstrip().endswith(b"%%EOF")
    assert re.search(rb"/Type\s*/Page\b", content)
    text = pdf_text(content)
    for expected in ("Acme Cold Storage LLC", "BA-7001", "Acme Plant", "$560.00", "$700.00"):
        assert f"({expected})" in text or expected in text, expected
    assert "Birch" not in text


def test_the_pdf_is_the_same_bytes_whatever_the_runs_later_status_and_the_servers_zone(
    cast, client
):
    # Approved at 23:30 on July 31 in the program's zone (New York): August 1 in UTC.
    SettlementRun.objects.filter(pk=cast.run.pk).update(
        approved_at=dt.datetime(2026, 8, 1, 3, 30, tzinfo=dt.UTC)
    )
    client.force_login(member(cast.birch, Membership.Role.VIEWER))
    url = _urls(cast.birch, cast.run)["pdf"]
    when_approved = client.get(url).content

    billing_export_create(run=cast.run, by=cast.clerk)
    when_exported = client.get(url).content
    in_other_zones = []
    for zone in ("UTC", "Asia/Tokyo", "Pacific/Honolulu"):
        with override_settings(TIME_ZONE=zone):
            in_other_zones.append(client.get(url).content)
    # Late meter data for Acme, restated and approved: version 1 is superseded.
    perform(
        cast.events[0].participations.get(enrollment__site__organization=cast.acme),
        average_kw="90",
        kwh="180",
    )
    approved(settlement_run_restate(run=cast.run, by=cast.clerk), by=cast.manager)
    assert SettlementRun.objects.get(pk=cast.run.pk).status == SettlementRun.Status.SUPERSEDED
    when_superseded = client.get(url).content

    assert when_exported == when_approved
    assert in_other_zones == [when_approved] * 3
    assert when_superseded == when_approved
    text = pdf_text(when_approved)
    assert "(Approved on)" in text and "(2026-07-31)" in text
    assert "2026-08-01" not in text
    for status in ("Approved)", "Exported", "Superseded"):
        assert status not in text, status


def _restate(cast, organization, average_kw: str, kwh: str) -> SettlementRun:
    """Late meter data for ``organization``'s part in event 1 only, restated (by the clerk)
    and approved (by the manager): the new version holds lines of that organization only."""
    participation = cast.events[0].participations.get(enrollment__site__organization=organization)
    perform(participation, average_kw=average_kw, kwh=kwh)
    restatement = approved(settlement_run_restate(run=cast.run, by=cast.clerk), by=cast.manager)
    assert set(restatement.lines.values_list("organization", flat=True)) == {organization.pk}
    return restatement


def _superseded_note(html: str) -> bool:
    return "A later version corrected this statement" in html


def test_a_superseded_statement_points_only_to_a_version_holding_the_organizations_lines(
    cast, client, django_assert_num_queries
):
    # Birch's event 1 measured 40 kW / 80 kWh, not 50 / 100; Acme's lines are unchanged.
    v2 = _restate(cast, cast.birch, "40", "80")
    cast.run.refresh_from_db()
    assert cast.run.status == SettlementRun.Status.SUPERSEDED
    with django_assert_num_queries(1):
        assert statement_later_versions(cast.acme, cast.run) == []

    client.force_login(member(cast.acme, Membership.Role.ADMIN))
    acme = client.get(_urls(cast.acme, cast.run)["page"])

    html = acme.content.decode()
    acme_v2 = reverse("portal:statement", args=[cast.acme.pk, v2.pk])
    assert not _superseded_note(html) and acme_v2 not in html
    assert "Corrected in version" not in html
    assert html.count("<summary>Dispute this line</summary>") == 3  # its v1 lines stand
    assert client.get(acme_v2).status_code == 404

    client.force_login(member(cast.birch, Membership.Role.ADMIN))
    birch = client.get(_urls(cast.birch, cast.run)["page"])

    html = birch.content.decode()
    birch_v2 = reverse("portal:statement", args=[cast.birch.pk, v2.pk])
    assert f'corrected this statement: <a href="{birch_v2}">version 2</a>.' in html
    assert html.count("Corrected in version 2") == 2  # capacity and energy
    assert client.get(birch_v2).status_code == 200


def test_each_organization_is_pointed_to_the_later_versions_that_corrected_it(cast, client):
    v2 = _restate(cast, cast.birch, "40", "80")
    # Then Acme's event 1: 90 kW / 180 kWh. Version 3 restates version 2.
    v3 = _restate(cast, cast.acme, "90", "180")
    assert v3.restates == v2
    cast.run.refresh_from_db()

    assert statement_later_versions(cast.acme, cast.run) == [v3]
    assert statement_later_versions(cast.birch, cast.run) == [v2]
    v2.refresh_from_db()
    assert v2.status == SettlementRun.Status.SUPERSEDED
    assert statement_later_versions(cast.birch, v2) == []
    client.force_login(member(cast.acme))
    html = client.get(_urls(cast.acme, cast.run)["page"]).content.decode()
    acme_v3 = reverse("portal:statement", args=[cast.acme.pk, v3.pk])
    assert f'corrected this statement: <a href="{acme_v3}">version 3</a>.' in html
    assert html.count("Corrected in version 3") == 2
    client.force_login(member(cast.birch))
    assert not _superseded_note(client.get(_urls(cast.birch, v2)["page"]).content.decode())


def _status_badges(html: str) -> list[str]:
    """The status badges of a statement list's rows, or of a statement's header, in order
    (the superseded banner's badge has no title)."""
    return re.findall(r'<span class="badge[^"]*" title="[^"]*">([^<]+)</span>', html)


def test_a_statement_no_later_version_corrected_for_the_organization_is_not_superseded(
    cast, client
):
    # Version 2 restates Birch's event 1 only: for Acme, version 1 is still the statement in
    # force; for Birch, version 2 corrected it.
    v2 = _restate(cast, cast.birch, "40", "80")
    cast.run.refresh_from_db()
    assert cast.run.status == SettlementRun.Status.SUPERSEDED
    acme_list = reverse("portal:statement_list", args=[cast.acme.pk])
    birch_list = reverse("portal:statement_list", args=[cast.birch.pk])

    client.force_login(member(cast.acme, Membership.Role.VIEWER))
    listed = client.get(acme_list)
    page = client.get(_urls(cast.acme, cast.run)["page"]).content.decode()

    assert [(summary.run, summary.status) for summary in listed.context["runs"]] == [
        (cast.run, SettlementRun.Status.APPROVED)
    ]
    assert _status_badges(listed.content.decode()) == ["Approved"]
    assert _status_badges(page) == ["Approved"]
    assert "Superseded" not in listed.content.decode() and "Superseded" not in page

    client.force_login(member(cast.birch, Membership.Role.VIEWER))
    listed = client.get(birch_list)

    assert [(summary.run, summary.status) for summary in listed.context["runs"]] == [
        (v2, SettlementRun.Status.APPROVED),
        (cast.run, SettlementRun.Status.SUPERSEDED),
    ]
    assert _status_badges(listed.content.decode()) == ["Approved", "Superseded"]
    v1_page = client.get(_urls(cast.birch, cast.run)["page"]).content.decode()
    assert _status_badges(v1_page) == ["Superseded"]
    assert _status_badges(client.get(_urls(cast.birch, v2)["page"]).content.decode()) == [
        "Approved"
    ]

    # Billing exports version 1 after all (a superseded run stays superseded): Acme's
    # statement in force was sent to billing.
    billing_export_create(run=cast.run, by=cast.clerk)
    cast.run.refresh_from_db()
    assert cast.run.status == SettlementRun.Status.SUPERSEDED
    client.force_login(member(cast.acme, Membership.Role.VIEWER))
    assert _status_badges(client.get(acme_list).content.decode()) == ["Exported"]
    page = client.get(_urls(cast.acme, cast.run)["page"]).content.decode()
    assert _status_badges(page) == ["Exported"]
    client.force_login(member(cast.birch, Membership.Role.VIEWER))
    assert _status_badges(client.get(birch_list).content.decode()) == ["Approved", "Superseded"]

    # The console keeps the run's own status.
    client.force_login(cast.manager)
    console = client.get(reverse("console:settlement_run", args=[cast.run.pk])).content.decode()
    assert "Superseded" in console


def test_each_organizations_list_marks_superseded_only_the_versions_corrected_for_it(cast, client):
    client.force_login(member(cast.acme, Membership.Role.VIEWER))
    acme_list = reverse("portal:statement_list", args=[cast.acme.pk])
    with CaptureQueriesContext(connection) as one_run:
        client.get(acme_list)
    v2 = _restate(cast, cast.birch, "40", "80")
    v3 = _restate(cast, cast.acme, "90", "180")
    # Version 3 holds Acme's lines only: Birch's version 2 stands, though superseded.
    v2.refresh_from_db()
    assert v2.status == SettlementRun.Status.SUPERSEDED

    with CaptureQueriesContext(connection) as two_runs:
        listed = client.get(acme_list)

    assert [(summary.run, summary.status) for summary in listed.context["runs"]] == [
        (v3, SettlementRun.Status.APPROVED),
        (cast.run, SettlementRun.Status.SUPERSEDED),
    ]
    assert _status_badges(listed.content.decode()) == ["Approved", "Superseded"]
    # Whether a run is superseded for the organization costs no query.
    assert len(two_runs) == len(one_run)

    client.force_login(member(cast.birch, Membership.Role.VIEWER))
    listed = client.get(reverse("portal:statement_list", args=[cast.birch.pk]))

    assert [(summary.run, summary.status) for summary in listed.context["runs"]] == [
        (v2, SettlementRun.Status.APPROVED),
        (cast.run, SettlementRun.Status.SUPERSEDED),
    ]
    assert _status_badges(listed.content.decode()) == ["Approved", "Superseded"]
    page = client.get(_urls(cast.birch, v2)["page"]).content.decode()
    assert _status_badges(page) == ["Approved"] and "Superseded" not in page


def _rename_acme(cast, program) -> None:
    """After the approval: Acme gets another billing account and legal name, its site
    another name and service account, and ``program`` another name."""
    cast.acme.billing_account_number, cast.acme.legal_name = "BA-9999", "Acme Frozen Foods Inc."
    cast.acme.save()
    site = cast.acme.sites.get()
    site.name, site.service_account_number = "Acme Warehouse", "SA-99999999"
    site.save()
    program.name = "Winter Reliability"
    program.save()


def test_the_statement_names_the_accounts_the_run_was_approved_for(cast, client):
    client.force_login(member(cast.acme, Membership.Role.VIEWER))
    urls = _urls(cast.acme, cast.run)
    program_name = cast.program.name
    service_account = cast.acme.sites.get().service_account_number
    before = {kind: client.get(urls[kind]) for kind in ("csv", "pdf")}

    _rename_acme(cast, cast.program)
    after = {kind: client.get(url) for kind, url in urls.items()}

    for kind in ("csv", "pdf"):
        assert after[kind].content == before[kind].content, kind
        assert after[kind]["Content-Disposition"] == before[kind]["Content-Disposition"], kind
    assert "statement-ba-7001-" in after["csv"]["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(after["csv"].content.decode("utf-8"))))
    assert {
        (row["program"], row["billing_account"], row["organization"], row["site"]) for row in rows
    } == {(program_name, "BA-7001", "Acme Cold Storage LLC", "Acme Plant")}
    assert {row["service_account"] for row in rows} == {service_account}
    text = pdf_text(after["pdf"].content)
    for expected in ("Acme Cold Storage LLC", "BA-7001", "Acme Plant", service_account):
        assert expected in text, expected
    assert "BA-9999" not in text and "Acme Warehouse" not in text and "Winter" not in text
    html = after["page"].content.decode()
    assert f"Statement: {program_name}, July 2026" in html
    assert "<strong>Acme Cold Storage LLC</strong>" in html and "Billing account BA-7001" in html
    assert f'<h2>Acme Plant <span class="muted">· service account {service_account}' in html
    assert "Total for Acme Plant" in html
    assert "BA-9999" not in html and "SA-99999999" not in html and "Winter" not in html
    # The event charts name the site as billed too.
    assert "Baseline and actual load, Acme Plant, 2026-07-14" in html
    assert "Acme Warehouse" not in html


def test_the_console_run_page_names_the_accounts_the_run_was_approved_for(cast, client):
    client.force_login(staff_user(BILLING))
    _rename_acme(cast, cast.program)

    html = client.get(reverse("console:settlement_run", args=[cast.run.pk])).content.decode()

    assert "<td>Acme Cold Storage LLC</td><td>BA-7001</td>" in html  # totals per organization
    assert html.count("<td>Acme Cold Storage LLC</td><td>Acme Plant</td>") == len(
        cast.lines(cast.acme)
    )
    assert "Acme Frozen" not in html and "BA-9999" not in html and "Acme Warehouse" not in html


def test_a_statement_of_a_run_not_approved_yet_names_the_accounts_as_they_stand(cast):
    other = make_program(capacity_rate="5")
    enroll(other, "20", site=cast.acme.sites.get())
    pending = calculated(other)
    _rename_acme(cast, other)

    statement = statement_build(
        cast.acme, SettlementRun.objects.get(pk=pending.pk), with_disputes=False
    )

    assert statement.program_name == "Winter Reliability"
    assert statement.billed_organization == BilledOrganization("Acme Frozen Foods Inc.", "BA-9999")
    assert [group.billed_site for group in statement.groups] == [
        BilledSite("Acme Warehouse", "SA-99999999")
    ]
    rows = list(csv.DictReader(io.StringIO(statement_csv(statement).decode("utf-8"))))
    assert [(row["billing_account"], row["site"], row["service_account"]) for row in rows] == [
        ("BA-9999", "Acme Warehouse", "SA-99999999")
    ]
    text = pdf_text(statement_pdf(statement))
    assert "Acme Frozen Foods Inc." in text and "Acme Warehouse" in text
    # The approved July run still names what it was approved for.
    july = statement_build(cast.acme, cast.run, with_disputes=False)
    assert july.billed_organization == BilledOrganization("Acme Cold Storage LLC", "BA-7001")


@pytest.mark.parametrize(
    ("role", "may_dispute"),
    [
        (Membership.Role.ADMIN, True),
        (Membership.Role.OPERATOR, True),
        (Membership.Role.VIEWER, False),
    ],
)
def test_admins_and_operators_get_the_dispute_form_and_viewers_only_read(
    cast, client, role, may_dispute
):
    client.force_login(member(cast.acme, role))

    html = client.get(_urls(cast.acme, cast.run)["page"]).content.decode()

    # Every line of the statement is there for every role.
    assert "$560.00" in html and "$80.00" in html and "$60.00" in html
    forms = html.count("<summary>Dispute this line</summary>")
    assert forms == (3 if may_dispute else 0)


def test_rates_are_written_in_dollars_and_cents_without_rounding():
    assert rate_text(Decimal("8")) == "$8.00"
    assert rate_text(Decimal("0.500000")) == "$0.50"
    assert rate_text(Decimal("0.125")) == "$0.125"
    assert rate_text(Decimal("-2.5")) == "-$2.50"
    assert rate_text(Decimal("1250")) == "$1,250.00"
