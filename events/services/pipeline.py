"""The notification pipeline: dispatch, send, retry, sweep, status, escalation.

How a message travels (DESIGN.md, "Notifications"):

1. :func:`notifications_dispatch` writes every Notification row of one dispatch at once
   (``dr_platform.bulk.insert_instances``) inside the caller's transaction, and registers
   one ``on_commit`` callback that enqueues their ids on their channels' queues. A
   rolled-back dispatch therefore sends nothing, and no worker ever looks for a row that
   is not committed.
2. The send task calls :func:`notifications_send` with its batch of ids (one id on a
   rate-limited channel such as SMS at 1/s; up to 100 elsewhere). The batch's queued rows
   are claimed together with a conditional update (``queued -> sending``,
   ``attempts + 1``) under row locks that skip rows another worker holds; a redelivered
   or duplicated broker message finds the rows taken and does nothing. The batch goes to
   the transport's ``notify_many``, which for SMS keeps several provider calls in flight
   at once (``events.channels._concurrent``).
3. Each answer is recorded as the transport yields it: ``sent``/``delivered``; a
   transient error puts the row back to ``queued`` with ``next_attempt_at`` (exponential
   backoff, at least the provider's ``retry_after``) and re-enqueues it with that
   countdown; a permanent error fails the row, disables the method, alerts the account
   manager and escalates to the next method.
4. :func:`notifications_sweep` (run by the tick) re-enqueues rows stuck in ``queued``
   (their broker message was lost) or ``sending`` (their worker died), so a lost message
   delays a notice but never loses it.

Backoff countdowns are seconds to minutes; every due time that matters lives in the row,
so a broker that forgets a countdown costs one sweep interval, nothing more.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from celery import current_app
from celery.utils.time import rate as parse_rate
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.core.signals import setting_changed
from django.db import connections, router, transaction
from django.db.models import Count, F
from django.dispatch import receiver
from django.utils import timezone

from dr_platform.bulk import insert_instances, new_instances
from dr_platform.models import OutboxMessage
from enrollment.models import ContactMethod
from events import channels, notices, selectors
from events.channels import (
    DeliveryReceipt,
    OutboundMessage,
    ReceiptStatus,
    Transport,
    TransportError,
)
from events.channels.sandbox import OutboxEntry, SandboxTransport
from events.models import EscalationStep, Event, Notification, Participation

logger = logging.getLogger(__name__)

N = Notification.Status

#: A send task stops claiming rows of its batch after this long and hands the rest back
#: to the broker, so even a batch of slow provider calls ends inside its time limit.
BATCH_TIME_BUDGET: Final = dt.timedelta(seconds=20)
#: Attempts (provider calls) per notification before a transient failure becomes final.
MAX_ATTEMPTS: Final = 8
#: Backoff after the n-th failed attempt: BASE * 2**(n-1) seconds, capped.
RETRY_BASE_SECONDS: Final = 2.0
RETRY_MAX_SECONDS: Final = 300.0
#: The longest wait a provider's Retry-After gets. A retry's countdown must stay well under
#: the Redis visibility timeout (3,600 s, see settings), or Redis hands the waiting message
#: out again every hour; and a notice an hour late is of no use anyway.
RETRY_AFTER_MAX_SECONDS: Final = 900.0
#: A claim accepts a message arriving this early for its ``next_attempt_at``, so a
#: countdown that fires a little before the database clock says so is not dropped.
CLAIM_TOLERANCE: Final = dt.timedelta(seconds=1)
#: The send tasks' hard time limit (tasks.py uses it); a row in ``sending`` longer than
#: SENDING_DEADLINE was left by a dead worker. The deadline must exceed the time limit,
#: or a slow provider call still in progress would be sent a second time.
SEND_TIME_LIMIT_SECONDS: Final = 60
SENDING_DEADLINE: Final = dt.timedelta(seconds=SEND_TIME_LIMIT_SECONDS * 3)
#: A queued row is presumed lost when its attempt is this much overdue, plus the time its
#: channel's backlog takes at the rate limit (see :func:`notifications_sweep`).
QUEUED_GRACE: Final = dt.timedelta(minutes=2)


# --- transports -----------------------------------------------------------------------


def _outbox_body(message: OutboundMessage) -> str:
    """The text with its reply links, as a participant would read it."""
    body = message.text
    if message.reply_links:
        links = "\n".join(f"{name}: {url}" for name, url in message.reply_links.items())
        if links and links not in body:
            body = f"{body}\n\n{links}"
    return body


def _outbox_hook(entries: Sequence[OutboxEntry]) -> None:
    """Keep sandbox messages as OutboxMessages (the outbox page reads these).

    Two queries for a batch of any size: the organizations of the messages' contact
    methods (by notification id; none for a message of no notification), then one insert.
    """
    organization_of = dict(
        Notification.objects.filter(
            uuid__in=[entry.message.notification_id for entry in entries]
        ).values_list("uuid", "contact_method__contact__organization_id")
    )
    OutboxMessage.objects.bulk_create(
        OutboxMessage(
            kind=entry.message.kind,
            address=entry.message.address,
            subject=entry.message.subject,
            body=_outbox_body(entry.message),
            organization_id=organization_of.get(entry.message.notification_id),
            reference=entry.message.notification_id,
        )
        for entry in entries
    )


@functools.cache
def get_transport(channel: str) -> Transport:
    """The transport instance for ``channel``, built once per process from settings.

    ``"sandbox"`` stores messages as ``dr_platform.OutboxMessage``. Raises ``ValueError``
    when a live channel is not configured (e.g. Twilio credentials missing) and
    ``UnknownChannelError`` for an unknown channel.
    """
    if channel == "sandbox":
        return SandboxTransport(outbox=_outbox_hook)
    return channels.transport_for(channel).from_settings()


@receiver(setting_changed)
def _forget_transports(**kwargs: Any) -> None:
    # Tests switch NOTIFICATION_MODE and provider URLs; transports hold settings.
    get_transport.cache_clear()


def channel_for(method: ContactMethod) -> str:
    """The transport a message to ``method`` uses now: the sandbox in sandbox mode."""
    return "sandbox" if settings.NOTIFICATION_MODE == "sandbox" else method.kind


# --- dispatch -------------------------------------------------------------------------


def _enqueue(rows: Sequence[tuple[int, str]], countdown: float | None = None) -> None:
    """Put (notification id, channel) rows on the broker, in batches per channel queue.

    Each queue's ids go in messages of ``channels.send_batching(queue)`` ids, all published
    through one producer (one broker connection). A broker error is logged, not raised:
    the rows are committed and the sweeper will enqueue them again, so the caller's work
    (an event scheduled) must not fail for it.
    """
    from events.tasks import send_task_for

    by_queue: dict[str, tuple[str, list[int]]] = {}
    for notification_id, channel in rows:
        queue = channels.QUEUE[channel]
        by_queue.setdefault(queue, (channel, []))[1].append(notification_id)
    if not by_queue:
        return
    try:
        with current_app.producer_or_acquire() as producer:
            for queue, (channel, ids) in by_queue.items():
                task = send_task_for(channel)
                size = channels.send_batching(queue)[0]
                for start in range(0, len(ids), size):
                    task.apply_async(
                        (ids[start : start + size],),
                        queue=queue,
                        countdown=countdown,
                        producer=producer,
                    )
    except Exception:
        logger.exception("could not enqueue %d notifications; the sweeper will retry", len(rows))


def notifications_create(
    *,
    event: Event,
    kind: str,
    targets: Iterable[tuple[Participation, ContactMethod]],
    now: dt.datetime,
    payload_by_participation: Mapping[int, dict] | None = None,
) -> list[Notification]:
    """Write one queued Notification per (participation, method) and enqueue on commit.

    All rows are written at once (``insert_instances``) in one transaction; their ids are
    enqueued only after the outermost transaction commits. Returns the rows (with ids).
    Pairs whose method already has a message of this kind for this event version are
    skipped, so calling twice sends nothing twice.
    """
    pairs = list(targets)
    if not pairs:
        return []
    existing = set(
        Notification.objects.filter(
            participation_id__in={p.pk for p, _ in pairs},
            kind=kind,
            modification_number=event.modification_number,
        ).values_list("participation_id", "contact_method_id")
    )
    values: list[dict[str, Any]] = []
    seen: set[tuple[int, int]] = set()
    for participation, method in pairs:
        key = (participation.pk, method.pk)
        if key in existing or key in seen:
            continue
        seen.add(key)
        values.append(
            {
                # Ids, not objects: 20,000 rows of a large dispatch are built faster, and
                # nothing reads the relations back from the returned rows.
                "event_id": event.pk,
                "participation_id": participation.pk,
                "contact_method_id": method.pk,
                "kind": kind,
                "channel": channel_for(method),
                "status": N.QUEUED,
                "next_attempt_at": now,
                "queued_at": now,
                "modification_number": event.modification_number,
                "payload": (payload_by_participation or {}).get(participation.pk, {}),
            }
        )
    rows = new_instances(Notification, values)
    with transaction.atomic():
        insert_instances(Notification, rows)
        ids = [(row.pk, row.channel) for row in rows]
        transaction.on_commit(functools.partial(_enqueue, ids))
    return rows


def notifications_dispatch(
    *,
    event: Event,
    kind: str,
    participations: Sequence[Participation],
    now: dt.datetime,
    payload_by_participation: Mapping[int, dict] | None = None,
) -> list[Notification]:
    """Notify ``participations`` of ``event`` with a message of ``kind``.

    Who gets it: an initial ``notice`` goes to the first level of each participation's
    contact methods (lowest escalation order); every later kind (reminder, start, end,
    update, cancel, summary) goes to the methods already reached with a notice or an
    escalation, so a participant never hears of an event first through its end notice.
    Removed participations get nothing unless ``kind`` is ``cancel``.

    Returns the Notification rows written (see :func:`notifications_create`).
    """
    participations = [
        p for p in participations if not p.is_removed or kind == Notification.Kind.CANCEL
    ]
    if not participations:
        return []
    methods = selectors.usable_methods_by_participation(participations)
    targets: list[tuple[Participation, ContactMethod]] = []
    if kind == Notification.Kind.NOTICE:
        for participation in participations:
            levels = selectors.method_levels(methods.get(participation.pk, []))
            targets += [(participation, method) for method in (levels[0] if levels else [])]
    else:
        reached = selectors.reached_method_ids(p.pk for p in participations)
        for participation in participations:
            targets += [
                (participation, method)
                for method in methods.get(participation.pk, [])
                if method.pk in reached.get(participation.pk, set())
            ]
    return notifications_create(
        event=event,
        kind=kind,
        targets=targets,
        now=now,
        payload_by_participation=payload_by_participation,
    )


def notifications_cancel_queued(
    *,
    participation_ids: Iterable[int],
    now: dt.datetime,
    keep_kinds: Sequence[str] = (Notification.Kind.CANCEL,),
) -> int:
    """Mark queued notifications of these participations cancelled (except ``keep_kinds``).

    Rows already being sent are left alone. Returns how many rows were cancelled.
    """
    return (
        Notification.objects.filter(participation_id__in=list(participation_ids), status=N.QUEUED)
        .exclude(kind__in=list(keep_kinds))
        .update(status=N.CANCELLED, cancelled_at=now)
    )


# --- sending --------------------------------------------------------------------------


def _still_wanted(notification: Notification) -> str | None:
    """Why ``notification`` should no longer go out, or ``None`` when it should."""
    if notification.kind in (Notification.Kind.CANCEL, Notification.Kind.SUMMARY):
        return None
    if notification.event.status == Event.Status.CANCELLED:
        return "event cancelled"
    if notification.participation.is_removed:
        return "site removed from the event"
    if notification.contact_method.disabled_at is not None:
        return "contact method disabled"
    return None


def method_options(method: ContactMethod) -> dict[str, str]:
    """The transport ``options`` for ``method``, under the keys the transports read.

    ``endpoint`` for WCTP, ``server`` for SNPP, ``secret`` for webhooks; empty values are
    left out so the transports fall back to their settings (``WCTP_ENDPOINT`` ...).
    """
    options = {
        "endpoint": method.wctp_endpoint if method.kind == ContactMethod.Kind.PAGER_WCTP else "",
        "server": method.snpp_host if method.kind == ContactMethod.Kind.PAGER_SNPP else "",
        "secret": method.webhook_secret if method.kind == ContactMethod.Kind.WEBHOOK else "",
    }
    return {key: value for key, value in options.items() if value}


def build_message(notification: Notification) -> OutboundMessage:
    """The OutboundMessage a transport sends for ``notification`` (content from notices)."""
    method = notification.contact_method
    content = notices.compose(notification)
    return OutboundMessage(
        notification_id=notification.uuid,
        kind=method.kind,
        address=method.address,
        subject=content.subject,
        text=content.text,
        options=method_options(method),
        callback_url=content.callback_url,
        reply_links=content.reply_links,
    )


def retry_delay(attempts: int, retry_after: float | None) -> float:
    """Seconds before attempt ``attempts + 1``: exponential, capped, at least the provider's
    ``retry_after`` up to :data:`RETRY_AFTER_MAX_SECONDS` (a webhook receiver is the
    participant's: its hint can be anything, ``inf`` included)."""
    backoff = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1))
    return max(backoff, min(retry_after or 0.0, RETRY_AFTER_MAX_SECONDS))


