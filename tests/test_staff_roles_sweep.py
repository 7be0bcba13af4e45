"""What each staff role may read and change, in the console, the API and the admin.

The expectation is the README's: its *Roles* paragraph, each area's "who" lines and the
REST API table. Where it is silent, auditors change nothing, Billing works on settlement
runs and their exports, and program managers run programs, enrollments, events and
settlements.

| area | Program managers | Billing | Auditors |
| --- | --- | --- | --- |
| enrollments, review queue, capacity, CSV; API sites, enrollments | read | read | read |
| decide applications, set a firm service level (console, API) | yes | 403 | 403 |
| events, calendar, live page, outbox; API events, participations | read | read | 403 |
| call, schedule, modify, cancel events (console, API) | yes | 403 | 403 |
| simulate a reply in the outbox | yes | 403 | 403 |
| meter data imports and their pages; API imports | read | read | 403 |
| upload meter data (console, API) | yes | 403 | 403 |
| meters' data quality | all meters | all meters | none (an empty list; 404) |
| performance and baseline accuracy | read | read | 403 |
| recompute an event's performance | yes | 403 | 403 |
| settlement runs, their progress, exports, downloads; API runs, exports | read | read | 403 |
| create, calculate, export, restate, discard a run | yes | yes | 403 |
| approve a run | yes, unless they calculated it | yes, unless they calculated it | 403 |
| dispute queue and a dispute: read, accept, reject, comment | yes | 403 | 403 |
| admin: complete an audit | yes | no | yes |
| admin: approve / reject applications, schedule / cancel events | yes | no | no |
| admin: user accounts | participants' only | no | no |

"Four eyes" refusals (approving a run one calculated) are not a 403: the run page comes
back saying why, and nothing changes.

Three sweeps:

1. Every console and API route, walked from the URL resolver (a route added later fails
   here until it is given a row in ``ROUTES``): each role's GET and empty POST.
2. Every write, with a complete form: a role allowed to make it changes what it should (an
   answer of 2xx or 3xx), a refused one gets 403 and changes nothing. Each try runs in a
   savepoint rolled back afterwards, so every role starts from the same demo data.
3. The admin: what each role may view, add, change and delete per model, and the actions
   it is offered; and a program manager never edits a staff account.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.db.models import QuerySet
from django.test import Client, RequestFactory, TestCase
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from dr_platform.demo import load_demo_data
from dr_platform.models import OutboxMessage
from dr_platform.roles import PROGRAM_MANAGERS
from enrollment.models import Audit, AuditFinding, Enrollment, Meter, Organization, Program
from events import services as event_services
from events.forms import DATETIME_LOCAL
from events.models import Event, InboundMessage, Participation
from settlements import services as meterdata_services
from settlements.models import BillingExport, Dispute, MeterDataImport, SettlementRun
from settlements.runs import settlement_run_calculate, settlement_run_create
from tests.factories import UserFactory, staff_user

pytestmark = pytest.mark.django_db

M, A, B = "manager", "auditor", "billing"
#: A second program manager, who may approve what the first one calculated.
M2 = "second manager"
ROLES = (M, A, B)
STAFF = frozenset(ROLES)
NOBODY: frozenset[str] = frozenset()
MANAGERS = frozenset({M})
MANAGERS_AND_BILLING = frozenset({M, B})

#: Route name -> (roles whose GET answers 200, roles that may POST to it). Any other role
#: gets 403 or 404 to a GET, and 403, 404 or 405 to a POST. A route nobody reads takes
#: only POST (its GET answers 405, or 403 first to a role that may not post either).
ROUTES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "console:home": (STAFF, NOBODY),
    # Enrollment: every staff role reads; program managers decide.
    "console:enrollment_list": (STAFF, NOBODY),
    "console:enrollment_export": (STAFF, NOBODY),
    "console:review_queue": (STAFF, NOBODY),
    "console:enrollment_detail": (STAFF, NOBODY),
    "console:enrollment_decide": (NOBODY, MANAGERS),
    "console:enrollment_firm_level": (NOBODY, MANAGERS),
    "console:capacity_summary": (STAFF, NOBODY),
    # Events: "staff with the events view permission read (program managers, billing);
    # program managers call, schedule, modify and cancel".
    "console:event_list": (MANAGERS_AND_BILLING, NOBODY),
    "console:event_calendar": (MANAGERS_AND_BILLING, NOBODY),
    "console:event_create": (MANAGERS, MANAGERS),
    "console:event_detail": (MANAGERS_AND_BILLING, NOBODY),
    "console:event_live": (MANAGERS_AND_BILLING, NOBODY),
    "console:event_schedule": (NOBODY, MANAGERS),
    "console:event_modify": (MANAGERS, MANAGERS),
    "console:event_cancel": (MANAGERS, MANAGERS),
    "console:outbox": (MANAGERS_AND_BILLING, NOBODY),
    "console:outbox_reply": (NOBODY, MANAGERS),
    # Meter data: "program managers and billing; only program managers upload".
    "console:meterdata_imports": (MANAGERS_AND_BILLING, MANAGERS),
    "console:meterdata_import": (MANAGERS_AND_BILLING, NOBODY),
    "console:meterdata_import_progress": (MANAGERS_AND_BILLING, NOBODY),
    "console:meterdata_import_errors": (MANAGERS_AND_BILLING, NOBODY),
    # Any staff opens the list; it holds only the meters whose readings they may view.
    "console:meterdata_meters": (STAFF, NOBODY),
    "console:meterdata_meter_quality": (MANAGERS_AND_BILLING, NOBODY),
    # Performance: "program managers, billing"; program managers recompute.
    "console:performance_events": (MANAGERS_AND_BILLING, NOBODY),
    "console:performance_event": (MANAGERS_AND_BILLING, NOBODY),
    "console:performance_recompute": (NOBODY, MANAGERS),
    "console:performance": (MANAGERS_AND_BILLING, NOBODY),
    "console:performance_accuracy": (MANAGERS_AND_BILLING, NOBODY),
    "console:performance_site_accuracy": (MANAGERS_AND_BILLING, NOBODY),
    # Settlements: "for members of Billing or Program managers"; disputes: program managers.
    "console:settlement_runs": (MANAGERS_AND_BILLING, NOBODY),
    "console:settlement_run_create": (NOBODY, MANAGERS_AND_BILLING),
    "console:settlement_run": (MANAGERS_AND_BILLING, NOBODY),
    "console:settlement_run_action": (NOBODY, MANAGERS_AND_BILLING),
    "console:settlement_run_progress": (MANAGERS_AND_BILLING, NOBODY),
    "console:billing_exports": (MANAGERS_AND_BILLING, NOBODY),
    "console:billing_export_download": (MANAGERS_AND_BILLING, NOBODY),
    "console:dispute_queue": (MANAGERS, NOBODY),
    "console:dispute": (MANAGERS, MANAGERS),
    # The REST API, as its table in the README says.
    "api:api-root": (STAFF, NOBODY),
    "api:organization-list": (STAFF, NOBODY),  # the caller's own: none for staff
    "api:organization-detail": (NOBODY, NOBODY),  # 404: staff are members of none
    "api:program-list": (STAFF, NOBODY),
    "api:program-detail": (STAFF, NOBODY),
    "api:site-list": (STAFF, NOBODY),
    "api:site-detail": (STAFF, NOBODY),
    "api:enrollment-list": (STAFF, NOBODY),
    "api:enrollment-detail": (STAFF, NOBODY),
    "api:enrollment-decision": (NOBODY, MANAGERS),
    "api:event-list": (MANAGERS_AND_BILLING, MANAGERS),
    "api:event-detail": (MANAGERS_AND_BILLING, NOBODY),
    "api:event-schedule": (NOBODY, MANAGERS),
    "api:event-cancel": (NOBODY, MANAGERS),
    "api:participation-list": (MANAGERS_AND_BILLING, NOBODY),
    "api:participation-detail": (MANAGERS_AND_BILLING, NOBODY),
    "api:meterdataimport-list": (MANAGERS_AND_BILLING, MANAGERS),
    "api:meterdataimport-detail": (MANAGERS_AND_BILLING, NOBODY),
    "api:settlementrun-list": (MANAGERS_AND_BILLING, NOBODY),
    "api:settlementrun-detail": (MANAGERS_AND_BILLING, NOBODY),
    "api:settlementrun-exports": (MANAGERS_AND_BILLING, NOBODY),
    "api:billingexport-list": (MANAGERS_AND_BILLING, NOBODY),
    "api:billingexport-detail": (MANAGERS_AND_BILLING, NOBODY),
    "api:billingexport-csv": (MANAGERS_AND_BILLING, NOBODY),
}
READ_REFUSED = {403, 404}
WRITE_REFUSED = {403, 404, 405}


# --- the world -------------------------------------------------------------------------------


@dataclass
class World:
    """The demo data, its staff by role, and an object for each path parameter."""

    users: dict[str, AbstractBaseUser]
    #: Path parameter (``event_id``, or ``pk`` per API basename) -> an object's id.
    values: dict[str, int]
    #: Events pages take the scheduled demo event; performance pages the completed one.
    completed_event_id: int
    #: The first day of the month after the exported run's: no run of it exists yet.
    free_month: dt.date


def _canonical_readings(meter: Meter, kwh: str) -> str:
    return (
        "meter_id,interval_start,kwh,interval_minutes,quality\n"
        f"{meter.meter_id},2025-01-01T05:00:00Z,{kwh},15,A\n"
    )


@pytest.fixture
def world(settings, tmp_path) -> World:
    """The demo data (two organizations, an exported run, an open dispute, a scheduled and
    a completed event), a second program manager, and an import with an error report."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.NOTIFICATION_MODE = "sandbox"
    load_demo_data()
    users = {role: get_user_model().objects.get(username=role) for role in ROLES}
    users[M2] = staff_user(PROGRAM_MANAGERS, username="second-manager")
    meter = Meter.objects.order_by("pk").first()
    with_errors = meterdata_services.meter_data_import_submit(
        data_import=meterdata_services.meter_data_import_create(
            stream=SimpleUploadedFile("bad.csv", _canonical_readings(meter, "lots").encode()),
            file_name="bad.csv",
            by=users[M],
            valid_rows_only=True,
        )
    )
    assert with_errors.error_report, "an import with a rejected row keeps an error report"
    scheduled = Event.objects.get(status=Event.Status.SCHEDULED)
    completed = Event.objects.get(status=Event.Status.COMPLETED)
    participation = Participation.objects.filter(
        event=completed, performances__is_current=True
    ).first()
    run = SettlementRun.objects.get(status=SettlementRun.Status.EXPORTED)
    values = {
        "enrollment_id": participation.enrollment_id,
        "event_id": scheduled.pk,
        "message_id": OutboxMessage.objects.filter(kind="sms").first().pk,
        "import_id": with_errors.pk,
        "meter_id": meter.pk,
        "participation_id": participation.pk,
        "run_id": run.pk,
        "export_id": BillingExport.objects.get(run=run).pk,
        "dispute_id": Dispute.objects.get(status=Dispute.Status.OPEN).pk,
        # API detail routes, by basename.
        "organization": Organization.objects.order_by("pk").first().pk,
        "program": completed.program_id,
        "site": participation.enrollment.site_id,
        "enrollment": participation.enrollment_id,
        "event": scheduled.pk,
        "participation": participation.pk,
        "meterdataimport": with_errors.pk,
        "settlementrun": run.pk,
        "billingexport": BillingExport.objects.get(run=run).pk,
    }
    return World(
        users=users,
        values=values,
        completed_event_id=completed.pk,
        free_month=run.period_end + dt.timedelta(days=1),
    )


