"""The pipeline through a real Celery worker subprocess, sending live SMS to the Twilio stub.

The worker shares this test's database (the SQLite test file, or the PostgreSQL test
database) and broker (the session's filesystem folders, or Redis). Each test asserts the
one thing that matters to a facility manager: every method got exactly one notice.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from django.db.models import F
from django.test import override_settings
from django.utils import timezone
from twilio.request_validator import RequestValidator

from events import services
from events.models import Event, Notification
from events.services import pipeline
from tests.enrollment.factories import (
    ContactFactory,
    ContactMethodFactory,
    EnrollmentFactory,
    ProgramFactory,
    SiteFactory,
)
from tests.events.conftest import STUB_ACCOUNT_SID, STUB_AUTH_TOKEN
from tests.factories import OrganizationFactory, staff_user
from tests.stubs.twilio import TwilioStub
from tests.workers import database_url, start_celery_worker, stop_celery_worker

SITE_URL = "https://dr.example.com"
N = Notification.Status

pytestmark = [
    pytest.mark.worker,
    # The worker is another process: it only sees committed data. (The flush after each
    # test re-runs post_migrate, which re-creates the staff groups for the tests that follow.)
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def stub() -> Iterator[TwilioStub]:
    with TwilioStub(auth_token=STUB_AUTH_TOKEN, stall_seconds=3.0, retry_after="1") as twilio:
        yield twilio


@pytest.fixture
def live(stub, settings) -> dict[str, str]:
    """Live mode in this process (dispatch picks the channel) and the worker's settings."""
    values = {
        "NOTIFICATION_MODE": "live",
        "TWILIO_ACCOUNT_SID": STUB_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": STUB_AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": "+15005550006",
        "TWILIO_BASE_URL": stub.base_url,
        "TWILIO_TIMEOUT": "1",
        "SITE_URL": SITE_URL,
    }
    for name, value in values.items():
        setattr(settings, name, int(value) if name == "TWILIO_TIMEOUT" else value)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return values


@pytest.fixture
def start_worker(worker_environment, live, settings) -> Iterator[Callable[[], subprocess.Popen]]:
    """Start SMS-queue workers on this test's database; all are stopped afterwards.

    A worker gets this process's ``NOTIFICATION_RATE_LIMITS`` as it is when it starts, so
    the batches enqueued here and the rate its send task runs at agree.
    """
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        # ``live`` as it is now: a test may change a value (the Twilio timeout) first.
        environment = {
            **worker_environment,
            **live,
            "DATABASE_URL": database_url(),
            "LOG_LEVEL": "WARNING",
        }
        limits = settings.NOTIFICATION_RATE_LIMITS
        environment["NOTIFICATION_RATE_LIMITS"] = ",".join(
            f"{kind}={limit or 'none'}" for kind, limit in limits.items()
        )
        worker = start_celery_worker(environment, ["sms"], name="events")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        stop_celery_worker(worker)


@pytest.fixture
def cast(db) -> dict:
    """Three organizations, one site each, one contact with two SMS phones (both first)."""
    manager = staff_user("Program managers")
    program = ProgramFactory(min_notice_minutes=0, ack_deadline_minutes=600)
    numbers = []
    for index in range(3):
        organization = OrganizationFactory()
        site = SiteFactory(organization=organization)
        EnrollmentFactory(program=program, site=site, committed_kw=Decimal("100"))
        contact = ContactFactory(organization=organization)
        for phone in range(2):
            number = f"+1212555{index}{phone}01"
            ContactMethodFactory(contact=contact, address=number, escalation_order=1)
            numbers.append(number)
    return {"program": program, "manager": manager, "numbers": numbers}


def _call(cast: dict) -> Event:
    """Call an event starting in an hour (within the program's rules, whatever today is)."""
    program = cast["program"]
    now = timezone.now()
    zone = program.zone
    start = now.astimezone(zone).replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    program.season_start = start.date() - dt.timedelta(days=1)
    program.season_end = start.date() + dt.timedelta(days=1)
    program.allowed_weekdays = list(range(7))
    program.event_window_start = dt.time(0, 0)
    program.event_window_end = dt.time(23, 59)
    program.save()
    if start.hour >= 22:  # keep the event on one local day
        start = start.replace(hour=12) + dt.timedelta(days=1)
        program.season_end = start.date() + dt.timedelta(days=1)
        program.save()
    plan = services.event_create(
        program=program, kind="emergency", starts_at=start, ends_at=start + dt.timedelta(hours=1),
        by=cast["manager"], now=now,
    )  # fmt: skip
    return plan.event


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _all_sent(event: Event) -> Callable[[], bool]:
    def done() -> bool:
        statuses = set(event.notifications.values_list("status", flat=True))
        return statuses <= {N.SENT, N.DELIVERED}

    return done


def _assert_exactly_once(event: Event, stub: TwilioStub, numbers: list[str]) -> None:
    notifications = list(event.notifications.select_related("contact_method"))
    assert sorted(n.contact_method.address for n in notifications) == sorted(numbers)
    for notification in notifications:
        assert notification.status == N.SENT, notification.error
        assert notification.provider_reference.startswith("SM")
        assert stub.count_for(notification.uuid) == 1, notification.contact_method.address
    assert sum(stub.accepted_counts.values()) == len(numbers)