#: Relations a send reads per row (content, address, whether it is still wanted); the
#: batch's events and programs, mostly one, are read once (see :func:`notifications_send`).
_SEND_RELATED: Final = ("participation__enrollment__site", "contact_method")


def notifications_send(
    notification_ids: Sequence[int], *, now: dt.datetime | None = None
) -> Counter[str]:
    """Send each of ``notification_ids`` once, if it is still queued (a send task's batch).

    The batch's due rows are claimed together (``queued -> sending``, ``attempts + 1``)
    under row locks that skip rows another worker holds. Rows no longer wanted are
    cancelled; the others go to their transport's ``notify_many`` (one after the other,
    several in flight at once for SMS, all in one write for the sandbox outbox) and each
    answer is recorded as it comes. A worker killed mid-batch leaves the rows it had not
    sent in ``sending`` for the sweeper. Rows not yet started when the batch has run for
    :data:`BATCH_TIME_BUDGET` go back to ``queued`` and on the broker, well inside the
    task's time limit.

    Returns how many ids ended each way (see :func:`notification_send`), plus
    ``"handed on"``. Never raises for a transport error.
    """
    started = time.monotonic()
    claimed_at = now or timezone.now()
    ids = list(dict.fromkeys(notification_ids))
    with transaction.atomic():
        # Locked by id alone and tested here: right after a large dispatch the table's
        # statistics still say "few queued rows", and a status condition in the query let
        # PostgreSQL walk the whole (status, next_attempt_at) index for every batch.
        latest = claimed_at + CLAIM_TOLERANCE
        due = [
            pk
            for pk, status, next_attempt_at in Notification.objects.select_for_update(
                skip_locked=True
            )
            .filter(pk__in=ids)
            .values_list("pk", "status", "next_attempt_at")
            if status == N.QUEUED and next_attempt_at <= latest
        ]
        Notification.objects.filter(pk__in=due).update(
            status=N.SENDING, attempts=F("attempts") + 1, sending_at=claimed_at
        )
    claimed = Notification.objects.select_related(*_SEND_RELATED).in_bulk(due)
    events = Event.objects.select_related("program").in_bulk(
        {row.event_id for row in claimed.values()}
    )
    for row in claimed.values():
        row.event = row.participation.event = events[row.event_id]
    outcomes: Counter[str] = Counter(skipped=len(ids) - len(claimed))
    by_channel: dict[str, list[tuple[Notification, OutboundMessage]]] = {}
    for notification_id in ids:
        notification = claimed.get(notification_id)
        if notification is None:
            continue
        ready = _ready_to_send(notification, fixed_now=now)
        if isinstance(ready, str):
            outcomes[ready] += 1
        else:
            by_channel.setdefault(notification.channel, []).append((notification, ready))
    deadline = started + BATCH_TIME_BUDGET.total_seconds()
    for channel, batch in by_channel.items():
        answered: set[int] = set()
        try:
            transport = get_transport(channel)
        except Exception as exc:  # noqa: BLE001 - e.g. Twilio credentials missing
            # Recorded on each row and retried with backoff, as a failed send is, so the
            # console shows why and fixing the deployment lets the notices through.
            outcomes.update(_record_answers([(row, exc) for row, _ in batch], now))
            continue
        for group in transport.notify_many([m for _, m in batch], deadline=deadline):
            answered.update(index for index, _ in group)
            outcomes.update(_record_answers([(batch[i][0], answer) for i, answer in group], now))
        rest = [notification.pk for index, (notification, _) in enumerate(batch)
                if index not in answered]  # fmt: skip
        if rest:
            released = Notification.objects.filter(
                pk__in=rest, status=N.SENDING, sending_at=claimed_at
            ).update(status=N.QUEUED, attempts=F("attempts") - 1, sending_at=None)
            _enqueue([(pk, channel) for pk in rest])
            outcomes["handed on"] += released
    return +outcomes


