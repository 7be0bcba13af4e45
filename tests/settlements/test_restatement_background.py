"""Restating from the console: the next version is created ``calculating`` and a worker stores
its differences, as the calculate button does; a version nobody will approve (no differences,
a failed or unwanted one) is discarded from its page, with a reason, and stays on record
(the record itself, and what it is left out of: ``test_discard_record``).

The messages the console hands to the broker are recorded here and given to the task as the
worker of the "settlements" queue would (the real broker and worker: ``test_import_worker``).
Amounts are computed by hand: $8/kW-month capacity times the linear performance factor (the
mean performance ratio of the month's events), $0.50/kWh of energy per event.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.db import DEFAULT_DB_ALIAS, connections
from django.urls import reverse
from django.utils import timezone

from settlements.billing import billing_export_create
from settlements.disputes import dispute_accept, dispute_raise
from settlements.models import Dispute, DisputeEntry, SettlementLine, SettlementRun
from settlements.runs import (
    SettlementError,
    background,
    settlement_run_approve,
    settlement_run_calculate,
    settlement_run_calculate_background,
    settlement_run_calculation_request,
    settlement_run_create,
    settlement_run_discard,
    settlement_run_restate,
)
from settlements.tasks import settlement_run_calculate_task
from tests.factories import MembershipFactory, staff_user
from tests.settlements.settlement_helpers import (
    JULY,
    amounts,
    approved,
    calculated,
    enroll,
    event,
    participate,
    perform,
)
from tests.settlements.statement_cast import assert_phone_ready, member


@pytest.fixture
def sent(monkeypatch) -> list[tuple[int, int]]:
    """The calculation messages the console hands to the broker, (run id, user id) each,
    recorded instead of sent; :func:`_deliver` gives them to the task."""
    messages: list[tuple[int, int]] = []
    monkeypatch.setattr(settlement_run_calculate_task, "delay", lambda *args: messages.append(args))
    return messages


def _deliver(sent: list[tuple[int, int]]) -> list[dict]:
    """Run the task for each message sent, as the worker of the "settlements" queue does."""
    outcomes = [settlement_run_calculate_task.run(*args) for args in sent]
    sent.clear()
    return outcomes


@pytest.fixture
def july(july_program, manager, billing_clerk):
    """Sites A and B, 100 kW each, in the event of July 14; July's version 1 calculated by
    the manager and approved by the clerk.

    A: 80 kW, 160 kWh (ratio 0.8): capacity 100 × $8 × 0.8 = $640.00, energy $80.00.
    B: 50 kW, 100 kWh (ratio 0.5): capacity 100 × $8 × 0.5 = $400.00, energy $50.00.
    """
    a, b = enroll(july_program, "100"), enroll(july_program, "100")
    the_event = event(july_program, dt.date(2026, 7, 14))
    a_part = participate(the_event, a, average_kw="80", kwh="160")
    participate(the_event, b, average_kw="50", kwh="100")
    v1 = approved(calculated(july_program, by=manager), by=billing_clerk)
    assert v1.total == Decimal("1170.00") and v1.line_count == 4
    return {"v1": v1, "a": a, "b": b, "a_part": a_part, "event": the_event}


def lines_of(run: SettlementRun) -> list[tuple[str, int | None, str, str]]:
    """(kind, site id, quantity, amount) of each line in sequence; asserts the run total."""
    amounts(run)
    return [
        (line.kind, line.site_id, f"{line.quantity.normalize():f}", f"{line.amount:.2f}")
        for line in run.lines.order_by("sequence")
    ]


#: The reason a clerk gives for discarding, in these tests.
REASON = "Nothing to approve."


def _act(client, run_id: int, action: str, capture, **fields: str):
    """Press a run's button (with the form's ``fields``: a discard's ``reason``); the
    request's on-commit callbacks (the enqueue) run after it."""
    with capture(execute=True):
        return client.post(
            reverse("console:settlement_run_action", args=[run_id]),
            {"action": action, **fields},
            follow=True,
        )


