"""A discarded settlement run stays on record: who discarded it, when and why; its lines go,
its version number is never given again, and it is never the latest version of anything.

The console lists it (run list, the period's versions) for clerks and auditors; participants
and billing systems never see it; every service, the model and (on PostgreSQL) the
database refuse to give it a line or take it any further.

The cast (``statement_cast``): Acme and Birch in July's version 1, approved. Acme's first
event is re-measured at 90 kW / 180 kWh (was 80 kW / 160 kWh), so a restatement holds
Acme's differences: capacity 100 kW × $8 × (0.9 − 0.8) / 2 = +$40.00, energy 20 kWh ×
$0.50 = +$10.00; $50.00 in two lines.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from events.models import Participation
from settlements.billing import billing_export_create
from settlements.models import LockedLineError, SettlementLine, SettlementRun
from settlements.runs import (
    SettlementError,
    settlement_run_approve,
    settlement_run_calculate,
    settlement_run_calculation_request,
    settlement_run_create,
    settlement_run_discard,
    settlement_run_restate,
    settlement_run_restatement_request,
)
from settlements.runs.services import restatement_create
from settlements.statements import statement_later_versions
from tests.factories import UserFactory, staff_user
from tests.settlements.settlement_helpers import JULY, make_program, perform
from tests.settlements.statement_cast import assert_phone_ready, draw, make_cast, member

REASON = "Meter 3's July reads are <still> being checked."


@pytest.fixture
def cast(july_program):
    return make_cast(july_program)


def _remeasure(cast) -> None:
    """Acme's first event re-measured: 90 kW, 180 kWh (was 80 kW, 160 kWh)."""
    participation = Participation.objects.get(
        event=cast.events[0], enrollment__site__organization=cast.acme
    )
    draw(perform(participation, average_kw="90", kwh="180"))


@pytest.fixture
def discarded(cast) -> SettlementRun:
    """July's version 2, calculated with Acme's $50.00 of differences, discarded by the
    billing clerk with :data:`REASON`."""
    _remeasure(cast)
    v2 = settlement_run_restate(run=cast.run, by=cast.manager)
    assert (v2.version, v2.status, v2.line_count, v2.total) == (
        2,
        "calculated",
        2,
        Decimal("50.00"),
    )
    return settlement_run_discard(run=v2, by=cast.clerk, reason=REASON)


def _post_discard(client, run: SettlementRun, **fields: str):
    return client.post(
        reverse("console:settlement_run_action", args=[run.pk]),
        {"action": "discard", **fields},
        follow=True,
    )


# --- the record -------------------------------------------------------------------------------


def test_discarding_keeps_the_run_with_who_when_and_why_and_deletes_its_lines(cast, discarded):
    stored = SettlementRun.objects.get(pk=discarded.pk)

    assert (stored.status, stored.discarded_by, stored.discard_reason) == (
        "discarded",
        cast.clerk,
        REASON,
    )
    assert timezone.now() - stored.discarded_at < dt.timedelta(minutes=1)
    # What it was when discarded: a restatement of version 1 with two lines, $50.00.
    assert (stored.version, stored.restates, stored.line_count, stored.total) == (
        2,
        cast.run,
        2,
        Decimal("50.00"),
    )
    assert not SettlementLine.objects.filter(run_id=discarded.pk).exists()
    cast.run.refresh_from_db()
    assert (cast.run.status, cast.run.lines.count()) == ("approved", 5)


def test_the_database_keeps_no_discarded_run_without_who_when_and_why(cast, discarded):
    draft = settlement_run_create(
        program=cast.program, period_kind="month", period_start=dt.date(2026, 8, 1), by=cast.manager
    )
    for missing in ({}, {"discarded_by": cast.clerk, "discarded_at": timezone.now()}):
        with pytest.raises(IntegrityError, match="settlement_run_discard_recorded"):
            with transaction.atomic():
                SettlementRun.objects.filter(pk=draft.pk).update(status="discarded", **missing)
    with pytest.raises(IntegrityError, match="settlement_run_discard_recorded"):
        with transaction.atomic():
            SettlementRun.objects.filter(pk=discarded.pk).update(discard_reason="")
    assert SettlementRun.objects.get(pk=draft.pk).status == "draft"