# --- the routes ------------------------------------------------------------------------------


def _routes() -> list[tuple[str, str]]:
    """(route name as ``console:…`` or ``api:…``, URL) of every console and API route, each
    parameter still in its ``<name>`` or ``(?P<pk>…)`` form; format-suffix twins left out."""

    def walk(patterns: list, prefix: str) -> Iterator[tuple[str, str | None]]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern.name

    found = []
    for route, name in walk(get_resolver().url_patterns, ""):
        area = route.split("/", 1)[0]
        if area in ("console", "api") and "format>" not in route:
            found.append((f"{area}:{name}", "/" + route.replace("^", "").replace("$", "")))
    return found


def _filled(name: str, route: str, world: World) -> str:
    """The URL of ``route`` with real objects in its parameters."""
    values = dict(world.values)
    if name.startswith("console:performance"):
        values["event_id"] = world.completed_event_id
    basename = name.removeprefix("api:").split("-")[0]
    url = re.sub(r"\(\?P<pk>[^)]*\)", str(values.get(basename, 0)), route)
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda match: str(values[match.group(1)]), url)


def _clients(world: World) -> dict[str, Client]:
    clients = {}
    for role, user in world.users.items():
        clients[role] = Client()
        clients[role].force_login(user)
    return clients


def _every_route_answers_each_role_as_the_table_says(world: World) -> None:
    routes = _routes()
    assert {name for name, _ in routes} == set(ROUTES), "classify new routes in ROUTES"
    clients = _clients(world)
    wrong = {}
    for name, route in routes:
        readers, writers = ROUTES[name]
        url = _filled(name, route, world)
        for role in ROLES:
            read = clients[role].get(url).status_code
            with transaction.atomic():
                written = clients[role].post(url, {}).status_code
                transaction.set_rollback(True)
            if role in readers:
                read_ok = read == 200
            else:  # a page that only takes a POST may answer 405 before asking who asks
                read_ok = read in (READ_REFUSED if readers else READ_REFUSED | {405})
            if role in writers:
                # Let through to the form, which refuses an empty one (200 with errors, 302
                # with a message, 400, or 404 for a missing action): never 403 or 405.
                write_ok = written not in {403, 405} and written < 500
            else:
                write_ok = written in WRITE_REFUSED
            if not (read_ok and write_ok):
                wrong[f"{role} {url} ({name})"] = {"GET": read, "POST": written}
    assert wrong == {}