def _messages(response) -> list[tuple[str, str]]:
    return [(message.tags, message.message) for message in response.context["messages"]]


def _page(client, run_id: int) -> str:
    response = client.get(reverse("console:settlement_run", args=[run_id]))
    assert response.status_code == 200
    return response.content.decode()


def _discard_offered(html: str) -> str | None:
    """How the run page offers to discard the run: "open" (the confirmation shown),
    "folded" (behind its button), or None (not at all)."""
    found = re.search(r'<details id="run-discard"[^>]*>', html)
    if found is None:
        return None
    return "open" if re.search(r"\sopen\b", found.group()) else "folded"


def _restated(client, v1: SettlementRun, capture, sent) -> SettlementRun:
    """Press "restate" on version 1 and have the worker calculate the new version."""
    _act(client, v1.pk, "restate", capture)
    _deliver(sent)
    return SettlementRun.objects.get(program=v1.program, period_start=v1.period_start, version=2)


# --- restating in the background --------------------------------------------------------------


def test_restate_creates_version_2_calculating_and_enqueues_one_task_on_commit(
    july, client, billing_clerk, sent, django_capture_on_commit_callbacks
):
    v1 = july["v1"]
    client.force_login(billing_clerk)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            reverse("console:settlement_run_action", args=[v1.pk]), {"action": "restate"}
        )

    v2 = SettlementRun.objects.get(version=2)
    assert response.status_code == 302
    assert response["Location"] == reverse("console:settlement_run", args=[v2.pk])
    assert (v2.status, v2.restates, v2.created_by, v2.period_start) == (
        "calculating",
        v1,
        billing_clerk,
        JULY,
    )
    # Nothing was calculated in the request, and nothing is sent before the commit.
    assert (v2.line_count, v2.calculated_at, v2.calculation_error) == (0, None, "")
    assert not SettlementLine.objects.filter(run=v2).exists()
    assert timezone.now() - v2.calculation_started_at < dt.timedelta(minutes=1)
    assert sent == [] and len(callbacks) == 1
    callbacks[0]()
    assert sent == [(v2.pk, billing_clerk.pk)]

    page = client.get(response["Location"])
    assert _messages(page) == [
        (
            "info",
            "Restating in the background: this page follows the progress of version 2 and "
            "shows the differences from the approved version when it is done. Someone other "
            "than you approves it.",
        )
    ]
    html = page.content.decode()
    assert f'data-progress-url="{reverse("console:settlement_run_progress", args=[v2.pk])}"' in (
        html
    )
    assert "js/progress.js" in html
    # What the script shows should the run be discarded while the page is open.
    assert f'data-progress-gone="Run {v2.pk} no longer exists: it was discarded."' in html
    for button in ("calculate", "approve", "discard", "restate"):
        assert f'value="{button}"' not in html
    assert_phone_ready(html)
    v1.refresh_from_db()
    assert (v1.status, v1.total) == ("approved", Decimal("1170.00"))


def test_the_worker_stores_exactly_the_differences(
    july, client, billing_clerk, manager, sent, django_capture_on_commit_callbacks
):
    v1, a = july["v1"], july["a"].site_id
    # A corrected meter import: A did 90 kW, 180 kWh (ratio 0.9). B is unchanged.
    perform(july["a_part"], average_kw="90", kwh="180")
    client.force_login(billing_clerk)
    _act(client, v1.pk, "restate", django_capture_on_commit_callbacks)
    v2 = SettlementRun.objects.get(version=2)

    outcome = _deliver(sent)

    assert outcome == [{"run": v2.pk, "status": "calculated", "lines": 2, "total": "90.00"}]
    v2.refresh_from_db()
    assert (v2.status, v2.calculated_by, v2.calculation_error) == ("calculated", billing_clerk, "")
    # Capacity 100 × $8 × 0.9 = $720.00, was $640.00: +$80.00 (same kW-months: 0).
    # Energy 180 kWh × $0.50 = $90.00, was $80.00: +$10.00 for 20 more kWh. B: no line.
    assert lines_of(v2) == [("capacity", a, "0", "80.00"), ("energy", a, "20", "10.00")]
    assert v2.total == Decimal("90.00")
    html = _page(client, v2.pk)
    assert '<div id="run-outcome">Calculated: 2 lines, total $90.00</div>' in html
    assert "No differences" not in html and "js/progress.js" not in html
    assert 'value="approve"' in html and "You calculated this run" in html
    assert _discard_offered(html) == "folded"
    assert "Discarding ends version 2 of this period and deletes its 2 lines (total $90.00)" in (
        html
    )

    client.force_login(manager)
    _act(client, v2.pk, "approve", django_capture_on_commit_callbacks)

    v1.refresh_from_db()
    v2.refresh_from_db()
    assert (v1.status, v2.status) == ("superseded", "approved")