def test_the_reason_is_stripped_and_required(cast):
    _remeasure(cast)
    v2 = settlement_run_restate(run=cast.run, by=cast.manager)

    for blank in ("", "   \n"):
        with pytest.raises(SettlementError, match="Say why the run is discarded"):
            settlement_run_discard(run=v2, by=cast.clerk, reason=blank)
    with pytest.raises(SettlementError, match="Keep the reason to 500 characters"):
        settlement_run_discard(run=v2, by=cast.clerk, reason="x" * 501)
    assert SettlementRun.objects.get(pk=v2.pk).status == "calculated"
    assert v2.lines.count() == 2

    kept = settlement_run_discard(run=v2, by=cast.clerk, reason="  Started by mistake.\n")

    assert kept.discard_reason == "Started by mistake."


# --- version numbers --------------------------------------------------------------------------


def test_a_discarded_version_number_is_never_given_again(cast, discarded):
    v3 = settlement_run_restate(run=cast.run, by=cast.manager)

    assert (v3.version, v3.restates, v3.status, v3.total) == (
        3,
        cast.run,
        "calculated",
        Decimal("50.00"),
    )
    settlement_run_approve(run=v3, by=cast.clerk)
    versions = SettlementRun.objects.filter(program=cast.program, period_start=JULY)
    assert list(versions.order_by("version").values_list("version", "status")) == [
        (1, "superseded"),
        (2, "discarded"),
        (3, "approved"),
    ]
    # Restating again counts from the highest: 4, after the approved version 3.
    perform(
        Participation.objects.get(event=cast.events[1], enrollment__site__organization=cast.acme),
        average_kw="70",
        kwh="140",
    )
    v4 = settlement_run_restate(run=v3, by=cast.manager)
    assert (v4.version, v4.restates) == (4, SettlementRun.objects.get(version=3))


def test_background_restating_also_skips_a_discarded_number(cast, discarded, monkeypatch):
    from settlements.tasks import settlement_run_calculate_task

    monkeypatch.setattr(settlement_run_calculate_task, "delay", lambda *args: None)

    v3 = settlement_run_restatement_request(run=cast.run, by=cast.clerk)

    assert (v3.version, v3.status, v3.restates) == (3, "calculating", cast.run)


def test_a_discarded_first_version_frees_its_period_under_the_next_number(cast):
    august = dt.date(2026, 8, 1)
    draft = settlement_run_create(
        program=cast.program, period_kind="month", period_start=august, by=cast.manager
    )
    settlement_run_discard(run=draft, by=cast.manager, reason="Created too early.")

    again = settlement_run_create(
        program=cast.program, period_kind="month", period_start=august, by=cast.manager
    )

    assert (again.version, again.restates, again.status) == (2, None, "draft")
    # A first version: calculated in full, not as differences.
    again = settlement_run_calculate(run=again, by=cast.manager)
    assert "No differences" not in again.notes


def test_a_discarded_run_blocks_no_new_run_and_no_restatement(cast, discarded):
    """An unfinished version blocks starting another run over its period and restating
    it; once discarded it blocks neither."""
    program = make_program(capacity_rate="8")
    july = settlement_run_create(
        program=program, period_kind="month", period_start=JULY, by=cast.manager
    )
    with pytest.raises(SettlementError, match=f"Run {july.pk} .* is still draft"):
        settlement_run_create(
            program=program,
            period_kind="season",
            period_start=program.season_start,
            by=cast.manager,
        )
    settlement_run_discard(run=july, by=cast.manager, reason="The season is settled whole.")

    season = settlement_run_create(
        program=program, period_kind="season", period_start=program.season_start, by=cast.manager
    )

    assert (season.version, season.status) == (1, "draft")
    # July of the cast: its discarded version 2 was unfinished; version 1 is restated.
    assert settlement_run_restate(run=cast.run, by=cast.manager).version == 3
    # The approved version 1 still counts: a new first version is refused.
    with pytest.raises(SettlementError, match="already settled for 2026-07-01 to 2026-07-31"):
        settlement_run_create(
            program=cast.program, period_kind="month", period_start=JULY, by=cast.manager
        )