def _age_stuck_rows() -> None:
    """Make rows left in flight look as old as the sweeper's deadlines (time passing)."""
    backlog = pipeline.QUEUED_GRACE + dt.timedelta(minutes=5)
    Notification.objects.filter(status=N.SENDING).update(
        sending_at=F("sending_at") - pipeline.SENDING_DEADLINE - dt.timedelta(seconds=1)
    )
    Notification.objects.filter(status=N.QUEUED).update(
        next_attempt_at=F("next_attempt_at") - backlog
    )


def test_every_method_gets_exactly_one_notice_through_a_real_worker(cast, stub, start_worker):
    start_worker()
    event = _call(cast)
    _wait(_all_sent(event), 60, "every notice sent")
    _assert_exactly_once(event, stub, cast["numbers"])
    # What the worker sent is the notice, with its status callback carrying the uuid.
    request = next(r for r in stub.accepted)
    assert request.form["Body"].startswith(f"{cast['program'].name}: Emergency")
    assert request.form["StatusCallback"].startswith(f"{SITE_URL}/hooks/twilio/status/")


def test_a_worker_killed_mid_dispatch_and_restarted_sends_each_notice_once(
    cast, stub, start_worker
):
    # The third request stalls; the worker is killed while it waits for Twilio's answer,
    # leaving that row in "sending" and (filesystem broker) losing what it had reserved.
    stub.script("", "", "timeout")
    worker = start_worker()
    event = _call(cast)
    _wait(lambda: sum(stub.attempt_counts.values()) >= 3, 30, "the stalled request")
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    assert event.notifications.filter(status=N.SENDING).count() == 1

    start_worker()
    _age_stuck_rows()
    report = services.notifications_sweep()
    assert report.requeued_sending == 1
    _wait(_all_sent(event), 60, "every notice sent after the restart")
    _assert_exactly_once(event, stub, cast["numbers"])


def test_a_worker_killed_mid_batch_leaves_the_unsent_rows_to_the_sweeper(
    cast, stub, live, start_worker, settings
):
    # Without a rate limit the six notices travel as one task message, are claimed
    # together and sent concurrently; the third request to arrive stalls, the other five
    # are answered and recorded, and the worker dies while the third waits for Twilio.
    settings.NOTIFICATION_RATE_LIMITS = {"sms": None}
    live["TWILIO_TIMEOUT"] = "30"  # the worker waits for the stalled answer until killed
    stub.stall_seconds = 30.0
    stub.script("", "", "timeout")
    worker = start_worker()
    event = _call(cast)
    sent = event.notifications.filter(status=N.SENT)
    _wait(lambda: sent.count() == len(cast["numbers"]) - 1, 30, "the five answered notices")
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    assert sum(stub.attempt_counts.values()) == len(cast["numbers"])
    assert event.notifications.filter(status=N.SENDING).count() == 1

    stub.released.set()  # the stalled handler lets go (its client is gone)
    start_worker()
    _age_stuck_rows()
    assert services.notifications_sweep().requeued_sending == 1
    _wait(_all_sent(event), 60, "every notice sent after the restart")
    _assert_exactly_once(event, stub, cast["numbers"])


def test_a_flaky_provider_still_gets_every_notice_once(cast, stub, start_worker):
    stub.fail_share(0.35, ("500", "429", "timeout"), seed=7)
    start_worker()
    event = _call(cast)
    _wait(_all_sent(event), 90, "every notice sent despite faults")
    _assert_exactly_once(event, stub, cast["numbers"])
    failed_attempts = sum(stub.attempt_counts.values()) - len(cast["numbers"])
    assert failed_attempts > 0  # the faults really happened
    assert Notification.objects.filter(event=event, attempts__gt=1).exists()


def test_a_lost_broker_message_is_recovered_by_the_sweeper(cast, stub, start_worker, monkeypatch):
    monkeypatch.setattr(pipeline, "_enqueue", lambda rows, countdown=None: None)
    event = _call(cast)  # rows committed, nothing on the broker
    monkeypatch.undo()
    start_worker()
    time.sleep(2)
    assert set(event.notifications.values_list("status", flat=True)) == {N.QUEUED}
    assert services.notifications_sweep().requeued_queued == 0  # not late yet
    _age_stuck_rows()
    assert services.notifications_sweep().requeued_queued == len(cast["numbers"])
    _wait(_all_sent(event), 60, "the swept notices sent")
    _assert_exactly_once(event, stub, cast["numbers"])


def test_duplicate_and_out_of_order_callbacks_change_nothing_twice(
    cast, stub, start_worker, client
):
    start_worker()
    event = _call(cast)
    _wait(_all_sent(event), 60, "every notice sent")
    notification = event.notifications.first()
    path = f"/hooks/twilio/status/{notification.uuid}/"
    validator = RequestValidator(STUB_AUTH_TOKEN)

    def post(status: str) -> int:
        params = {"MessageSid": notification.provider_reference, "MessageStatus": status}
        signature = validator.compute_signature(f"{SITE_URL}{path}", params)
        with override_settings(SITE_URL=SITE_URL):
            return client.post(path, params, HTTP_X_TWILIO_SIGNATURE=signature).status_code

    assert [post(s) for s in ("delivered", "sent", "delivered", "undelivered")] == [200] * 4
    notification.refresh_from_db()
    assert notification.status == N.DELIVERED
    assert notification.inbound.filter(action="status").count() == 1
    assert notification.inbound.filter(action="ignored").count() == 3