# --- the writes ------------------------------------------------------------------------------


@dataclass
class Attempt:
    """One complete POST as a role would send it, and how to tell that it changed something.

    ``changed`` is called after the request, still inside its savepoint;
    ``handed_to_worker`` is then how many tasks the request left to enqueue on commit.
    """

    url: str
    data: dict
    changed: Callable[[], bool] = lambda: False
    json: bool = False
    handed_to_worker: int = 0


@dataclass(frozen=True)
class Write:
    """A write and who may make it. ``four_eyes``: roles sent back to the run page with the
    four-eyes refusal, nothing changed. ``refused``: the answers a refused role may get."""

    label: str
    route: str
    allowed: frozenset[str]
    prepare: Callable[[World], Attempt]
    four_eyes: frozenset[str] = frozenset()
    roles: tuple[str, ...] = ROLES
    refused: frozenset[int] = frozenset({403})


def _status_of(model: type, pk: int) -> str | None:
    return model.objects.filter(pk=pk).values_list("status", flat=True).first()


def _more(queryset: QuerySet) -> Callable[[], bool]:
    """A check that ``queryset`` holds more rows than it does now."""
    before = queryset.count()
    return lambda: queryset.count() > before


def _open_program(program: Program) -> dt.datetime:
    """Let ``program`` take an event about three hours from now (the views use the real
    clock); returns its local start. Rolled back with the try."""
    start = timezone.now().astimezone(program.zone).replace(minute=0, second=0, microsecond=0)
    start += dt.timedelta(hours=3)
    if start.hour >= 20:  # one local day
        start = start.replace(hour=12) + dt.timedelta(days=1)
    Program.objects.filter(pk=program.pk).update(
        season_start=start.date() - dt.timedelta(days=1),
        season_end=start.date() + dt.timedelta(days=1),
        allowed_weekdays=list(range(7)),
        event_window_start=dt.time(0, 0),
        event_window_end=dt.time(23, 59),
        min_notice_minutes=0,
        min_event_minutes=30,
        max_events_per_season=None,
        max_events_per_month=None,
        max_hours_per_season=None,
        max_hours_per_month=None,
        max_events_per_site_per_day=10,
    )
    return start