def test_a_restatement_that_changes_nothing_stays_with_no_line_and_its_page_offers_discard(
    july, client, billing_clerk, sent, django_capture_on_commit_callbacks
):
    v1 = july["v1"]
    client.force_login(billing_clerk)
    _act(client, v1.pk, "restate", django_capture_on_commit_callbacks)
    v2 = SettlementRun.objects.get(version=2)

    assert _deliver(sent) == [{"run": v2.pk, "status": "calculated", "lines": 0, "total": "0.00"}]

    v2.refresh_from_db()
    assert (v2.status, v2.line_count, v2.total) == ("calculated", 0, Decimal("0.00"))
    assert "No differences from the approved version: this restatement changes nothing." in (
        v2.notes
    )
    html = _page(client, v2.pk)
    assert (
        '<span class="badge ok">No differences</span> Nothing changed since the approved '
        "version of this period: this restatement has no line, and no statement would change. "
        "Discard it;"
    ) in html
    assert _discard_offered(html) == "open" and 'value="discard"' in html
    assert (
        "Discarding ends version 2 of this period; it cannot be undone. The version stays on "
        "record as discarded, with your reason, and its number is not used again."
    ) in html
    assert "Version 1 stays the period's approved settlement." in html
    assert ">Discard version 2</button>" in html
    assert 'value="approve"' not in html  # nothing to approve
    assert_phone_ready(html)
    # Nor does the service approve it: it would supersede version 1 with nothing.
    with pytest.raises(SettlementError, match="no differences .* nothing to approve; discard"):
        settlement_run_approve(run=v2, by=staff_user("Program managers"))
    assert SettlementRun.objects.get(pk=v1.pk).status == "approved"

    response = _act(client, v2.pk, "discard", django_capture_on_commit_callbacks, reason=REASON)

    assert response.redirect_chain[-1][0] == reverse("console:settlement_run", args=[v1.pk])
    assert _messages(response) == [
        (
            "success",
            f"Version 2 (run {v2.pk}) is discarded; it stays on record with your reason, and "
            "its number is not used again. Version 1 stands as the period's approved "
            "settlement.",
        )
    ]
    assert list(SettlementRun.objects.order_by("version").values_list("version", "status")) == [
        (1, "approved"),
        (2, "discarded"),
    ]


def test_a_second_restate_is_refused_while_a_version_is_unfinished(
    july, client, billing_clerk, sent, django_capture_on_commit_callbacks
):
    v1 = july["v1"]
    client.force_login(billing_clerk)
    _act(client, v1.pk, "restate", django_capture_on_commit_callbacks)
    v2 = SettlementRun.objects.get(version=2)

    again = _act(client, v1.pk, "restate", django_capture_on_commit_callbacks)

    assert again.redirect_chain[-1][0] == reverse("console:settlement_run", args=[v1.pk])
    assert _messages(again) == [
        (
            "error",
            f"Version 2 (run {v2.pk}) of this period is still calculating; finish it before "
            "restating, or discard it if it is not wanted.",
        )
    ]
    assert sent == [(v2.pk, billing_clerk.pk)]  # one message only
    _deliver(sent)
    refused = _act(client, v1.pk, "restate", django_capture_on_commit_callbacks)
    assert [tag for tag, _ in _messages(refused)] == ["error"]
    assert "still calculated" in _messages(refused)[0][1]
    assert SettlementRun.objects.count() == 2 and sent == []

    # Once discarded, the period may be restated again: version 3, never a second 2.
    _act(client, v2.pk, "discard", django_capture_on_commit_callbacks, reason=REASON)
    _act(client, v1.pk, "restate", django_capture_on_commit_callbacks)
    v3 = SettlementRun.objects.get(version=3)
    assert (v3.status, v3.restates) == ("calculating", v1)
    assert SettlementRun.objects.get(version=2).status == "discarded"


