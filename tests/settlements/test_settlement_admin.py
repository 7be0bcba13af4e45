"""The settlement admin: program managers add payment rule versions (validated by the
rules themselves, errors on the form); runs, lines, disputes and billing exports are
records the admin shows and never adds, changes or deletes."""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from dr_platform.models import Membership
from settlements.billing import billing_export_create
from settlements.disputes import dispute_raise
from settlements.models import PaymentRuleVersion, SettlementLine
from settlements.payments import PaymentRules
from settlements.runs import rules_for
from tests.enrollment.factories import ProgramFactory
from tests.factories import MembershipFactory, UserFactory, staff_user
from tests.settlements.settlement_helpers import (
    approved,
    calculated,
    enroll,
    event,
    make_program,
    participate,
)

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/settlements/paymentruleversion/add/"

#: What the add form posts when nothing but the required choices is touched.
DEFAULT_CHOICES = {
    "capacity_unit": "kW-month",
    "factor_method": "linear",
    "interpolation": "linear",
    "negative_reductions": "net",
    "opted_out_events": "as_measured",
    "test_events": "include",
}


def rule_form(program, **values: str) -> dict[str, str]:
    return {
        "program": str(program.pk),
        "effective_from": "2026-06-01",
        **DEFAULT_CHOICES,
        **values,
    }


def error_on(page: str, field: str) -> str:
    """The text of the error list shown in ``field``'s row of an admin form."""
    row = re.search(
        rf'<div class="form-row[^"]*field-{field}[^"]*">(.*?)</div>\s*</div>', page, re.S
    )
    assert row, f"no row for {field}"
    errors = re.search(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', row.group(1), re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", errors.group(1))) if errors else ""


# --- payment rule versions --------------------------------------------------------------


def test_a_program_manager_adds_a_valid_rule_version(client, manager):
    program = ProgramFactory()
    client.force_login(manager)
    assert client.get(ADD_URL).status_code == 200

    response = client.post(
        ADD_URL,
        rule_form(
            program,
            version="2026-v2",
            capacity_rate="8",
            factor_method="piecewise",
            breakpoints="0.5, 0\n1, 1\n",
            capacity_factor_cap="1",
            energy_rate="0.50",
            test_events="exclude",
        ),
    )

    assert response.status_code == 302, response.content.decode()
    version = PaymentRuleVersion.objects.get(program=program)
    assert version.effective_from == dt.date(2026, 6, 1)
    assert version.created_by == manager
    rules = rules_for(program, dt.date(2026, 7, 1))
    assert rules == PaymentRules(
        effective_from=dt.date(2026, 6, 1),
        version="2026-v2",
        capacity_rate=Decimal("8"),
        factor_method="piecewise",
        breakpoints=((Decimal("0.5"), Decimal("0")), (Decimal("1"), Decimal("1"))),
        capacity_factor_cap=Decimal("1"),
        energy_rate=Decimal("0.50"),
        test_events="exclude",
    )
    listing = client.get("/admin/settlements/paymentruleversion/").content.decode()
    assert "capacity $8/kW-month, energy $0.50/kWh" in listing


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        (
            {"capacity_factor_floor": "1.2", "capacity_factor_cap": "1"},
            "capacity_factor_floor",
            "“Factor floor” (1.2) is above “Factor cap” (1)",
        ),
        (
            {"energy_rate": "-0.10"},
            "energy_rate",
            "“Energy rate ($ per kWh reduced)” must not be negative, got -0.10",
        ),
        (
            {"factor_method": "threshold"},
            "factor_method",
            "“Performance factor” 'threshold' needs “Threshold ratio (threshold)”",
        ),
        (
            {"factor_method": "piecewise", "breakpoints": "1, 1\n0.5, 0"},
            "breakpoints",
            "breakpoint ratios must be strictly increasing",
        ),
        (
            {"factor_method": "piecewise", "breakpoints": "0.5 0 1"},
            "breakpoints",
            "Line 1 should be one “ratio, factor” pair",
        ),
    ],
)
def test_an_invalid_rule_version_shows_the_error_on_its_field(
    client, manager, values, field, message
):
    program = ProgramFactory()
    client.force_login(manager)

    response = client.post(ADD_URL, rule_form(program, capacity_rate="8", **values))

    page = response.content.decode()
    assert response.status_code == 200
    assert "Please correct the error below." in page
    assert message in error_on(page, field)
    assert not PaymentRuleVersion.objects.exists()


def test_a_second_version_on_the_same_day_is_refused_on_the_form(client, manager):
    program = make_program(capacity_rate="8")  # a version from 2026-01-01
    client.force_login(manager)

    response = client.post(
        ADD_URL, rule_form(program, effective_from="2026-01-01", capacity_rate="9")
    )

    assert response.status_code == 200
    assert "already has payment rules taking effect on that day" in response.content.decode()
    assert PaymentRuleVersion.objects.filter(program=program).count() == 1


def test_a_stored_version_is_shown_but_never_edited_or_deleted(client, manager):
    program = make_program(capacity_rate="8", energy_rate="0.50")
    version = PaymentRuleVersion.objects.get(program=program)
    url = f"/admin/settlements/paymentruleversion/{version.pk}/change/"
    client.force_login(manager)

    page = client.get(url).content.decode()

    assert "<th>capacity_rate</th><td>8</td>" in page
    assert 'name="_save"' not in page and "/delete/" not in page
    assert client.post(url, rule_form(program, capacity_rate="99")).status_code == 403
    assert client.post(url.replace("change", "delete"), {"post": "yes"}).status_code == 403
    version.refresh_from_db()
    assert version.rules["capacity_rate"] == "8"