def _summer_program() -> Program:
    return Event.objects.get(status=Event.Status.COMPLETED).program


def _new_event(world: World, *, draft: bool) -> Event:
    program = _summer_program()
    start = _open_program(program)
    return event_services.event_create(
        program=Program.objects.get(pk=program.pk),
        kind=Event.Kind.ECONOMIC,
        starts_at=start,
        ends_at=start + dt.timedelta(hours=2),
        reason="Heat wave",
        by=world.users[M],
        draft=draft,
    ).event


def _application() -> Enrollment:
    return Enrollment.objects.filter(status=Enrollment.Status.APPLIED).order_by("pk").first()


def _reject_in_console(world: World) -> Attempt:
    enrollment = _application()
    return Attempt(
        reverse("console:enrollment_decide", args=[enrollment.pk]),
        {"decision": "reject", "reason": "The site is outside the program's zones."},
        lambda: _status_of(Enrollment, enrollment.pk) == Enrollment.Status.REJECTED,
    )


def _set_firm_level(world: World) -> Attempt:
    enrollment = Enrollment.objects.get(pk=world.values["enrollment_id"])
    return Attempt(
        reverse("console:enrollment_firm_level", args=[enrollment.pk]),
        {
            "firm_kw": "40",
            "effective_from": timezone.localdate(timezone=enrollment.program.zone).isoformat(),
            "reason": "Keeps its chillers on.",
        },
        _more(enrollment.firm_service_levels.all()),
    )


def _call_event_in_console(world: World) -> Attempt:
    program = _summer_program()
    start = _open_program(program)
    return Attempt(
        reverse("console:event_create"),
        {
            "program": program.pk,
            "kind": "economic",
            "starts_at": start.strftime(DATETIME_LOCAL),
            "ends_at": (start + dt.timedelta(hours=2)).strftime(DATETIME_LOCAL),
            "targeting": "all",
            "reason": "Heat wave",
        },
        _more(Event.objects.all()),
    )


def _schedule_in_console(world: World) -> Attempt:
    event = _new_event(world, draft=True)
    return Attempt(
        reverse("console:event_schedule", args=[event.pk]),
        {},
        lambda: _status_of(Event, event.pk) == Event.Status.SCHEDULED,
    )