@pytest.mark.parametrize("then", ["calculate", "discard"])
def test_a_failed_restatement_is_a_draft_again_to_calculate_again_or_discard(
    july, client, billing_clerk, manager, sent, django_capture_on_commit_callbacks, then
):
    v1, a = july["v1"], july["a"].site_id
    perform(july["a_part"], average_kw="90", kwh="180")
    client.force_login(billing_clerk)
    _act(client, v1.pk, "restate", django_capture_on_commit_callbacks)
    v2 = SettlementRun.objects.get(version=2)
    # The clerk leaves Billing before the worker gets to it.
    billing_clerk.groups.clear()

    outcome = _deliver(sent)

    message = f"{billing_clerk} is no longer in Billing or Program managers; ask one of them."
    assert outcome == [{"run": v2.pk, "status": "draft", "error": message}]
    v2.refresh_from_db()
    assert (v2.status, v2.calculation_error, v2.line_count) == ("draft", message, 0)
    client.force_login(manager)
    html = _page(client, v2.pk)
    assert '<span class="badge bad">Calculation failed</span> ' + message in html
    assert "The run is draft again. Calculate it again, or discard this version." in html
    assert 'value="calculate"' in html and 'value="discard"' in html
    assert "No differences" not in html

    response = _act(client, v2.pk, then, django_capture_on_commit_callbacks, reason=REASON)

    if then == "calculate":
        assert _deliver(sent) == [
            {"run": v2.pk, "status": "calculated", "lines": 2, "total": "90.00"}
        ]
        v2.refresh_from_db()
        assert (v2.calculated_by, v2.calculation_error) == (manager, "")
        assert lines_of(v2) == [("capacity", a, "0", "80.00"), ("energy", a, "20", "10.00")]
    else:
        assert response.redirect_chain[-1][0] == reverse("console:settlement_run", args=[v1.pk])
        assert SettlementRun.objects.get(pk=v2.pk).status == "discarded"


# --- discarding ---------------------------------------------------------------------------------


def _accepted_dispute(line: SettlementLine, manager, amount: str) -> Dispute:
    participant = MembershipFactory(organization=line.organization, role="admin").user
    dispute = dispute_raise(line=line, by=participant, comment="Our meter 3 was misread.")
    return dispute_accept(
        dispute=dispute, by=manager, adjustment_amount=amount, reason="Meter 3 re-read."
    )