def notification_send(notification_id: int, *, now: dt.datetime | None = None) -> str:
    """Send one notification once, if it is still queued.

    Returns what happened: ``"skipped"`` (not queued or not yet due: another message or
    worker has it), ``"cancelled"`` (no longer wanted), ``"sent"`` or ``"delivered"``,
    ``"retry"`` (transient error, re-enqueued with backoff) or ``"failed"``. Never raises
    for a transport error; a database error propagates (the broker message is then
    redelivered or the sweeper picks the row up).
    """
    (outcome,) = notifications_send([notification_id], now=now)
    return outcome


def _ready_to_send(
    notification: Notification, *, fixed_now: dt.datetime | None
) -> OutboundMessage | str:
    """The message for a claimed (``sending``) row, or the outcome when it is not sent:
    ``"cancelled"`` (no longer wanted) or what recording a failure to compose it gave."""
    why_not = _still_wanted(notification)
    if why_not:
        Notification.objects.filter(pk=notification.pk, status=N.SENDING).update(
            status=N.CANCELLED, cancelled_at=fixed_now or timezone.now(), error=why_not
        )
        return "cancelled"
    try:
        return build_message(notification)
    except Exception as exc:  # noqa: BLE001 - recorded and retried, see _record_answers
        (outcome,) = _record_answers([(notification, exc)], fixed_now)
        return outcome


