"""The settlement console: who may open which page, and a run taken from draft to billing
through its buttons (four eyes shown to the clerk, not a bare 403)."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.urls import reverse

from settlements.billing import billing_export_create
from settlements.models import BillingExport, SettlementRun
from tests.factories import staff_user
from tests.settlements.settlement_helpers import amounts, enroll, make_program, perform
from tests.settlements.statement_cast import assert_phone_ready, make_cast, member


@pytest.fixture
def cast(july_program):
    return make_cast(july_program)


def _pages(cast, export) -> dict[str, str]:
    return {
        "runs": reverse("console:settlement_runs"),
        "run": reverse("console:settlement_run", args=[cast.run.pk]),
        "exports": reverse("console:billing_exports"),
        "download": reverse("console:billing_export_download", args=[export.pk]),
        "disputes": reverse("console:dispute_queue"),
    }


# Billing and program managers read runs and exports (roles.py: settlements view and more);
# auditors hold no settlements permission; only program managers decide disputes.
ACCESS = {
    "Program managers": {"runs": 200, "run": 200, "exports": 200, "download": 200, "disputes": 200},
    "Billing": {"runs": 200, "run": 200, "exports": 200, "download": 200, "disputes": 403},
    "Auditors": {"runs": 403, "run": 403, "exports": 403, "download": 403, "disputes": 403},
    "participant": {"runs": 403, "run": 403, "exports": 403, "download": 403, "disputes": 403},
}


@pytest.mark.parametrize("who", list(ACCESS))
def test_each_role_opens_the_settlement_pages_its_role_allows(cast, client, who):
    export = billing_export_create(run=cast.run, by=cast.clerk)
    client.force_login(member(cast.acme) if who == "participant" else staff_user(who))

    answers = {name: client.get(url).status_code for name, url in _pages(cast, export).items()}

    assert answers == ACCESS[who]


def test_anonymous_visitors_are_sent_to_log_in(cast, client):
    export = billing_export_create(run=cast.run, by=cast.clerk)
    for url in _pages(cast, export).values():
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def _act(client, run, action):
    return client.post(
        reverse("console:settlement_run_action", args=[run.pk]), {"action": action}, follow=True
    )


def _messages(response) -> list[tuple[str, str]]:
    return [(message.tags, message.message) for message in response.context["messages"]]


def test_a_run_goes_from_draft_to_billing_through_the_buttons_with_four_eyes(db, client):
    program = make_program(capacity_rate="8", energy_rate="0.50")
    enroll(program, "100")
    manager = staff_user("Program managers")
    clerk = staff_user("Billing")
    client.force_login(manager)

    bad = client.post(
        reverse("console:settlement_run_create"),
        {"program": program.pk, "period_kind": "month", "period_start": "2026-07-02"},
    )
    assert bad.status_code == 200
    assert "A month run starts on the 1st, not on 2026-07-02." in bad.content.decode()
    assert not SettlementRun.objects.exists()

    created = client.post(
        reverse("console:settlement_run_create"),
        {"program": program.pk, "period_kind": "month", "period_start": "2026-07-01"},
    )
    run = SettlementRun.objects.get()
    assert created["Location"] == reverse("console:settlement_run", args=[run.pk])
    assert run.status == "draft"
    page = client.get(created["Location"]).content.decode()
    assert 'value="calculate"' in page and 'value="approve"' not in page

    calculated = _act(client, run, "calculate")

    run.refresh_from_db()
    assert (run.status, run.calculated_by) == ("calculated", manager)
    # No events: 100 kW × 1 month × $8 × factor 1 = $800.00.
    assert (
        "success",
        "Calculated: 1 line, total $800.00. Someone other than you approves it.",
    ) in (_messages(calculated))
    html = calculated.content.decode()
    assert 'value="approve"' in html and "You calculated this run" in html
    assert_phone_ready(html)

    # The manager who calculated cannot approve: the refusal is on the page, the run unchanged.
    refused = _act(client, run, "approve")

    assert refused.status_code == 200
    errors = [text for tag, text in _messages(refused) if tag == "error"]
    assert len(errors) == 1 and errors[0].startswith("Four eyes: the run must be approved by")
    assert '<li class="error">Four eyes:' in refused.content.decode()
    run.refresh_from_db()
    assert run.status == "calculated" and run.approved_by is None

    client.force_login(clerk)
    approved = _act(client, run, "approve")

    run.refresh_from_db()
    assert (run.status, run.approved_by) == ("approved", clerk)
    assert any(text.startswith("Approved:") for _, text in _messages(approved))
    assert 'value="export"' in approved.content.decode()

    exported = _act(client, run, "export")

    export = BillingExport.objects.get()
    run.refresh_from_db()
    assert run.status == "exported"
    assert (
        "success",
        f"Exported {export.file_name}: 1 row, sha256 {export.sha256}.",
    ) in _messages(exported)
    listing = client.get(reverse("console:billing_exports")).content.decode()
    assert export.sha256 in listing and export.file_name in listing
    assert_phone_ready(listing)
    download = client.get(reverse("console:billing_export_download", args=[export.pk]))
    assert download.content == bytes(export.content)
    assert hashlib.sha256(download.content).hexdigest() == export.sha256
    assert download.content.decode().splitlines()[1].endswith(",800.00,USD")

    # Exporting again records a second hand-over of the same bytes.
    _act(client, run, "export")
    assert set(BillingExport.objects.values_list("sha256", flat=True)) == {export.sha256}
    assert BillingExport.objects.count() == 2


def test_a_run_in_the_wrong_status_says_why(cast, client):
    client.force_login(staff_user("Program managers"))

    response = _act(client, cast.run, "calculate")

    assert ("error", f"Run {cast.run.pk} is approved: its lines never change; restate it to "
            "correct them.") in _messages(response)  # fmt: skip
    cast.run.refresh_from_db()
    assert cast.run.status == "approved"


def test_restating_an_unchanged_period_makes_nothing(cast, client):
    client.force_login(staff_user("Billing"))

    response = _act(client, cast.run, "restate")

    assert (
        "info",
        "Nothing changed since the approved version: no restatement was made.",
    ) in _messages(response)
    assert SettlementRun.objects.count() == 1


@pytest.mark.parametrize("who", ["Auditors", "participant"])
def test_only_billing_and_program_managers_press_the_buttons(cast, client, july_program, who):
    client.force_login(member(cast.acme) if who == "participant" else staff_user(who))

    action = client.post(
        reverse("console:settlement_run_action", args=[cast.run.pk]), {"action": "export"}
    )
    create = client.post(
        reverse("console:settlement_run_create"),
        {"program": july_program.pk, "period_kind": "month", "period_start": "2026-08-01"},
    )

    assert (action.status_code, create.status_code) == (403, 403)
    assert not BillingExport.objects.exists()
    assert SettlementRun.objects.count() == 1


def test_a_billing_clerk_sees_the_buttons_and_an_auditor_cannot_open_the_run(cast, client):
    client.force_login(staff_user("Billing"))
    page = client.get(reverse("console:settlement_run", args=[cast.run.pk])).content.decode()
    assert 'value="export"' in page and 'value="restate"' in page
    client.force_login(staff_user("Auditors"))
    assert client.get(reverse("console:settlement_run", args=[cast.run.pk])).status_code == 403


def test_the_run_pages_read_a_bounded_number_of_queries(
    cast, client, django_assert_max_num_queries
):
    billing_export_create(run=cast.run, by=cast.clerk)
    client.force_login(cast.manager)

    with django_assert_max_num_queries(15):
        listing = client.get(reverse("console:settlement_runs"))
    with django_assert_max_num_queries(15):
        page = client.get(reverse("console:settlement_run", args=[cast.run.pk]))

    html = page.content.decode()
    assert "$1,150.00" in html  # Acme's $700.00 and Birch's $450.00
    assert "Acme Cold Storage LLC" in html and "Birch Paper Mill" in html
    assert_phone_ready(html)
    assert_phone_ready(listing.content.decode())
    assert f'href="{reverse("console:settlement_run", args=[cast.run.pk])}"' in (
        listing.content.decode()
    )


def test_a_restatement_holds_the_differences_and_supersedes_the_version_it_corrects(cast, client):
    # A late meter correction: Acme's event 1 reduction is 90 kW / 180 kWh, not 80 / 160.
    participation = cast.events[0].participations.get(enrollment__site__organization=cast.acme)
    perform(participation, average_kw="90", kwh="180")
    client.force_login(cast.clerk)

    response = _act(client, cast.run, "restate")

    restatement = SettlementRun.objects.get(version=2)
    assert response.redirect_chain[-1][0] == reverse(
        "console:settlement_run", args=[restatement.pk]
    )
    # Capacity: factor (0.9 + 0.6) / 2 = 0.75, so 100 kW × $8 × 0.75 = $600.00, $40.00 more;
    # energy: 180 kWh × $0.50 = $90.00, $10.00 more. Birch did not change: no line.
    assert amounts(restatement) == [
        ("capacity", None, "40.00"),
        ("energy", cast.events[0].pk, "10.00"),
    ]
    assert restatement.restates == cast.run
    assert _act(client, restatement, "approve").status_code == 200  # calculated by the clerk
    restatement.refresh_from_db()
    assert restatement.status == "calculated"
    client.force_login(cast.manager)
    _act(client, restatement, "approve")
    cast.run.refresh_from_db()
    assert cast.run.status == "superseded"

    # The participant sees both versions; in the superseded one only the line the
    # restatement left alone (event 2's energy) may still be disputed.
    operator = member(cast.acme)
    client.force_login(operator)
    old = client.get(reverse("portal:statement", args=[cast.acme.pk, cast.run.pk])).content.decode()
    assert "A later version corrected this statement" in old
    assert old.count("<summary>Dispute this line</summary>") == 1
    assert old.count("Corrected in version 2") == 2
    line = cast.lines(cast.acme)[1]
    refused = client.post(
        reverse("portal:dispute_raise", args=[cast.acme.pk, cast.run.pk, line.pk]),
        {"comment": "Still wrong."},
    )
    assert refused.status_code == 200
    assert "Version 2 of this statement corrected this line (its line 2)" in (
        refused.content.decode()
    )
    new = client.get(
        reverse("portal:statement", args=[cast.acme.pk, restatement.pk])
    ).content.decode()
    assert "its lines are the <strong>differences</strong> from version 1" in new
    assert re.search(r'id="statement-total">\$50\.00<', new)
    assert new.count("<summary>Dispute this line</summary>") == 2
