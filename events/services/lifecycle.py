"""Events from draft to completed or cancelled, their participations and notices.

Every status change is compare-and-set; every due time (day-ahead notice, reminder,
start, end, escalation) is a column that :func:`events_tick` reads, so nothing depends on
a broker countdown. Services take ``now`` so tests (and replays) pass fixed times.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from dr_platform.bulk import insert_instances, new_instances
from dr_platform.models import Membership
from dr_platform.selectors import require_role
from enrollment.models import Enrollment, Program, Site
from enrollment.selectors import with_committed_kw_at
from events import selectors
from events.models import Event, Notification, Participation, Unavailability
from events.services import pipeline
from events.services.rules import event_rule_errors, time_range_error

E = Event.Status
P = Participation.Status
K = Notification.Kind


@dataclass(frozen=True, slots=True)
class EventPlan:
    """What ``event_create``/``event_schedule`` did: the event and the targeted sites that
    declared themselves unavailable for it (shown to the manager; notified unless the
    program counts unavailability as an opt-out)."""

    event: Event
    unavailable: list[Unavailability] = field(default_factory=list)

    @property
    def unavailable_sites(self) -> list[Site]:
        return [window.site for window in self.unavailable]


@dataclass(frozen=True, slots=True)
class EventChange:
    """What ``event_modify`` changed and whom it notified."""

    event: Event
    added: list[Participation]
    removed: list[Participation]
    updated: list[Participation]
    unavailable: list[Unavailability] = field(default_factory=list)


def _require_manager(user: AbstractBaseUser) -> None:
    if not user.is_staff:
        raise PermissionDenied("Only program managers call, change or cancel events.")


def _site_ids(sites: Iterable[Site | int]) -> list[int]:
    return [site if isinstance(site, int) else site.pk for site in sites]


def _targeting(event: Event) -> list[Enrollment]:
    # Scheduling reads the sites, not their organizations: 10,000 fewer objects to build.
    return list(
        selectors.targeted_enrollments(
            program=event.program,
            zones=event.target_zones,
            substations=event.target_substations,
            feeders=event.target_feeders,
            site_ids=event.target_sites.values_list("pk", flat=True),
        )
        .select_related(None)
        .select_related("site")
    )


def _notice_due_at(event: Event, now: dt.datetime) -> dt.datetime:
    program = event.program
    # An emergency cannot wait for tomorrow's notice run, whatever the program's habit.
    if program.initial_notice != "day_ahead" or event.kind == Event.Kind.EMERGENCY:
        return now
    local_day_before = event.starts_at.astimezone(program.zone).date() - dt.timedelta(days=1)
    due = dt.datetime.combine(local_day_before, program.day_ahead_notice_time, tzinfo=program.zone)
    return max(now, due.astimezone(dt.UTC))


def _reminder_due_at(event: Event, notice_due: dt.datetime) -> dt.datetime | None:
    minutes = event.program.reminder_minutes_before
    if minutes is None:
        return None
    due = event.starts_at - dt.timedelta(minutes=minutes)
    # A reminder right after (or before) the notice itself would only be noise.
    return due if due > notice_due else None


def _unavailable_answer(event: Event, now: dt.datetime) -> dict[str, object]:
    """The answer of a site that declared itself unavailable for ``event``: opted out at
    ``now`` where the program counts that as an opt-out, else unavailable."""
    if event.program.unavailability_counts_as_opt_out:
        return {"status": P.OPTED_OUT, "opted_out_at": now, "opted_out_via": "unavailability"}
    return {"status": P.UNAVAILABLE}


def _create_participations(
    event: Event, enrollments: Sequence[Enrollment], now: dt.datetime
) -> tuple[list[Participation], list[Unavailability]]:
    if not enrollments:
        return [], []
    committed = dict(
        with_committed_kw_at(
            Enrollment.objects.filter(pk__in=[e.pk for e in enrollments]), event.starts_at
        ).values_list("pk", "committed_kw_then")
    )
    windows = selectors.unavailable_sites(
        [e.site_id for e in enrollments], event.starts_at, event.ends_at
    )
    declared = _unavailable_answer(event, now)
    values = []
    for enrollment in enrollments:
        values.append(
            {
                "event_id": event.pk,
                "enrollment_id": enrollment.pk,
                "committed_kw": committed.get(enrollment.pk) or enrollment.committed_kw,
                "status": P.PENDING,
                "modification_number": event.modification_number,
                **(declared if enrollment.site_id in windows else {}),
            }
        )
    rows = new_instances(Participation, values)
    for participation, enrollment in zip(rows, enrollments, strict=True):
        # The dispatch that follows reads each participation's site and event.
        participation.event = event
        participation.enrollment = enrollment
    insert_instances(Participation, rows)
    return rows, [windows[e.site_id] for e in enrollments if e.site_id in windows]


def _restore_participations(
    event: Event, enrollment_ids: Sequence[int], now: dt.datetime
) -> tuple[list[Participation], list[Unavailability]]:
    """Bring back the event's removed participations of ``enrollment_ids``.

    A site removed earlier and targeted again comes back on its old row with the answer
    it had: an opt-out stands (and still counts against the season allowance), an
    acknowledgement or unavailability stays. Only a row still waiting for an answer is
    checked again against the site's unavailability windows, as a new row would be. The
    committed kW is the nomination in effect at the event's (possibly moved) start.

    Returns the rows brought back (with enrollment and site) and the unavailability
    windows that changed a pending one's answer.
    """
    returning = list(
        Participation.objects.filter(
            event=event, enrollment_id__in=enrollment_ids, removed_at__isnull=False
        ).select_related("enrollment", "enrollment__site")
    )
    if not returning:
        return [], []
    committed = dict(
        with_committed_kw_at(
            Enrollment.objects.filter(pk__in=[p.enrollment_id for p in returning]),
            event.starts_at,
        ).values_list("pk", "committed_kw_then")
    )
    windows = selectors.unavailable_sites(
        [p.enrollment.site_id for p in returning if p.status == P.PENDING],
        event.starts_at,
        event.ends_at,
    )
    fields = ["removed_at", "modification_number", "committed_kw", "status"]
    fields += ["opted_out_at", "opted_out_via"]
    for participation in returning:
        participation.event = event
        participation.removed_at = None
        participation.modification_number = event.modification_number
        participation.committed_kw = (
            committed.get(participation.enrollment_id) or participation.enrollment.committed_kw
        )
        if participation.status == P.PENDING and participation.enrollment.site_id in windows:
            for field, value in _unavailable_answer(event, now).items():
                setattr(participation, field, value)
    Participation.objects.bulk_update(returning, fields)
    answered_by_window = [
        windows[p.enrollment.site_id]
        for p in returning
        if p.enrollment.site_id in windows and p.status != P.PENDING
    ]
    return returning, answered_by_window


def _notify_new_participations(
    event: Event, participations: Sequence[Participation], now: dt.datetime
) -> list[Notification]:
    """Send the initial notice to ``participations`` and start their ack deadline."""
    wanted = [p for p in participations if p.status != P.OPTED_OUT and not p.is_removed]
    sent = pipeline.notifications_dispatch(
        event=event, kind=K.NOTICE, participations=wanted, now=now
    )
    deadline = now + dt.timedelta(minutes=event.program.ack_deadline_minutes)
    Participation.objects.filter(
        pk__in=[p.pk for p in wanted], status__in=Participation.UNANSWERED
    ).update(next_escalation_at=deadline)
    return sent


def _send_initial_notice(
    event: Event, now: dt.datetime, participations: Sequence[Participation] | None = None
) -> bool:
    """Claim and send the event's initial notice; False when it was already sent.

    ``participations`` are the event's current ones when the caller has just created them
    (with their enrollments and sites); otherwise they are read.
    """
    with transaction.atomic():
        claimed = Event.objects.filter(
            pk=event.pk, status__in=Event.OPEN_STATUSES, notice_sent_at__isnull=True
        ).update(notice_sent_at=now)
        if not claimed:
            return False
        event.notice_sent_at = now
        if participations is None:
            participations = list(selectors.event_participations(event))
        _notify_new_participations(event, participations, now)
    return True


def _schedule(event: Event, now: dt.datetime) -> EventPlan:
    enrollments = _targeting(event)
    if not enrollments:
        raise ValidationError("No active enrollment matches this targeting.")
    errors = event_rule_errors(
        program=event.program,
        kind=event.kind,
        starts_at=event.starts_at,
        ends_at=event.ends_at,
        site_ids=[e.site_id for e in enrollments],
        now=now,
        exclude_event_id=event.pk,
    )
    if errors:
        raise ValidationError(errors)
    notice_due = _notice_due_at(event, now)
    changed = Event.objects.filter(pk=event.pk, status=E.DRAFT).update(
        status=E.SCHEDULED,
        scheduled_at=now,
        notice_due_at=notice_due,
        reminder_due_at=_reminder_due_at(event, notice_due),
    )
    if not changed:
        raise ValidationError("This event is no longer a draft.")
    event.refresh_from_db()
    participations, unavailable = _create_participations(event, enrollments, now)
    if notice_due <= now:
        _send_initial_notice(event, now, participations)
        event.refresh_from_db()
    return EventPlan(event=event, unavailable=unavailable)


def event_create(
    *,
    program: Program,
    kind: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    by: AbstractBaseUser,
    reason: str = "",
    zones: Sequence[str] = (),
    substations: Sequence[str] = (),
    feeders: Sequence[str] = (),
    sites: Iterable[Site | int] = (),
    draft: bool = False,
    now: dt.datetime | None = None,
) -> EventPlan:
    """Call an event: create it and, unless ``draft``, schedule it at once.

    Scheduling checks every program rule (``event_rule_errors``) and raises one
    ``ValidationError`` holding all broken rules' messages; creates a Participation per
    targeted active enrollment with the kW committed at the event start; and sends the
    initial notice now or sets it due (day-ahead programs). Targeted sites that declared
    themselves unavailable are returned in the plan; they are notified unless the
    program counts unavailability as an opt-out. Raises ``PermissionDenied`` for a
    non-staff user. Times are aware datetimes (UTC stored).
    """
    _require_manager(by)
    now = now or timezone.now()
    site_ids = _site_ids(sites)
    with transaction.atomic():
        event = Event(
            program=program,
            kind=kind,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason,
            target_zones=list(zones),
            target_substations=list(substations),
            target_feeders=list(feeders),
            created_by=by,
        )
        event.full_clean()
        event.save()
        if site_ids:
            event.target_sites.set(site_ids)
        if draft:
            enrollments = _targeting(event)
            errors = event_rule_errors(
                program=program,
                kind=kind,
                starts_at=starts_at,
                ends_at=ends_at,
                site_ids=[e.site_id for e in enrollments],
                now=now,
            )
            if errors:
                raise ValidationError(errors)
            windows = selectors.unavailable_sites(
                [e.site_id for e in enrollments], starts_at, ends_at
            )
            return EventPlan(event=event, unavailable=list(windows.values()))
        return _schedule(event, now)


def event_schedule(
    *, event: Event, by: AbstractBaseUser, now: dt.datetime | None = None
) -> EventPlan:
    """Schedule a draft event (the rules are checked again, as time has passed).

    Returns the plan as ``event_create`` does; raises ``ValidationError`` for broken rules
    or an event that is no longer a draft, ``PermissionDenied`` for a non-staff user.
    """
    _require_manager(by)
    with transaction.atomic():
        return _schedule(event, now or timezone.now())


def event_modify(
    *,
    event: Event,
    by: AbstractBaseUser,
    starts_at: dt.datetime | None = None,
    ends_at: dt.datetime | None = None,
    zones: Sequence[str] | None = None,
    substations: Sequence[str] | None = None,
    feeders: Sequence[str] | None = None,
    sites: Iterable[Site | int] | None = None,
    reason: str = "",
    now: dt.datetime | None = None,
) -> EventChange:
    """Change a scheduled or active event's times or targets and tell only those affected.

    Arguments left ``None`` keep their value. The modification number goes up by one.
    Newly targeted sites get the initial notice (if it already went out), sites no
    longer targeted get a cancel notice and their queued messages are dropped, and when
    the times change every remaining participant gets an update. An active event's start
    cannot move. Raises ``ValidationError`` with every broken rule, for a closed event,
    or when someone else changed the event meanwhile; ``PermissionDenied`` for non-staff.
    """
    _require_manager(by)
    now = now or timezone.now()
    with transaction.atomic():
        current = Event.objects.select_for_update().select_related("program").get(pk=event.pk)
        if current.status not in Event.OPEN_STATUSES:
            raise ValidationError(f"A {current.get_status_display().lower()} event cannot change.")
        new_start = starts_at or current.starts_at
        new_end = ends_at or current.ends_at
        times_changed = new_start != current.starts_at or new_end != current.ends_at
        if current.status == E.ACTIVE and new_start != current.starts_at:
            raise ValidationError("An active event has started; only its end can change.")
        if new_end <= now and current.status == E.ACTIVE:
            raise ValidationError("The new end is in the past; cancel or let it end instead.")
        current.starts_at, current.ends_at = new_start, new_end
        if zones is not None:
            current.target_zones = list(zones)
        if substations is not None:
            current.target_substations = list(substations)
        if feeders is not None:
            current.target_feeders = list(feeders)
        if sites is not None:
            current.target_sites.set(_site_ids(sites))
        enrollments = _targeting(current)
        if not enrollments:
            raise ValidationError("No active enrollment matches this targeting.")
        errors = event_rule_errors(
            program=current.program,
            kind=current.kind,
            starts_at=new_start,
            ends_at=new_end,
            site_ids=[e.site_id for e in enrollments],
            now=now,
            exclude_event_id=current.pk,
            check_notice=new_start != event.starts_at and current.status == E.SCHEDULED,
        )
        if errors:
            raise ValidationError(errors)

        notice_due = current.notice_due_at
        reminder_due = current.reminder_due_at
        reminder_sent = current.reminder_sent_at
        if times_changed and current.status == E.SCHEDULED:
            if current.notice_sent_at is None:
                notice_due = _notice_due_at(current, now)
            reminder_due = _reminder_due_at(current, notice_due or now)
            if reminder_due is not None and reminder_due > now:
                reminder_sent = None
        changed = Event.objects.filter(
            pk=current.pk,
            modification_number=event.modification_number,
            status__in=Event.OPEN_STATUSES,
        ).update(
            starts_at=new_start,
            ends_at=new_end,
            target_zones=current.target_zones,
            target_substations=current.target_substations,
            target_feeders=current.target_feeders,
            reason=reason or current.reason,
            modification_number=F("modification_number") + 1,
            notice_due_at=notice_due,
            reminder_due_at=reminder_due,
            reminder_sent_at=reminder_sent,
            updated_at=now,
        )
        if not changed:
            raise ValidationError("The event was changed meanwhile; reload it and try again.")
        current.refresh_from_db()

        existing = {p.enrollment_id: p for p in selectors.event_participations(current)}
        wanted = {e.pk: e for e in enrollments}
        removed_ids = [p.pk for eid, p in existing.items() if eid not in wanted]
        removed = [p for eid, p in existing.items() if eid not in wanted]
        if removed_ids:
            Participation.objects.filter(pk__in=removed_ids).update(
                removed_at=now, next_escalation_at=None
            )
            for participation in removed:
                participation.removed_at = now
            pipeline.notifications_cancel_queued(participation_ids=removed_ids, now=now)
            pipeline.notifications_dispatch(
                event=current, kind=K.CANCEL, participations=removed, now=now
            )

        returning, returning_unavailable = _restore_participations(current, list(wanted), now)
        returning_ids = {p.enrollment_id for p in returning}
        new_enrollments = [
            e for eid, e in wanted.items() if eid not in existing and eid not in returning_ids
        ]
        added, unavailable = _create_participations(current, new_enrollments, now)
        added += returning
        unavailable += returning_unavailable
        if current.notice_sent_at is not None:
            _notify_new_participations(current, added, now)

        updated: list[Participation] = []
        if times_changed:
            kept = [p for eid, p in existing.items() if eid in wanted]
            if current.starts_at != event.starts_at:
                committed = dict(
                    with_committed_kw_at(
                        Enrollment.objects.filter(pk__in=[p.enrollment_id for p in kept]),
                        current.starts_at,
                    ).values_list("pk", "committed_kw_then")
                )
                for participation in kept:
                    value = committed.get(participation.enrollment_id)
                    if value is not None and value != participation.committed_kw:
                        participation.committed_kw = value
                        participation.save(update_fields=["committed_kw"])
            updated = [p for p in kept if p.status != P.OPTED_OUT]
            if current.notice_sent_at is not None:
                pipeline.notifications_dispatch(
                    event=current, kind=K.UPDATE, participations=updated, now=now
                )
        return EventChange(
            event=current, added=added, removed=removed, updated=updated, unavailable=unavailable
        )


def event_cancel(
    *, event: Event, by: AbstractBaseUser, reason: str, now: dt.datetime | None = None
) -> Event:
    """Cancel a draft, scheduled or active event and tell everyone already told.

    Queued messages of the event are dropped, escalation stops, and every participant who
    was sent the notice gets a cancel notice. Raises ``ValidationError`` without a reason
    or when the event is already completed or cancelled; ``PermissionDenied`` for
    non-staff. Returns the event as saved.
    """
    _require_manager(by)
    if not reason.strip():
        raise ValidationError({"cancel_reason": "Say why the event is cancelled."})
    now = now or timezone.now()
    with transaction.atomic():
        changed = Event.objects.filter(
            pk=event.pk, status__in=[E.DRAFT, E.SCHEDULED, E.ACTIVE]
        ).update(
            status=E.CANCELLED,
            cancelled_at=now,
            cancelled_by=by,
            cancel_reason=reason.strip(),
            modification_number=F("modification_number") + 1,
            updated_at=now,
        )
        if not changed:
            raise ValidationError("Only a draft, scheduled or active event can be cancelled.")
        event.refresh_from_db()
        participations = list(selectors.event_participations(event))
        ids = [p.pk for p in participations]
        pipeline.notifications_cancel_queued(participation_ids=ids, now=now)
        Participation.objects.filter(pk__in=ids).update(next_escalation_at=None)
        if event.notice_sent_at is not None:
            pipeline.notifications_dispatch(
                event=event,
                kind=K.CANCEL,
                participations=[p for p in participations if p.status != P.OPTED_OUT],
                now=now,
            )
    return event


def event_send_summaries(
    event: Event,
    performance_by_participation: Mapping[int | Participation, Decimal],
    *,
    now: dt.datetime | None = None,
) -> list[Notification]:
    """Tell each participant what they achieved: "you reduced X kW against Y committed".

    ``performance_by_participation`` maps a participation (or its id) of ``event`` to its
    measured reduction in kW (the baseline work computes it). Sent once per
    participation to the methods it was reached on; participations already summarised
    are skipped, so calling again sends nothing twice. Raises ``ValidationError`` unless
    the event is completed. Returns the notifications written.
    """
    if event.status != E.COMPLETED:
        raise ValidationError("Summaries are sent for completed events only.")
    now = now or timezone.now()
    reduction = {
        (key if isinstance(key, int) else key.pk): Decimal(str(value))
        for key, value in performance_by_participation.items()
    }
    done = set(
        Notification.objects.filter(event=event, kind=K.SUMMARY).values_list(
            "participation_id", flat=True
        )
    )
    participations = [
        p
        for p in selectors.event_participations(event).filter(pk__in=list(reduction))
        if p.pk not in done
    ]
    payload = {
        p.pk: {"reduction_kw": str(reduction[p.pk]), "committed_kw": str(p.committed_kw)}
        for p in participations
    }
    with transaction.atomic():
        return pipeline.notifications_dispatch(
            event=event,
            kind=K.SUMMARY,
            participations=participations,
            now=now,
            payload_by_participation=payload,
        )


def unavailability_declare(
    *,
    site: Site,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    reason: str,
    by: AbstractBaseUser,
    now: dt.datetime | None = None,
) -> Unavailability:
    """Record that ``site`` cannot curtail from ``starts_at`` to ``ends_at``.

    Allowed to staff and to the site organization's admins and operators, until the
    opt-out cut-off of any already scheduled event it overlaps. Overlapping unanswered
    participations become ``unavailable`` (or ``opted_out`` where the program counts
    unavailability as an opt-out; their pending messages are then dropped). Raises
    ``ValidationError`` (bad window, past a cut-off), ``Http404``/``PermissionDenied``
    through the access layer. Returns the new window.
    """
    if not by.is_staff:
        require_role(by, site.organization, [Membership.Role.ADMIN, Membership.Role.OPERATOR])
    now = now or timezone.now()
    out_of_range = {
        name: error
        for name, value in (("starts_at", starts_at), ("ends_at", ends_at))
        if (error := time_range_error(value))
    }
    if out_of_range:
        raise ValidationError(out_of_range)
    if ends_at <= starts_at:
        raise ValidationError({"ends_at": "The window must end after it starts."})
    if ends_at <= now:
        raise ValidationError({"ends_at": "The window is already over."})
    if not reason.strip():
        raise ValidationError({"reason": "Say why the site is unavailable."})
    overlapping = list(
        Participation.objects.filter(
            enrollment__site=site,
            removed_at__isnull=True,
            event__status__in=Event.OPEN_STATUSES,
            event__starts_at__lt=ends_at,
            event__ends_at__gt=starts_at,
        ).select_related("event", "event__program")
    )
    late = [
        p
        for p in overlapping
        if now > p.event.starts_at - dt.timedelta(minutes=p.event.program.opt_out_cutoff_minutes)
    ]
    if late:
        raise ValidationError(
            [
                f"Too late for the event of {p.event.starts_at:%Y-%m-%d %H:%M} UTC: "
                "declarations closed at its opt-out cut-off."
                for p in late
            ]
        )
    with transaction.atomic():
        window = Unavailability(
            site=site, starts_at=starts_at, ends_at=ends_at, reason=reason.strip(), declared_by=by
        )
        window.full_clean()
        window.save()
        for participation in overlapping:
            if participation.status != P.PENDING:
                continue
            if participation.event.program.unavailability_counts_as_opt_out:
                if Participation.objects.filter(pk=participation.pk, status=P.PENDING).update(
                    status=P.OPTED_OUT,
                    opted_out_at=now,
                    opted_out_via="unavailability",
                    opted_out_by=by,
                    next_escalation_at=None,
                ):
                    pipeline.notifications_cancel_queued(
                        participation_ids=[participation.pk], now=now
                    )
            else:
                Participation.objects.filter(pk=participation.pk, status=P.PENDING).update(
                    status=P.UNAVAILABLE
                )
    return window


# --- the tick -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one tick did (counts), for logs and tests."""

    notices: int = 0
    reminders: int = 0
    activated: int = 0
    completed: int = 0
    escalations: int = 0
    sweep: pipeline.SweepReport | None = None


