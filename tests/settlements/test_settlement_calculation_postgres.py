"""The background calculation on PostgreSQL: its progress is readable while its transaction is
still open, and a second delivery waits for the first one's lock."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections

from settlements.models import SettlementRun
from settlements.runs import background, settlement_run_calculate_background, settlement_run_create
from settlements.tasks import settlement_run_calculate_task
from tests.factories import staff_user
from tests.settlements.settlement_helpers import JULY, enroll, make_program

# The progress is read from another connection: only committed rows are visible to it.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def calculating(monkeypatch):
    """A July run of three sites (three organizations, 10, 20 and 30 kW, no events),
    ``calculating`` as the console leaves it (the task's message recorded, not sent)."""
    monkeypatch.setattr(settlement_run_calculate_task, "delay", lambda *args: None)
    program = make_program(capacity_rate="8")
    for committed_kw in ("10", "20", "30"):
        enroll(program, committed_kw)
    manager = staff_user("Program managers")
    run = settlement_run_create(program=program, period_kind="month", period_start=JULY, by=manager)
    run = background.settlement_run_calculation_request(run=run, by=manager)
    assert run.status == SettlementRun.Status.CALCULATING
    return run, manager


def _read(other, run_id: int) -> tuple:
    with other.cursor() as cursor:
        cursor.execute(
            "SELECT status, calculation_sites_done, calculation_sites_total, "
            "(SELECT count(*) FROM settlements_settlementline WHERE run_id = %s) "
            "FROM settlements_settlementrun WHERE id = %s",
            [run_id, run_id],
        )
        return cursor.fetchone()


def test_the_progress_is_visible_to_the_page_while_the_calculation_runs(calculating, monkeypatch):
    run, manager = calculating
    monkeypatch.setattr(background, "PROGRESS_INTERVAL", 0)  # write every report
    other = connections.create_connection(DEFAULT_DB_ALIAS)  # the polling page's connection
    seen: list[tuple] = []
    record = background._ProgressRecorder.__call__

    def recorded(recorder, sites_done: int, sites_total: int) -> None:
        record(recorder, sites_done, sites_total)
        seen.append(_read(other, run.pk))

    monkeypatch.setattr(background._ProgressRecorder, "__call__", recorded)
    try:
        calculated = settlement_run_calculate_background(run=run, by=manager)
        after = _read(other, run.pk)
    finally:
        other.close()

    # Each report was readable at once, while the lines were not committed yet (0 seen).
    assert seen == [
        ("calculating", 0, 3, 0),
        ("calculating", 1, 3, 0),
        ("calculating", 2, 3, 0),
        ("calculating", 3, 3, 0),
    ]
    assert calculated is not None and calculated.status == "calculated"
    # 10, 20 and 30 kW × $8 × factor 1: $80.00 + $160.00 + $240.00 = $480.00.
    assert str(calculated.total) == "480.00"
    assert after == ("calculated", 3, 3, 3)


def test_a_second_delivery_waits_for_the_first_and_takes_over_when_its_worker_dies(calculating):
    run, manager = calculating
    holder = connections.create_connection(DEFAULT_DB_ALIAS)  # the first delivery's worker
    with holder.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [background._LOCK_SPACE, run.pk])
    outcome: list = []

    def second_delivery() -> None:
        try:
            outcome.append(settlement_run_calculate_background(run=run, by=manager))
        finally:
            connection.close()

    thread = threading.Thread(target=second_delivery)
    thread.start()
    try:
        time.sleep(1.0)
        assert thread.is_alive() and outcome == []  # waiting for the first one's lock
        assert SettlementRun.objects.get(pk=run.pk).line_count == 0
    finally:
        # The first worker dies: its connection closes and its lock goes with it.
        holder.close()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert outcome[0] is not None and outcome[0].status == "calculated"
    assert SettlementRun.objects.get(pk=run.pk).lines.count() == 3
