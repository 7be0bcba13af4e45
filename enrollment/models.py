"""Enrollment: programs, the businesses that take part, their sites, meters and contacts,
site audits, enablement projects, enrollments with their nominations, firm service levels
and consent.

All times are stored in UTC; a program's ``time_zone`` defines its local days and hours.
kW figures are Decimal with three places (watts); money is Decimal with two.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from enrollment.constants import BASELINE_PRESETS, WEEKDAY_NAMES

KW = {"max_digits": 12, "decimal_places": 3}
MONEY = {"max_digits": 14, "decimal_places": 2}
RATE = {"max_digits": 12, "decimal_places": 5}


def validate_time_zone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"{value!r} is not an IANA time zone such as America/New_York."
        ) from None


def _default_weekdays() -> list[int]:
    return [0, 1, 2, 3, 4]


def _default_enablement_stages() -> list[dict]:
    # A common utility practice: half once the installation is verified, the rest after one
    # season in which the site delivered at least 80% of its commitment on average.
    return [
        {"trigger": "verified", "share": "0.5"},
        {"trigger": "season_performance", "share": "0.5", "min_performance_ratio": "0.8"},
    ]


class Program(models.Model):
    """A curtailment program and every rule it is run by."""

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    time_zone = models.CharField(
        max_length=64, default="America/New_York", validators=[validate_time_zone]
    )
    season_start = models.DateField()
    season_end = models.DateField(help_text="Last day of the season (inclusive).")

    # Event rules
    allowed_weekdays = models.JSONField(
        default=_default_weekdays, help_text="Weekdays events may fall on: 0 = Monday … 6 = Sunday."
    )
    event_window_start = models.TimeField(
        default=dt.time(12, 0), help_text="Earliest local start time of an event."
    )
    event_window_end = models.TimeField(
        default=dt.time(20, 0), help_text="Latest local end time of an event."
    )
    min_notice_minutes = models.PositiveIntegerField(default=120)
    emergency_overrides_notice = models.BooleanField(
        default=False, help_text="An emergency event may be called with less than the notice."
    )
    min_event_minutes = models.PositiveIntegerField(default=60)
    max_event_minutes = models.PositiveIntegerField(default=240)
    max_events_per_season = models.PositiveIntegerField(null=True, blank=True)
    max_hours_per_season = models.PositiveIntegerField(null=True, blank=True)
    max_events_per_month = models.PositiveIntegerField(null=True, blank=True)
    max_hours_per_month = models.PositiveIntegerField(null=True, blank=True)
    max_events_per_site_per_day = models.PositiveSmallIntegerField(default=1)
    opt_outs_per_season = models.PositiveIntegerField(default=0)
    opt_out_cutoff_minutes = models.PositiveIntegerField(
        default=60, help_text="Opt-outs close this many minutes before an event starts."
    )
    ack_deadline_minutes = models.PositiveIntegerField(
        default=30, help_text="Unacknowledged notices escalate after this many minutes."
    )

    # Measurement and payment
    baseline_preset = models.CharField(
        max_length=40,
        choices=[(name, name) for name in BASELINE_PRESETS],
        default="caiso_10_of_10",
        help_text="The baseline method of events on weekdays that are not holidays, and of "
        "every event when no weekend and holiday method is chosen.",
    )
    baseline_overrides = models.JSONField(
        default=dict, blank=True, help_text="Baseline parameters that differ from the preset."
    )
    # The published methods measure an event on a Saturday, a Sunday or a holiday with a
    # variant of their own (CAISO 4 of 4 weekend days, PJM's and NYISO's 2 of 3).
    weekend_baseline_preset = models.CharField(
        max_length=40,
        choices=[(name, name) for name in BASELINE_PRESETS],
        blank=True,
        help_text="The baseline method of events whose local start day is a Saturday, a "
        "Sunday or a NERC holiday, such as caiso_weekend_4_of_4 beside caiso_10_of_10. "
        "Empty: the main baseline method measures every event.",
    )
    weekend_baseline_overrides = models.JSONField(
        default=dict,
        blank=True,
        help_text="Baseline parameters that differ from the weekend and holiday preset.",
    )
    capacity_rate_per_kw_month = models.DecimalField(**RATE, default=Decimal("0"))
    energy_rate_per_kwh = models.DecimalField(**RATE, default=Decimal("0"))

    # Enablement incentives
    enablement_cost_share = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        default=Decimal("0.5"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
        help_text="Share of an enablement project's cost the program pays (0.5 = 50%).",
    )
    enablement_cap = models.DecimalField(**MONEY, default=Decimal("0"))
    enablement_stages = models.JSONField(default=_default_enablement_stages)

    # Enrollment rules
    audit_required = models.BooleanField(default=True)
    min_committed_kw = models.DecimalField(**KW, default=Decimal("0"))
    commitment_months = models.PositiveIntegerField(default=12)
    exclusive = models.BooleanField(
        default=True,
        help_text="A site enrolled here may not be enrolled in another exclusive program.",
    )
    terms_text = models.TextField()
    terms_version = models.CharField(max_length=20)
    is_open = models.BooleanField(default=True, help_text="Accepting applications.")
    created_at = models.DateTimeField(auto_now_add=True)

    # Event notices (used by the events app): which notices go out, and when.
    initial_notice = models.CharField(
        max_length=12,
        choices=[
            ("immediate", "As soon as the event is scheduled"),
            ("day_ahead", "The day before the event, at the day-ahead notice time"),
        ],
        default="immediate",
    )
    day_ahead_notice_time = models.TimeField(
        default=dt.time(15, 0),
        help_text="Local time, the day before an event, at which a day-ahead notice goes out "
        "(at once when the event is scheduled after that).",
    )
    reminder_minutes_before = models.PositiveIntegerField(
        null=True,
        blank=True,
        default=60,
        help_text="A reminder goes out this many minutes before the start; empty: no reminder.",
    )
    start_notice = models.BooleanField(default=True, help_text="Notify when an event starts.")
    end_notice = models.BooleanField(default=True, help_text="Notify when an event ends.")
    unavailability_counts_as_opt_out = models.BooleanField(
        default=False,
        help_text="A site that declared itself unavailable is opted out of events in that "
        "window and not notified; otherwise it is notified and shown as unavailable.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def allowed_weekday_names(self) -> str:
        return ", ".join(WEEKDAY_NAMES[day] for day in sorted(self.allowed_weekdays))

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}

        def add(field: str, message: str) -> None:
            errors.setdefault(field, []).append(message)

        if self.season_start and self.season_end and self.season_end < self.season_start:
            add("season_end", "The season ends before it starts.")
        if self.event_window_start is not None and self.event_window_end is not None:
            if self.event_window_end <= self.event_window_start:
                add(
                    "event_window_end",
                    "The event window has zero or negative length: its end must be after its "
                    "start on the same day.",
                )
            else:
                window = (
                    dt.datetime.combine(dt.date.min, self.event_window_end)
                    - dt.datetime.combine(dt.date.min, self.event_window_start)
                ).total_seconds() / 60
                if self.min_event_minutes and window < self.min_event_minutes:
                    add("event_window_end", "The event window is shorter than the minimum event.")
        if not isinstance(self.allowed_weekdays, list) or not self.allowed_weekdays:
            add("allowed_weekdays", "Choose at least one weekday (0 = Monday … 6 = Sunday).")
        elif any(not isinstance(d, int) or not 0 <= d <= 6 for d in self.allowed_weekdays):
            add("allowed_weekdays", "Weekdays are numbers from 0 (Monday) to 6 (Sunday).")
        if self.min_event_minutes == 0:
            add("min_event_minutes", "An event lasts at least one minute.")
        if self.max_event_minutes is not None and self.min_event_minutes is not None:
            if self.max_event_minutes < self.min_event_minutes:
                add("max_event_minutes", "The maximum event length is below the minimum.")
        if self.enablement_cost_share is not None and not (
            Decimal("0") <= self.enablement_cost_share <= Decimal("1")
        ):
            add("enablement_cost_share", "The cost share must be between 0% and 100% (0 to 1).")
        if self.enablement_cap is not None and self.enablement_cap < 0:
            add("enablement_cap", "The cap cannot be negative.")
        if self.min_committed_kw is not None and self.min_committed_kw < 0:
            add("min_committed_kw", "The minimum commitment cannot be negative.")
        for message in baseline_method_errors(self.baseline_preset, self.baseline_overrides):
            add("baseline_overrides", message)
        if self.weekend_baseline_preset:
            for message in baseline_method_errors(
                self.weekend_baseline_preset, self.weekend_baseline_overrides
            ):
                add("weekend_baseline_overrides", message)
        elif self.weekend_baseline_overrides:
            add(
                "weekend_baseline_overrides",
                "These overrides need a weekend and holiday method: choose one, or clear them.",
            )
        for message in _stage_errors(self.enablement_stages):
            add("enablement_stages", message)
        if errors:
            raise ValidationError(errors)


#: Checks a baseline method, a preset name and its overrides, raising ValueError or
#: TypeError that says what is wrong. Enrollment cannot import the baseline library
#: (imports point ``enrollment <- settlements``), so settlements installs its
#: ``spec_from_preset`` here when the app is ready; until then only the overrides' shape is
#: checked.
BaselineMethodCheck = Callable[[str, dict[str, Any]], object]
_baseline_method_check: BaselineMethodCheck | None = None


def set_baseline_method_check(check: BaselineMethodCheck | None) -> None:
    """Install ``check`` for :func:`baseline_method_errors` (None: the shape check only)."""
    global _baseline_method_check
    _baseline_method_check = check


def baseline_method_errors(preset: str, overrides: object) -> list[str]:
    """Return what is wrong with a baseline method of a program (empty when it is valid).

    ``overrides`` must be an object of parameter names to values that, applied to the
    preset, make a coherent method. An unknown preset is left to the field's choices.
    """
    if not isinstance(overrides, dict):
        return ["Overrides are an object of parameter names to values."]
    if _baseline_method_check is None or preset not in BASELINE_PRESETS:
        return []
    try:
        _baseline_method_check(preset, overrides)
    except (TypeError, ValueError) as error:
        return [f"These overrides do not make a valid {preset} method: {error}."]
    return []


STAGE_TRIGGERS = ("approved", "installed", "verified", "season_performance")


def _stage_errors(stages: object) -> list[str]:
    """Return what is wrong with an enablement payment schedule (empty when it is valid)."""
    if not isinstance(stages, list) or not stages:
        return ['Give at least one payment stage, e.g. [{"trigger": "verified", "share": "1"}].']
    errors = []
    total = Decimal("0")
    for number, stage in enumerate(stages, start=1):
        if not isinstance(stage, dict) or stage.get("trigger") not in STAGE_TRIGGERS:
            errors.append(f"Stage {number}: trigger must be one of {', '.join(STAGE_TRIGGERS)}.")
            continue
        try:
            share = Decimal(str(stage.get("share")))
        except ArithmeticError:
            errors.append(f"Stage {number}: share must be a number between 0 and 1.")
            continue
        if not Decimal("0") < share <= Decimal("1"):
            errors.append(f"Stage {number}: share must be above 0 and at most 1.")
        total += share
        if stage["trigger"] == "season_performance":
            try:
                Decimal(str(stage.get("min_performance_ratio")))
            except ArithmeticError:
                errors.append(f'Stage {number}: give min_performance_ratio, e.g. "0.8".')
    if not errors and total != Decimal("1"):
        errors.append(f"The stage shares add up to {total}, not 1.")
    return errors


class NominationWindow(models.Model):
    """A period in which enrolled sites may change their committed kW."""

    program = models.ForeignKey(
        Program, on_delete=models.CASCADE, related_name="nomination_windows"
    )
    opens_at = models.DateTimeField()
    closes_at = models.DateTimeField()

    class Meta:
        ordering = ["opens_at"]

    def __str__(self) -> str:
        return f"{self.program}: {self.opens_at:%Y-%m-%d} – {self.closes_at:%Y-%m-%d}"

    def clean(self) -> None:
        if self.opens_at and self.closes_at and self.closes_at <= self.opens_at:
            raise ValidationError({"closes_at": "The window closes before it opens."})


class Organization(models.Model):
    """A business customer of the utility (the participant)."""

    class Tier(models.TextChoices):
        A = "A", "A: key account"
        B = "B", "B: large commercial"
        C = "C", "C: small commercial"

    legal_name = models.CharField(max_length=200)
    tier = models.CharField(max_length=1, choices=Tier.choices, default=Tier.C)
    # Tier A key accounts have a named account manager at the utility, who is alerted when
    # the organization's managers cannot be reached during an event.
    account_manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="managed_organizations",
        limit_choices_to={"is_staff": True},
    )
    billing_account_number = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["legal_name"]

    def __str__(self) -> str:
        return self.legal_name

    def clean(self) -> None:
        if self.tier == self.Tier.A and not self.account_manager_id:
            raise ValidationError(
                {"account_manager": "Tier A key accounts need an account manager."}
            )


class Site(models.Model):
    """A facility (service point) of an organization."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="sites")
    name = models.CharField(max_length=200)
    street = models.CharField(max_length=200)
    city = models.CharField(max_length=100)
    state = models.CharField(max_length=40)
    postal_code = models.CharField(max_length=20)
    # One utility per deployment: its service account numbers are unique.
    service_account_number = models.CharField(max_length=40, unique=True)
    zone = models.CharField(max_length=40, blank=True, db_index=True)
    substation = models.CharField(max_length=60, blank=True, db_index=True)
    feeder = models.CharField(max_length=60, blank=True, db_index=True)
    peak_demand_kw = models.DecimalField(**KW, validators=[MinValueValidator(Decimal("0"))])
    # Fixed when an audit is completed; an application may not commit more than this.
    audited_curtailable_kw = models.DecimalField(**KW, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization__legal_name", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.service_account_number})"

    @property
    def address(self) -> str:
        return f"{self.street}, {self.city}, {self.state} {self.postal_code}"


class Meter(models.Model):
    """An interval meter at a site; readings are kWh per interval keyed by interval start."""

    class Unit(models.TextChoices):
        KWH = "kWh", "kWh"
        WH = "Wh", "Wh"

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="meters")
    meter_id = models.CharField(max_length=64, unique=True)
    interval_minutes = models.PositiveSmallIntegerField(
        choices=[(5, "5"), (15, "15"), (30, "30"), (60, "60")], default=15
    )
    unit = models.CharField(max_length=4, choices=Unit.choices, default=Unit.KWH)
    # Net meters (on-site generation) legitimately record negative energy.
    records_net_energy = models.BooleanField(default=False)
    # Green Button usage point identifier (the UsagePoint href or title) mapped to this meter.
    usage_point = models.CharField(max_length=300, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["meter_id"]

    def __str__(self) -> str:
        return self.meter_id


class Contact(models.Model):
    """A person at an organization who is notified of events."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="contacts"
    )
    name = models.CharField(max_length=120)
    title = models.CharField(max_length=120, blank=True)
    # Empty: the contact covers every site of the organization.
    sites = models.ManyToManyField(Site, blank=True, related_name="contacts")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization__legal_name", "name"]

    def __str__(self) -> str:
        return self.name


class ContactMethod(models.Model):
    """One way to reach a contact; used only once verified, in escalation order."""

    class Kind(models.TextChoices):
        SMS = "sms", "SMS"
        VOICE = "voice", "Voice call"
        PAGER_WCTP = "pager_wctp", "Pager (WCTP)"
        PAGER_SNPP = "pager_snpp", "Pager (SNPP)"
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    PHONE_KINDS = (Kind.SMS, Kind.VOICE)

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="methods")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # E.164 phone number, email address, pager id, or webhook URL, by kind.
    address = models.CharField(max_length=300)
    wctp_endpoint = models.URLField(blank=True, help_text="Carrier WCTP URL (WCTP pagers).")
    snpp_host = models.CharField(max_length=200, blank=True, help_text="host:port (SNPP pagers).")
    webhook_secret = models.CharField(max_length=128, blank=True)
    escalation_order = models.PositiveSmallIntegerField(default=1)
    verified_at = models.DateTimeField(null=True, blank=True)
    verification_code_hash = models.CharField(max_length=128, blank=True)
    verification_sent_at = models.DateTimeField(null=True, blank=True)
    verification_attempts = models.PositiveSmallIntegerField(default=0)
    # Set on a permanent provider error or a STOP reply; a disabled method is skipped.
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["contact", "escalation_order", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "kind", "address"], name="contactmethod_unique_address"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.address}"

    @property
    def is_usable(self) -> bool:
        return self.verified_at is not None and self.disabled_at is None


class Audit(models.Model):
    """A site audit for curtailable load, scheduled and carried out by an auditor."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="audits")
    auditor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="audits"
    )
    scheduled_for = models.DateTimeField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.SCHEDULED)
    summary = models.TextField(blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Sum of the findings' curtailable kW, fixed at completion.
    curtailable_kw = models.DecimalField(**KW, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-scheduled_for"]

    def __str__(self) -> str:
        return f"Audit of {self.site.name} on {self.scheduled_for:%Y-%m-%d}"


class AuditFinding(models.Model):
    """Curtailable load found for one end use."""

    class EndUse(models.TextChoices):
        HVAC = "hvac", "HVAC"
        LIGHTING = "lighting", "Lighting"
        PROCESS = "process", "Process"
        GENERATOR = "generator", "Backup generator"
        STORAGE = "storage", "Storage"
        EV = "ev", "EV charging"
        OTHER = "other", "Other"

    audit = models.ForeignKey(Audit, on_delete=models.CASCADE, related_name="findings")
    end_use = models.CharField(max_length=12, choices=EndUse.choices)
    description = models.TextField(blank=True)
    curtailable_kw = models.DecimalField(**KW, validators=[MinValueValidator(Decimal("0"))])
    response_time_minutes = models.PositiveIntegerField()
    needs_enablement = models.BooleanField(default=False)

    class Meta:
        ordering = ["audit", "end_use", "pk"]

    def __str__(self) -> str:
        return f"{self.get_end_use_display()}: {self.curtailable_kw} kW"


class BackupGenerator(models.Model):
    """A backup generator found by an audit."""

    class Fuel(models.TextChoices):
        DIESEL = "diesel", "Diesel"
        NATURAL_GAS = "natural_gas", "Natural gas"
        PROPANE = "propane", "Propane"
        BI_FUEL = "bi_fuel", "Bi-fuel"

    audit = models.ForeignKey(Audit, on_delete=models.CASCADE, related_name="generators")
    kw = models.DecimalField(**KW, validators=[MinValueValidator(Decimal("0"))])
    fuel = models.CharField(max_length=12, choices=Fuel.choices)
    permitted_run_hours_per_year = models.PositiveIntegerField()
    remote_start = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.kw} kW {self.get_fuel_display()} generator"


class EnablementMeasure(models.Model):
    """A measure an audit recommends to make load curtailable, with its estimated cost."""

    class Kind(models.TextChoices):
        LOAD_CONTROL = "load_control", "Remote load control"
        GENERATION = "generation", "Backup generation enablement"
        CONTROLS = "controls", "Building controls"
        OTHER = "other", "Other"

    audit = models.ForeignKey(Audit, on_delete=models.CASCADE, related_name="measures")
    finding = models.ForeignKey(
        AuditFinding, null=True, blank=True, on_delete=models.SET_NULL, related_name="measures"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    description = models.TextField()
    estimated_cost = models.DecimalField(**MONEY, validators=[MinValueValidator(Decimal("0"))])

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.description[:40]}"


class EnablementProject(models.Model):
    """Equipment installed at a site to make load curtailable, part-paid by the program.

    incentive = min(cost × program cost share, program cap), paid in the program's stages.
    """

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        APPROVED = "approved", "Approved"
        INSTALLED = "installed", "Installed"
        VERIFIED = "verified", "Verified"
        PAID = "paid", "Paid"
        CLAWED_BACK = "clawed_back", "Clawed back"

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="enablement_projects")
    program = models.ForeignKey(
        Program, on_delete=models.PROTECT, related_name="enablement_projects"
    )
    audit = models.ForeignKey(
        Audit, null=True, blank=True, on_delete=models.SET_NULL, related_name="projects"
    )
    measures = models.ManyToManyField(EnablementMeasure, blank=True, related_name="projects")
    description = models.TextField()
    cost = models.DecimalField(**MONEY, validators=[MinValueValidator(Decimal("0"))])
    incentive = models.DecimalField(**MONEY)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PROPOSED)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.site.name}: {self.description[:40]}"


