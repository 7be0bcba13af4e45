"""Event dispatch through the real pipeline against a plain loop of the same SMS requests.

Calls one emergency event targeting BENCH_SITES sites (default 10,000) whose contacts have
two verified SMS numbers each, so the dispatch writes 2 x BENCH_SITES notification rows
(the ledger) in one transaction and enqueues their ids on commit. Two Celery worker
processes consume the ``sms`` queue on Redis in live mode and send every message through
the real SMS transport (the official ``twilio`` client, in asynchronous mode: a batch keeps
up to ``SEND_CONCURRENCY`` requests in flight) to the loopback Twilio stub of
``tests/stubs``, started here. Then, in the same run, a plain loop sends the same requests
(same numbers, bodies and callback URLs) to the same stub with the same client, one after
the other.

Prints: the time to write the ledger (the dispatch transaction, commit included), the time
to put the ids on the broker, the time from the start of the dispatch to the last send,
the pipeline's throughput (notifications/s, from the dispatch to the last send), the plain
loop's, and their ratio (pipeline / plain loop; goal >= 0.5; goal: everything sent within
30 s). Checks that the stub accepted exactly one message per notification UUID and that
every row ended ``sent``.

The SMS rate limit (``channels.RATE_LIMIT["sms"]``, 1/s per worker: Twilio's long-code
limit) would make this take hours; this benchmark measures the pipeline, not Twilio's
limit, so the dispatching process and its workers run with ``NOTIFICATION_RATE_LIMITS``
set to ``sms=`` BENCH_SMS_RATE_LIMIT (default: none), as an operator with a short code or
a messaging service would set it. Without a limit the dispatch puts the ids on the broker
in batches of ``channels.MAX_SEND_BATCH``. The output says so.

Environment: DATABASE_URL (default postgres://postgres:postgres@127.0.0.1:5432/
dr_platform_bench, created and migrated when missing; the benchmark's own rows carry the
``DISPATCH-`` prefix and are reused between runs, its earlier events are deleted),
CELERY_BROKER_URL (default redis://127.0.0.1:6379/12; the ``sms`` queue is purged),
BENCH_SITES (10000), BENCH_WORKER_POOL (threads), BENCH_WORKER_CONCURRENCY (4 per worker),
BENCH_SMS_RATE_LIMIT (empty: no limit).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks._support import ensure_database  # noqa: E402 (after the path)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dr_platform.settings")
os.environ.setdefault(
    "DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/dr_platform_bench"
)
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12")

SITES = int(os.environ.get("BENCH_SITES", "10000"))
WORKERS = 2
POOL = os.environ.get("BENCH_WORKER_POOL", "threads")
# Four task threads a worker: each keeps up to SEND_CONCURRENCY requests of its batch in
# flight on the worker's event loop, and more threads only contend for the interpreter
# (8 measured 2-4 s slower on this 2-core machine).
CONCURRENCY = int(os.environ.get("BENCH_WORKER_CONCURRENCY", "4"))
SMS_RATE_LIMIT = os.environ.get("BENCH_SMS_RATE_LIMIT", "") or None
SITES_PER_ORGANIZATION = 4
PREFIX = "DISPATCH-"
PROGRAM_NAME = "DISPATCH-benchmark program"
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "bench-auth-token"  # noqa: S105 - the loopback stub's, nothing real
SEND_DEADLINE_SECONDS = 600
RUN_SECRET_KEY = secrets.token_urlsafe(50)


def live_environment(stub_url: str) -> dict[str, str]:
    """Settings the dispatching process and the workers share: live SMS to the stub."""
    return {
        "NOTIFICATION_MODE": "live",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": "+15005550006",
        "TWILIO_BASE_URL": stub_url,
        "TWILIO_TIMEOUT": "10",
        "SITE_URL": "https://dr.example.com",
        "LOG_LEVEL": "WARNING",
        "NOTIFICATION_RATE_LIMITS": f"sms={SMS_RATE_LIMIT or 'none'}",
        # As in production: DEBUG off (no query log kept per statement), which needs a
        # secret key and allowed hosts; the key is this run's own.
        "DEBUG": "0",
        "SECRET_KEY": RUN_SECRET_KEY,
        "ALLOWED_HOSTS": "localhost",
    }


# --- worker mode ---------------------------------------------------------------------


def run_worker(hostname: str) -> None:
    """Run one Celery worker on the ``sms`` queue (the environment sets its rate limit)."""
    import django

    django.setup()
    from dr_platform.celery import app

    app.worker_main(
        [
            "worker", "-Q", "sms", "--pool", POOL, "--concurrency", str(CONCURRENCY),
            "--loglevel", "WARNING", "--hostname", hostname, "--without-gossip",
            "--without-mingle", "--without-heartbeat",
        ]
    )  # fmt: skip


# --- setup ---------------------------------------------------------------------------


def prepare(now: dt.datetime):
    """Migrate; create (once) the organizations, sites, contacts, methods and enrollments;
    delete earlier benchmark events; fit the program's season and hours around ``now``.

    Returns ``(program, manager)``.
    """
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import DatabaseError, connection, transaction

    from dr_platform.roles import PROGRAM_MANAGERS
    from enrollment.models import (
        Contact,
        ContactMethod,
        Enrollment,
        Organization,
        Program,
        Site,
    )

    call_command("migrate", verbosity=0)
    manager, created = get_user_model().objects.get_or_create(
        username="dispatch-bench-manager", defaults={"is_staff": True}
    )
    if created:
        manager.groups.add(Group.objects.get(name=PROGRAM_MANAGERS))
    program, _ = Program.objects.get_or_create(
        name=PROGRAM_NAME,
        defaults={
            "season_start": now.date(),
            "season_end": now.date(),
            "terms_text": "Benchmark terms.",
            "terms_version": "bench",
            "exclusive": False,
        },
    )
    # Emergencies at any hour, no notice, so the event can start minutes from now; a long
    # acknowledgement deadline keeps escalation out of the figure.
    local_day = now.astimezone(program.zone).date()
    program.season_start = local_day - dt.timedelta(days=1)
    program.season_end = local_day + dt.timedelta(days=2)
    program.allowed_weekdays = list(range(7))
    program.event_window_start = dt.time(0, 0)
    program.event_window_end = dt.time(23, 59)
    program.min_notice_minutes = 0
    program.emergency_overrides_notice = True
    program.ack_deadline_minutes = 600
    program.max_events_per_season = None
    program.max_hours_per_season = None
    program.max_events_per_month = None
    program.max_hours_per_month = None
    program.initial_notice = "immediate"
    program.full_clean()
    program.save()

    with connection.cursor() as cursor:
        event_ids = "SELECT id FROM events_event WHERE program_id = %s"
        for table in ("events_notification", "events_participation", "events_event_target_sites"):
            cursor.execute(f"DELETE FROM {table} WHERE event_id IN ({event_ids})", [program.pk])  # noqa: S608
        cursor.execute("DELETE FROM events_event WHERE program_id = %s", [program.pk])
        # Every run starts from the same state: no dead rows of the last run in the way,
        # and (where the role may) the last run's writes flushed, so that a checkpoint
        # does not land in the middle of this one.
        for table in ("events_notification", "events_participation", "events_event"):
            cursor.execute(f"VACUUM ANALYZE {table}")
        try:
            with transaction.atomic():
                cursor.execute("CHECKPOINT")
        except DatabaseError:
            print("(no CHECKPOINT before the run: the database role may not)")

    have = Enrollment.objects.filter(program=program, status=Enrollment.Status.ACTIVE).count()
    if have == SITES:
        _analyze_participants()
        return program, manager
    if have:
        raise SystemExit(
            f"the benchmark database holds {have} benchmark enrollments, not {SITES}; "
            "delete the DISPATCH- rows or use another DATABASE_URL"
        )
    today = now.date()
    with transaction.atomic():
        organizations = Organization.objects.bulk_create(
            [
                Organization(
                    legal_name=f"{PREFIX}Organization {number:05d}",
                    billing_account_number=f"{PREFIX}{number:05d}",
                )
                for number in range(SITES // SITES_PER_ORGANIZATION)
            ],
            batch_size=2000,
        )
        sites = Site.objects.bulk_create(
            [
                Site(
                    organization=organizations[number // SITES_PER_ORGANIZATION],
                    name=f"{PREFIX}site {number:05d}",
                    street="1 Bench Way",
                    city="Albany",
                    state="NY",
                    postal_code="12207",
                    service_account_number=f"{PREFIX}{number:05d}",
                    zone="BENCH",
                    peak_demand_kw=Decimal("800"),
                    audited_curtailable_kw=Decimal("200"),
                )
                for number in range(SITES)
            ],
            batch_size=2000,
        )
        # One facility manager per site, reached on two phones, both first in order.
        contacts = Contact.objects.bulk_create(
            [
                Contact(organization_id=site.organization_id, name=f"Manager of {site.name}")
                for site in sites
            ],
            batch_size=2000,
        )
        Contact.sites.through.objects.bulk_create(
            [
                Contact.sites.through(contact_id=contact.pk, site_id=site.pk)
                for contact, site in zip(contacts, sites, strict=True)
            ],
            batch_size=5000,
        )
        ContactMethod.objects.bulk_create(
            [
                ContactMethod(
                    contact=contact,
                    kind=ContactMethod.Kind.SMS,
                    address=f"+1{2 + phone}{number:09d}",
                    escalation_order=1,
                    verified_at=now,
                )
                for number, contact in enumerate(contacts)
                for phone in range(2)
            ],
            batch_size=5000,
        )
        Enrollment.objects.bulk_create(
            [
                Enrollment(
                    site=site,
                    program=program,
                    status=Enrollment.Status.ACTIVE,
                    committed_kw=Decimal("150"),
                    applied_by=manager,
                    active_from=today,
                    commitment_ends=today + dt.timedelta(days=365),
                )
                for site in sites
            ],
            batch_size=5000,
        )
    _analyze_participants()
    return program, manager


def _analyze_participants() -> None:
    """Give PostgreSQL statistics for the participants' tables, as a live database has
    for its long-standing rows (this machine's server runs without autovacuum; without
    them every send batch scanned all 20,000 contact methods). The notification tables
    keep the statistics of before the dispatch, as they would in production."""
    from django.db import connection

    with connection.cursor() as cursor:
        for model in ("organization", "site", "contact", "contact_sites", "contactmethod",
                      "enrollment", "program"):  # fmt: skip
            cursor.execute(f"ANALYZE enrollment_{model}")


# --- the run -------------------------------------------------------------------------


def start_workers(environment: dict[str, str]) -> tuple[list[subprocess.Popen], list[str]]:
    hostnames = [f"dispatch-bench-{uuid.uuid4().hex[:6]}-{n}@%h" for n in range(WORKERS)]
    workers = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, str(Path(__file__).resolve()), "--worker", hostname],
            cwd=ROOT,
            env=environment,
        )
        for hostname in hostnames
    ]
    return workers, hostnames


def wait_for_workers(app, workers: list[subprocess.Popen], count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(worker.poll() is not None for worker in workers):
            raise SystemExit("a benchmark worker exited during start-up")
        replies = app.control.ping(timeout=1.0)
        if len([r for r in replies if any("dispatch-bench-" in name for name in r)]) >= count:
            return
    raise SystemExit("the benchmark workers did not answer a ping within 60 s")


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def plain_loop(messages: list[tuple[str, str, str]]) -> float:
    """Send ``(to, body, callback)`` one after the other with the client the pipeline's
    SMS batches go through (the official client in asynchronous mode, as built by the SMS
    transport), each answer awaited before the next request."""
    import asyncio

    from events.channels.sms import SmsTransport

    transport = SmsTransport.from_settings()
    client, from_number = transport.async_client, transport.config.from_number

    async def send_all() -> float:
        started = time.perf_counter()
        for to, body, callback in messages:
            await client.messages.create_async(
                to=to, from_=from_number, body=body, status_callback=callback
            )
        elapsed = time.perf_counter() - started
        await client.http_client.close()
        return elapsed

    return asyncio.run(send_all())


def main() -> int:
    url = os.environ["DATABASE_URL"]
    if not url.startswith(("postgres://", "postgresql://")):
        print(f"dispatch.py needs PostgreSQL; DATABASE_URL={url}")
        return 1
    if not os.environ["CELERY_BROKER_URL"].startswith(("redis://", "rediss://")):
        print(
            f"dispatch.py needs a Redis broker; CELERY_BROKER_URL={os.environ['CELERY_BROKER_URL']}"
        )
        return 1
    ensure_database(url)

    from tests.stubs.twilio import TwilioStub

    stub = TwilioStub(auth_token=AUTH_TOKEN, record_requests=False).start()
    environment = live_environment(stub.base_url)
    os.environ.update(environment)

    import django

    django.setup()
    from django.db import transaction
    from django.utils import timezone

    from dr_platform.celery import app
    from events import channels, services
    from events.channels._concurrent import SEND_CONCURRENCY
    from events.models import Notification
    from events.services import pipeline

    workers: list[subprocess.Popen] = []
    try:
        setup_started = time.perf_counter()
        now = timezone.now()
        program, manager = prepare(now)
        setup_seconds = time.perf_counter() - setup_started
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge("sms")
        workers, _ = start_workers({**os.environ})
        wait_for_workers(app, workers, WORKERS)

        start = now.astimezone(program.zone).replace(second=0, microsecond=0)
        start += dt.timedelta(minutes=30)
        if start.date() != (start + dt.timedelta(hours=1)).date():
            start = start.replace(hour=1, minute=0) + dt.timedelta(days=1)
        marks: dict[str, float] = {}
        dispatch_wall = timezone.now()
        marks["start"] = time.perf_counter()
        with transaction.atomic():
            # Runs first among the commit callbacks, before the pipeline's enqueue.
            transaction.on_commit(lambda: marks.setdefault("committed", time.perf_counter()))
            plan = services.event_create(
                program=program,
                kind="emergency",
                starts_at=start,
                ends_at=start + dt.timedelta(hours=1),
                by=manager,
                reason="Dispatch benchmark",
                zones=["BENCH"],
            )
        marks["enqueued"] = time.perf_counter()
        event = plan.event
        expected = 2 * SITES
        total = Notification.objects.filter(event=event).count()
        if total != expected:
            raise SystemExit(f"the dispatch wrote {total} notifications, expected {expected}")

        done_statuses = [Notification.Status.SENT, Notification.Status.DELIVERED]
        deadline = time.monotonic() + SEND_DEADLINE_SECONDS
        while True:
            sent = Notification.objects.filter(event=event, status__in=done_statuses).count()
            if sent == expected:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"only {sent} of {expected} sent after {SEND_DEADLINE_SECONDS} s")
            time.sleep(1.0)  # the figure comes from sent_at, not from this poll
        rows = list(
            Notification.objects.filter(event=event).values_list("uuid", "status", "sent_at")
        )
        last_sent = max(sent_at for _, _, sent_at in rows)
        pipeline_seconds = (last_sent - dispatch_wall).total_seconds()

        accepted = stub.accepted_counts
        uuids = {str(value) for value, _, _ in rows}
        wrong = {key: count for key, count in accepted.items() if count != 1}
        exactly_once = set(accepted) == uuids and not wrong
        attempts = sum(stub.attempt_counts.values())

        # The same requests, composed as the pipeline composed them, through a plain loop.
        messages = []
        for notification in Notification.objects.filter(event=event).select_related(
            "event",
            "event__program",
            "participation",
            "participation__enrollment",
            "participation__enrollment__site",
            "contact_method",
            "contact_method__contact",
        ):
            message = pipeline.build_message(notification)
            messages.append((message.address, message.text, message.callback_url))
        stub.reset()
        loop_seconds = plain_loop(messages)
        loop_ok = sum(stub.accepted_counts.values()) == expected
    finally:
        stop_workers(workers)
        stub.stop()

    ledger = marks["committed"] - marks["start"]
    enqueue = marks["enqueued"] - marks["committed"]
    pipeline_rate = expected / pipeline_seconds
    loop_rate = expected / loop_seconds
    limit = SMS_RATE_LIMIT or "none"
    print(
        f"sites: {SITES}, notifications: {expected} (2 SMS methods per site), "
        f"workers: {WORKERS} x {POOL} pool of {CONCURRENCY} on the sms queue, "
        f"broker {os.environ['CELERY_BROKER_URL']}, database {urlparse(url).path.lstrip('/')}"
    )
    print(
        f"SMS rate limit for this run: {limit} per worker (production default "
        f"{channels.RATE_LIMIT['sms']}: Twilio's long-code limit; the figure measures the "
        f"pipeline, not Twilio); {channels.send_batching('sms')[0]} ids per task message, "
        f"up to {SEND_CONCURRENCY} of a batch in flight at once"
    )
    print(f"setup (migrate, bulk-create or reuse data): {setup_seconds:.1f} s")
    print(f"ledger (dispatch transaction, {expected} rows, commit included): {ledger:.2f} s")
    print(f"enqueue on commit ({expected} ids in task messages to Redis): {enqueue:.2f} s")
    print(f"dispatch start to last send: {pipeline_seconds:.2f} s (goal: within 30 s)")
    print(f"pipeline throughput: {pipeline_rate:,.0f} notifications/s")
    print(f"plain loop, same client, same stub: {loop_seconds:.2f} s, {loop_rate:,.0f} requests/s")
    print(f"ratio pipeline/plain loop: {pipeline_rate / loop_rate:.3f} (goal >= 0.5)")
    print(
        f"stub: {len(accepted)} notification UUIDs, {sum(accepted.values())} accepted, "
        f"{attempts} requests; exactly one message per UUID: {'yes' if exactly_once else 'NO'}"
        f"; plain loop all accepted: {'yes' if loop_ok else 'NO'}"
    )
    if wrong:
        print(f"UUIDs with a count other than 1 (first 5): {list(wrong.items())[:5]}")
    return 0 if exactly_once and loop_ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        run_worker(sys.argv[2])
        sys.exit(0)
    sys.exit(main())
