"""Events: curtailment events, who takes part, the notifications sent, replies received.

All times are UTC. Statuses are changed only by the services, compare-and-set
(``filter(pk=..., status=old).update(status=new)``), so two workers or two ticks never
both win the same transition. Due times (day-ahead notice, reminder, escalation, retry)
are columns read by the periodic tick, never broker countdowns.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from enrollment.models import KW


class Event(models.Model):
    """A curtailment event of a program, from draft to completed or cancelled."""

    class Kind(models.TextChoices):
        EMERGENCY = "emergency", "Emergency"
        ECONOMIC = "economic", "Economic"
        TEST = "test", "Test (drill)"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        ACTIVE = "active", "Active"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    #: Statuses that count against the program's limits and hold a site's day.
    COUNTED_STATUSES = (Status.SCHEDULED, Status.ACTIVE, Status.COMPLETED)
    #: Statuses in which participants can still answer.
    OPEN_STATUSES = (Status.SCHEDULED, Status.ACTIVE)

    program = models.ForeignKey(
        "enrollment.Program", on_delete=models.PROTECT, related_name="events"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.ECONOMIC)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DRAFT)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    # Targeting: with every list empty and no sites, all active enrollments of the program;
    # otherwise the sites matching any of the zones, substations, feeders or chosen sites.
    target_zones = models.JSONField(default=list, blank=True)
    target_substations = models.JSONField(default=list, blank=True)
    target_feeders = models.JSONField(default=list, blank=True)
    target_sites = models.ManyToManyField("enrollment.Site", blank=True, related_name="+")
    reason = models.TextField(blank=True)
    modification_number = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    cancel_reason = models.TextField(blank=True)
    # Due times read by the tick; "*_sent_at" is set by the compare-and-set claim that
    # sends it, so each goes out once.
    notice_due_at = models.DateTimeField(null=True, blank=True)
    notice_sent_at = models.DateTimeField(null=True, blank=True)
    reminder_due_at = models.DateTimeField(null=True, blank=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-starts_at", "-pk"]
        indexes = [
            # The tick: scheduled events due to start, active events due to end.
            models.Index(fields=["status", "starts_at"], name="event_status_start"),
            models.Index(fields=["status", "ends_at"], name="event_status_end"),
            # Rule checks: a program's counted events in a season or month.
            models.Index(fields=["program", "status", "starts_at"], name="event_program_status"),
        ]

    def __str__(self) -> str:
        start = f"{self.starts_at:%Y-%m-%d %H:%M}"
        return f"{self.get_kind_display()} event {self.pk} of {self.program}: {start} UTC"

    @property
    def duration_hours(self) -> float:
        return (self.ends_at - self.starts_at).total_seconds() / 3600

    @property
    def is_test(self) -> bool:
        return self.kind == self.Kind.TEST

    @property
    def targets_everyone(self) -> bool:
        """True when no zone, substation, feeder or site narrows the targeting.

        Reads ``target_sites`` (one query unless prefetched).
        """
        return not (
            self.target_zones
            or self.target_substations
            or self.target_feeders
            or self.target_sites.exists()
        )


class Participation(models.Model):
    """One enrollment's part in one event: what it committed and how it answered."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for acknowledgement"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        OPTED_OUT = "opted_out", "Opted out"
        UNAVAILABLE = "unavailable", "Declared unavailable"
        NO_RESPONSE = "no_response", "No response"

    #: Statuses still waiting for an answer (escalation applies to these).
    UNANSWERED = (Status.PENDING, Status.UNAVAILABLE)

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="participations")
    enrollment = models.ForeignKey(
        "enrollment.Enrollment", on_delete=models.PROTECT, related_name="participations"
    )
    committed_kw = models.DecimalField(**KW)  # the nomination in effect at the event start
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_via = models.CharField(max_length=16, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    opted_out_at = models.DateTimeField(null=True, blank=True)
    opted_out_via = models.CharField(max_length=16, blank=True)
    opted_out_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # 0: the first methods in escalation order were notified; each escalation adds one.
    escalation_level = models.PositiveSmallIntegerField(default=0)
    next_escalation_at = models.DateTimeField(null=True, blank=True)
    # Set when a modification takes the site out of the event (kept for the record).
    removed_at = models.DateTimeField(null=True, blank=True)
    modification_number = models.PositiveIntegerField(default=0)  # when it was added
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["event", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "enrollment"], name="participation_one_per_enrollment"
            )
        ]
        indexes = [
            # The tick: overdue acknowledgements.
            models.Index(fields=["next_escalation_at"], name="participation_escalation_due"),
        ]

    def __str__(self) -> str:
        return f"{self.enrollment.site.name} in event {self.event_id} ({self.get_status_display()})"

    @property
    def is_removed(self) -> bool:
        return self.removed_at is not None