def test_discarding_deletes_the_lines_keeps_the_version_on_record_and_uncarries_its_disputes(
    july, client, billing_clerk, manager, sent, django_capture_on_commit_callbacks
):
    v1, a = july["v1"], july["a"].site_id
    dispute = _accepted_dispute(v1.lines.get(kind="energy", site_id=a), manager, "25.00")
    client.force_login(billing_clerk)
    v2 = _restated(client, v1, django_capture_on_commit_callbacks, sent)
    # Nothing else changed: the only line is the $25.00 adjustment carrying the dispute.
    assert lines_of(v2) == [("adjustment", a, "1", "25.00")]
    line = v2.lines.get()
    dispute.refresh_from_db()
    assert dispute.adjustment_line == line
    html = _page(client, v2.pk)
    assert "Discarding ends version 2 of this period and deletes its 1 line (total $25.00)" in (
        html
    )
    assert (
        f"The accepted dispute {dispute.pk} that its line carries will wait for the program's "
        "next calculated run again."
    ) in html

    client.force_login(manager)
    response = _act(
        client, v2.pk, "discard", django_capture_on_commit_callbacks, reason="Wrong dispute."
    )

    assert response.redirect_chain[-1][0] == reverse("console:settlement_run", args=[v1.pk])
    assert ("success", f"Version 2 (run {v2.pk}) is discarded, its 1 line deleted; it stays on "
            "record with your reason, and its number is not used again. Version 1 stands as "
            "the period's approved settlement.") in _messages(response)  # fmt: skip
    v2.refresh_from_db()
    assert (v2.status, v2.discarded_by, v2.discard_reason) == (
        "discarded",
        manager,
        "Wrong dispute.",
    )
    assert not SettlementLine.objects.filter(run_id=v2.pk).exists()
    dispute.refresh_from_db()
    assert (dispute.status, dispute.adjustment_line) == ("accepted", None)
    assert not DisputeEntry.objects.filter(dispute=dispute, action="carried").exists()
    assert v1.lines.count() == 4  # version 1 untouched

    # Not carried any more: the next restatement, version 3, carries it again.
    client.force_login(billing_clerk)
    _act(client, v1.pk, "restate", django_capture_on_commit_callbacks)
    _deliver(sent)
    again = SettlementRun.objects.get(version=3)
    dispute.refresh_from_db()
    assert dispute.adjustment_line == again.lines.get(kind="adjustment")


def test_discarding_a_version_1_draft_goes_back_to_the_run_list(
    july_program, client, manager, django_capture_on_commit_callbacks
):
    enroll(july_program, "100")
    run = settlement_run_create(
        program=july_program, period_kind="month", period_start=JULY, by=manager
    )
    client.force_login(manager)
    html = _page(client, run.pk)
    assert "Discarding ends version 1 of this period; it cannot be undone." in html
    assert "The period then has no run: start one again to settle it." in html

    response = _act(
        client, run.pk, "discard", django_capture_on_commit_callbacks, reason="Wrong month."
    )

    assert response.redirect_chain[-1][0] == reverse("console:settlement_runs")
    assert _messages(response) == [
        (
            "success",
            f"Run {run.pk} ({run}) is discarded; it stays on record with your reason. The "
            "period has no run now.",
        )
    ]
    assert SettlementRun.objects.get().status == "discarded"
    # The period is free again; its first version settled is number 2.
    again = settlement_run_create(
        program=july_program, period_kind="month", period_start=JULY, by=manager
    )
    assert (again.version, again.restates, again.status) == (2, None, "draft")


@pytest.mark.parametrize("status", ["approved", "exported", "superseded"])
def test_discard_is_refused_for_a_run_whose_lines_are_locked(
    july, client, billing_clerk, manager, django_capture_on_commit_callbacks, status
):
    v1 = july["v1"]
    if status == "exported":
        billing_export_create(run=v1, by=billing_clerk)
    elif status == "superseded":
        perform(july["a_part"], average_kw="90", kwh="180")
        settlement_run_approve(run=settlement_run_restate(run=v1, by=manager), by=billing_clerk)
    v1.refresh_from_db()
    assert v1.status == status
    client.force_login(manager)
    assert _discard_offered(_page(client, v1.pk)) is None

    response = _act(client, v1.pk, "discard", django_capture_on_commit_callbacks, reason=REASON)

    assert _messages(response) == [
        ("error", f"Run {v1.pk} is {status}: its lines are locked and stay; restate it to "
         "correct them."),
    ]  # fmt: skip
    assert response.redirect_chain[-1][0] == reverse("console:settlement_run", args=[v1.pk])
    assert SettlementRun.objects.get(pk=v1.pk).status == status
    assert set(v1.lines.values_list("locked", flat=True)) == {True}
    assert v1.lines.count() == 4


