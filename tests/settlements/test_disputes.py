"""Disputes through the pages: a participant disputes a line in the portal, a program manager
decides in the console, and both sides read the same history."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from dr_platform.models import Membership
from settlements.models import Dispute, DisputeEntry
from tests.factories import staff_user
from tests.settlements.settlement_helpers import amounts, approved, calculated
from tests.settlements.statement_cast import assert_phone_ready, make_cast, member


@pytest.fixture
def cast(july_program):
    return make_cast(july_program)


def _energy_line(cast, organization=None):
    """The cast's first energy line of ``organization`` (Acme's: event 1, $80.00)."""
    return next(line for line in cast.lines(organization or cast.acme) if line.kind == "energy")


def _statement_url(cast, organization=None) -> str:
    return reverse("portal:statement", args=[(organization or cast.acme).pk, cast.run.pk])


def _raise(client, cast, line, comment="Our meter shows 95 kW of reduction.", claimed="95.00"):
    url = reverse("portal:dispute_raise", args=[line.organization_id, cast.run.pk, line.pk])
    return client.post(url, {"comment": comment, "claimed_amount": claimed})


def _decide(client, dispute, **data):
    return client.post(reverse("console:dispute", args=[dispute.pk]), data)


def test_a_participant_disputes_a_line_and_both_sides_see_the_whole_history(cast, client):
    operator = member(cast.acme, Membership.Role.OPERATOR)
    manager = staff_user("Program managers", first_name="Dana", last_name="Reyes")
    line = _energy_line(cast)
    client.force_login(operator)

    response = _raise(client, cast, line)

    assert response.status_code == 302
    assert response["Location"] == f"{_statement_url(cast)}#line-{line.pk}"
    dispute = Dispute.objects.get()
    assert (dispute.line, dispute.organization, dispute.raised_by) == (line, cast.acme, operator)
    assert (dispute.status, dispute.claimed_amount) == ("open", Decimal("95.00"))
    page = client.get(_statement_url(cast)).content.decode()
    assert f'id="dispute-{dispute.pk}"' in page
    assert "Our meter shows 95 kW of reduction." in page and "claimed $95.00" in page
    # The disputed line has no second dispute form; the two other lines keep theirs.
    assert page.count("<summary>Dispute this line</summary>") == 2

    # The manager finds it in the queue, with the line and the claim, and asks a question.
    client.force_login(manager)
    queue = client.get(reverse("console:dispute_queue")).content.decode()
    assert "Acme Cold Storage LLC" in queue and "Our meter shows 95 kW" in queue
    assert (
        "<strong>$80.00</strong>" in queue and "participant claims <strong>$95.00</strong>" in queue
    )
    assert_phone_ready(queue)
    response = _decide(client, dispute, action="comment", text="Which meter do you read?")
    assert response.status_code == 302

    # The participant reads the question (marked as the utility's) and answers it.
    client.force_login(operator)
    page = client.get(_statement_url(cast)).content.decode()
    assert "Which meter do you read?" in page and "Dana Reyes (utility)" in page
    response = client.post(
        reverse("portal:dispute_comment", args=[cast.acme.pk, dispute.pk]),
        {"text": "The main revenue meter, MTR-1."},
    )
    assert response.status_code == 302

    client.force_login(manager)
    detail = client.get(reverse("console:dispute", args=[dispute.pk])).content.decode()
    history = [entry.action for entry in DisputeEntry.objects.filter(dispute=dispute)]
    assert history == ["raised", "comment", "comment"]
    positions = [
        detail.index(text)
        for text in (
            "Our meter shows 95 kW of reduction.",
            "Which meter do you read?",
            "The main revenue meter, MTR-1.",
        )
    ]
    assert positions == sorted(positions)
    assert_phone_ready(detail)


def test_a_rejection_needs_a_reason_and_the_participant_reads_it(cast, client):
    operator = member(cast.acme)
    client.force_login(operator)
    _raise(client, cast, _energy_line(cast))
    dispute = Dispute.objects.get()
    manager = staff_user("Program managers")
    client.force_login(manager)

    response = _decide(client, dispute, action="reject", reason="   ")

    assert response.status_code == 200
    assert "A rejection needs a reason" in response.content.decode()
    dispute.refresh_from_db()
    assert dispute.status == "open" and dispute.decided_by is None

    response = _decide(client, dispute, action="reject", reason="Meter data validated; 80 kW.")

    assert response.status_code == 302 and response["Location"] == reverse("console:dispute_queue")
    dispute.refresh_from_db()
    assert (dispute.status, dispute.decided_by, dispute.decision_reason) == (
        "rejected",
        manager,
        "Meter data validated; 80 kW.",
    )
    queue = client.get(reverse("console:dispute_queue"))
    assert list(queue.context["queue"]) == []
    assert list(queue.context["decided"]) == [dispute]

    client.force_login(operator)
    page = client.get(_statement_url(cast)).content.decode()
    assert "Rejected: Meter data validated; 80 kW." in page
    assert [entry.action for entry in dispute.entries.all()] == ["raised", "rejected"]
    # With the dispute decided, the line may be disputed again.
    assert page.count("<summary>Dispute this line</summary>") == 3


def test_a_decided_dispute_cannot_be_decided_again(cast, client):
    client.force_login(member(cast.acme))
    _raise(client, cast, _energy_line(cast))
    dispute = Dispute.objects.get()
    first, second = staff_user("Program managers"), staff_user("Program managers")
    client.force_login(first)
    _decide(client, dispute, action="reject", reason="The baseline is right.")
    client.force_login(second)

    response = _decide(
        client, dispute, action="accept", adjustment_amount="15.00", reason="Late meter data."
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("console:dispute", args=[dispute.pk])
    page = client.get(response["Location"]).content.decode()
    assert "This dispute was already rejected" in page
    assert 'name="action" value="accept"' not in page  # no decision forms on a decided one
    dispute.refresh_from_db()
    assert (dispute.status, dispute.decided_by, dispute.adjustment_amount) == (
        "rejected",
        first,
        None,
    )
    assert [entry.action for entry in dispute.entries.all()] == ["raised", "rejected"]


def test_an_accepted_dispute_becomes_an_adjustment_line_of_the_next_run(cast, client):
    operator = member(cast.acme)
    client.force_login(operator)
    _raise(client, cast, _energy_line(cast))
    dispute = Dispute.objects.get()
    client.force_login(cast.manager)

    missing = _decide(client, dispute, action="accept", adjustment_amount="", reason="")
    assert missing.status_code == 200
    assert "Enter the adjustment in dollars" in missing.content.decode()
    zero = _decide(client, dispute, action="accept", adjustment_amount="0", reason="Nothing.")
    assert "enter a non-zero amount" in zero.content.decode()
    response = _decide(
        client, dispute, action="accept", adjustment_amount="15.00", reason="Late meter data."
    )

    assert response.status_code == 302
    dispute.refresh_from_db()
    assert (dispute.status, dispute.adjustment_amount, dispute.adjustment_line) == (
        "accepted",
        Decimal("15.00"),
        None,
    )
    client.force_login(operator)
    page = client.get(_statement_url(cast)).content.decode()
    assert "Accepted with an adjustment of <strong>$15.00</strong>" in page
    assert "to be carried into the next settlement run" in page

    august = approved(
        calculated(cast.program, by=cast.manager, start=dt.date(2026, 8, 1)), by=cast.clerk
    )

    # August has no events: capacity at factor 1, 100 kW × $8 = $800.00 and 50 kW × $8 =
    # $400.00; Acme's accepted dispute adds its $15.00.
    assert sorted(amount for kind, _, amount in amounts(august)) == ["15.00", "400.00", "800.00"]
    adjustment = august.lines.get(kind="adjustment")
    assert (adjustment.organization, adjustment.reference) == (cast.acme, f"dispute:{dispute.pk}")
    dispute.refresh_from_db()
    assert dispute.adjustment_line == adjustment
    assert dispute.entries.last().action == "carried"
    statement = client.get(
        reverse("portal:statement", args=[cast.acme.pk, august.pk])
    ).content.decode()
    assert "$815.00" in statement  # Acme's August total
    page = client.get(_statement_url(cast)).content.decode()
    assert "carried into a later settlement run" in page
    assert f"Paid as line {adjustment.pk} of run {august.pk}" in page


def test_viewers_read_disputes_but_may_not_raise_or_comment(cast, client):
    line = _energy_line(cast)
    client.force_login(member(cast.acme, Membership.Role.ADMIN))
    _raise(client, cast, line)  # admins may dispute
    dispute = Dispute.objects.get()
    client.force_login(member(cast.acme, Membership.Role.VIEWER))

    other_line = next(item for item in cast.lines(cast.acme) if item.kind == "capacity")
    assert _raise(client, cast, other_line).status_code == 403
    comment = client.post(
        reverse("portal:dispute_comment", args=[cast.acme.pk, dispute.pk]), {"text": "Me too."}
    )
    assert comment.status_code == 403
    assert Dispute.objects.count() == 1 and dispute.entries.count() == 1
    page = client.get(_statement_url(cast)).content.decode()
    assert "Our meter shows 95 kW of reduction." in page  # the history is there to read
    assert 'name="text"' not in page and "<summary>Dispute this line</summary>" not in page


def test_a_participant_cannot_dispute_or_comment_on_another_organizations_line(cast, client):
    acme_line = _energy_line(cast)
    client.force_login(member(cast.acme))
    _raise(client, cast, acme_line)
    dispute = Dispute.objects.get()
    client.force_login(member(cast.birch, Membership.Role.ADMIN))

    through_acme = _raise(client, cast, acme_line)
    through_birch = client.post(
        reverse("portal:dispute_raise", args=[cast.birch.pk, cast.run.pk, acme_line.pk]),
        {"comment": "Not ours, but let us try."},
    )
    comment_acme = client.post(
        reverse("portal:dispute_comment", args=[cast.acme.pk, dispute.pk]), {"text": "Hello"}
    )
    comment_birch = client.post(
        reverse("portal:dispute_comment", args=[cast.birch.pk, dispute.pk]), {"text": "Hello"}
    )

    assert [
        response.status_code
        for response in (through_acme, through_birch, comment_acme, comment_birch)
    ] == [404, 404, 404, 404]
    assert Dispute.objects.count() == 1 and dispute.entries.count() == 1
    # Birch disputes its own line without trouble.
    assert _raise(client, cast, _energy_line(cast, cast.birch)).status_code == 302


def test_a_dispute_needs_a_comment_and_a_line_has_one_open_dispute(cast, client):
    line = _energy_line(cast)
    client.force_login(member(cast.acme))

    empty = _raise(client, cast, line, comment="  ", claimed="")

    assert empty.status_code == 200
    html = empty.content.decode()
    assert "Say why this line is wrong" in html
    assert '<details class="no-print" open>' in html
    assert not Dispute.objects.exists()
    assert _raise(client, cast, line, claimed="12.345").status_code == 200
    assert not Dispute.objects.exists()

    assert _raise(client, cast, line).status_code == 302
    client.force_login(member(cast.acme, Membership.Role.ADMIN))
    again = _raise(client, cast, line, comment="We dispute it too.")

    assert again.status_code == 200
    assert "This line already has an open dispute" in again.content.decode()
    assert Dispute.objects.count() == 1


@pytest.mark.parametrize("who", ["Billing", "Auditors", "participant"])
def test_only_program_managers_work_the_dispute_queue(cast, client, who):
    client.force_login(member(cast.acme))
    _raise(client, cast, _energy_line(cast))
    dispute = Dispute.objects.get()
    client.force_login(member(cast.birch) if who == "participant" else staff_user(who))

    assert client.get(reverse("console:dispute_queue")).status_code == 403
    assert client.get(reverse("console:dispute", args=[dispute.pk])).status_code == 403
    response = _decide(client, dispute, action="reject", reason="No.")

    assert response.status_code == 403
    dispute.refresh_from_db()
    assert dispute.status == "open"
