"""Disputes through the pages: a participant disputes a line in the portal, a program manager
decides in the console, and both sides read the same history."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from dr_platform.models import Membership
from settlements.disputes import dispute_raise
from settlements.models import Dispute, DisputeEntry, SettlementRun
from settlements.runs import settlement_run_restate
from tests.factories import staff_user
from tests.settlements.settlement_helpers import amounts, approved, calculated, perform
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


# --- after a restatement ---------------------------------------------------------------------


def _restate_acme_event_1(cast, average_kw: str, kwh: str, *, approve: bool = True):
    """Late meter data for Acme's event 1, restated (calculated by the clerk) and, with
    ``approve``, approved by the manager."""
    participation = cast.events[0].participations.get(enrollment__site__organization=cast.acme)
    perform(participation, average_kw=average_kw, kwh=kwh)
    restatement = settlement_run_restate(run=cast.run, by=cast.clerk)
    assert restatement is not None
    return approved(restatement, by=cast.manager) if approve else restatement


@pytest.fixture
def restated(cast):
    """Acme's event 1 measured 90 kW / 180 kWh instead of 80 / 160, restated and approved:
    capacity (0.9 + 0.6) / 2 × 100 kW × $8 = $600.00, $40.00 more; event 1's energy
    180 × $0.50 = $90.00, $10.00 more. Event 2's energy ($60.00) and Birch's lines did not
    change, so version 2 has no line for them."""
    restatement = _restate_acme_event_1(cast, "90", "180")
    assert amounts(restatement) == [
        ("capacity", None, "40.00"),
        ("energy", cast.events[0].pk, "10.00"),
    ]
    cast.run.refresh_from_db()
    assert cast.run.status == SettlementRun.Status.SUPERSEDED
    return restatement


def _acme_v1(cast) -> dict[str, object]:
    capacity, event_1, event_2 = cast.lines(cast.acme)
    assert (capacity.kind, event_1.event_id, event_2.event_id) == (
        "capacity",
        cast.events[0].pk,
        cast.events[1].pk,
    )
    return {"capacity": capacity, "event_1": event_1, "event_2": event_2}


def test_a_line_the_restatement_left_unchanged_is_disputed_in_the_superseded_version(
    cast, restated, client
):
    unchanged = _acme_v1(cast)["event_2"]
    operator = member(cast.acme)
    client.force_login(operator)

    response = _raise(client, cast, unchanged, comment="Event 2 shed 70 kW.", claimed="70.00")

    assert response.status_code == 302
    assert response["Location"] == f"{_statement_url(cast)}#line-{unchanged.pk}"
    dispute = Dispute.objects.get()
    assert (dispute.line, dispute.organization, dispute.raised_by) == (
        unchanged,
        cast.acme,
        operator,
    )
    assert (dispute.status, dispute.claimed_amount) == ("open", Decimal("70.00"))
    # Birch's lines are all unchanged: both remain disputable in the superseded version.
    _, birch_energy = cast.lines(cast.birch)
    birch = member(cast.birch, Membership.Role.ADMIN)
    assert dispute_raise(line=birch_energy, by=birch, comment="Too low.").line == birch_energy


@pytest.mark.parametrize("which", ["capacity", "event_1"])
def test_a_line_the_restatement_corrected_is_refused_naming_the_later_version(
    cast, restated, client, which
):
    changed = _acme_v1(cast)[which]
    correction = restated.lines.get(kind=changed.kind, event_id=changed.event_id)
    message = (
        f"Version 2 of this statement corrected this line (its line {correction.sequence}); "
        "dispute that line instead, it holds the corrected amount."
    )
    operator = member(cast.acme)

    with pytest.raises(ValidationError) as refused:
        dispute_raise(line=changed, by=operator, comment="Still wrong.")
    assert refused.value.messages == [message]

    client.force_login(operator)
    response = _raise(client, cast, changed)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Dispute.objects.exists()


def test_the_difference_line_of_the_restatement_is_disputed(cast, restated, client):
    delta = restated.lines.get(kind="energy")
    assert (delta.organization, delta.amount) == (cast.acme, Decimal("10.00"))
    client.force_login(member(cast.acme))

    response = client.post(
        reverse("portal:dispute_raise", args=[cast.acme.pk, restated.pk, delta.pk]),
        {"comment": "The corrected meter data shows 95 kW.", "claimed_amount": "12.50"},
    )

    assert response.status_code == 302
    dispute = Dispute.objects.get()
    assert (dispute.line, dispute.claimed_amount) == (delta, Decimal("12.50"))


def test_the_superseded_statement_offers_a_dispute_only_where_it_may_be_raised(
    cast, restated, client
):
    lines = _acme_v1(cast)
    corrections = {line.kind: line for line in restated.lines.all()}
    client.force_login(member(cast.acme))

    html = client.get(_statement_url(cast)).content.decode()

    # One form, on event 2's unchanged line; the two corrected lines link to their
    # corrections in version 2.
    assert html.count("<summary>Dispute this line</summary>") == 1
    assert (
        reverse("portal:dispute_raise", args=[cast.acme.pk, cast.run.pk, lines["event_2"].pk])
        in html
    )
    for which in ("capacity", "event_1"):
        assert (
            reverse("portal:dispute_raise", args=[cast.acme.pk, cast.run.pk, lines[which].pk])
            not in html
        )
    assert html.count("Corrected in version 2") == 2
    for kind in ("capacity", "energy"):
        later = corrections[kind]
        link = reverse("portal:statement", args=[cast.acme.pk, restated.pk])
        assert f'href="{link}#line-{later.pk}">line {later.sequence} of version 2</a>' in html
    assert "dispute the line in the latest version" not in html
    assert "the other lines stand as shown here and can still be disputed here" in html
    assert_phone_ready(html)

    # The restatement's own page offers both of its difference lines.
    later_page = client.get(reverse("portal:statement", args=[cast.acme.pk, restated.pk]))
    assert later_page.content.decode().count("<summary>Dispute this line</summary>") == 2
    assert "Corrected in version" not in later_page.content.decode()

    # A viewer reads the same notes but gets no form.
    client.force_login(member(cast.acme, Membership.Role.VIEWER))
    viewer = client.get(_statement_url(cast)).content.decode()
    assert viewer.count("Corrected in version 2") == 2
    assert "<summary>Dispute this line</summary>" not in viewer and "dispute it there" not in viewer


def test_after_a_restatement_participants_still_see_only_their_organization(cast, restated, client):
    birch = member(cast.birch)
    client.force_login(birch)

    page = client.get(reverse("portal:statement", args=[cast.birch.pk, cast.run.pk]))

    # Birch's two unchanged lines, both disputable; nothing of Acme's, not even a note.
    html = page.content.decode()
    assert [item.line.organization for item in page.context["statement"].lines] == [
        cast.birch,
        cast.birch,
    ]
    assert html.count("<summary>Dispute this line</summary>") == 2
    assert "Corrected in version" not in html
    assert "Acme" not in html and "$560.00" not in html
    # Version 2 holds no line of Birch's: it is not Birch's statement.
    assert (
        client.get(reverse("portal:statement", args=[cast.birch.pk, restated.pk])).status_code
        == 404
    )
    # Acme's lines, changed or not, stay out of Birch's reach.
    for line in _acme_v1(cast).values():
        assert _raise(client, cast, line).status_code == 404
        assert (
            client.post(
                reverse("portal:dispute_raise", args=[cast.birch.pk, cast.run.pk, line.pk]),
                {"comment": "Let us try."},
            ).status_code
            == 404
        )
    delta = restated.lines.get(kind="energy")
    assert (
        client.post(
            reverse("portal:dispute_raise", args=[cast.acme.pk, restated.pk, delta.pk]),
            {"comment": "Let us try."},
        ).status_code
        == 404
    )
    assert not Dispute.objects.exists()


def test_a_restatement_not_yet_approved_leaves_the_lines_disputable(cast):
    restatement = _restate_acme_event_1(cast, "90", "180", approve=False)
    assert restatement.status == SettlementRun.Status.CALCULATED

    dispute = dispute_raise(
        line=_acme_v1(cast)["event_1"], by=member(cast.acme), comment="We shed 90 kW."
    )

    assert dispute.status == "open"


def test_a_line_corrected_twice_points_to_the_latest_correction(cast, restated):
    # Event 1 corrected again, to 95 kW / 190 kWh: capacity (0.95 + 0.6) / 2 × $800 =
    # $620.00, $20.00 more than version 2's $600.00; energy $95.00, $5.00 more.
    v3 = _restate_acme_event_1(cast, "95", "190")
    assert amounts(v3) == [("capacity", None, "20.00"), ("energy", cast.events[0].pk, "5.00")]
    v3_energy = v3.lines.get(kind="energy")
    operator = member(cast.acme)

    for line in (_acme_v1(cast)["event_1"], restated.lines.get(kind="energy")):
        with pytest.raises(ValidationError) as refused:
            dispute_raise(line=line, by=operator, comment="Still wrong.")
        assert refused.value.messages[0].startswith(
            f"Version 3 of this statement corrected this line (its line {v3_energy.sequence});"
        )
    assert dispute_raise(line=v3_energy, by=operator, comment="Now 100 kW.").line == v3_energy
    assert dispute_raise(line=_acme_v1(cast)["event_2"], by=operator, comment="70 kW.")