def _record_answers(
    answers: Sequence[tuple[Notification, DeliveryReceipt | Exception]],
    fixed_now: dt.datetime | None,
) -> Counter[str]:
    """Record what the transport answered for claimed rows; count the outcomes.

    The receipts go in one statement (:func:`_record_receipts`); each error on its own.
    """
    # The provider calls took time: record when they were answered, unless a caller (a
    # test, a replay) fixed the clock.
    now = fixed_now or timezone.now()
    outcomes: Counter[str] = Counter()
    receipts = [(row, answer) for row, answer in answers if isinstance(answer, DeliveryReceipt)]
    if receipts:
        outcomes.update(_record_receipts(receipts, now=now))
    for notification, answer in answers:
        if isinstance(answer, DeliveryReceipt):
            continue
        if not isinstance(answer, TransportError):
            # A bug or a misconfiguration (e.g. Twilio credentials missing): retry, so
            # fixing the deployment lets the notice through; the traceback goes to the log.
            logger.error(
                "sending notification %s failed unexpectedly",
                notification.uuid,
                exc_info=(type(answer), answer, answer.__traceback__),
            )
            answer = TransportError(f"{type(answer).__name__}: {answer}", permanent=False)
        outcomes[_record_error(notification, answer, now=now)] += 1
    return outcomes


