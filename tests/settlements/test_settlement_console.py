"""The settlement console: who may open which page, and a run taken from draft to billing
through its buttons (four eyes shown to the clerk, not a bare 403); the calculate and
restate buttons hand the run to a worker, and the page follows the calculation's progress
(restating and discarding in detail: ``test_restatement_background``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from settlements.billing import billing_export_create
from settlements.models import BillingExport, SettlementLine, SettlementRun
from settlements.runs import SettlementError, settlement_run_approve, settlement_run_calculate
from settlements.runs.calculation import calculate_lines
from settlements.runs.rules import rules_for
from settlements.tasks import settlement_run_calculate_task
from tests.factories import staff_user
from tests.settlements.settlement_helpers import (
    amounts,
    enroll,
    make_program,
    perform,
)
from tests.settlements.statement_cast import assert_phone_ready, make_cast, member


@pytest.fixture
def cast(july_program):
    return make_cast(july_program)


@pytest.fixture
def sent(monkeypatch) -> list[tuple[int, int]]:
    """The calculation messages the console hands to the broker, (run id, user id) each,
    recorded here instead of sent; :func:`_deliver` gives them to the task as a worker
    would. (The real broker and worker: ``test_import_worker``.)"""
    messages: list[tuple[int, int]] = []
    monkeypatch.setattr(settlement_run_calculate_task, "delay", lambda *args: messages.append(args))
    return messages


def _deliver(sent: list[tuple[int, int]]) -> list[dict]:
    """Run the task for each message sent, as the worker of the "settlements" queue does."""
    outcomes = [settlement_run_calculate_task.run(*args) for args in sent]
    sent.clear()
    return outcomes


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


def _calculate(client, run, capture):
    """Press "calculate"; the request's on-commit callbacks (the enqueue) run after it."""
    with capture(execute=True):
        return _act(client, run, "calculate")


def test_a_run_goes_from_draft_to_billing_through_the_buttons_with_four_eyes(
    db, client, sent, django_capture_on_commit_callbacks
):
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

    calculating = _calculate(client, run, django_capture_on_commit_callbacks)

    assert sent == [(run.pk, manager.pk)]
    assert any(text.startswith("Calculating in the background") for _, text in (
        _messages(calculating)
    ))  # fmt: skip
    assert _deliver(sent) == [
        {"run": run.pk, "status": "calculated", "lines": 1, "total": "800.00"}
    ]
    calculated = client.get(reverse("console:settlement_run", args=[run.pk]))
    run.refresh_from_db()
    assert (run.status, run.calculated_by) == ("calculated", manager)
    # No events: 100 kW × 1 month × $8 × factor 1 = $800.00.
    html = calculated.content.decode()
    assert '<div id="run-outcome">Calculated: 1 line, total $800.00</div>' in html
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


def test_restating_an_unchanged_period_leaves_an_empty_version_to_discard(
    cast, client, sent, django_capture_on_commit_callbacks
):
    client.force_login(staff_user("Billing"))

    with django_capture_on_commit_callbacks(execute=True):
        response = _act(client, cast.run, "restate")

    restatement = SettlementRun.objects.get(version=2)
    assert response.redirect_chain[-1][0] == reverse(
        "console:settlement_run", args=[restatement.pk]
    )
    assert _deliver(sent) == [
        {"run": restatement.pk, "status": "calculated", "lines": 0, "total": "0.00"}
    ]
    page = client.get(reverse("console:settlement_run", args=[restatement.pk])).content.decode()
    assert "Nothing changed since the approved version of this period" in page
    assert 'value="discard"' in page and 'value="approve"' not in page


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


def test_a_restatement_holds_the_differences_and_supersedes_the_version_it_corrects(
    cast, client, sent, django_capture_on_commit_callbacks
):
    # A late meter correction: Acme's event 1 reduction is 90 kW / 180 kWh, not 80 / 160.
    participation = cast.events[0].participations.get(enrollment__site__organization=cast.acme)
    perform(participation, average_kw="90", kwh="180")
    client.force_login(cast.clerk)

    with django_capture_on_commit_callbacks(execute=True):
        response = _act(client, cast.run, "restate")

    restatement = SettlementRun.objects.get(version=2)
    assert response.redirect_chain[-1][0] == reverse(
        "console:settlement_run", args=[restatement.pk]
    )
    assert restatement.status == "calculating"  # the worker calculates it
    _deliver(sent)
    restatement.refresh_from_db()
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