def test_billing_reads_rule_versions_but_does_not_add_them(client, billing_clerk):
    make_program(capacity_rate="8")
    client.force_login(billing_clerk)
    listing = client.get("/admin/settlements/paymentruleversion/")
    assert listing.status_code == 200
    assert ADD_URL not in listing.content.decode()
    assert client.get(ADD_URL).status_code == 403


# --- runs, lines, disputes, exports -----------------------------------------------------


@pytest.fixture
def exported_run(july_program, manager):
    """An approved July run of one site (capacity $640, energy $80), exported to billing,
    with one line disputed by the organization's admin."""
    enrollment = enroll(july_program, "100")
    participate(event(july_program, dt.date(2026, 7, 14)), enrollment, average_kw="80", kwh="160")
    run = approved(calculated(july_program, by=manager))
    billing_export_create(run=run, by=staff_user("Billing"))
    organization = enrollment.site.organization
    admin = MembershipFactory(organization=organization, role=Membership.Role.ADMIN).user
    dispute_raise(line=run.lines.first(), by=admin, comment="We shed more than 80 kW.")
    return run


def superuser():
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.mark.parametrize("who", ["manager", "billing_clerk", "superuser"])
def test_a_lines_change_page_has_no_save_or_delete(client, request, exported_run, who):
    user = superuser() if who == "superuser" else request.getfixturevalue(who)
    line = exported_run.lines.order_by("sequence").first()
    url = f"/admin/settlements/settlementline/{line.pk}/change/"
    client.force_login(user)

    response = client.get(url)

    page = response.content.decode()
    assert response.status_code == 200
    assert "$640.00" in page or "640.00" in page
    assert 'name="_save"' not in page and 'name="_continue"' not in page
    assert "deletelink" not in page and f"{line.pk}/delete/" not in page
    assert client.post(url, {"amount": "1000000.00"}).status_code == 403
    assert client.post(url.replace("change", "delete"), {"post": "yes"}).status_code == 403
    assert client.get("/admin/settlements/settlementline/add/").status_code == 403
    line.refresh_from_db()
    assert line.amount == Decimal("640.00")


@pytest.mark.parametrize("model", ["settlementrun", "dispute", "billingexport"])
def test_runs_disputes_and_exports_are_read_only(client, manager, exported_run, model):
    client.force_login(manager)
    listing = client.get(f"/admin/settlements/{model}/")
    assert listing.status_code == 200
    match = re.search(
        rf'href="(/admin/settlements/{model}/(\d+)/change/[^"]*)"', listing.content.decode()
    )
    assert match, f"the {model} changelist links to its rows"

    page = client.get(match.group(1)).content.decode()

    assert 'name="_save"' not in page and "deletelink" not in page
    assert client.get(f"/admin/settlements/{model}/add/").status_code == 403
    delete = f"/admin/settlements/{model}/{match.group(2)}/delete/"
    assert client.post(delete, {"post": "yes"}).status_code == 403


def test_the_run_page_links_to_its_lines_and_the_console(client, manager, exported_run):
    client.force_login(manager)
    page = client.get(f"/admin/settlements/settlementrun/{exported_run.pk}/change/").content
    page = page.decode()
    lines_url = f"/admin/settlements/settlementline/?run__id__exact={exported_run.pk}"
    assert f'href="{lines_url}"' in page
    assert reverse("console:settlement_run", args=[exported_run.pk]) in page

    lines = client.get(lines_url).content.decode()
    assert lines.count('class="field-amount"') == exported_run.line_count == 2


def test_the_export_page_offers_the_file_not_its_bytes(client, billing_clerk, exported_run):
    export = exported_run.exports.get()
    client.force_login(billing_clerk)
    page = client.get(f"/admin/settlements/billingexport/{export.pk}/change/").content.decode()
    assert reverse("console:billing_export_download", args=[export.pk]) in page
    assert export.sha256 in page
    assert bytes(export.content).decode().splitlines()[1] not in page


def test_auditors_see_no_settlement_records(client, auditor, exported_run):
    client.force_login(auditor)
    for model in ("settlementrun", "settlementline", "dispute", "billingexport"):
        assert client.get(f"/admin/settlements/{model}/").status_code == 403


def test_the_line_changelist_needs_a_bounded_number_of_queries(
    client, manager, july_program, django_assert_max_num_queries
):
    for number in range(6):
        enrollment = enroll(july_program, str(50 + number))
        participate(event(july_program, dt.date(2026, 7, 10 + number)), enrollment, average_kw="40")
    calculated(july_program, by=manager)
    assert SettlementLine.objects.count() == 12
    client.force_login(manager)

    with django_assert_max_num_queries(12):
        response = client.get("/admin/settlements/settlementline/")

    assert response.content.decode().count('class="field-amount"') == 12


def test_staff_without_a_settlement_role_get_no_add_button(client, db):
    """The add goes through payment_rules_add, which only Billing and Program managers may
    call: a user holding the permission some other way is not offered a form that fails."""
    from django.contrib.auth.models import Permission

    user = UserFactory(is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["add_paymentruleversion", "view_paymentruleversion"]
        )
    )
    client.force_login(user)
    assert Group.objects.filter(user=user).count() == 0
    assert client.get(ADD_URL).status_code == 403