def _record_receipts_sql(count: int) -> str:
    # The table name is the model's own; every value is a parameter. VALUES names its
    # columns column1, column2 ... on PostgreSQL and SQLite alike.
    table = Notification._meta.db_table
    rows = ", ".join(["(%s, %s, %s)"] * count)
    moves = f"{table}.status = %s"
    return (
        f"UPDATE {table} SET "  # noqa: S608
        f"status = CASE WHEN {moves} THEN answered.column2 ELSE {table}.status END, "
        f"error = CASE WHEN {moves} THEN '' ELSE {table}.error END, "
        f"error_code = CASE WHEN {moves} THEN '' ELSE {table}.error_code END, "
        f"delivered_at = CASE WHEN {moves} AND answered.column2 = %s THEN %s "
        f"ELSE {table}.delivered_at END, "
        "provider_reference = answered.column3, sent_at = %s "
        f"FROM (VALUES {rows}) AS answered WHERE {table}.id = answered.column1"
    )


def _record_receipts(
    receipts: Sequence[tuple[Notification, DeliveryReceipt]], *, now: dt.datetime
) -> Counter[str]:
    """Record the provider's references; move the rows still ``sending`` to ``sent`` (or
    ``delivered``).

    One statement for the group: once per message, this was the pipeline's costliest
    write (1.6 ms a row on PostgreSQL in a large dispatch, most of it the commit), and the
    answers of a batch arrive a few at a time. Compare-and-set as everywhere, but inside
    the statement: a row a status callback has already moved on (Twilio can post
    "delivered" before this write) keeps its status and only gains what we alone know,
    the reference and when it was sent. The rows are found by id alone: a status
    condition in the WHERE clause let PostgreSQL, with the statistics of before a large
    dispatch, walk every row the dispatch had ever put in ``sending``.
    """
    values: list[object] = []
    statuses: list[str] = []
    for notification, receipt in receipts:
        status = N.DELIVERED if receipt.status == ReceiptStatus.DELIVERED else N.SENT
        statuses.append(status)
        values += [notification.pk, status, receipt.provider_reference or ""]
    database = connections[router.db_for_write(Notification)]
    at = database.ops.adapt_datetimefield_value(now)
    sending = N.SENDING
    with database.cursor() as cursor:
        cursor.execute(
            _record_receipts_sql(len(receipts)),
            [sending, sending, sending, sending, N.DELIVERED, at, at, *values],
        )
    return Counter(statuses)