# --- calculating in the background ----------------------------------------------------------


@pytest.fixture
def draft(db):
    """A draft July run of two sites (100 kW and 50 kW, no events): calculated, capacity at
    factor 1 is 100 × $8 = $800.00 and 50 × $8 = $400.00, $1,200.00 in all."""
    program = make_program(capacity_rate="8", energy_rate="0.50")
    enroll(program, "100")
    enroll(program, "50")
    manager = staff_user("Program managers")
    from settlements.runs import settlement_run_create

    run = settlement_run_create(
        program=program, period_kind="month", period_start=dt.date(2026, 7, 1), by=manager
    )
    return run, manager


def _progress(client, run) -> dict:
    response = client.get(reverse("console:settlement_run_progress", args=[run.pk]))
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    return response.json()


def test_calculate_enqueues_the_task_on_commit_and_calculates_nothing_in_the_request(
    draft, client, sent, django_capture_on_commit_callbacks
):
    run, manager = draft
    client.force_login(manager)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            reverse("console:settlement_run_action", args=[run.pk]), {"action": "calculate"}
        )

    assert response.status_code == 302
    # Nothing is sent before the transaction commits, and nothing was calculated.
    assert sent == [] and len(callbacks) == 1
    run.refresh_from_db()
    assert (run.status, run.line_count, run.calculated_at) == ("calculating", 0, None)
    assert not SettlementLine.objects.filter(run=run).exists()
    assert run.calculation_started_at is not None
    callbacks[0]()
    assert sent == [(run.pk, manager.pk)]

    # The page shows the run calculating, polls its progress, and offers no button.
    page = client.get(reverse("console:settlement_run", args=[run.pk])).content.decode()
    assert 'id="run-progress"' in page
    assert f'data-progress-url="{reverse("console:settlement_run_progress", args=[run.pk])}"' in (
        page
    )
    assert "js/progress.js" in page
    assert 'value="calculate"' not in page and 'value="approve"' not in page
    assert "Reading the period's events, performances and nominations" in page
    assert_phone_ready(page)
    progress = _progress(client, run)
    assert (progress["status"], progress["finished"], progress["stale"]) == (
        "calculating",
        False,
        False,
    )
    assert (progress["sites_done"], progress["sites_total"], progress["percent"]) == (0, 0, 0)

    # The worker's part: the run is calculated; the page shows the outcome, no polling.
    assert _deliver(sent) == [
        {"run": run.pk, "status": "calculated", "lines": 2, "total": "1200.00"}
    ]
    run.refresh_from_db()
    assert (run.status, run.calculated_by, run.line_count, str(run.total)) == (
        "calculated",
        manager,
        2,
        "1200.00",
    )
    assert sorted(amount for _, _, amount in amounts(run)) == ["400.00", "800.00"]
    progress = _progress(client, run)
    assert (progress["finished"], progress["line_count"], progress["total"]) == (
        True,
        2,
        "1200.00",
    )
    assert progress["error"] == ""
    page = client.get(reverse("console:settlement_run", args=[run.pk])).content.decode()
    assert "Calculated: 2 lines, total $1,200.00" in page
    assert "js/progress.js" not in page and 'value="approve"' in page


