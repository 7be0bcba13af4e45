"""Writes of the events app, for the console, the portal, the API and the tasks.

Import from here (``from events import services``); the modules behind it are:

* ``lifecycle``: :func:`event_create`, :func:`event_schedule`, :func:`event_modify`,
  :func:`event_cancel`, :func:`event_send_summaries`, :func:`unavailability_declare`,
  :func:`events_tick` (what the 30-second beat task runs).
* ``rules``: :func:`event_rule_errors`, every broken program rule as a sentence (forms can
  call it to warn before submitting).
* ``answers``: :func:`participation_acknowledge`, :func:`participation_opt_out`,
  :func:`opt_out_refusal` (shared by SMS, voice, pager, email links and portal buttons).
* ``pipeline``: :func:`notifications_dispatch`, :func:`notification_send` (the send
  tasks' body), :func:`notification_status_update` (provider callbacks),
  :func:`notifications_sweep`, :func:`participation_escalate`,
  :func:`contact_method_disable`.

Conventions: keyword arguments, aware datetimes, ``now`` may be passed (tests and
replays use fixed times). Rule failures raise ``django.core.exceptions.ValidationError``
whose ``messages`` are meant for the person who asked; non-staff callers of manager
services get ``PermissionDenied``.
"""

from events.services.answers import (
    opt_out_refusal,
    participation_acknowledge,
    participation_opt_out,
)
from events.services.lifecycle import (
    EventChange,
    EventPlan,
    TickReport,
    event_cancel,
    event_create,
    event_modify,
    event_schedule,
    event_send_summaries,
    events_tick,
    unavailability_declare,
)
from events.services.pipeline import (
    SweepReport,
    contact_method_disable,
    notification_send,
    notification_status_update,
    notifications_dispatch,
    notifications_sweep,
    participation_escalate,
)
from events.services.rules import event_rule_errors

__all__ = [
    "EventChange",
    "EventPlan",
    "SweepReport",
    "TickReport",
    "contact_method_disable",
    "event_cancel",
    "event_create",
    "event_modify",
    "event_rule_errors",
    "event_schedule",
    "event_send_summaries",
    "events_tick",
    "notification_send",
    "notification_status_update",
    "notifications_dispatch",
    "notifications_sweep",
    "opt_out_refusal",
    "participation_acknowledge",
    "participation_escalate",
    "participation_opt_out",
    "unavailability_declare",
]
