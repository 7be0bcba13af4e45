"""Calculating a run in the background: the console asks, a Celery worker calculates.

A large program takes longer than a web request may; the console therefore only claims the
run (:func:`settlement_run_calculation_request`: ``calculating``, compare-and-set, the task
enqueued when the transaction commits), or creates a restatement already claimed
(:func:`settlement_run_restatement_request`), and the worker of the "settlements" queue
does the work (:func:`settlement_run_calculate_background`, called by
``settlements.tasks.settlement_run_calculate_task``). The run's page polls
``calculation_sites_done`` of ``calculation_sites_total``, which the calculation writes as
it goes, and shows the outcome, or ``calculation_error``, once the run is back to
``calculated`` (or, after a failure, to the status it had).

Twice the same message (a double delivery, or a worker lost and its message delivered
again) calculates once: the calculation holds a lock for its whole transaction, and a
delivery that finds the run no longer ``calculating`` does nothing. A run whose worker
died and whose message is gone stays ``calculating`` until the task's time limit has
passed (``settlements.runs.services.calculation_stale``); it may then be calculated again.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, connections, router, transaction
from django.db.models import Q
from django.utils import timezone

from settlements.models import SettlementRun
from settlements.runs.access import is_settlement_staff, require_settlement_staff
from settlements.runs.errors import SettlementError
from settlements.runs.services import (
    CALCULATION_TIME_LIMIT,
    OPEN_STATUSES,
    being_calculated,
    calculate_held_run,
    discarded_refusal,
    restatement_create,
)

logger = logging.getLogger(__name__)

CALCULATING = SettlementRun.Status.CALCULATING
#: Seconds between two progress writes at least (the last one is always written).
PROGRESS_INTERVAL = 1.0
#: Key space of the PostgreSQL advisory lock a background calculation holds (with the run
#: id as the second key); any number no other code of the platform uses.
_LOCK_SPACE = 7301


def settlement_run_calculation_request(
    *, run: SettlementRun, by: AbstractBaseUser
) -> SettlementRun:
    """Have a worker calculate ``run``: it becomes ``calculating`` now, and the task
    ``settlements.tasks.settlement_run_calculate_task(run_id, by_id)`` is enqueued when the
    transaction commits. Returns the run as stored.

    Compare-and-set on the run's row: a draft or calculated run is claimed, and so is one
    calculating for longer than the task's time limit (its worker is gone). Raises
    ``PermissionDenied`` unless ``by`` is Billing or Program managers, and
    ``SettlementError`` for a run already being calculated (a second click), approved,
    exported or superseded, or discarded (``discarded_refusal``).
    """
    require_settlement_staff(by)
    from settlements.tasks import settlement_run_calculate_task

    now = timezone.now()
    stale_since = now - dt.timedelta(seconds=CALCULATION_TIME_LIMIT)
    with transaction.atomic():
        claimed = SettlementRun.objects.filter(
            Q(status__in=OPEN_STATUSES)
            | Q(status=CALCULATING, calculation_started_at__lt=stale_since)
            | Q(status=CALCULATING, calculation_started_at=None),
            pk=run.pk,
        ).update(
            status=CALCULATING,
            calculation_started_at=now,
            calculation_sites_done=0,
            calculation_sites_total=0,
            calculation_error="",
        )
        current = SettlementRun.objects.filter(pk=run.pk).first()
        if current is None or current.status == SettlementRun.Status.DISCARDED:
            raise discarded_refusal(run.pk, current)
        if not claimed:
            if current.status == CALCULATING:
                raise being_calculated(current)
            raise SettlementError(
                f"Run {current.pk} is {current.status}: its lines never change; restate it to "
                "correct them."
            )
        settlement_run_calculate_task.delay_on_commit(current.pk, by.pk)
    return current


def settlement_run_restatement_request(
    *, run: SettlementRun, by: AbstractBaseUser
) -> SettlementRun:
    """Restate the last approved version of ``run``'s program and period in the
    background: the next version (``restates`` = that version; its number one more than
    any the period had, discarded ones included) is created ``calculating``, as
    :func:`settlement_run_calculation_request` leaves a run, and the task is enqueued when
    the transaction commits. Returns the new version; the worker stores only its
    differences from the approved lines, or none, with notes saying that nothing changed
    (the version then stays, calculated with no line, for someone to discard:
    ``settlement_run_discard``). Should the calculation fail, the version is a draft with
    ``calculation_error``, to calculate again or discard.

    Raises ``PermissionDenied`` unless ``by`` is Billing or Program managers, and
    ``SettlementError`` when ``run`` was discarded, the period has no approved version yet
    or its latest version is unfinished (``settlements.runs.services.restatement_create``:
    the program's row is locked, so two clicks make one version).
    """
    require_settlement_staff(by)
    from settlements.tasks import settlement_run_calculate_task

    with transaction.atomic():
        restatement = restatement_create(run=run, by=by, calculating_since=timezone.now())
        settlement_run_calculate_task.delay_on_commit(restatement.pk, by.pk)
    return restatement


def settlement_run_calculate_background(
    *, run: SettlementRun, by: AbstractBaseUser
) -> SettlementRun | None:
    """Calculate ``run``, claimed by :func:`settlement_run_calculation_request`, as
    ``settlement_run_calculate`` does, writing its progress as it goes.

    Returns the run: ``calculated``, or back to draft or calculated with
    ``calculation_error`` saying why when the calculation was refused or failed (its
    earlier lines, if any, stand). Returns None, changing nothing, when the run is not
    ``calculating`` (any more): a message delivered again after the calculation ended, or
    after the run was discarded.
    An unexpected error is recorded the same way, then raised again for the worker's log.
    """
    failure: str | None = None
    unexpected: Exception | None = None
    with transaction.atomic():
        _hold_calculation_lock(run.pk)
        held = SettlementRun.objects.select_related("program").filter(pk=run.pk).first()
        if held is None or held.status != CALCULATING:
            return None  # calculated meanwhile, or discarded
        run = held
        # After a failure the run is what it was before: calculated if it ever was (its
        # earlier lines stand), else a draft.
        back = (
            SettlementRun.Status.CALCULATED
            if run.calculated_at is not None
            else SettlementRun.Status.DRAFT
        )
        if not is_settlement_staff(by):
            failure = f"{by} is no longer in Billing or Program managers; ask one of them."
        else:
            progress = _ProgressRecorder(run.pk)
            try:
                with transaction.atomic():
                    return calculate_held_run(run, by, on_progress=progress)
            except SettlementError as error:
                failure = str(error)
            except Exception as error:  # noqa: BLE001 - recorded for the page, raised below
                failure = _failure_text(error)
                unexpected = error
            finally:
                progress.close()
        SettlementRun.objects.filter(pk=run.pk, status=CALCULATING).update(
            status=back, calculation_error=failure
        )
    if unexpected is not None:
        raise unexpected
    run.refresh_from_db()
    return run


def _failure_text(error: Exception) -> str:
    from celery.exceptions import SoftTimeLimitExceeded

    if isinstance(error, SoftTimeLimitExceeded):
        return (
            f"The calculation took longer than its time limit ({CALCULATION_TIME_LIMIT // 60} "
            "minutes) and was stopped; nothing was stored."
        )
    return (
        f"The calculation failed ({type(error).__name__}: {error}); nothing was stored. "
        "Calculate again, or ask an administrator to look at the worker's log."
    )


def _hold_calculation_lock(run_id: int) -> None:
    """Hold, until the transaction ends, the lock that makes one calculation of the run at
    a time: on PostgreSQL an advisory lock (a second delivery waits, then finds the run
    calculated). Not the run's row lock: the progress is written to that row, from another
    connection, while the calculation runs. SQLite writes one transaction at a time anyway.
    """
    connection = connections[router.db_for_write(SettlementRun)]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_SPACE, run_id])


def calculation_lock_try(run_id: int) -> bool:
    """Take the lock of :func:`_hold_calculation_lock` if no worker holds it, and hold it
    until the transaction ends: True when taken (no worker is calculating the run now, and
    none starts before the transaction ends), False when a worker holds it. Always True on
    SQLite, which writes one transaction at a time anyway."""
    connection = connections[router.db_for_write(SettlementRun)]
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [_LOCK_SPACE, run_id])
        return bool(cursor.fetchone()[0])


class _ProgressRecorder:
    """``on_progress`` of a background calculation: writes sites done and total to the
    run's row, at most once per :data:`PROGRESS_INTERVAL` seconds (and the last report).

    The calculation's own transaction is open until it ends, so on PostgreSQL the row is
    written through a second connection in autocommit, where the page polling it can see
    it (as the meter data importer writes its progress). A write never holds the
    calculation up: it gives up after a second's wait for the row and is skipped, and a
    failed write ends the reporting. On SQLite, one writer at a time, nothing is written
    before the end: the page shows the run calculating without counts.
    """

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self._last = float("-inf")
        self._side: Any = None
        alias = router.db_for_write(SettlementRun)
        self._enabled = connections[alias].vendor == "postgresql"
        self._alias = alias

    def __call__(self, sites_done: int, sites_total: int) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        if sites_done < sites_total and now - self._last < PROGRESS_INTERVAL:
            return
        self._last = now
        try:
            if self._side is None:
                self._side = connections.create_connection(self._alias)
                with self._side.cursor() as cursor:
                    cursor.execute("SET lock_timeout = '1s'")
            table = self._side.ops.quote_name(SettlementRun._meta.db_table)
            with self._side.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} SET calculation_sites_done = %s, "  # noqa: S608
                    "calculation_sites_total = %s WHERE id = %s AND status = %s",
                    [sites_done, sites_total, self.run_id, CALCULATING.value],
                )
        except DatabaseError:
            logger.warning("run %s: progress not recorded", self.run_id, exc_info=True)
            self._enabled = False

    def close(self) -> None:
        if self._side is not None:
            self._side.close()
            self._side = None