def test_the_progress_json_reports_sites_done_of_the_total(draft, client):
    run, manager = draft
    SettlementRun.objects.filter(pk=run.pk).update(
        status="calculating",
        calculation_started_at=timezone.now(),
        calculation_sites_done=1,
        calculation_sites_total=3,
    )
    client.force_login(staff_user("Billing"))

    progress = _progress(client, run)

    assert {
        key: progress[key]
        for key in ("status", "status_label", "finished", "stale", "sites_done", "sites_total")
    } == {
        "status": "calculating",
        "status_label": "Calculating",
        "finished": False,
        "stale": False,
        "sites_done": 1,
        "sites_total": 3,
    }
    assert progress["percent"] == 33  # 1 of 3, rounded down
    assert progress["text"] == "1 of 3 sites settled (33%)"
    page = client.get(reverse("console:settlement_run", args=[run.pk])).content.decode()
    assert "1 of 3 sites settled (33%)" in page and 'value="33"' in page
    assert "js/progress.js" in page  # follows the progress until the calculation ends


def test_the_calculation_reports_its_progress_per_organization_not_per_line(db):
    # Five sites of five organizations, each with a capacity line: six reports, from 0 of
    # 5 to 5 of 5, none per line.
    program = make_program(capacity_rate="8")
    for committed_kw in ("10", "20", "30", "40", "50"):
        enroll(program, committed_kw)
    from settlements.runs import settlement_run_create

    run = settlement_run_create(
        program=program,
        period_kind="month",
        period_start=dt.date(2026, 7, 1),
        by=staff_user("Program managers"),
    )
    reports: list[tuple[int, int]] = []
    calculation = calculate_lines(
        run, rules_for(program, run.period_start), on_progress=lambda *args: reports.append(args)
    )
    assert reports == []  # reported as the lines are computed, not before

    lines = list(calculation.lines)

    assert len(lines) == 5
    assert reports == [(0, 5), (1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


def test_a_second_click_is_refused_and_the_run_cannot_be_approved_or_exported_meanwhile(
    draft, client, sent, django_capture_on_commit_callbacks
):
    run, manager = draft
    clerk = staff_user("Billing")
    client.force_login(manager)
    _calculate(client, run, django_capture_on_commit_callbacks)

    again = _calculate(client, run, django_capture_on_commit_callbacks)

    errors = [text for tag, text in _messages(again) if tag == "error"]
    assert len(errors) == 1
    assert errors[0].startswith(f"Run {run.pk} is being calculated in the background (since ")
    assert sent == [(run.pk, manager.pk)]  # one message only
    client.force_login(clerk)
    for action in ("approve", "export"):
        refused = _act(client, run, action)
        assert [tag for tag, _ in _messages(refused)] == ["error"]
    assert _messages(_act(client, run, "approve"))[0][1] == (
        f"Run {run.pk} is calculating; only a calculated run can be approved."
    )
    with pytest.raises(SettlementError, match="being calculated in the background"):
        settlement_run_calculate(run=run, by=manager)
    run.refresh_from_db()
    assert run.status == "calculating" and not BillingExport.objects.exists()

    # Delivered twice (a redelivery): calculated once, the second delivery does nothing.
    first, second = _deliver([(run.pk, manager.pk), (run.pk, manager.pk)])
    assert first["status"] == "calculated" and first["lines"] == 2
    assert second == {"run": run.pk, "status": "calculated", "skipped": "not calculating"}
    lines = list(SettlementLine.objects.filter(run=run).values_list("pk", flat=True))
    assert len(lines) == 2
    settlement_run_approve(run=run, by=clerk)


def test_a_run_whose_worker_died_may_be_calculated_again_after_the_time_limit(
    draft, client, sent, django_capture_on_commit_callbacks
):
    run, manager = draft
    client.force_login(manager)
    _calculate(client, run, django_capture_on_commit_callbacks)
    sent.clear()  # the worker died with the message: nothing will calculate the run
    started = timezone.now() - dt.timedelta(minutes=29)
    SettlementRun.objects.filter(pk=run.pk).update(calculation_started_at=started)

    # Within the task's time limit (30 minutes) the worker may still be on it.
    refused = _calculate(client, run, django_capture_on_commit_callbacks)
    assert [tag for tag, _ in _messages(refused)] == ["error"] and sent == []
    assert _progress(client, run)["stale"] is False

    SettlementRun.objects.filter(pk=run.pk).update(
        calculation_started_at=timezone.now() - dt.timedelta(minutes=31)
    )
    progress = _progress(client, run)
    assert (progress["finished"], progress["stale"]) == (False, True)
    page = client.get(reverse("console:settlement_run", args=[run.pk])).content.decode()
    assert "its worker stopped before it finished" in page
    assert ">Calculate again</button>" in page and "js/progress.js" not in page

    _calculate(client, run, django_capture_on_commit_callbacks)

    assert sent == [(run.pk, manager.pk)]
    run.refresh_from_db()
    assert run.status == "calculating"
    assert timezone.now() - run.calculation_started_at < dt.timedelta(minutes=1)
    assert _deliver(sent)[0]["status"] == "calculated"


def test_a_failed_calculation_puts_the_run_back_and_says_why(
    db, client, sent, django_capture_on_commit_callbacks
):
    from enrollment.models import Program
    from settlements.payments import PaymentRules
    from settlements.runs import payment_rules_add, settlement_run_create

    program = make_program()
    enroll(program, "100")
    manager = staff_user("Program managers")
    # The program's only rules take effect in August: July cannot be settled.
    payment_rules_add(
        program=Program.objects.get(pk=program.pk),
        rules=PaymentRules(effective_from=dt.date(2026, 8, 1), capacity_rate="8"),
        by=manager,
    )
    run = settlement_run_create(
        program=program, period_kind="month", period_start=dt.date(2026, 7, 1), by=manager
    )
    client.force_login(manager)
    _calculate(client, run, django_capture_on_commit_callbacks)

    outcome = _deliver(sent)[0]

    message = (
        f"{program} has no payment rules in effect on 2026-07-01: its first version takes "
        "effect on 2026-08-01."
    )
    assert outcome == {"run": run.pk, "status": "draft", "error": message}
    run.refresh_from_db()
    assert (run.status, run.calculation_error, run.line_count) == ("draft", message, 0)
    progress = _progress(client, run)
    assert (progress["finished"], progress["error"]) == (True, message)
    page = client.get(reverse("console:settlement_run", args=[run.pk])).content.decode()
    assert "Calculation failed" in page and message in page
    assert 'value="calculate"' in page  # fix the rules, then calculate again


def test_an_unexpected_error_keeps_the_earlier_lines_and_is_raised_for_the_log(
    draft, client, sent, django_capture_on_commit_callbacks, monkeypatch
):
    run, manager = draft
    run = settlement_run_calculate(run=run, by=manager)
    before = list(SettlementLine.objects.filter(run=run).values_list("pk", "amount"))
    client.force_login(manager)
    _calculate(client, run, django_capture_on_commit_callbacks)

    def broken(*args, **kwargs):
        raise RuntimeError("connection to the meter data store lost")

    monkeypatch.setattr("settlements.runs.services._calculate_and_store", broken)
    with pytest.raises(RuntimeError):
        _deliver(sent)

    run.refresh_from_db()
    assert run.status == "calculated"
    assert run.calculation_error == (
        "The calculation failed (RuntimeError: connection to the meter data store lost); "
        "nothing was stored. Calculate again, or ask an administrator to look at the "
        "worker's log."
    )
    assert list(SettlementLine.objects.filter(run=run).values_list("pk", "amount")) == before
    page = client.get(reverse("console:settlement_run", args=[run.pk])).content.decode()
    assert "the lines below are those of its previous calculation" in page


@pytest.mark.parametrize(
    ("who", "answer"),
    [("Program managers", 200), ("Billing", 200), ("Auditors", 403), ("participant", 403)],
)
def test_only_settlement_staff_read_a_runs_progress(cast, client, who, answer):
    url = reverse("console:settlement_run_progress", args=[cast.run.pk])
    assert client.get(url)["Location"].startswith(reverse("login"))
    # A member of an organization with lines in the run is no staff: 403 all the same.
    client.force_login(member(cast.acme) if who == "participant" else staff_user(who))

    response = client.get(url)

    assert response.status_code == answer
    if answer == 200:
        assert response.json()["status"] == "approved"
    missing = client.get(reverse("console:settlement_run_progress", args=[cast.run.pk + 999]))
    assert missing.status_code == (404 if answer == 200 else 403)