def _modify_in_console(world: World) -> Attempt:
    event = _new_event(world, draft=False)
    start = event.starts_at.astimezone(event.program.zone)
    return Attempt(
        reverse("console:event_modify", args=[event.pk]),
        {
            "starts_at": start.strftime(DATETIME_LOCAL),
            "ends_at": (start + dt.timedelta(hours=1)).strftime(DATETIME_LOCAL),
            "targeting": "all",
            "reason": "The peak is shorter than forecast.",
            "modification_number": event.modification_number,
        },
        lambda: Event.objects.get(pk=event.pk).modification_number > event.modification_number,
    )


def _cancel_in_console(world: World) -> Attempt:
    event_id = world.values["event_id"]
    return Attempt(
        reverse("console:event_cancel", args=[event_id]),
        {"reason": "The forecast improved."},
        lambda: _status_of(Event, event_id) == Event.Status.CANCELLED,
    )


def _reply_in_outbox(world: World) -> Attempt:
    return Attempt(
        reverse("console:outbox_reply", args=[world.values["message_id"]]),
        {"text": "1"},
        _more(InboundMessage.objects.all()),
    )


def _upload_in_console(world: World) -> Attempt:
    meter = Meter.objects.get(pk=world.values["meter_id"])
    upload = SimpleUploadedFile("readings.csv", _canonical_readings(meter, "1.5").encode())
    return Attempt(
        reverse("console:meterdata_imports"),
        {"file": upload},
        _more(MeterDataImport.objects.all()),
    )


def _recompute(world: World) -> Attempt:
    attempt = Attempt(reverse("console:performance_recompute", args=[world.completed_event_id]), {})
    attempt.changed = lambda: attempt.handed_to_worker > 0
    return attempt


def _create_run_in_console(world: World) -> Attempt:
    return Attempt(
        reverse("console:settlement_run_create"),
        {
            "program": _summer_program().pk,
            "period_kind": "month",
            "period_start": world.free_month.isoformat(),
        },
        _more(SettlementRun.objects.all()),
    )


def _draft_run(world: World) -> SettlementRun:
    return settlement_run_create(
        program=_summer_program(),
        period_kind="month",
        period_start=world.free_month,
        by=world.users[B],
    )


def _run_action(run_id: int) -> str:
    return reverse("console:settlement_run_action", args=[run_id])


def _calculate(world: World) -> Attempt:
    run = _draft_run(world)
    return Attempt(
        _run_action(run.pk),
        {"action": "calculate"},
        lambda: _status_of(SettlementRun, run.pk) == SettlementRun.Status.CALCULATING,
    )


def _approve_calculated_by(role: str) -> Callable[[World], Attempt]:
    def prepare(world: World) -> Attempt:
        run = settlement_run_calculate(run=_draft_run(world), by=world.users[role])
        return Attempt(
            _run_action(run.pk),
            {"action": "approve"},
            lambda: _status_of(SettlementRun, run.pk) == SettlementRun.Status.APPROVED,
        )

    return prepare


def _export(world: World) -> Attempt:
    run_id = world.values["run_id"]
    return Attempt(
        _run_action(run_id),
        {"action": "export"},
        _more(BillingExport.objects.filter(run_id=run_id)),
    )


def _restate(world: World) -> Attempt:
    return Attempt(
        _run_action(world.values["run_id"]),
        {"action": "restate"},
        _more(SettlementRun.objects.all()),
    )


def _discard(world: World) -> Attempt:
    run = _draft_run(world)
    return Attempt(
        _run_action(run.pk),
        {"action": "discard", "reason": "Created for the wrong month."},
        # Kept on record as discarded (or deleted, as before discarded runs were kept).
        lambda: _status_of(SettlementRun, run.pk) in (SettlementRun.Status.DISCARDED, None),
    )


def _decide_dispute(action: str, **fields: str) -> Callable[[World], Attempt]:
    outcome = {"accept": Dispute.Status.ACCEPTED, "reject": Dispute.Status.REJECTED}

    def prepare(world: World) -> Attempt:
        dispute = Dispute.objects.get(pk=world.values["dispute_id"])
        changed = (
            _more(dispute.entries.all())
            if action == "comment"
            else lambda: _status_of(Dispute, dispute.pk) == outcome[action]
        )
        return Attempt(
            reverse("console:dispute", args=[dispute.pk]), {"action": action, **fields}, changed
        )

    return prepare