def test_a_later_restatement_counts_approved_versions_not_version_numbers(cast, client):
    """v1 approved, v2 discarded, v3 unchanged: "the approved version", not "versions"."""

    def unchanged_restatement() -> SettlementRun:
        with transaction.atomic():
            draft = restatement_create(run=cast.run, by=cast.manager)
        return settlement_run_calculate(run=draft, by=cast.manager)

    v2 = unchanged_restatement()
    settlement_run_discard(run=v2, by=cast.clerk, reason="Nothing changed.")

    v3 = unchanged_restatement()

    assert (v3.version, v3.line_count) == (3, 0)
    assert "No differences from the approved version: this restatement changes nothing." in (
        v3.notes
    )
    client.force_login(cast.clerk)
    page = client.get(reverse("console:settlement_run", args=[v3.pk])).content.decode()
    assert "Nothing changed since the approved version of this period" in page


# --- a record only: refused everything --------------------------------------------------------


def test_a_discarded_run_refuses_every_action(cast, discarded, monkeypatch):
    from settlements.tasks import settlement_run_calculate_task

    sent: list[tuple] = []
    monkeypatch.setattr(settlement_run_calculate_task, "delay", lambda *args: sent.append(args))
    when = f"{timezone.localtime(discarded.discarded_at):%Y-%m-%d %H:%M}"
    refusal = re.escape(
        f"Run {discarded.pk} (version 2) was discarded by {cast.clerk.get_username()} on "
        f"{when}: it stays on record only, and nothing more is done with it."
    )

    for service in (
        settlement_run_calculate,
        settlement_run_calculation_request,
        settlement_run_approve,
        settlement_run_restate,
        settlement_run_restatement_request,
        billing_export_create,
    ):
        with pytest.raises(SettlementError, match=refusal):
            service(run=discarded, by=cast.manager)
    with pytest.raises(SettlementError, match=refusal):
        settlement_run_discard(run=discarded, by=cast.manager, reason="Again.")

    stored = SettlementRun.objects.get(pk=discarded.pk)
    assert (stored.status, stored.discarded_by, stored.discard_reason) == (
        "discarded",
        cast.clerk,
        REASON,
    )
    assert sent == [] and not stored.lines.exists() and not stored.exports.exists()
    assert SettlementRun.objects.filter(program=cast.program).count() == 2


def _line_for(run: SettlementRun, template: SettlementLine) -> SettlementLine:
    return SettlementLine(
        run=run,
        sequence=99,
        organization_id=template.organization_id,
        site_id=template.site_id,
        kind=SettlementLine.Kind.ADJUSTMENT,
        quantity=Decimal(1),
        unit="adjustment",
        rate=Decimal("25"),
        amount=Decimal("25.00"),
        explanation="Added after the discard",
    )


def test_the_model_refuses_lines_for_a_discarded_run(cast, discarded):
    template = cast.run.lines.order_by("sequence").first()
    refused = f"run {discarded.pk} is discarded: it stays on record only and takes no new line"

    with pytest.raises(LockedLineError, match=refused):
        _line_for(discarded, template).save()
    with pytest.raises(LockedLineError, match=refused):
        SettlementLine.objects.bulk_create([_line_for(discarded, template)])
    # Nor may a line of an open run move into it.
    august = settlement_run_create(
        program=cast.program, period_kind="month", period_start=dt.date(2026, 8, 1), by=cast.manager
    )
    line = _line_for(august, template)
    line.save()
    line.run = discarded
    with pytest.raises(LockedLineError, match=refused):
        line.save()
    with pytest.raises(LockedLineError, match=refused):
        SettlementLine.objects.filter(pk=line.pk).update(run=discarded)

    assert not SettlementLine.objects.filter(run_id=discarded.pk).exists()
    assert SettlementLine.objects.get(pk=line.pk).run_id == august.pk


