"""Demo data for events: last summer's peak event, replayed, and a winter drill to come.

**The past event.** "Summer Peak Rewards" (the enrollment demo's program, season May 1 to
Sep 30 of this year) gets a weekday afternoon event, 14:00-18:00 New York time, on the
last Wednesday of August (or the latest weekday of the season at least three days ago).
It is called at 14:30 the day before and then *replayed* through the services with their
``now`` set to each historical moment: ``event_create`` (the rules, minimum notice
included, are checked against that moment, not today), ``events_tick`` at the day-ahead
notice time, answers (most sites acknowledge by SMS reply, Harbor acknowledges one site
in the portal and opts another out before the cut-off, Harbor's third site never answers),
ticks at the acknowledgement deadline (escalation to the next contact methods, then the
account manager), at the reminder, the start and the end (the silent site becomes "no
response"). Nothing is inserted behind the services' backs.

**The upcoming event.** The summer season is over, and stretching it into December would
misrepresent a summer program, so the demo adds the second program a utility typically
runs: "Winter Reliability", December to March, weekday events between 16:00 and 20:00 (the
winter evening peak), four hours' minimum notice, immediate notices, one opt-out per
season, not exclusive (sites may sit in both programs). Harbor's and Northside's sites and
a few others are enrolled through ``enrollment.services`` (the organizations' admins
apply, the demo manager approves). It gets the season's first event: a one-hour test
(drill) on the first season weekday after today, which is how reliability programs check
their call tree before the peak. Northside has acknowledged one site; Harbor's are left
open for the visitor to acknowledge or opt out in the portal. Harbor has also declared a
compressor overhaul at one site later in the season.

**Sending.** Notices go through the real pipeline. The loader runs before the demo's
worker starts, so it sends every sandbox notification it caused synchronously through
``pipeline.notification_send`` (the body of the send task) at the moment it was due:
the outbox is complete when the demo opens. The on-commit enqueue still puts their ids on
the broker; the worker then finds the rows already sent and skips them (the claim). In
live mode (``NOTIFICATION_MODE=live``) nothing is sent here; the worker sends.

Idempotent: each event is found by its program and reason first, the winter program and
its enrollments by name and site, the maintenance window by site and reason.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.utils import timezone

from dr_platform.models import Membership
from enrollment import services as enrollment_services
from enrollment.demo import give_weekend_baseline
from enrollment.models import Enrollment, Organization, Program, Site
from events import services
from events.models import Event, Notification, Participation, Unavailability
from events.services import pipeline

SUMMER_PROGRAM_NAME = "Summer Peak Rewards"
WINTER_PROGRAM_NAME = "Winter Reliability"
PAST_EVENT_REASON = "Heat advisory: the system peak is forecast near record for tomorrow afternoon."
DRILL_REASON = "Annual test of the call-out before the winter peak. No load reduction is paid."
MAINTENANCE_REASON = "Compressor overhaul (planned maintenance)"
HARBOR_ACCOUNT = "BA-100001"
NORTHSIDE_ACCOUNT = "BA-100002"
#: Organizations besides Harbor and Northside whose active summer sites join the winter
#: program (the first few tier A accounts of the enrollment demo).
OTHER_WINTER_ORGANIZATIONS = 4


def _user(username: str):
    return get_user_model().objects.get(username=username)


def _local(day: dt.date, hour: int, minute: int, program: Program) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=program.zone)


def _deliver(event: Event, moment: dt.datetime) -> int:
    """Send the event's queued sandbox notifications as of ``moment``; return how many."""
    ids = list(
        Notification.objects.filter(
            event=event, status=Notification.Status.QUEUED, channel="sandbox"
        ).values_list("pk", flat=True)
    )
    for notification_id in ids:
        pipeline.notification_send(notification_id, now=moment)
    return len(ids)


def _tick(event: Event, moment: dt.datetime) -> None:
    services.events_tick(now=moment, sweep=False)
    _deliver(event, moment)


# --- the past summer event -------------------------------------------------------------


def past_event_day(program: Program, today: dt.date) -> dt.date | None:
    """The day of the demo's past event: the last Wednesday of August of the season, or
    else the latest allowed weekday of the season at least three days before ``today``;
    ``None`` when the season has no such day yet."""
    latest = min(program.season_end, today - dt.timedelta(days=3))
    august_end = dt.date(program.season_end.year, 8, 31)
    last_wednesday = august_end - dt.timedelta(days=(august_end.weekday() - 2) % 7)
    if program.season_start <= last_wednesday <= latest:
        return last_wednesday
    day = latest
    while day >= program.season_start:
        if day.weekday() in program.allowed_weekdays:
            return day
        day -= dt.timedelta(days=1)
    return None