class Unavailability(models.Model):
    """A window in which a site declared it cannot curtail (maintenance, a closure ...)."""

    site = models.ForeignKey(
        "enrollment.Site", on_delete=models.CASCADE, related_name="unavailabilities"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=300)
    declared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    declared_at = models.DateTimeField(auto_now_add=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["site", "starts_at"]
        indexes = [
            # Event creation: which targeted sites overlap the event window.
            models.Index(fields=["site", "starts_at", "ends_at"], name="unavailability_window"),
        ]

    def __str__(self) -> str:
        window = f"{self.starts_at:%Y-%m-%d %H:%M} – {self.ends_at:%Y-%m-%d %H:%M}"
        return f"{self.site.name} unavailable {window} UTC"


class Notification(models.Model):
    """One message to one contact method: the ledger of the pipeline.

    The row is written (``queued``) before any provider is called; the send task claims it
    (``queued -> sending``) with a conditional update, so a redelivered broker message
    finds it taken and does nothing. ``uuid`` is the key provider callbacks carry.
    """

    class Kind(models.TextChoices):
        NOTICE = "notice", "Event notice"
        REMINDER = "reminder", "Reminder"
        START = "start", "Event start"
        END = "end", "Event end"
        UPDATE = "update", "Event changed"
        CANCEL = "cancel", "Event cancelled"
        ESCALATION = "escalation", "Escalation"
        SUMMARY = "summary", "Performance summary"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    #: Kinds that ask the participant to answer (and carry reply instructions).
    ANSWERABLE_KINDS = (Kind.NOTICE, Kind.REMINDER, Kind.UPDATE, Kind.ESCALATION)

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="notifications")
    participation = models.ForeignKey(
        Participation, on_delete=models.CASCADE, related_name="notifications"
    )
    contact_method = models.ForeignKey(
        "enrollment.ContactMethod", on_delete=models.PROTECT, related_name="notifications"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    # The transport used: the method's kind in live mode, "sandbox" in sandbox mode.
    channel = models.CharField(max_length=16)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    provider_reference = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=32, blank=True)
    modification_number = models.PositiveIntegerField(default=0)
    # Figures a notice quotes that the event does not hold (the summary's kW).
    payload = models.JSONField(default=dict, blank=True)
    queued_at = models.DateTimeField()
    sending_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["queued_at", "pk"]
        constraints = [
            # A safety net under the compare-and-set claims of the tick: one message of a
            # kind per method, participation and event version.
            models.UniqueConstraint(
                fields=["participation", "contact_method", "kind", "modification_number"],
                name="notification_once_per_version",
            )
        ]
        indexes = [
            # The sweeper: rows stuck in queued or sending.
            models.Index(fields=["status", "next_attempt_at"], name="notification_sweep"),
            models.Index(fields=["status", "sending_at"], name="notification_sending"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.contact_method} ({self.status})"


class EscalationStep(models.Model):
    """One step up the ladder for a participation nobody answered (or could not be reached).

    ``target`` says whom the step reached: the next contact methods (``methods``, with the
    notifications sent), the organization's account manager, or the manager on duty.
    """

    class Target(models.TextChoices):
        METHODS = "methods", "Next contact methods"
        ACCOUNT_MANAGER = "account_manager", "Account manager"
        MANAGER_ON_DUTY = "manager_on_duty", "Manager on duty"
        EXHAUSTED = "exhausted", "Nobody left to reach"

    class Reason(models.TextChoices):
        ACK_OVERDUE = "ack_overdue", "Not acknowledged in time"
        DELIVERY_FAILED = "delivery_failed", "A message could not be delivered"

    participation = models.ForeignKey(
        Participation, on_delete=models.CASCADE, related_name="escalation_steps"
    )
    level = models.PositiveSmallIntegerField()
    target = models.CharField(max_length=16, choices=Target.choices)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    notifications = models.ManyToManyField(Notification, blank=True, related_name="+")
    detail = models.CharField(max_length=300, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["participation", "at", "pk"]

    def __str__(self) -> str:
        return f"Level {self.level}: {self.get_target_display()} ({self.get_reason_display()})"


class DutyAssignment(models.Model):
    """Which staff user is the manager on duty, from ``starts_at`` until ``ends_at``.

    The last step of escalation reaches the user whose assignment covers the moment (the
    latest started wins). With no assignment, the first active member of the "Program
    managers" group is used, so escalation never ends with nobody.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="duty_assignments",
        limit_choices_to={"is_staff": True},
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Empty: until replaced.")

    class Meta:
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return f"{self.user} on duty from {self.starts_at:%Y-%m-%d %H:%M}"


class InboundMessage(models.Model):
    """Something a participant or provider sent us, and what we made of it."""

    class Channel(models.TextChoices):
        SMS = "sms", "SMS reply"
        VOICE = "voice", "Voice keypress"
        WCTP = "wctp", "WCTP pager"
        EMAIL_LINK = "email_link", "Email link"
        STATUS = "status", "Provider status callback"

    class Action(models.TextChoices):
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        OPTED_OUT = "opted_out", "Opted out"
        REFUSED = "refused", "Refused (answered why)"
        STOP = "stop", "STOP: method disabled"
        START = "start", "START: method enabled"
        HELP = "help", "HELP answered"
        STATUS = "status", "Status recorded"
        IGNORED = "ignored", "Nothing to do"
        UNKNOWN_SENDER = "unknown_sender", "Unknown sender"
        UNRECOGNISED = "unrecognised", "Unrecognised reply"

    channel = models.CharField(max_length=12, choices=Channel.choices)
    sender = models.CharField(max_length=300, blank=True)
    body = models.TextField(blank=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    response = models.TextField(blank=True)  # what we answered
    contact_method = models.ForeignKey(
        "enrollment.ContactMethod",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="inbound_messages",
    )
    notification = models.ForeignKey(
        Notification, null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound"
    )
    participation = models.ForeignKey(
        Participation, null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound"
    )
    raw = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-received_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} from {self.sender or '?'}: {self.action}"