def _send_reminder(event: Event, now: dt.datetime) -> bool:
    with transaction.atomic():
        if not Event.objects.filter(
            pk=event.pk, status=E.SCHEDULED, reminder_sent_at__isnull=True
        ).update(reminder_sent_at=now):
            return False
        participations = [
            p for p in selectors.event_participations(event) if p.status != P.OPTED_OUT
        ]
        pipeline.notifications_dispatch(
            event=event, kind=K.REMINDER, participations=participations, now=now
        )
    return True


def _activate(event: Event, now: dt.datetime) -> bool:
    with transaction.atomic():
        if not Event.objects.filter(pk=event.pk, status=E.SCHEDULED).update(
            status=E.ACTIVE, activated_at=now
        ):
            return False
        event.status = E.ACTIVE
        if event.program.start_notice and event.ends_at > now:
            participations = [
                p for p in selectors.event_participations(event) if p.status != P.OPTED_OUT
            ]
            pipeline.notifications_dispatch(
                event=event, kind=K.START, participations=participations, now=now
            )
    return True


def _complete(event: Event, now: dt.datetime) -> bool:
    with transaction.atomic():
        if not Event.objects.filter(pk=event.pk, status=E.ACTIVE).update(
            status=E.COMPLETED, completed_at=now
        ):
            return False
        event.status = E.COMPLETED
        participations = list(selectors.event_participations(event))
        Participation.objects.filter(
            event=event, status__in=Participation.UNANSWERED, removed_at__isnull=True
        ).update(status=P.NO_RESPONSE, next_escalation_at=None)
        Participation.objects.filter(event=event).update(next_escalation_at=None)
        # Reminders and escalations nobody sent in time are pointless now.
        Notification.objects.filter(
            event=event, status=Notification.Status.QUEUED, kind__in=[K.REMINDER, K.ESCALATION]
        ).update(status=Notification.Status.CANCELLED, cancelled_at=now)
        if event.program.end_notice:
            pipeline.notifications_dispatch(
                event=event,
                kind=K.END,
                participations=[p for p in participations if p.status != P.OPTED_OUT],
                now=now,
            )
    return True