def _reject_in_api(world: World) -> Attempt:
    enrollment = _application()
    return Attempt(
        reverse("enrollment-decision", args=[enrollment.pk]),
        {"approve": False, "reason": "The site is outside the program's zones."},
        lambda: _status_of(Enrollment, enrollment.pk) == Enrollment.Status.REJECTED,
        json=True,
    )


def _call_event_in_api(world: World) -> Attempt:
    program = _summer_program()
    start = _open_program(program)
    return Attempt(
        reverse("event-list"),
        {
            "program": program.pk,
            "kind": "economic",
            "starts_at": start.isoformat(),
            "ends_at": (start + dt.timedelta(hours=2)).isoformat(),
            "draft": True,
        },
        _more(Event.objects.all()),
        json=True,
    )


def _schedule_in_api(world: World) -> Attempt:
    event = _new_event(world, draft=True)
    return Attempt(
        reverse("event-schedule", args=[event.pk]),
        {},
        lambda: _status_of(Event, event.pk) == Event.Status.SCHEDULED,
        json=True,
    )


def _cancel_in_api(world: World) -> Attempt:
    event_id = world.values["event_id"]
    return Attempt(
        reverse("event-cancel", args=[event_id]),
        {"reason": "The forecast improved."},
        lambda: _status_of(Event, event_id) == Event.Status.CANCELLED,
        json=True,
    )


def _upload_in_api(world: World) -> Attempt:
    meter = Meter.objects.get(pk=world.values["meter_id"])
    upload = SimpleUploadedFile("mdms.csv", _canonical_readings(meter, "2.5").encode())
    imports = MeterDataImport.objects.all()
    return Attempt(reverse("meterdataimport-list"), {"file": upload}, _more(imports))


def _reject_in_admin(world: World) -> Attempt:
    enrollment = _application()
    return Attempt(
        reverse("admin:enrollment_enrollment_changelist"),
        {
            "action": "reject",
            "_selected_action": [enrollment.pk],
            "apply": "1",
            "reason": "The site is outside the program's zones.",
        },
        lambda: _status_of(Enrollment, enrollment.pk) == Enrollment.Status.REJECTED,
    )


def _cancel_in_admin(world: World) -> Attempt:
    event_id = world.values["event_id"]
    return Attempt(
        reverse("admin:events_event_changelist"),
        {
            "action": "cancel",
            "_selected_action": [event_id],
            "apply": "1",
            "reason": "The forecast improved.",
        },
        lambda: _status_of(Event, event_id) == Event.Status.CANCELLED,
    )


def _complete_audit_in_admin(world: World) -> Attempt:
    audit = Audit.objects.filter(status=Audit.Status.SCHEDULED).order_by("pk").first()
    AuditFinding.objects.create(
        audit=audit,
        end_use=AuditFinding.EndUse.values[0],
        curtailable_kw="25",
        response_time_minutes=30,
    )
    return Attempt(
        reverse("admin:enrollment_audit_changelist"),
        {"action": "complete_audit", "_selected_action": [audit.pk]},
        lambda: _status_of(Audit, audit.pk) == Audit.Status.COMPLETED,
    )


#: A refused admin action is not offered: the changelist shows itself again (200, or a
#: redirect saying "No action selected") to a role that may open it, 403 to one that may not.
ADMIN_REFUSED = frozenset({200, 302, 403})