def _record_error(notification: Notification, exc: TransportError, *, now: dt.datetime) -> str:
    attempts = Notification.objects.values_list("attempts", flat=True).get(pk=notification.pk)
    common = {"error": exc.message[:2000], "error_code": (exc.code or "")[:32]}
    if not exc.permanent and attempts < MAX_ATTEMPTS:
        delay = retry_delay(attempts, exc.retry_after)
        changed = Notification.objects.filter(pk=notification.pk, status=N.SENDING).update(
            status=N.QUEUED, next_attempt_at=now + dt.timedelta(seconds=delay), **common
        )
        if changed:
            _enqueue([(notification.pk, notification.channel)], countdown=delay)
        return "retry"
    changed = Notification.objects.filter(pk=notification.pk, status=N.SENDING).update(
        status=N.FAILED, failed_at=now, **common
    )
    if changed:
        with transaction.atomic():
            if exc.permanent:
                contact_method_disable(
                    method=notification.contact_method,
                    reason=f"{exc.message} (code {exc.code})" if exc.code else exc.message,
                    now=now,
                )
            escalate_after_delivery_failure(notification=notification, now=now)
    return "failed"


# --- provider status ------------------------------------------------------------------

#: How far along a status is; a callback may only move a row to a higher rank.
STATUS_RANK: Final[dict[str, int]] = {N.QUEUED: 0, N.SENDING: 1, N.SENT: 2, N.DELIVERED: 3}
TERMINAL: Final = frozenset({N.DELIVERED, N.FAILED, N.CANCELLED})


def notification_status_update(
    *,
    notification: Notification,
    status: str,
    now: dt.datetime,
    error: str = "",
    error_code: str = "",
) -> bool:
    """Move ``notification`` forward to ``status`` (``sent``, ``delivered`` or ``failed``).

    Only forward: queued < sending < sent < delivered, and ``failed`` ends any
    non-terminal status; delivered, failed and cancelled rows never change. Duplicate or
    out-of-order callbacks therefore change nothing twice. Returns whether the row
    changed. A ``failed`` status escalates to the participation's next method.
    """
    if status == N.FAILED:
        changed = (
            Notification.objects.filter(pk=notification.pk)
            .exclude(status__in=TERMINAL)
            .update(status=N.FAILED, failed_at=now, error=error[:2000], error_code=error_code[:32])
        )
        if changed:
            notification.refresh_from_db()
            escalate_after_delivery_failure(notification=notification, now=now)
        return bool(changed)
    if status not in (N.SENT, N.DELIVERED):
        raise ValueError(f"a provider cannot report {status!r}")
    lower = [name for name, rank in STATUS_RANK.items() if rank < STATUS_RANK[status]]
    updates: dict[str, Any] = {"status": status}
    if status == N.DELIVERED:
        updates["delivered_at"] = now
    changed = Notification.objects.filter(pk=notification.pk, status__in=lower).update(**updates)
    if changed and status == N.SENT:
        Notification.objects.filter(pk=notification.pk, sent_at__isnull=True).update(sent_at=now)
    return bool(changed)


# --- the sweeper ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SweepReport:
    """How many rows the sweeper put back on the broker, and failed for good."""

    requeued_queued: int
    requeued_sending: int
    failed: int


def _backlog_allowance(channel: str, queued: int) -> dt.timedelta:
    # A channel with 10,000 queued SMS at 1/s legitimately holds rows for hours; those are
    # waiting their turn, not lost, and re-enqueuing them would only pile duplicates (no-ops,
    # thanks to the claim, but broker load) on the queue.
    per_second = parse_rate(channels.rate_limit(channel))
    if not per_second:
        return dt.timedelta(0)
    return dt.timedelta(seconds=queued / per_second)


def notifications_sweep(*, now: dt.datetime | None = None) -> SweepReport:
    """Re-enqueue notifications whose broker message was lost or whose worker died.

    * ``sending`` for longer than :data:`SENDING_DEADLINE` (beyond the send task's time
      limit, so the worker is gone): back to ``queued``, or ``failed`` after
      :data:`MAX_ATTEMPTS`.
    * ``queued`` with ``next_attempt_at`` older than :data:`QUEUED_GRACE` plus the channel's
      backlog at its rate limit: enqueued again, and ``next_attempt_at`` moved to now, so
      the same row is not re-sent to the broker on every tick.

    Every change is compare-and-set, so two sweepers never double a message; a row
    enqueued twice is still sent once (the claim). Returns a :class:`SweepReport`.
    """
    now = now or timezone.now()
    requeued_sending = failed = 0
    to_enqueue: list[tuple[int, str]] = []
    for row in selectors.notifications_stuck_sending(before=now - SENDING_DEADLINE).only(
        "pk", "attempts", "sending_at", "channel"
    )[:1000]:
        stuck = Notification.objects.filter(pk=row.pk, status=N.SENDING, sending_at=row.sending_at)
        if row.attempts >= MAX_ATTEMPTS:
            if stuck.update(
                status=N.FAILED, failed_at=now, error="no answer from the worker or provider"
            ):
                failed += 1
                notification = Notification.objects.select_related(
                    "participation", "event", "contact_method"
                ).get(pk=row.pk)
                escalate_after_delivery_failure(notification=notification, now=now)
            continue
        if stuck.update(status=N.QUEUED, next_attempt_at=now):
            requeued_sending += 1
            to_enqueue.append((row.pk, row.channel))
    backlog = dict(
        Notification.objects.filter(status=N.QUEUED)
        .values("channel")
        .annotate(queued=Count("pk"))
        .values_list("channel", "queued")
    )
    requeued_queued = 0
    for channel, queued in backlog.items():
        before = now - QUEUED_GRACE - _backlog_allowance(channel, queued)
        for row in selectors.notifications_stuck_queued(before=before, channel=channel).only(
            "pk", "next_attempt_at", "channel"
        )[:1000]:
            if Notification.objects.filter(
                pk=row.pk, status=N.QUEUED, next_attempt_at=row.next_attempt_at
            ).update(next_attempt_at=now):
                requeued_queued += 1
                to_enqueue.append((row.pk, row.channel))
    _enqueue(to_enqueue)
    return SweepReport(
        requeued_queued=requeued_queued, requeued_sending=requeued_sending, failed=failed
    )