def _answer_past_event(event: Event, notice_at: dt.datetime) -> None:
    """Harbor: one acknowledged in the portal, one opted out, one silent; all others
    acknowledge by SMS reply within half an hour of the notice."""
    harbor_user = _user("harbor")
    participations = list(
        Participation.objects.filter(event=event)
        .select_related("enrollment__site__organization")
        .order_by("enrollment__site__service_account_number")
    )
    harbor = [
        p
        for p in participations
        if p.enrollment.site.organization.billing_account_number == HARBOR_ACCOUNT
    ]
    silent = {p.pk for p in harbor[2:3]}
    for index, participation in enumerate(participations):
        moment = notice_at + dt.timedelta(minutes=4 + index % 25)
        if participation.pk in silent:
            continue
        if harbor and participation.pk == harbor[0].pk:
            services.participation_acknowledge(
                participation, "portal", by=harbor_user, now=notice_at + dt.timedelta(minutes=12)
            )
        elif len(harbor) > 1 and participation.pk == harbor[1].pk:
            services.participation_opt_out(
                participation, "portal", by=harbor_user, now=notice_at + dt.timedelta(minutes=40)
            )
        else:
            services.participation_acknowledge(participation, "sms", now=moment)
    _deliver(event, notice_at + dt.timedelta(minutes=45))


def load_past_event() -> Event | None:
    """Replay last summer's event (see the module docstring); return it, or ``None``
    when the summer program is missing or its season has no past weekday yet."""
    program = Program.objects.filter(name=SUMMER_PROGRAM_NAME).first()
    if program is None:
        return None
    existing = Event.objects.filter(program=program, reason=PAST_EVENT_REASON).first()
    if existing is not None:
        return existing
    day = past_event_day(program, timezone.localdate(timezone=program.zone))
    if day is None:
        return None
    starts_at = _local(day, 14, 0, program)
    ends_at = _local(day, 18, 0, program)
    called_at = _local(day - dt.timedelta(days=1), 14, 30, program)
    plan = services.event_create(
        program=program,
        kind=Event.Kind.ECONOMIC,
        starts_at=starts_at,
        ends_at=ends_at,
        by=_user("manager"),
        reason=PAST_EVENT_REASON,
        now=called_at,
    )
    event = plan.event
    notice_at = event.notice_due_at or called_at
    _tick(event, notice_at)
    _answer_past_event(event, notice_at)
    deadline = dt.timedelta(minutes=program.ack_deadline_minutes)
    moments = [notice_at + deadline, notice_at + 2 * deadline]
    event.refresh_from_db()
    if event.reminder_due_at is not None:
        moments.append(event.reminder_due_at)
    moments += [starts_at, ends_at]
    for moment in sorted(moments):
        _tick(event, moment)
    event.refresh_from_db()
    return event


# --- the winter program and its drill --------------------------------------------------


def winter_season(today: dt.date) -> tuple[dt.date, dt.date]:
    """December 1 to March 31 of the winter that is current or next, leaving at least a
    week of season after ``today``."""
    year = today.year if today.month >= 4 else today.year - 1
    start, end = dt.date(year, 12, 1), dt.date(year + 1, 3, 31)
    if today + dt.timedelta(days=7) > end:
        start, end = dt.date(year + 1, 12, 1), dt.date(year + 2, 3, 31)
    return start, end


def _winter_program() -> Program:
    today = timezone.localdate()
    season_start, season_end = winter_season(today)
    program, created = Program.objects.get_or_create(
        name=WINTER_PROGRAM_NAME,
        defaults={
            "description": (
                "Weekday evening events in winter (4 to 8 pm), called at least four hours "
                "ahead when cold weather strains the grid. A monthly reservation payment per "
                "committed kW from December to March."
            ),
            "time_zone": "America/New_York",
            "season_start": season_start,
            "season_end": season_end,
            "allowed_weekdays": [0, 1, 2, 3, 4],
            "event_window_start": dt.time(16, 0),
            "event_window_end": dt.time(20, 0),
            "min_notice_minutes": 4 * 60,
            "emergency_overrides_notice": True,
            "min_event_minutes": 60,
            "max_event_minutes": 240,
            "max_events_per_season": 10,
            "max_hours_per_season": 30,
            "opt_outs_per_season": 1,
            "opt_out_cutoff_minutes": 120,
            "ack_deadline_minutes": 30,
            "initial_notice": "immediate",
            "reminder_minutes_before": 60,
            "baseline_preset": "nyiso_high_5_of_10",
            "weekend_baseline_preset": "nyiso_weekend_high_2_of_3",
            "capacity_rate_per_kw_month": Decimal("6.00"),
            "energy_rate_per_kwh": Decimal("0.50000"),
            "enablement_cost_share": Decimal("0"),
            "enablement_cap": Decimal("0"),
            "audit_required": True,
            "min_committed_kw": Decimal("50"),
            "commitment_months": 12,
            "exclusive": False,
            "terms_text": (
                "1. The participant reduces load at the enrolled sites during winter events "
                "called under this program.\n2. Test events check the call-out and are not "
                "paid or counted.\n3. Payments follow the program's published rates."
            ),
            "terms_version": f"{season_start.year}.W1",
        },
    )
    if created:
        program.full_clean()
    else:
        give_weekend_baseline(program)
    return program