WRITES = [
    Write("decide an application", "console:enrollment_decide", MANAGERS, _reject_in_console),
    Write("set a firm service level", "console:enrollment_firm_level", MANAGERS, _set_firm_level),
    Write("call an event", "console:event_create", MANAGERS, _call_event_in_console),
    Write("schedule a draft", "console:event_schedule", MANAGERS, _schedule_in_console),
    Write("modify an event", "console:event_modify", MANAGERS, _modify_in_console),
    Write("cancel an event", "console:event_cancel", MANAGERS, _cancel_in_console),
    Write("simulate a reply", "console:outbox_reply", MANAGERS, _reply_in_outbox),
    Write("upload meter data", "console:meterdata_imports", MANAGERS, _upload_in_console),
    Write("recompute performance", "console:performance_recompute", MANAGERS, _recompute),
    Write(
        "create a run", "console:settlement_run_create", MANAGERS_AND_BILLING,
        _create_run_in_console,
    ),
    Write("calculate a run", "console:settlement_run_action", MANAGERS_AND_BILLING, _calculate),
    Write(
        "approve a run a manager calculated", "console:settlement_run_action",
        frozenset({M2, B}), _approve_calculated_by(M), four_eyes=MANAGERS, roles=(*ROLES, M2),
    ),
    Write(
        "approve a run billing calculated", "console:settlement_run_action", MANAGERS,
        _approve_calculated_by(B), four_eyes=frozenset({B}),
    ),
    Write("export a run", "console:settlement_run_action", MANAGERS_AND_BILLING, _export),
    Write("restate a run", "console:settlement_run_action", MANAGERS_AND_BILLING, _restate),
    Write("discard a run", "console:settlement_run_action", MANAGERS_AND_BILLING, _discard),
    Write(
        "accept a dispute", "console:dispute", MANAGERS,
        _decide_dispute("accept", adjustment_amount="25.00", reason="The meter was misread."),
    ),
    Write(
        "reject a dispute", "console:dispute", MANAGERS,
        _decide_dispute("reject", reason="The reading stands."),
    ),
    Write(
        "comment on a dispute", "console:dispute", MANAGERS,
        _decide_dispute("comment", text="We are checking the meter."),
    ),
    Write("decide an application (API)", "api:enrollment-decision", MANAGERS, _reject_in_api),
    Write("call an event (API)", "api:event-list", MANAGERS, _call_event_in_api),
    Write("schedule a draft (API)", "api:event-schedule", MANAGERS, _schedule_in_api),
    Write("cancel an event (API)", "api:event-cancel", MANAGERS, _cancel_in_api),
    Write("upload meter data (API)", "api:meterdataimport-list", MANAGERS, _upload_in_api),
    Write(
        "reject an application (admin)", "admin", MANAGERS, _reject_in_admin,
        refused=ADMIN_REFUSED,
    ),
    Write("cancel an event (admin)", "admin", MANAGERS, _cancel_in_admin, refused=ADMIN_REFUSED),
    Write(
        "complete an audit (admin)", "admin", frozenset({M, A}), _complete_audit_in_admin,
        refused=ADMIN_REFUSED,
    ),
]  # fmt: skip


def test_every_route_that_takes_a_post_has_its_writes_tried():
    """The writes list covers each route's writers, and grants nothing the table does not."""
    tried: dict[str, set[str]] = {}
    for write in WRITES:
        tried.setdefault(write.route, set()).update(write.allowed | write.four_eyes)
        assert write.allowed - {M2} <= ROUTES.get(write.route, (NOBODY, STAFF))[1], write.label
    for name, (_readers, writers) in ROUTES.items():
        assert writers <= tried.get(name, set()), name


def _try(write: Write, role: str, world: World, client: Client) -> tuple[int, bool]:
    """POST ``write``'s attempt as ``role``; (status, whether it changed anything). Rolled
    back afterwards, whatever happened."""
    with transaction.atomic():
        attempt = write.prepare(world)
        with TestCase.captureOnCommitCallbacks() as callbacks:
            if attempt.json:
                response = client.post(attempt.url, attempt.data, content_type="application/json")
            else:
                response = client.post(attempt.url, attempt.data)
        attempt.handed_to_worker = len(callbacks)
        changed = attempt.changed()
        transaction.set_rollback(True)
    return response.status_code, changed


def _every_write_is_made_by_its_roles_and_refused_to_the_others(world: World) -> None:
    clients = _clients(world)
    wrong = {}
    for write in WRITES:
        for role in write.roles:
            status, changed = _try(write, role, world, clients[role])
            if role in write.allowed:
                ok = 200 <= status < 400 and changed
            elif role in write.four_eyes:
                ok = status == 302 and not changed
            else:
                ok = status in write.refused and not changed
            if not ok:
                wrong[f"{role}: {write.label}"] = {"status": status, "changed": changed}
    assert wrong == {}


def test_each_staff_role_reads_and_changes_what_the_readme_says(world):
    """Both sweeps on one load of the demo data (it takes seconds)."""
    _every_route_answers_each_role_as_the_table_says(world)
    _every_write_is_made_by_its_roles_and_refused_to_the_others(world)


# --- the admin -------------------------------------------------------------------------------