# --- contact methods, alerts and escalation -------------------------------------------


def contact_method_disable(*, method: ContactMethod, reason: str, now: dt.datetime) -> bool:
    """Disable ``method`` (a permanent provider error, a STOP reply) and say why.

    Returns False when it was already disabled (the first reason is kept). Alerts the
    organization's account manager by email, after commit, when it changes.
    """
    changed = ContactMethod.objects.filter(pk=method.pk, disabled_at__isnull=True).update(
        disabled_at=now, disabled_reason=reason[:300]
    )
    method.disabled_at = method.disabled_at or now
    method.disabled_reason = method.disabled_reason or reason[:300]
    if changed:
        contact = method.contact
        organization = contact.organization
        manager = organization.account_manager
        if manager is not None and manager.email:
            subject = f"Contact method disabled: {contact.name} ({organization})"
            body = (
                f"{method.get_kind_display()} {method.address} of {contact.name} at "
                f"{organization} was disabled: {reason}.\n\nEvent notices no longer reach "
                "it; please ask the organization for a working contact."
            )
            _mail_on_commit(manager, subject, body)
    return bool(changed)


def contact_method_enable(*, method: ContactMethod, reason_prefix: str) -> bool:
    """Re-enable ``method`` if it was disabled for a reason starting with ``reason_prefix``.

    Used by START replies, which may only undo what STOP did. Returns whether it changed.
    """
    changed = ContactMethod.objects.filter(
        pk=method.pk, disabled_at__isnull=False, disabled_reason__startswith=reason_prefix
    ).update(disabled_at=None, disabled_reason="")
    return bool(changed)


def _mail_on_commit(user: AbstractBaseUser, subject: str, body: str) -> None:
    address = getattr(user, "email", "")
    if not address:
        return

    def send() -> None:
        try:
            send_mail(subject, body, None, [address], fail_silently=False)
        except Exception:
            logger.exception("could not email %s about %s", address, subject)

    transaction.on_commit(send)


def _unreached_levels(participation: Participation) -> list[list[ContactMethod]]:
    methods = selectors.usable_methods_by_participation([participation]).get(participation.pk, [])
    tried = set(
        Notification.objects.filter(
            participation=participation,
            kind__in=[Notification.Kind.NOTICE, Notification.Kind.ESCALATION],
        ).values_list("contact_method_id", flat=True)
    )
    return [
        level
        for level in (
            [m for m in group if m.pk not in tried] for group in selectors.method_levels(methods)
        )
        if level
    ]


def _staff_step(
    participation: Participation, *, reason: str, level: int, now: dt.datetime
) -> EscalationStep:
    """The next rung above the contact methods: account manager, manager on duty, none."""
    taken = set(participation.escalation_steps.values_list("target", flat=True))
    organization = participation.enrollment.site.organization
    T = EscalationStep.Target
    if T.ACCOUNT_MANAGER not in taken and organization.account_manager_id:
        user = organization.account_manager
        target, why = T.ACCOUNT_MANAGER, "a key account has not acknowledged an event"
    elif T.MANAGER_ON_DUTY not in taken and (user := selectors.manager_on_duty(now)) is not None:
        target, why = T.MANAGER_ON_DUTY, "a site has not acknowledged an event"
    else:
        return EscalationStep.objects.create(
            participation=participation,
            level=level,
            target=T.EXHAUSTED,
            reason=reason,
            detail="every method, the account manager and the manager on duty were reached",
            at=now,
        )
    subject, body = notices.staff_alert_text(participation, why=why.capitalize())
    _mail_on_commit(user, subject, body)
    return EscalationStep.objects.create(
        participation=participation, level=level, target=target, reason=reason, user=user, at=now
    )