class EnablementInstallment(models.Model):
    """A payable item of an enablement project (or a negative one, for a clawback).

    Settlement turns installments due in its period into settlement lines.
    """

    class Kind(models.TextChoices):
        INSTALLMENT = "installment", "Installment"
        CLAWBACK = "clawback", "Clawback"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for its trigger"
        DUE = "due", "Due"
        PAID = "paid", "Paid"
        FORFEITED = "forfeited", "Forfeited"
        CANCELLED = "cancelled", "Cancelled"

    project = models.ForeignKey(
        EnablementProject, on_delete=models.CASCADE, related_name="installments"
    )
    sequence = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.INSTALLMENT)
    trigger = models.CharField(max_length=20, blank=True)
    share = models.DecimalField(max_digits=5, decimal_places=4)
    min_performance_ratio = models.DecimalField(
        max_digits=5, decimal_places=4, null=True, blank=True
    )
    amount = models.DecimalField(**MONEY)
    due_date = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    explanation = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["project", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["project", "sequence"], name="installment_sequence")
        ]
        indexes = [models.Index(fields=["status", "due_date"], name="installment_due_idx")]

    def __str__(self) -> str:
        return f"{self.project} #{self.sequence}: ${self.amount}"


class Enrollment(models.Model):
    """A site's enrollment in a program, with its status and committed kW."""

    class Status(models.TextChoices):
        APPLIED = "applied", "Applied"
        UNDER_REVIEW = "under_review", "Under review"
        APPROVED = "approved", "Approved"
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        WITHDRAWN = "withdrawn", "Withdrawn"
        TERMINATED = "terminated", "Terminated"
        REJECTED = "rejected", "Rejected"

    #: Statuses in which a site counts as enrolled (or on its way to be).
    OPEN_STATUSES = (
        Status.APPLIED,
        Status.UNDER_REVIEW,
        Status.APPROVED,
        Status.ACTIVE,
        Status.SUSPENDED,
    )

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="enrollments")
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="enrollments")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.APPLIED)
    # The committed kW in effect now; its effective-dated history is in Nomination.
    committed_kw = models.DecimalField(**KW)
    # No copy of the firm service level here: its effective-dated history is FirmServiceLevel.
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="applications"
    )
    applied_at = models.DateTimeField(auto_now_add=True)
    active_from = models.DateField(null=True, blank=True)
    commitment_ends = models.DateField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-applied_at"]
        constraints = [
            # One open enrollment of a site in a program at a time.
            models.UniqueConstraint(
                fields=["site", "program"],
                condition=models.Q(
                    status__in=[
                        "applied",
                        "under_review",
                        "approved",
                        "active",
                        "suspended",
                    ]
                ),
                name="enrollment_one_open_per_site_program",
            )
        ]
        indexes = [models.Index(fields=["program", "status"], name="enrollment_program_status")]

    def __str__(self) -> str:
        return f"{self.site.name} in {self.program.name} ({self.get_status_display()})"