def test_discard_is_refused_while_a_worker_calculates_and_allowed_once_it_is_stale(
    july, client, billing_clerk, sent, django_capture_on_commit_callbacks
):
    v1 = july["v1"]
    client.force_login(billing_clerk)
    _act(client, v1.pk, "restate", django_capture_on_commit_callbacks)
    v2 = SettlementRun.objects.get(version=2)

    refused = _act(client, v2.pk, "discard", django_capture_on_commit_callbacks, reason=REASON)

    [(tag, text)] = _messages(refused)
    assert tag == "error"
    assert text.startswith(f"Run {v2.pk} is being calculated in the background (since ")
    assert text.endswith(
        "its page shows the progress and then the outcome. Discard it once it is done."
    )
    assert SettlementRun.objects.get(pk=v2.pk).status == "calculating"

    # The worker died with the message: past the task's time limit the run may be discarded.
    sent.clear()
    SettlementRun.objects.filter(pk=v2.pk).update(
        calculation_started_at=timezone.now() - dt.timedelta(minutes=31)
    )
    html = _page(client, v2.pk)
    assert "its worker stopped before it finished" in html and 'value="discard"' in html

    _act(client, v2.pk, "discard", django_capture_on_commit_callbacks, reason="Worker died.")

    assert SettlementRun.objects.get(pk=v2.pk).status == "discarded"
    # A message delivered late finds nothing to calculate.
    assert settlement_run_calculate_background(run=v2, by=billing_clerk) is None
    assert settlement_run_calculate_task(v2.pk, billing_clerk.pk) == {
        "run": v2.pk,
        "skipped": "discarded",
    }


@pytest.mark.parametrize("who", ["Auditors", "participant"])
def test_only_billing_and_program_managers_discard(
    july, client, billing_clerk, sent, django_capture_on_commit_callbacks, who
):
    client.force_login(billing_clerk)
    v2 = _restated(client, july["v1"], django_capture_on_commit_callbacks, sent)
    url = reverse("console:settlement_run_action", args=[v2.pk])
    client.logout()
    discard = {"action": "discard", "reason": REASON}
    assert client.post(url, discard)["Location"].startswith(reverse("login"))
    # A member of an organization with lines in the period is no staff: 403 all the same.
    user = member(july["a"].site.organization) if who == "participant" else staff_user(who)
    client.force_login(user)

    assert client.post(url, discard).status_code == 403

    with pytest.raises(PermissionDenied):
        settlement_run_discard(run=v2, by=user, reason=REASON)
    assert SettlementRun.objects.filter(pk=v2.pk, status="calculated").exists()


def test_a_run_approved_or_discarded_meanwhile_is_not_discarded_or_claimed(
    july, client, billing_clerk, manager, sent, django_capture_on_commit_callbacks
):
    perform(july["a_part"], average_kw="90", kwh="180")
    client.force_login(billing_clerk)
    v2 = _restated(client, july["v1"], django_capture_on_commit_callbacks, sent)
    seen = SettlementRun.objects.get(pk=v2.pk)  # as a second clerk's page loaded it
    settlement_run_approve(run=v2, by=manager)

    # The discard reads the run again under its row lock: approved now, so it stays.
    with pytest.raises(SettlementError, match="is approved: its lines are locked"):
        settlement_run_discard(run=seen, by=billing_clerk, reason=REASON)
    assert SettlementRun.objects.get(pk=v2.pk).status == "approved"

    # A draft discarded meanwhile: a calculate click from a page loaded before is refused.
    draft = settlement_run_create(
        program=july["v1"].program,
        period_kind="month",
        period_start=dt.date(2026, 8, 1),
        by=manager,
    )
    discarded = settlement_run_discard(run=draft, by=manager, reason="Wrong month.")
    when = f"{timezone.localtime(discarded.discarded_at):%Y-%m-%d %H:%M}"
    refusal = (
        f"Run {draft.pk} (version 1) was discarded by {manager.get_username()} on {when}: it "
        "stays on record only, and nothing more is done with it."
    )
    with pytest.raises(SettlementError, match=re.escape(refusal)):
        settlement_run_calculation_request(run=draft, by=manager)
    with pytest.raises(SettlementError, match=re.escape(refusal)):
        settlement_run_discard(run=draft, by=manager, reason=REASON)
    # Nor approved or calculated from a copy loaded before.
    for service in (settlement_run_approve, settlement_run_calculate):
        with pytest.raises(SettlementError, match=re.escape(refusal)):
            service(run=draft, by=billing_clerk)
    # A message for it delivered again to a worker is skipped, not an error in its log.
    assert settlement_run_calculate_task(draft.pk, manager.pk) == {
        "run": draft.pk,
        "skipped": "discarded",
    }
    assert sent == []
    # Through the console: the clerk reads why, on the discarded run's page.
    for action in ("approve", "discard", "calculate"):
        response = _act(client, draft.pk, action, django_capture_on_commit_callbacks, reason=REASON)
        assert response.redirect_chain[-1][0] == reverse("console:settlement_run", args=[draft.pk])
        assert _messages(response) == [("error", refusal)]
    assert SettlementRun.objects.get(pk=draft.pk).discard_reason == "Wrong month."
    # Its progress says so, which the page's script shows in place of the progress.
    progress = client.get(reverse("console:settlement_run_progress", args=[draft.pk])).json()
    assert (progress["discarded"], progress["finished"], progress["text"]) == (True, True, refusal)