def events_tick(*, now: dt.datetime | None = None, sweep: bool = True) -> TickReport:
    """Do everything that has come due, reading due times from the database.

    In order: day-ahead notices due, reminders due, scheduled events whose start has come
    (active; start notice), active events whose end has come (completed; unanswered
    participations become ``no_response``; end notice), overdue acknowledgements
    (escalation), and the notification sweeper (``sweep=False`` skips it). Each step is
    compare-and-set, so overlapping ticks do each thing once. Returns a TickReport.
    """
    now = now or timezone.now()
    related = Event.objects.select_related("program")
    notices = sum(
        _send_initial_notice(event, now)
        for event in related.filter(
            status__in=Event.OPEN_STATUSES, notice_sent_at__isnull=True, notice_due_at__lte=now
        )
    )
    reminders = sum(
        _send_reminder(event, now)
        for event in related.filter(
            status=E.SCHEDULED,
            notice_sent_at__isnull=False,
            reminder_sent_at__isnull=True,
            reminder_due_at__lte=now,
            starts_at__gt=now,
        )
    )
    activated = sum(
        _activate(event, now) for event in related.filter(status=E.SCHEDULED, starts_at__lte=now)
    )
    completed = sum(
        _complete(event, now) for event in related.filter(status=E.ACTIVE, ends_at__lte=now)
    )
    escalations = len(pipeline.participations_escalate_due(now=now))
    report = pipeline.notifications_sweep(now=now) if sweep else None
    return TickReport(
        notices=notices,
        reminders=reminders,
        activated=activated,
        completed=completed,
        escalations=escalations,
        sweep=report,
    )