def _admin_of(organization: Organization):
    membership = (
        Membership.objects.filter(organization=organization, role=Membership.Role.ADMIN)
        .select_related("user")
        .order_by("pk")
        .first()
    )
    return membership.user if membership else None


def _enroll_winter_sites(program: Program) -> None:
    """Apply (as each organization's admin) and approve (as the manager) the winter
    enrollments of Harbor's, Northside's and a few other organizations' active sites."""
    manager = _user("manager")
    summer = list(
        Enrollment.objects.filter(
            program__name=SUMMER_PROGRAM_NAME, status=Enrollment.Status.ACTIVE
        )
        .select_related("site__organization")
        .order_by("site__organization__billing_account_number", "site__service_account_number")
    )
    chosen_organizations = [HARBOR_ACCOUNT, NORTHSIDE_ACCOUNT]
    for enrollment in summer:
        account = enrollment.site.organization.billing_account_number
        if account not in chosen_organizations and (
            len(chosen_organizations) < 2 + OTHER_WINTER_ORGANIZATIONS
        ):
            chosen_organizations.append(account)
    enrolled = set(Enrollment.objects.filter(program=program).values_list("site_id", flat=True))
    by_organization: dict[Organization, dict[Site, Decimal]] = {}
    for enrollment in summer:
        site = enrollment.site
        if site.organization.billing_account_number not in chosen_organizations:
            continue
        if site.pk in enrolled:
            continue
        # Winter evening load is lower than the summer afternoon peak: commit three quarters.
        committed = max(
            (enrollment.committed_kw * Decimal("0.75")).quantize(Decimal("1")),
            program.min_committed_kw,
        )
        if site.audited_curtailable_kw is not None:
            committed = min(committed, site.audited_curtailable_kw)
        by_organization.setdefault(site.organization, {})[site] = committed
    for organization, commitments in by_organization.items():
        admin = _admin_of(organization)
        if admin is None:
            continue
        for enrollment in enrollment_services.enrollment_apply(
            user=admin,
            organization=organization,
            program=program,
            commitments=commitments,
            accepted_terms_version=program.terms_version,
            ip_address="198.51.100.21",
            user_agent="Demo loader",
        ):
            enrollment_services.enrollment_decide(
                enrollment=enrollment, approve=True, by=manager, reason="Approved for winter."
            )


def drill_day(program: Program, today: dt.date) -> dt.date | None:
    """The first allowed weekday of the season after ``today`` (``None`` past the season)."""
    day = max(program.season_start, today + dt.timedelta(days=1))
    while day <= program.season_end:
        if day.weekday() in program.allowed_weekdays:
            return day
        day += dt.timedelta(days=1)
    return None


def load_upcoming_drill() -> Event | None:
    """The winter program, its enrollments, the drill and a declared maintenance window.

    Returns the drill, or ``None`` when no season day is left for it.
    """
    program = _winter_program()
    _enroll_winter_sites(program)
    existing = Event.objects.filter(program=program, reason=DRILL_REASON).first()
    if existing is not None:
        return existing
    now = timezone.now()
    day = drill_day(program, timezone.localdate(timezone=program.zone))
    if day is None:
        return None
    plan = services.event_create(
        program=program,
        kind=Event.Kind.TEST,
        starts_at=_local(day, 16, 0, program),
        ends_at=_local(day, 17, 0, program),
        by=_user("manager"),
        reason=DRILL_REASON,
        now=now,
    )
    event = plan.event
    _deliver(event, now)
    northside_first = (
        Participation.objects.filter(
            event=event, enrollment__site__organization__billing_account_number=NORTHSIDE_ACCOUNT
        )
        .order_by("enrollment__site__service_account_number")
        .first()
    )
    if northside_first is not None:
        services.participation_acknowledge(northside_first, "sms", now=now)
    _declare_maintenance(program, day, now)
    return event


def _declare_maintenance(program: Program, drill: dt.date, now: dt.datetime) -> None:
    harbor_sites = list(
        Site.objects.filter(
            organization__billing_account_number=HARBOR_ACCOUNT,
            enrollments__program=program,
        ).order_by("service_account_number")
    )
    if len(harbor_sites) < 3:
        return
    site = harbor_sites[2]
    if Unavailability.objects.filter(site=site, reason=MAINTENANCE_REASON).exists():
        return
    day = drill + dt.timedelta(days=7)
    services.unavailability_declare(
        site=site,
        starts_at=_local(day, 6, 0, program),
        ends_at=_local(day + dt.timedelta(days=2), 22, 0, program),
        reason=MAINTENANCE_REASON,
        by=_user("harbor"),
        now=now,
    )


def load_events_demo() -> None:
    """Load the past summer event and the upcoming winter drill (see the module docstring)."""
    load_past_event()
    load_upcoming_drill()