def participation_escalate(
    *, participation: Participation, now: dt.datetime, expected_level: int | None = None
) -> EscalationStep | None:
    """Take one escalation step for an unanswered participation whose deadline passed.

    The ladder: the next contact methods in escalation order not yet tried (an
    ``escalation`` message each), then the organization's account manager, then the
    manager on duty (both by email), then nothing (``exhausted``; no further deadline).
    Each step is an :class:`EscalationStep` and sets the next deadline to ``now`` plus the
    program's ``ack_deadline_minutes``.

    Compare-and-set on ``escalation_level`` (``expected_level``, default the loaded one),
    so two ticks never take the same step. Returns the step, or ``None`` when the
    participation was answered, removed, its event closed, or another tick got there first.
    """
    expected = participation.escalation_level if expected_level is None else expected_level
    program = participation.event.program
    deadline = now + dt.timedelta(minutes=program.ack_deadline_minutes)
    with transaction.atomic():
        claimed = Participation.objects.filter(
            pk=participation.pk,
            escalation_level=expected,
            status__in=Participation.UNANSWERED,
            removed_at__isnull=True,
            event__status__in=Event.OPEN_STATUSES,
        ).update(escalation_level=expected + 1, next_escalation_at=deadline)
        if not claimed:
            return None
        level = expected + 1
        reason = EscalationStep.Reason.ACK_OVERDUE
        levels = _unreached_levels(participation)
        if levels:
            sent = notifications_create(
                event=participation.event,
                kind=Notification.Kind.ESCALATION,
                targets=[(participation, method) for method in levels[0]],
                now=now,
            )
            step = EscalationStep.objects.create(
                participation=participation,
                level=level,
                target=EscalationStep.Target.METHODS,
                reason=reason,
                at=now,
                detail=", ".join(str(m) for m in levels[0])[:300],
            )
            step.notifications.set(sent)
            return step
        step = _staff_step(participation, reason=reason, level=level, now=now)
        if step.target == EscalationStep.Target.EXHAUSTED:
            Participation.objects.filter(pk=participation.pk).update(next_escalation_at=None)
        return step


def escalate_after_delivery_failure(
    *, notification: Notification, now: dt.datetime
) -> EscalationStep | None:
    """After ``notification`` failed for good, reach the participant another way at once.

    Sends the same kind of message to the next untried methods in escalation order
    (preferring the same contact's). Only for messages that ask for an answer, while the
    participation is unanswered and its event open. Returns the step, or ``None`` when
    nothing was to be done or no method is left (the acknowledgement deadline then
    escalates to the account manager and the manager on duty).
    """
    if notification.kind not in Notification.ANSWERABLE_KINDS:
        return None
    participation = Participation.objects.select_related(
        "event", "event__program", "enrollment__site__organization"
    ).get(pk=notification.participation_id)
    if (
        participation.status not in Participation.UNANSWERED
        or participation.is_removed
        or participation.event.status not in Event.OPEN_STATUSES
    ):
        return None
    levels = _unreached_levels(participation)
    if not levels:
        return None
    contact_id = notification.contact_method.contact_id
    same_contact = [m for level in levels for m in level if m.contact_id == contact_id]
    methods = same_contact[:1] or levels[0]
    with transaction.atomic():
        sent = notifications_create(
            event=participation.event,
            kind=notification.kind,
            targets=[(participation, method) for method in methods],
            now=now,
        )
        step = EscalationStep.objects.create(
            participation=participation,
            level=participation.escalation_level,
            target=EscalationStep.Target.METHODS,
            reason=EscalationStep.Reason.DELIVERY_FAILED,
            at=now,
            detail=f"{notification.contact_method} failed: {notification.error}"[:300],
        )
        step.notifications.set(sent)
    return step


def participations_escalate_due(*, now: dt.datetime) -> list[EscalationStep]:
    """Escalate every unanswered participation whose deadline has passed (the tick).

    Returns the steps taken (see :func:`participation_escalate`).
    """
    due = (
        Participation.objects.filter(
            next_escalation_at__lte=now,
            status__in=Participation.UNANSWERED,
            removed_at__isnull=True,
            event__status__in=Event.OPEN_STATUSES,
        )
        .select_related("event", "event__program", "enrollment__site__organization")
        .order_by("next_escalation_at", "pk")[:500]
    )
    steps = []
    for participation in due:
        step = participation_escalate(participation=participation, now=now)
        if step is not None:
            steps.append(step)
    return steps
