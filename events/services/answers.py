"""A participant's answer to an event: acknowledge or opt out.

One pair of services for every way an answer arrives (SMS reply, keypress, pager reply,
email link, portal button), so the rules are the same everywhere. Both are idempotent:
answering twice the same way returns the participation unchanged.
"""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from events.models import Event, Notification, Participation
from events.services import pipeline

P = Participation.Status


def _refuse_closed(participation: Participation) -> None:
    if participation.is_removed:
        raise ValidationError("This site is no longer part of the event.")
    if participation.event.status not in Event.OPEN_STATUSES:
        raise ValidationError(f"This event is {participation.event.get_status_display().lower()}.")


def participation_acknowledge(
    participation: Participation,
    via: str,
    by: AbstractBaseUser | None = None,
    *,
    now: dt.datetime | None = None,
) -> Participation:
    """Record that the participant acknowledged the event (``via``: sms, voice, wctp,
    email, portal ...); escalation stops.

    Returns the participation as saved; acknowledging again returns it unchanged.
    Raises ``ValidationError`` (with a message to show or text back) when the event is
    over or cancelled, the site was removed from it, or the participant opted out.
    """
    now = now or timezone.now()
    participation.refresh_from_db()
    if participation.status == P.ACKNOWLEDGED:
        return participation
    _refuse_closed(participation)
    if participation.status == P.OPTED_OUT:
        raise ValidationError("You have opted out of this event; the opt-out stands.")
    changed = Participation.objects.filter(
        pk=participation.pk,
        status__in=Participation.UNANSWERED,
        event__status__in=Event.OPEN_STATUSES,
    ).update(
        status=P.ACKNOWLEDGED,
        acknowledged_at=now,
        acknowledged_via=via[:16],
        acknowledged_by=by,
        next_escalation_at=None,
    )
    participation.refresh_from_db()
    if not changed and participation.status != P.ACKNOWLEDGED:
        raise ValidationError("This event can no longer be acknowledged.")
    return participation


def opt_out_refusal(participation: Participation, now: dt.datetime) -> str | None:
    """Why ``participation`` may not opt out at ``now``, or ``None`` when it may.

    The program must allow opt-outs (``opt_outs_per_season`` above 0), the cut-off
    (``opt_out_cutoff_minutes`` before the start) must not have passed, and the
    enrollment must have opt-outs left this season (opt-outs of test events, of cancelled
    events and of events the site was removed from do not count).
    """
    event = participation.event
    program = event.program
    if program.opt_outs_per_season == 0:
        return "This program does not allow opting out of events."
    cutoff = event.starts_at - dt.timedelta(minutes=program.opt_out_cutoff_minutes)
    if now >= cutoff:
        local = cutoff.astimezone(program.zone)
        return (
            f"Opt-outs for this event closed at {local:%H:%M} {local.tzname()} "
            f"({program.opt_out_cutoff_minutes} minutes before the start)."
        )
    zone = program.zone
    season_start = dt.datetime.combine(program.season_start, dt.time(0), tzinfo=zone)
    season_end = dt.datetime.combine(
        program.season_end + dt.timedelta(days=1), dt.time(0), tzinfo=zone
    )
    # An opt-out uses up the allowance only where the site was still asked to curtail:
    # a cancelled event, or a site removed from the event, asked nothing of it.
    used = (
        Participation.objects.filter(
            enrollment_id=participation.enrollment_id,
            status=P.OPTED_OUT,
            removed_at__isnull=True,
            event__starts_at__gte=season_start,
            event__starts_at__lt=season_end,
        )
        .exclude(event__kind=Event.Kind.TEST)
        .exclude(event__status=Event.Status.CANCELLED)
        .exclude(pk=participation.pk)
        .count()
    )
    if event.kind != Event.Kind.TEST and used >= program.opt_outs_per_season:
        return f"You have used all {program.opt_outs_per_season} opt-out(s) of this season."
    return None


def participation_opt_out(
    participation: Participation,
    via: str,
    by: AbstractBaseUser | None = None,
    *,
    now: dt.datetime | None = None,
) -> Participation:
    """Opt the participant out of the event, where the program allows it.

    Returns the participation as saved (opting out again returns it unchanged); its
    queued reminders and escalations are dropped and escalation stops. Raises
    ``ValidationError`` saying why when the event is closed, the site was removed, or
    :func:`opt_out_refusal` gives a reason (no opt-outs, past the cut-off, none left).
    """
    now = now or timezone.now()
    participation.refresh_from_db()
    if participation.status == P.OPTED_OUT:
        return participation
    _refuse_closed(participation)
    refusal = opt_out_refusal(participation, now)
    if refusal:
        raise ValidationError(refusal)
    with transaction.atomic():
        changed = Participation.objects.filter(
            pk=participation.pk,
            status__in=[*Participation.UNANSWERED, P.ACKNOWLEDGED],
            event__status__in=Event.OPEN_STATUSES,
        ).update(
            status=P.OPTED_OUT,
            opted_out_at=now,
            opted_out_via=via[:16],
            opted_out_by=by,
            next_escalation_at=None,
        )
        if changed:
            pipeline.notifications_cancel_queued(
                participation_ids=[participation.pk],
                now=now,
                keep_kinds=[Notification.Kind.CANCEL, Notification.Kind.SUMMARY],
            )
    participation.refresh_from_db()
    if not changed and participation.status != P.OPTED_OUT:
        raise ValidationError("This event can no longer be opted out of.")
    return participation
