"""The notification pipeline: rows before the provider, enqueue on commit, claim,
retry, permanent failure, sweeper and escalation."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from dr_platform.models import OutboxMessage
from enrollment.models import ContactMethod
from events import services, tasks
from events.channels import DeliveryReceipt, ReceiptStatus
from events.models import DutyAssignment, EscalationStep, Notification, Participation
from events.services import pipeline
from tests.events.conftest import NOW, START
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

N = Notification.Status


#: The task messages the ``broker`` fixture saw: (task name, ids, queue).
MESSAGES: list[tuple[str, list[int], str]] = []


class FakeTask:
    def __init__(self, name: str, calls: list, messages: list) -> None:
        self.name, self.calls, self.messages = name, calls, messages

    def apply_async(self, args, queue, countdown=None, producer=None):
        self.messages.append((self.name, list(args[0]), queue))
        self.calls.extend(
            (self.name, notification_id, queue, countdown) for notification_id in args[0]
        )


@pytest.fixture
def broker(monkeypatch) -> list[tuple[str, int, str, float | None]]:
    """Record task messages at the last step before the broker."""
    calls: list = []
    monkeypatch.setattr(tasks, "send_task_for", lambda channel: FakeTask(
        tasks.SEND_TASKS[pipeline.channels.QUEUE[channel]].name, calls, MESSAGES))  # fmt: skip
    MESSAGES.clear()
    return calls


def test_a_dispatch_writes_every_row_in_one_insert_and_enqueues_only_on_commit(
    call_event, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with CaptureQueriesContext(connection) as queries:
            event = call_event().event
    writes = [
        q
        for q in queries
        if q["sql"].startswith(('INSERT INTO "events_notification"', 'COPY "events_notification"'))
    ]
    assert len(writes) == 1  # an INSERT (SQLite) or a COPY (PostgreSQL)
    assert broker == []  # nothing reaches the broker before commit
    for callback in callbacks:
        callback()
    ids = set(event.notifications.values_list("pk", flat=True))
    assert len(ids) == 3
    assert {(name, queue) for name, _, queue, _ in broker} == {("events.send_sandbox", "sandbox")}
    assert {notification_id for _, notification_id, _, _ in broker} == ids


def test_a_rolled_back_dispatch_enqueues_nothing(
    call_event, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            call_event()
            raise RuntimeError("the caller failed after dispatching")
    assert broker == []
    assert not Notification.objects.exists()


def test_live_mode_routes_each_method_to_its_channel_queue(
    call_event, broker, settings, django_capture_on_commit_callbacks
):
    settings.NOTIFICATION_MODE = "live"
    with django_capture_on_commit_callbacks(execute=True):
        event = call_event().event
        services.events_tick(now=NOW + dt.timedelta(minutes=31), sweep=False)  # escalate
    queues = {
        (n.contact_method.kind, queue)
        for n in event.notifications.select_related("contact_method")
        for _, notification_id, queue, _ in broker
        if notification_id == n.pk
    }
    assert queues == {("sms", "sms"), ("email", "email"), ("voice", "voice")}


def test_the_sandbox_keeps_the_message_in_the_outbox(call_event):
    event = call_event().event
    notification = event.notifications.filter(contact_method__kind="sms").first()
    assert services.notification_send(notification.pk, now=NOW) == "delivered"
    notification.refresh_from_db()
    assert notification.status == N.DELIVERED
    assert notification.attempts == 1
    assert notification.provider_reference.startswith("sandbox-")
    outbox = OutboxMessage.objects.get(reference=notification.uuid)
    assert outbox.address == notification.contact_method.address
    assert "Reply 1 to acknowledge, 2 to opt out." in outbox.body
    assert outbox.organization == notification.contact_method.contact.organization


def test_a_redelivered_task_finds_its_row_claimed_and_does_nothing(call_event):
    notification = call_event().event.notifications.first()
    assert services.notification_send(notification.pk, now=NOW) == "delivered"
    assert services.notification_send(notification.pk, now=NOW) == "skipped"
    assert OutboxMessage.objects.filter(reference=notification.uuid).count() == 1
    notification.refresh_from_db()
    assert notification.attempts == 1


def test_a_row_claimed_by_another_worker_is_left_alone(call_event):
    notification = call_event().event.notifications.first()
    Notification.objects.filter(pk=notification.pk).update(status=N.SENDING, sending_at=NOW)
    assert services.notification_send(notification.pk, now=NOW) == "skipped"
    assert not OutboxMessage.objects.exists()


def test_a_transient_error_is_retried_with_backoff_and_delivered_once(
    call_event, live_twilio, enqueued
):
    live_twilio.script("500")
    notification = call_event().event.notifications.filter(contact_method__kind="sms").first()
    assert services.notification_send(notification.pk, now=NOW) == "retry"
    notification.refresh_from_db()
    assert notification.status == N.QUEUED
    assert notification.next_attempt_at == NOW + dt.timedelta(seconds=2)
    assert notification.error_code == "20500"
    assert enqueued[-1][0] == notification.pk and enqueued[-1][2] == pytest.approx(2.0)
    # Not yet due: a duplicate message arriving early does not jump the backoff.
    assert services.notification_send(notification.pk, now=NOW) == "skipped"
    assert services.notification_send(notification.pk, now=NOW + dt.timedelta(seconds=2)) == "sent"
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (N.SENT, 2)
    assert notification.provider_reference.startswith("SM")
    assert live_twilio.count_for(notification.uuid) == 1


def test_the_backoff_honours_the_providers_retry_after(call_event, live_twilio, enqueued):
    live_twilio.retry_after = "30"
    live_twilio.script("429")
    notification = call_event().event.notifications.filter(contact_method__kind="sms").first()
    assert services.notification_send(notification.pk, now=NOW) == "retry"
    notification.refresh_from_db()
    assert notification.next_attempt_at == NOW + dt.timedelta(seconds=30)


@pytest.mark.parametrize("retry_after", ["7200", "inf", "99999999999999999999"])
def test_a_providers_retry_after_waits_at_most_fifteen_minutes(
    call_event, live_twilio, enqueued, retry_after
):
    # The retry's countdown stays under the Redis visibility timeout (3,600 s), and a hint
    # too large for a date (a participant's webhook receiver can answer anything) is a wait
    # like any other, not an error in the middle of a batch.
    live_twilio.retry_after = retry_after
    live_twilio.script("429")
    notification = call_event().event.notifications.filter(contact_method__kind="sms").first()
    assert services.notification_send(notification.pk, now=NOW) == "retry"
    notification.refresh_from_db()
    assert notification.next_attempt_at == NOW + dt.timedelta(minutes=15)
    assert enqueued[-1][0] == notification.pk and enqueued[-1][2] == pytest.approx(900.0)


def test_retries_stop_after_the_maximum_and_the_next_method_is_tried(
    call_event, live_twilio, enqueued
):
    notification = call_event().event.notifications.get(
        contact_method__address="+12125550202", kind="notice"
    )
    Notification.objects.filter(pk=notification.pk).update(attempts=pipeline.MAX_ATTEMPTS - 1)
    live_twilio.script("503")
    assert services.notification_send(notification.pk, now=NOW) == "failed"
    notification.refresh_from_db()
    assert notification.status == N.FAILED
    # Transient: the method stays enabled, but the voice line is tried at once.
    assert notification.contact_method.disabled_at is None
    nxt = Notification.objects.get(participation=notification.participation,
                                   contact_method__kind="voice")  # fmt: skip
    assert nxt.kind == "notice" and nxt.status == N.QUEUED


def test_a_permanent_error_disables_the_method_alerts_the_account_manager_and_escalates(
    call_event, live_twilio, enqueued, methods, django_capture_on_commit_callbacks
):
    live_twilio.reject("+12125550101", code=21211)
    event = call_event().event
    notification = event.notifications.filter(contact_method=methods["dana_sms"]).first()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.notification_send(notification.pk, now=NOW) == "failed"
    notification.refresh_from_db()
    assert (notification.status, notification.error_code) == (N.FAILED, "21211")
    assert "invalid 'To' phone number" in notification.error
    method = ContactMethod.objects.get(pk=methods["dana_sms"].pk)
    assert method.disabled_at is not None and "21211" in method.disabled_reason
    assert [m.to for m in mail.outbox] == [["am@utility.example"]]
    assert "+12125550101" in mail.outbox[0].body
    # The next method of the same contact gets the same notice now, not at the deadline.
    fallback = Notification.objects.get(
        participation=notification.participation, contact_method=methods["dana_email"]
    )
    assert fallback.kind == "notice"
    step = EscalationStep.objects.get(participation=notification.participation)
    assert step.reason == "delivery_failed" and list(step.notifications.all()) == [fallback]
    # Later dispatches skip the disabled method.
    other = (
        event.notifications.filter(contact_method=methods["dana_sms"])
        .exclude(pk=notification.pk)
        .first()
    )
    assert services.notification_send(other.pk, now=NOW) == "cancelled"


def test_a_batch_records_each_answer_and_cancels_what_is_no_longer_wanted(
    call_event, live_twilio, enqueued, methods, django_capture_on_commit_callbacks
):
    event = call_event().event
    sms = list(event.notifications.filter(contact_method__kind="sms").order_by("pk"))
    assert len(sms) == 3  # Harbor's two sites to Dana, Northside's to Lee
    live_twilio.reject(methods["dana_sms"].address, code=21610)
    ContactMethod.objects.filter(pk=methods["lee_sms"].pk).update(disabled_at=NOW)

    with django_capture_on_commit_callbacks(execute=True):
        outcomes = pipeline.notifications_send([n.pk for n in sms], now=NOW)

    assert dict(outcomes) == {"failed": 2, "cancelled": 1}
    statuses = dict(Notification.objects.filter(pk__in=[n.pk for n in sms]).values_list(
        "contact_method__address", "status").distinct())  # fmt: skip
    assert statuses == {
        methods["dana_sms"].address: N.FAILED,
        methods["lee_sms"].address: N.CANCELLED,
    }
    # Only Dana's two notices reached the provider; Lee's disabled number was never called.
    assert [r.form["To"] for r in live_twilio.requests] == [methods["dana_sms"].address] * 2


def test_a_batch_reads_what_its_messages_need_in_three_queries(call_event, live_twilio, enqueued):
    # One notice per site to Dana's or Lee's phone: three in this event. Reading what
    # each message needs must not cost a query per row (content, address, options).
    event = call_event(kind="test").event
    ids = list(event.notifications.values_list("pk", flat=True))
    with CaptureQueriesContext(connection) as queries:
        outcomes = pipeline.notifications_send(ids, now=NOW)
    assert outcomes == {"sent": 3} and len(ids) == 3
    reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT")]
    # The claim (rows locked by id), the claimed rows with what composing needs, their events.
    assert len(reads) == 3, reads


def test_a_sandbox_batch_fills_the_outbox_in_as_many_queries_however_many_messages(
    call_event, enqueued, harbor, northside
):
    # Sandbox mode (the tests' default): one notice per site, two to Harbor's Dana and one
    # to Northside's Lee; each outbox row keeps the organization of its contact method.
    event = call_event(kind="test").event
    first, *rest = event.notifications.order_by("pk").values_list("pk", flat=True)
    with CaptureQueriesContext(connection) as one:
        assert pipeline.notifications_send([first], now=NOW) == {"delivered": 1}
    with CaptureQueriesContext(connection) as two:
        assert pipeline.notifications_send(rest, now=NOW) == {"delivered": 2}
    assert len(two) == len(one), [q["sql"] for q in two.captured_queries]
    stored = OutboxMessage.objects.filter(reference__in=event.notifications.values("uuid"))
    assert sorted(stored.values_list("organization_id", flat=True)) == sorted(
        [harbor.pk, harbor.pk, northside.pk]
    )


def test_the_answers_that_arrived_together_are_recorded_in_one_statement(call_event):
    rows = list(call_event().event.notifications.order_by("pk")[:3])
    Notification.objects.filter(pk__in=[r.pk for r in rows]).update(status=N.SENDING)
    # A status callback outran the third row's receipt: it is delivered already.
    delivered_at = NOW - dt.timedelta(seconds=1)
    Notification.objects.filter(pk=rows[2].pk).update(status=N.DELIVERED, delivered_at=delivered_at)
    receipts = [
        (rows[0], DeliveryReceipt("SM-queued", ReceiptStatus.QUEUED)),
        (rows[1], DeliveryReceipt("outbox-1", ReceiptStatus.DELIVERED)),
        (rows[2], DeliveryReceipt("SM-late", ReceiptStatus.QUEUED)),
    ]

    with CaptureQueriesContext(connection) as queries:
        outcomes = pipeline._record_receipts(receipts, now=NOW)

    assert dict(outcomes) == {"sent": 2, "delivered": 1}
    assert len([q for q in queries if q["sql"].startswith("UPDATE")]) == 1
    after = {row.pk: row for row in Notification.objects.filter(pk__in=[r.pk for r in rows])}
    first, second, third = (after[r.pk] for r in rows)
    assert (first.status, first.provider_reference, first.sent_at) == (N.SENT, "SM-queued", NOW)
    assert first.delivered_at is None
    assert (second.status, second.delivered_at, second.sent_at) == (N.DELIVERED, NOW, NOW)
    assert (third.status, third.delivered_at) == (N.DELIVERED, delivered_at)
    assert (third.provider_reference, third.sent_at) == ("SM-late", NOW)


def test_a_channel_without_its_provider_settings_retries_and_says_why(
    call_event, live_twilio, enqueued, settings
):
    settings.TWILIO_AUTH_TOKEN = ""  # a deployment that forgot a secret
    event = call_event().event
    ids = list(event.notifications.filter(contact_method__kind="sms").values_list("pk", flat=True))

    outcomes = pipeline.notifications_send(ids, now=NOW)

    assert dict(outcomes) == {"retry": len(ids)}
    for notification in Notification.objects.filter(pk__in=ids):
        assert notification.status == N.QUEUED and notification.attempts == 1
        assert "TWILIO_AUTH_TOKEN" in notification.error
    assert sorted(pk for pk, _, _ in enqueued) == sorted(ids)
    assert live_twilio.requests == []


def test_a_batch_hands_back_the_rows_it_did_not_start_within_its_time_budget(
    call_event, live_twilio, enqueued, monkeypatch
):
    event = call_event().event
    ids = list(event.notifications.filter(contact_method__kind="sms").order_by("pk")
               .values_list("pk", flat=True))  # fmt: skip
    monkeypatch.setattr(pipeline, "BATCH_TIME_BUDGET", dt.timedelta(0))

    outcomes = pipeline.notifications_send(ids, now=NOW)

    assert dict(outcomes) == {"sent": 1, "handed on": 2}
    rows = {row.pk: row for row in Notification.objects.filter(pk__in=ids)}
    assert (rows[ids[0]].status, rows[ids[0]].attempts) == (N.SENT, 1)
    for pk in ids[1:]:
        assert (rows[pk].status, rows[pk].attempts, rows[pk].sending_at) == (N.QUEUED, 0, None)
    assert sorted(pk for pk, _, _ in enqueued) == ids[1:]
    assert len(live_twilio.requests) == 1

    monkeypatch.setattr(pipeline, "BATCH_TIME_BUDGET", dt.timedelta(seconds=20))
    assert dict(pipeline.notifications_send(ids, now=NOW)) == {"sent": 2, "skipped": 1}
    for notification in Notification.objects.filter(pk__in=ids):
        assert live_twilio.count_for(notification.uuid) == 1


def test_the_sweeper_requeues_rows_stuck_in_sending_or_lost_in_queued(call_event, enqueued):
    event = call_event().event
    stuck_sending, lost, fresh = list(event.notifications.order_by("pk"))
    Notification.objects.filter(pk=stuck_sending.pk).update(
        status=N.SENDING, attempts=1, sending_at=NOW
    )
    later = NOW + pipeline.SENDING_DEADLINE + dt.timedelta(seconds=1)
    Notification.objects.filter(pk=fresh.pk).update(next_attempt_at=later)
    report = services.notifications_sweep(now=later)
    assert (report.requeued_sending, report.requeued_queued) == (1, 1)
    assert sorted(row[0] for row in enqueued) == sorted([stuck_sending.pk, lost.pk])
    for row in (stuck_sending, lost):
        row.refresh_from_db()
        assert row.status == N.QUEUED and row.next_attempt_at == later
    # Swept rows are not swept again on the next tick; they are sent once.
    assert services.notifications_sweep(now=later + dt.timedelta(seconds=30)).requeued_queued == 0
    assert services.notification_send(lost.pk, now=later) == "delivered"
    assert services.notification_send(lost.pk, now=later) == "skipped"


def test_the_sweeper_allows_for_a_channels_backlog(call_event, enqueued, settings):
    event = call_event().event
    Notification.objects.filter(event=event).update(channel="sms")  # 3 queued at 1/s
    just_past_grace = NOW + pipeline.QUEUED_GRACE + dt.timedelta(seconds=1)
    assert services.notifications_sweep(now=just_past_grace).requeued_queued == 0
    assert (
        services.notifications_sweep(now=just_past_grace + dt.timedelta(seconds=3)).requeued_queued
        == 3
    )


def test_a_row_stuck_sending_after_the_last_attempt_fails(call_event, enqueued):
    notification = call_event().event.notifications.first()
    Notification.objects.filter(pk=notification.pk).update(
        status=N.SENDING, attempts=pipeline.MAX_ATTEMPTS, sending_at=NOW
    )
    report = services.notifications_sweep(now=NOW + pipeline.SENDING_DEADLINE * 2)
    assert report.failed == 1
    notification.refresh_from_db()
    assert notification.status == N.FAILED


def test_escalation_climbs_methods_then_account_manager_then_manager_on_duty(
    call_event, program, django_capture_on_commit_callbacks
):
    on_duty = UserFactory(is_staff=True, email="duty@utility.example")
    DutyAssignment.objects.create(user=on_duty, starts_at=NOW - dt.timedelta(days=1))
    event = call_event().event
    harbor = event.participations.get(enrollment__site__name="Harbor North")
    northside = event.participations.get(enrollment__site__name="Northside Campus")
    deadline = dt.timedelta(minutes=program.ack_deadline_minutes)

    assert services.events_tick(now=NOW + deadline - dt.timedelta(seconds=1)).escalations == 0
    with django_capture_on_commit_callbacks(execute=True):
        t1 = NOW + deadline
        assert services.events_tick(now=t1, sweep=False).escalations == 3
        t2 = t1 + deadline
        services.events_tick(now=t2, sweep=False)
        t3 = t2 + deadline
        services.events_tick(now=t3, sweep=False)
        t4 = t3 + deadline
        services.events_tick(now=t4, sweep=False)

    def ladder(participation: Participation) -> list[tuple[int, str]]:
        return list(participation.escalation_steps.values_list("level", "target"))

    assert ladder(harbor) == [
        (1, "methods"), (2, "account_manager"), (3, "manager_on_duty"), (4, "exhausted"),
    ]  # fmt: skip
    # Northside has no account manager: straight from its methods to the manager on duty.
    assert ladder(northside) == [(1, "methods"), (2, "manager_on_duty"), (3, "exhausted")]
    first = harbor.escalation_steps.get(level=1)
    assert [n.contact_method.kind for n in first.notifications.all()] == ["email"]
    assert first.notifications.get().kind == "escalation"
    assert northside.escalation_steps.get(level=2).user == on_duty
    harbor.refresh_from_db()
    assert harbor.next_escalation_at is None  # the ladder is exhausted
    recipients = sorted(m.to[0] for m in mail.outbox)
    assert recipients.count("am@utility.example") == 2  # both Harbor sites
    assert recipients.count("duty@utility.example") == 3


def test_the_manager_on_duty_defaults_to_the_first_program_manager(manager_user):
    from events.selectors import manager_on_duty

    assert manager_on_duty(NOW) == manager_user


def test_an_acknowledgement_stops_the_ladder(call_event, program):
    event = call_event().event
    participation = event.participations.get(enrollment__site__name="Northside Campus")
    services.participation_acknowledge(participation, "sms", now=NOW)
    t1 = NOW + dt.timedelta(minutes=program.ack_deadline_minutes)
    assert services.events_tick(now=t1, sweep=False).escalations == 2
    assert not participation.escalation_steps.exists()


def test_unverified_and_disabled_methods_are_never_used(call_event, methods, harbor):
    from tests.enrollment.factories import ContactFactory, ContactMethodFactory

    ContactMethodFactory(contact=ContactFactory(organization=harbor), address="+12125550909",
                         verified_at=None)  # fmt: skip
    ContactMethod.objects.filter(pk=methods["lee_sms"].pk).update(disabled_at=NOW)
    event = call_event().event
    addresses = set(event.notifications.values_list("contact_method__address", flat=True))
    # Lee's first method is disabled: Lee's first usable level is the voice line.
    assert addresses == {"+12125550101", "+12125550202"}
    assert (
        event.notifications.get(
            participation__enrollment__site__name="Northside Campus"
        ).contact_method.kind
        == "voice"
    )
    assert START  # fixed times throughout


def test_a_live_webhook_notice_is_signed_with_the_methods_secret(call_event, harbor, settings):
    """The pipeline hands the transport the method's own secret: the receiver can verify it."""
    from events.channels import webhook
    from tests.enrollment.factories import ContactFactory, ContactMethodFactory
    from tests.stubs.webhook import WebhookStub

    settings.NOTIFICATION_MODE = "live"
    with WebhookStub() as receiver:
        method = ContactMethodFactory(
            contact=ContactFactory(organization=harbor, name="Harbor EMS"),
            kind=ContactMethod.Kind.WEBHOOK,
            address=receiver.url,
            webhook_secret="s3cret-for-harbor",
            escalation_order=1,
        )
        notification = (
            call_event().event.notifications.filter(contact_method=method).order_by("pk").first()
        )
        # A webhook's 2xx answer is its delivery receipt.
        assert services.notification_send(notification.pk, now=NOW) == N.DELIVERED
        (request,) = receiver.requests
    signature = request.headers[webhook.SIGNATURE_HEADER.lower()]
    assert webhook.verify(request.body, "s3cret-for-harbor", signature)
    assert not webhook.verify(request.body, "another-secret", signature)
    notification.refresh_from_db()
    assert notification.status == N.DELIVERED