#: Model -> what each role may do with it in the admin: (v)iew, (a)dd, (c)hange, (d)elete,
#: for (program managers, auditors, billing). Ledgers (notifications, settlement lines,
#: runs, exports, disputes) are read-only for everyone; decisions are actions, below.
ADMIN_PERMISSIONS = {
    "auth.Group": ("", "", ""),
    "auth.User": ("vac", "", ""),  # participants' accounts only: see the test below
    "authtoken.TokenProxy": ("", "", ""),
    "django_celery_beat.ClockedSchedule": ("", "", ""),
    "django_celery_beat.CrontabSchedule": ("", "", ""),
    "django_celery_beat.IntervalSchedule": ("", "", ""),
    "django_celery_beat.PeriodicTask": ("", "", ""),
    "django_celery_beat.SolarSchedule": ("", "", ""),
    "dr_platform.Membership": ("vacd", "", ""),
    "enrollment.Audit": ("vacd", "vac", "v"),
    "enrollment.Contact": ("vacd", "v", "v"),
    "enrollment.EnablementProject": ("vcd", "v", "v"),
    "enrollment.Enrollment": ("vc", "v", "v"),
    "enrollment.Organization": ("vacd", "v", "v"),
    "enrollment.Program": ("vacd", "v", "v"),
    "enrollment.Site": ("vacd", "v", "v"),
    "events.DutyAssignment": ("vacd", "", "v"),
    "events.EscalationStep": ("v", "", "v"),
    "events.Event": ("vc", "", "v"),
    "events.InboundMessage": ("v", "", "v"),
    "events.Notification": ("v", "", "v"),
    "events.Unavailability": ("v", "", "v"),
    "settlements.BillingExport": ("v", "", "v"),
    "settlements.Dispute": ("v", "", "v"),
    "settlements.MeterDataImport": ("vc", "", "v"),  # every field read-only
    "settlements.PaymentRuleVersion": ("va", "", "v"),
    "settlements.ReadingRevision": ("vc", "", "v"),  # every field read-only
    "settlements.SettlementLine": ("v", "", "v"),
    "settlements.SettlementRun": ("v", "", "v"),
}
#: (model, role) -> the admin actions offered, besides "delete selected"; none elsewhere.
ADMIN_ACTIONS = {
    ("enrollment.Audit", M): {"complete_audit", "propose_enablement_project"},
    ("enrollment.Audit", A): {"complete_audit"},
    ("enrollment.EnablementProject", M): {
        "mark_approved", "mark_installed", "mark_verified", "mark_paid",
    },
    ("enrollment.Enrollment", M): {"approve", "reject"},
    ("events.Event", M): {"schedule", "cancel"},
}  # fmt: skip


def test_the_admin_gives_each_role_what_the_table_says(manager, auditor, billing_clerk):
    users = {M: manager, A: auditor, B: billing_clerk}
    granted, offered = {}, {}
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label
        row = []
        for role in ROLES:
            request = RequestFactory().get("/admin/")
            request.user = users[role]
            checks = (
                ("v", model_admin.has_view_permission(request)),
                ("a", model_admin.has_add_permission(request)),
                ("c", model_admin.has_change_permission(request)),
                ("d", model_admin.has_delete_permission(request)),
            )
            row.append("".join(letter for letter, allowed in checks if allowed))
            if model_admin.has_view_permission(request):
                actions = set(model_admin.get_actions(request)) - {"delete_selected"}
                if actions:
                    offered[label, role] = actions
        granted[label] = tuple(row)
    assert granted == ADMIN_PERMISSIONS
    assert offered == ADMIN_ACTIONS


def test_a_program_manager_edits_participants_accounts_but_no_staff_account(
    client, manager, participant_a
):
    superuser = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(manager)
    participant_page = reverse("admin:auth_user_change", args=[participant_a.pk])
    form = {
        "username": participant_a.username,
        "is_active": "on",
        "date_joined_0": "2026-01-05",
        "date_joined_1": "09:00:00",
    }

    # A participant's account: yes; its staff status, groups and permissions: no.
    response = client.post(
        participant_page,
        {
            **form,
            "last_name": "Facilities",
            "is_staff": "on",
            "is_superuser": "on",
            "groups": [Group.objects.get(name=PROGRAM_MANAGERS).pk],
        },
    )
    assert response.status_code == 302
    participant_a.refresh_from_db()
    assert participant_a.last_name == "Facilities"
    assert not participant_a.is_staff and not participant_a.is_superuser
    assert not participant_a.groups.exists()

    # A superuser's password, or one's own superuser box: no.
    password_url = reverse("admin:auth_user_password_change", args=[superuser.pk])
    new_password = {"password1": "a-new-long-password-9", "password2": "a-new-long-password-9"}
    assert client.get(password_url).status_code == 403
    assert client.post(password_url, new_password).status_code == 403
    superuser.refresh_from_db()
    assert not superuser.check_password("a-new-long-password-9")
    own = client.post(
        reverse("admin:auth_user_change", args=[manager.pk]),
        {**form, "username": manager.username, "is_staff": "on", "is_superuser": "on"},
    )
    assert own.status_code == 403
    manager.refresh_from_db()
    assert not manager.is_superuser


def test_a_superuser_still_manages_staff_accounts(client, manager):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.post(
        reverse("admin:auth_user_password_change", args=[manager.pk]),
        {"password1": "a-new-long-password-9", "password2": "a-new-long-password-9"},
    )
    assert response.status_code == 302
    manager.refresh_from_db()
    assert manager.check_password("a-new-long-password-9")