def test_a_run_discarded_before_runs_were_kept_is_still_refused_as_discarded(
    july, client, billing_clerk, manager, sent, django_capture_on_commit_callbacks
):
    """Runs discarded before this change have no row: every path still says "discarded"."""
    draft = settlement_run_create(
        program=july["v1"].program,
        period_kind="month",
        period_start=dt.date(2026, 8, 1),
        by=manager,
    )
    SettlementRun.objects.filter(pk=draft.pk).delete()  # as the old discard left it
    gone = f"Run {draft.pk} no longer exists: it was discarded."

    for service in (
        settlement_run_calculation_request,
        settlement_run_approve,
        settlement_run_calculate,
        billing_export_create,
    ):
        with pytest.raises(SettlementError, match=re.escape(gone)):
            service(run=draft, by=billing_clerk)
    with pytest.raises(SettlementError, match=re.escape(gone)):
        settlement_run_discard(run=draft, by=billing_clerk, reason=REASON)
    assert settlement_run_calculate_task(draft.pk, manager.pk) == {
        "run": draft.pk,
        "skipped": "discarded",
    }
    client.force_login(billing_clerk)
    for action in ("approve", "discard", "calculate"):
        response = _act(client, draft.pk, action, django_capture_on_commit_callbacks, reason=REASON)
        assert response.redirect_chain[-1][0] == reverse("console:settlement_runs")
        assert _messages(response) == [("error", gone)]
    # Its progress answers 404, which the page's script reads as "gone" and stops polling.
    progress = client.get(reverse("console:settlement_run_progress", args=[draft.pk]))
    assert progress.status_code == 404
    assert sent == []


@pytest.mark.postgres
def test_a_stale_run_that_a_worker_still_holds_is_not_discarded(july, billing_clerk, sent):
    """Past the time limit a run is stale, but a message delivered again may have a worker on
    it: that worker holds the calculation's advisory lock, and the discard refuses."""
    v2 = background.settlement_run_restatement_request(run=july["v1"], by=billing_clerk)
    SettlementRun.objects.filter(pk=v2.pk).update(
        calculation_started_at=timezone.now() - dt.timedelta(minutes=31)
    )
    worker = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with worker.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [background._LOCK_SPACE, v2.pk])
        with pytest.raises(SettlementError, match="being calculated in the background"):
            settlement_run_discard(run=v2, by=billing_clerk, reason=REASON)
        assert SettlementRun.objects.get(pk=v2.pk).status == "calculating"
    finally:
        worker.close()  # the worker's lock goes with its connection

    settlement_run_discard(run=v2, by=billing_clerk, reason=REASON)

    assert SettlementRun.objects.get(pk=v2.pk).status == "discarded"