@pytest.mark.postgres
def test_the_database_refuses_lines_for_a_discarded_run(cast, discarded):
    template = cast.run.lines.order_by("sequence").first()
    insert = (
        "INSERT INTO settlements_settlementline (run_id, sequence, organization_id, site_id, "
        "kind, reference, quantity, unit, rate, amount, explanation, details, locked) "
        "VALUES (%s, 99, %s, %s, 'adjustment', '', 1, 'adjustment', 25, 25, '', '{}', false)"
    )
    values = [template.organization_id, template.site_id]

    with pytest.raises(
        IntegrityError,
        match=f"run {discarded.pk} is discarded: it stays on record only, new lines are refused",
    ):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(insert, [discarded.pk, *values])

    august = settlement_run_create(
        program=cast.program, period_kind="month", period_start=dt.date(2026, 8, 1), by=cast.manager
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(insert, [august.pk, *values])  # an open run still takes lines
    moved = SettlementLine.objects.get(run=august)
    with pytest.raises(
        IntegrityError,
        match=f"run {discarded.pk} is discarded: it stays on record only, line {moved.pk} "
        "cannot move to it",
    ):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "UPDATE settlements_settlementline SET run_id = %s WHERE id = %s",
                [discarded.pk, moved.pk],
            )
    # The locked statuses keep their own refusal.
    with pytest.raises(IntegrityError, match=f"run {cast.run.pk} is approved: .* refused"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(insert, [cast.run.pk, *values])

    assert not SettlementLine.objects.filter(run_id=discarded.pk).exists()
    assert SettlementLine.objects.get(pk=moved.pk).run_id == august.pk


# --- who sees it ------------------------------------------------------------------------------


def test_participants_never_see_a_discarded_run(cast, discarded, client):
    v3 = settlement_run_approve(
        run=settlement_run_restate(run=cast.run, by=cast.manager), by=cast.clerk
    )
    client.force_login(member(cast.acme))
    base = reverse("portal:statement_list", args=[cast.acme.pk])

    listing = client.get(base)

    assert [summary.run.pk for summary in listing.context["runs"]] == [v3.pk, cast.run.pk]
    assert f"/statements/{discarded.pk}/" not in listing.content.decode()
    for name in ("statement", "statement_csv", "statement_pdf"):
        url = reverse(f"portal:{name}", args=[cast.acme.pk, discarded.pk])
        assert client.get(url).status_code == 404
    # Version 1 is superseded by version 3, the discarded version 2 in between is no
    # correction of it.
    cast.run.refresh_from_db()
    assert statement_later_versions(cast.acme, cast.run) == [v3]
    page = client.get(reverse("portal:statement", args=[cast.acme.pk, cast.run.pk]))
    html = page.content.decode()
    assert "A later version corrected this statement" in html
    assert reverse("portal:statement", args=[cast.acme.pk, v3.pk]) in html
    assert reverse("portal:statement", args=[cast.acme.pk, discarded.pk]) not in html
    assert "discarded" not in html.lower()


def _token_client(user) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return api


def test_billing_systems_never_see_a_discarded_run(cast, discarded):
    billing_export_create(run=cast.run, by=cast.clerk)
    api = _token_client(staff_user("Billing"))

    listing = api.get("/api/settlement-runs/", {"program": cast.program.pk})

    assert [row["id"] for row in listing.json()["results"]] == [cast.run.pk]
    assert api.get(f"/api/settlement-runs/{discarded.pk}/").status_code == 404
    assert api.get(f"/api/settlement-runs/{discarded.pk}/exports/").status_code == 404
    refused = api.get("/api/settlement-runs/", {"status": "discarded"})
    assert refused.status_code == 400
    assert "discarded" not in str(refused.json())
    exports = api.get("/api/billing-exports/").json()["results"]
    assert [row["run"] for row in exports] == [cast.run.pk]


def test_the_console_lists_a_discarded_run_with_who_when_and_why(
    cast, discarded, client, django_assert_max_num_queries
):
    when = f"{timezone.localtime(discarded.discarded_at):%Y-%m-%d %H:%M}"
    clerk = cast.clerk.get_username()
    escaped = "Meter 3&#x27;s July reads are &lt;still&gt; being checked."
    client.force_login(staff_user("Billing"))

    with django_assert_max_num_queries(15):
        listing = client.get(reverse("console:settlement_runs")).content.decode()

    row = re.search(
        rf'<tr>\s*<td><a href="{reverse("console:settlement_run", args=[discarded.pk])}">'
        rf"{discarded.pk}</a></td>.*?</tr>",
        listing,
        re.S,
    )
    assert row, "the discarded run is on the run list"
    assert '<span class="badge ">Discarded</span>' in row.group()
    assert f"by {clerk} {when}" in row.group() and escaped in row.group()
    assert_phone_ready(listing)

    # Version 1's page: the period's versions, the discarded one with who, when and why.
    page = client.get(reverse("console:settlement_run", args=[cast.run.pk])).content.decode()
    versions = re.search(r'<table id="run-versions">.*?</table>', page, re.S).group()
    assert re.findall(r">v(\d)<", versions) == ["1", "2"]
    assert f"by {clerk} {when}: {escaped}" in versions
    assert_phone_ready(page)

    # The discarded run's own page: the record, no lines, no button.
    page = client.get(reverse("console:settlement_run", args=[discarded.pk])).content.decode()
    assert f'<div id="run-discarded">Discarded by {clerk} {when}: {escaped}</div>' in page
    assert "2 lines, total $50.00, deleted when discarded" in page
    assert "No lines: the run was discarded." in page
    for action in ("calculate", "approve", "export", "restate", "discard"):
        assert f'value="{action}"' not in page
    assert "js/progress.js" not in page


def test_the_admin_shows_a_discarded_run_read_only(cast, discarded, client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    url = f"/admin/settlements/settlementrun/{discarded.pk}/change/"

    page = client.get(url).content.decode()

    assert "Meter 3&#x27;s July reads are &lt;still&gt; being checked." in page
    assert cast.clerk.get_username() in page
    assert 'name="_save"' not in page and "deletelink" not in page
    assert client.post(url, {"status": "draft"}).status_code == 403
    assert client.post(url.replace("change", "delete"), {"post": "yes"}).status_code == 403
    assert SettlementRun.objects.get(pk=discarded.pk).status == "discarded"


# --- the console's discard form ---------------------------------------------------------------


@pytest.mark.parametrize("reason", [None, "", "  \n  "])
def test_a_blank_reason_is_a_form_error_and_discards_nothing(cast, client, reason):
    _remeasure(cast)
    v2 = settlement_run_restate(run=cast.run, by=cast.manager)
    client.force_login(cast.clerk)

    response = _post_discard(client, v2, **({} if reason is None else {"reason": reason}))

    assert response.status_code == 200 and response.redirect_chain == []
    html = response.content.decode()
    assert re.search(r'<details id="run-discard"[^>]*\sopen\b', html)
    assert (
        '<ul class="errorlist" id="discard-reason_error"><li>Say why this version is discarded: '
        "the reason stays on record with it, for billing clerks and auditors.</li></ul>"
    ) in html
    assert 'aria-describedby="discard-reason_error"' in html
    assert_phone_ready(html)
    stored = SettlementRun.objects.get(pk=v2.pk)
    assert (stored.status, stored.discarded_at, stored.lines.count()) == ("calculated", None, 2)


def test_a_reason_too_long_is_a_form_error_and_keeps_what_was_typed(cast, client):
    _remeasure(cast)
    v2 = settlement_run_restate(run=cast.run, by=cast.manager)
    client.force_login(cast.clerk)

    response = _post_discard(client, v2, reason="x" * 501)

    html = response.content.decode()
    assert "Ensure this value has at most 500 characters (it has 501)." in html
    assert f">{'x' * 501}</textarea>" in html
    assert SettlementRun.objects.get(pk=v2.pk).status == "calculated"


def test_the_console_discards_with_the_reason_given(cast, client):
    _remeasure(cast)
    v2 = settlement_run_restate(run=cast.run, by=cast.manager)
    client.force_login(cast.clerk)

    response = _post_discard(client, v2, reason="  Waiting for meter 3.  ")

    assert response.redirect_chain[-1][0] == reverse("console:settlement_run", args=[cast.run.pk])
    stored = SettlementRun.objects.get(pk=v2.pk)
    assert (stored.status, stored.discarded_by, stored.discard_reason) == (
        "discarded",
        cast.clerk,
        "Waiting for meter 3.",
    )