class EnrollmentTransition(models.Model):
    """Who moved an enrollment from one status to another, when and why."""

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(auto_now_add=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["enrollment", "at", "pk"]

    def __str__(self) -> str:
        return f"{self.from_status or '—'} → {self.to_status}"


class ConsentRecord(models.Model):
    """Proof that a user accepted a program's terms: which version, when, from where."""

    enrollment = models.ForeignKey(Enrollment, on_delete=models.PROTECT, related_name="consents")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    terms_version = models.CharField(max_length=20)
    terms_sha256 = models.CharField(max_length=64)
    accepted_at = models.DateTimeField(auto_now_add=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return (
            f"{self.user} accepted terms {self.terms_version} at {self.accepted_at:%Y-%m-%d %H:%M}"
        )


class Nomination(models.Model):
    """Committed kW of an enrollment from ``effective_from`` until the next nomination."""

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="nominations")
    committed_kw = models.DecimalField(**KW)
    effective_from = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["enrollment", "effective_from", "pk"]
        # "What was committed at this moment": one enrollment, the latest start before t.
        indexes = [models.Index(fields=["enrollment", "effective_from"], name="nomination_at_idx")]

    def __str__(self) -> str:
        return f"{self.committed_kw} kW from {self.effective_from:%Y-%m-%d %H:%M}"


class FirmServiceLevel(models.Model):
    """Firm service level of an enrollment from ``effective_from`` until the next record: the
    kW the site's load must stay at or below during events; energy above it is charged at
    the rules' ``excess_energy_rate``. ``firm_kw`` empty: no firm level from then on.

    The level in effect at a moment is the latest record starting on or before it
    (``enrollment.selectors.firm_service_level_at``); before the first one there is none.
    """

    enrollment = models.ForeignKey(
        Enrollment, on_delete=models.CASCADE, related_name="firm_service_levels"
    )
    firm_kw = models.DecimalField(
        **KW,
        null=True,
        blank=True,
        validators=[
            MinValueValidator(Decimal("0"), message="The firm service level cannot be negative.")
        ],
        help_text="kW the site's load must stay at or below during events; empty for no "
        "firm service level from then on.",
    )
    effective_from = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["effective_from", "pk"]
        # "Which level was in effect at this moment": one enrollment, the latest start before t.
        indexes = [models.Index(fields=["enrollment", "effective_from"], name="firm_level_at_idx")]

    def __str__(self) -> str:
        level = "none" if self.firm_kw is None else f"{self.firm_kw} kW"
        return f"{level} from {self.effective_from:%Y-%m-%d %H:%M}"
