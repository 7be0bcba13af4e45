"""Settlement data: interval meter readings and the imports that bring them in.

Readings are energy in kWh per interval, keyed by the interval's UTC start. A meter's local
days are those of its program's time zone (see ``settlements.selectors.meter_time_zone``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce

from enrollment.models import Meter

if TYPE_CHECKING:
    from settlements.payments.lines import LineKey


class MeterReading(models.Model):
    """One interval reading: the energy (kWh) a meter recorded in the interval starting at
    ``interval_start`` (UTC). Negative values only on net-metering meters.

    The primary key is the pair (meter, interval_start): its index is the only index of this
    table, and it serves both uniqueness and the read pattern of every user of readings (one
    meter, a time range: baselines, performance, the data quality page). Without a surrogate
    id each row is 8 bytes smaller and each insert updates one B-tree instead of two, which
    is most of the cost of loading millions of rows.

    ``kwh`` is a float (double precision), not a Decimal: meters record three or four
    decimals, well inside a double's 15 significant digits; a fixed-width binary value can be
    bulk-loaded straight from numpy (PostgreSQL binary COPY) and read back into pandas
    without a Python object per row. Money, derived later, is Decimal.
    """

    pk = models.CompositePrimaryKey("meter", "interval_start")
    # No separate index: the primary key's index starts with the meter. No database
    # constraint either: PostgreSQL checks a foreign key with a trigger per inserted row,
    # which more than doubles the cost of loading millions of readings. The importer instead
    # checks every meter once and holds a FOR KEY SHARE lock on the meters it writes (the
    # lock the trigger would take) until its transaction commits; deleting a meter that has
    # readings is refused by PROTECT.
    meter = models.ForeignKey(
        Meter,
        on_delete=models.PROTECT,
        related_name="readings",
        db_index=False,
        db_constraint=False,
    )
    interval_start = models.DateTimeField()
    kwh = models.FloatField()
    # The file's quality flag (canonical ``quality`` column, ESPI ReadingQuality code).
    quality = models.CharField(max_length=16, blank=True, default="")

    class Meta:
        ordering = ["meter", "interval_start"]

    def __str__(self) -> str:
        return f"{self.meter_id} {self.interval_start:%Y-%m-%dT%H:%MZ} {self.kwh} kWh"


class MeterDataImport(models.Model):
    """One uploaded meter data file and what importing it did.

    A file is imported all or nothing: ``rows_accepted`` are stored only when the status is
    ``succeeded``. With ``valid_rows_only`` the rejected rows are left out instead of failing
    the file, and listed in ``error_report``. A file whose sha256 and chosen ``meter`` (none
    = none) match a complete import (succeeded, no error) is not imported again (status
    ``duplicate``, pointing at the original): the same bytes for another chosen meter are
    another import, and a file stored in part (succeeded with errors: valid-rows mode left
    something out) may be imported again for the rest.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"  # an unexpected error; nothing was stored
        REJECTED = "rejected", "Rejected"  # the file has rejected rows; nothing was stored
        DUPLICATE = "duplicate", "Duplicate"  # the same file was imported before

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.REJECTED, Status.DUPLICATE)

    file_name = models.CharField(max_length=255)
    file = models.FileField(upload_to="meterdata/%Y/%m/", blank=True)
    file_size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, db_index=True)
    # The format asked for ("" = detect) and the one actually read.
    requested_format = models.CharField(max_length=16, blank=True)
    format = models.CharField(max_length=16, blank=True)
    # Options chosen at upload.
    meter = models.ForeignKey(
        Meter, on_delete=models.PROTECT, null=True, blank=True, related_name="imports"
    )
    correction = models.BooleanField(
        default=False, help_text="Replace stored readings that differ, keeping the old values."
    )
    valid_rows_only = models.BooleanField(
        default=False, help_text="Import the valid rows and list the rejected ones."
    )
    time_zone = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    duplicate_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="duplicates"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="meter_data_imports",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Written with each chunk: a running import whose heartbeat stopped was abandoned by a
    # killed worker and may be claimed again.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Progress, for the page that polls it.
    rows_processed = models.BigIntegerField(default=0)
    bytes_processed = models.BigIntegerField(default=0)
    # Outcome.
    rows_accepted = models.BigIntegerField(default=0)  # new readings stored
    rows_replaced = models.BigIntegerField(default=0)  # stored readings corrected
    rows_unchanged = models.BigIntegerField(default=0)  # equal to the stored reading
    rows_rejected = models.BigIntegerField(default=0)
    meters = models.PositiveIntegerField(default=0)
    first_interval = models.DateTimeField(null=True, blank=True)
    last_interval = models.DateTimeField(null=True, blank=True)
    error_count = models.PositiveIntegerField(default=0)
    warning_count = models.PositiveIntegerField(default=0)
    # Capped lists for the detail page: [{"meter", "start", "end", "intervals"}] and
    # [{"meter", "interval_start", "kwh", "kw", "peak_kw", "line"}]; the counts are complete.
    gaps = models.JSONField(default=list, blank=True)
    gap_count = models.PositiveIntegerField(default=0)
    flagged = models.JSONField(default=list, blank=True)
    flagged_count = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    # Every rejected row and problem, as CSV (line, code, message, meter, interval_start).
    error_report = models.FileField(upload_to="meterdata/reports/%Y/%m/", blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # The same file is imported completely at most once per chosen meter (none
            # counting as one choice: NULLs would never collide). A rejected or failed
            # attempt may be retried (after fixing the meters, say), and so may one that
            # stored only part of the file (valid-rows mode with errors); a file imported
            # for the wrong meter may be imported again for the right one.
            models.UniqueConstraint(
                "sha256",
                Coalesce("meter", models.Value(0)),
                condition=models.Q(status="succeeded", error_count=0),
                name="meterdataimport_one_complete_import_per_file_meter",
            )
        ]
        indexes = [
            # The console's history table, newest first.
            models.Index(fields=["-created_at"], name="meterdataimport_created"),
        ]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.get_status_display()})"

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def progress_percent(self) -> int:
        """Share of the file's bytes read so far, 0-100 (100 once finished)."""
        if self.finished:
            return 100
        if not self.file_size:
            return 0
        return min(99, int(self.bytes_processed * 100 / self.file_size))


class ImportProblem(models.Model):
    """A problem found in an import: a rejected row (``error``) or a ``warning`` that did not
    stop the file (a day with the wrong number of intervals, a skipped gas series).

    At most ``settlements.importer.MAX_STORED_PROBLEMS`` are stored per import; the error
    report file lists every rejected row.
    """

    class Severity(models.TextChoices):
        ERROR = "error", "Error"
        WARNING = "warning", "Warning"

    data_import = models.ForeignKey(
        MeterDataImport, on_delete=models.CASCADE, related_name="problems"
    )
    severity = models.CharField(max_length=8, choices=Severity.choices)
    line = models.PositiveIntegerField()  # 1-based line in the file; 0 when none applies
    code = models.CharField(max_length=40)
    message = models.TextField()
    meter_ref = models.CharField(max_length=300, blank=True)
    interval_start = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["data_import", "line", "pk"]
        indexes = [models.Index(fields=["data_import", "line"], name="importproblem_import_line")]

    def __str__(self) -> str:
        return f"line {self.line}: {self.code}"


class ReadingRevision(models.Model):
    """A stored reading replaced by a correction import: the value before and after."""

    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="reading_revisions")
    interval_start = models.DateTimeField()
    old_kwh = models.FloatField()
    new_kwh = models.FloatField()
    old_quality = models.CharField(max_length=16, blank=True, default="")
    data_import = models.ForeignKey(
        MeterDataImport, on_delete=models.PROTECT, related_name="revisions"
    )
    revised_at = models.DateTimeField()

    class Meta:
        ordering = ["meter", "interval_start", "revised_at"]
        indexes = [
            # A reading's history (one meter, one interval or a range).
            models.Index(fields=["meter", "interval_start"], name="readingrevision_meter_start"),
        ]

    def __str__(self) -> str:
        return f"{self.meter_id} {self.interval_start}: {self.old_kwh} -> {self.new_kwh}"


class EventPerformance(models.Model):
    """How one participation performed in one event, measured against its baseline.

    Versioned: the same inputs (readings, method, event, committed kW — summed up in
    ``fingerprint``) never produce a second row; changed inputs (a late or corrected meter
    import, a changed method) produce a new version and keep the old ones, with exactly one
    ``is_current`` row per participation. Power in kW, energy in kWh, times in UTC.
    """

    class Status(models.TextChoices):
        COMPUTED = "computed", "Computed"
        INSUFFICIENT_DATA = "insufficient_data", "Insufficient data"

    participation = models.ForeignKey(
        "events.Participation", on_delete=models.PROTECT, related_name="performances"
    )
    version = models.PositiveIntegerField()
    is_current = models.BooleanField(default=True)
    status = models.CharField(max_length=20, choices=Status.choices)
    message = models.TextField(blank=True)
    # The method: the program's preset name and the full parameters it resolved to.
    method = models.CharField(max_length=40)
    parameters = models.JSONField(default=dict)
    candidate_days = models.JSONField(default=list)  # local ISO dates, most recent first
    selected_days = models.JSONField(default=list)
    adjustment = models.FloatField(null=True, blank=True)
    interval_minutes = models.PositiveSmallIntegerField(null=True, blank=True)
    # Per event interval: [UTC ISO start, baseline kW, unadjusted kW, actual kW or null].
    intervals = models.JSONField(default=list)
    # The whole local event day's actual kW, [UTC ISO start, kW], for the chart.
    day_actual = models.JSONField(default=list)
    committed_kw = models.DecimalField(max_digits=12, decimal_places=3)
    reduction_kwh = models.FloatField(null=True, blank=True)
    average_reduction_kw = models.FloatField(null=True, blank=True)
    max_reduction_kw = models.FloatField(null=True, blank=True)
    performance_ratio = models.FloatField(null=True, blank=True)  # average kW ÷ committed kW
    missing_intervals = models.PositiveIntegerField(default=0)
    warnings = models.JSONField(default=list)
    # Data quality and gaming flags: [{"code", "message", "detail"}].
    flags = models.JSONField(default=list)
    fingerprint = models.CharField(max_length=64)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["participation", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["participation", "version"], name="performance_version_unique"
            ),
            models.UniqueConstraint(
                fields=["participation"],
                condition=models.Q(is_current=True),
                name="performance_one_current",
            ),
        ]

    def __str__(self) -> str:
        return f"Performance v{self.version} of participation {self.participation_id}"


# --- settlement ----------------------------------------------------------------------------

MONEY = {"max_digits": 14, "decimal_places": 2}


class PaymentRuleVersion(models.Model):
    """One effective-dated version of a program's payment rules.

    ``rules`` is ``settlements.payments.PaymentRules.to_dict()``; the version in effect on a
    date is the latest whose ``effective_from`` is on or before it.
    """

    program = models.ForeignKey(
        "enrollment.Program", on_delete=models.PROTECT, related_name="payment_rule_versions"
    )
    effective_from = models.DateField()
    rules = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["program", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["program", "effective_from"], name="payment_rules_one_per_date"
            )
        ]

    def __str__(self) -> str:
        return f"{self.program} rules from {self.effective_from}"


class SettlementRun(models.Model):
    """A program's settlement for a period (a month or a season), versioned.

    The first version settles the period; a later version (a restatement after late meter
    data or an accepted dispute) holds only the differences against the last approved
    version. draft -> calculated -> approved -> exported; an approved version is superseded
    once a restatement of it is approved. ``calculating``: a worker calculates the run in the
    background (from draft or calculated; back to one of them when it is done or failed).

    A draft or calculated version nobody will approve is ``discarded``: its lines are
    deleted, but the row stays as the record that the version existed (who discarded it,
    when and why), and its number is never given to another run of the period (the next
    version is one more than the highest, discarded ones included). A discarded run is
    never the latest version of anything: it takes no line and is not calculated,
    approved, restated, exported or shown to participants.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        CALCULATING = "calculating", "Calculating"
        CALCULATED = "calculated", "Calculated"
        APPROVED = "approved", "Approved"
        EXPORTED = "exported", "Exported"
        SUPERSEDED = "superseded", "Superseded"
        DISCARDED = "discarded", "Discarded"

    class PeriodKind(models.TextChoices):
        MONTH = "month", "Month"
        SEASON = "season", "Season"

    #: Statuses whose lines never change again.
    LOCKED_STATUSES = (Status.APPROVED, Status.EXPORTED, Status.SUPERSEDED)
    #: Statuses of runs that take no new line: locked, or discarded (a record only).
    CLOSED_STATUSES = (*LOCKED_STATUSES, Status.DISCARDED)
    #: The longest reason a discard may give (``discard_reason``).
    DISCARD_REASON_MAX = 500

    program = models.ForeignKey(
        "enrollment.Program", on_delete=models.PROTECT, related_name="settlement_runs"
    )
    period_kind = models.CharField(max_length=8, choices=PeriodKind.choices)
    period_start = models.DateField()
    period_end = models.DateField(help_text="Last day of the period (inclusive).")
    version = models.PositiveIntegerField(default=1)
    restates = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="restatements"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DRAFT)
    total = models.DecimalField(**MONEY, default=0)
    line_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    calculated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    calculated_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    exported_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True)
    # The payment rules the lines were calculated with (``PaymentRules.to_dict()``), once
    # for the run: each line's details hold only that line's own inputs.
    rules = models.JSONField(default=dict, blank=True)
    # Who the lines bill, recorded by the approval: the program's name and each
    # organization's and site's billing identities as they were approved
    # (``settlements.runs.parties``). The export and statements of a locked run read this,
    # not the current rows, so they never change. Empty until the run is approved.
    billed_parties = models.JSONField(default=dict, blank=True)
    # The background calculation: when it was asked for (a run calculating for longer than
    # the task's time limit has lost its worker), how far it got (sites settled of the
    # program's sites, written from inside the calculation), and why the last one failed.
    calculation_started_at = models.DateTimeField(null=True, blank=True)
    calculation_sites_done = models.PositiveIntegerField(default=0)
    calculation_sites_total = models.PositiveIntegerField(default=0)
    calculation_error = models.TextField(blank=True)
    # The record of a discarded run (status ``discarded``): who, when and why. Its
    # ``total`` and ``line_count`` stay those of the lines it had when it was discarded.
    discarded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    discarded_at = models.DateTimeField(null=True, blank=True)
    discard_reason = models.CharField(max_length=DISCARD_REASON_MAX, blank=True)

    class Meta:
        ordering = ["program", "-period_start", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["program", "period_start", "period_end", "version"],
                name="settlement_run_version_unique",
            ),
            # A discarded run is the record of who discarded it, when and why.
            models.CheckConstraint(
                condition=~models.Q(status="discarded")
                | (
                    models.Q(discarded_by__isnull=False, discarded_at__isnull=False)
                    & ~models.Q(discard_reason="")
                ),
                name="settlement_run_discard_recorded",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.program} {self.period_start:%Y-%m}–{self.period_end:%Y-%m} v{self.version}"

    @property
    def calculation_percent(self) -> int:
        """How far the background calculation got, 0 to 100 (0 while reading its inputs)."""
        if not self.calculation_sites_total:
            return 0
        return min(100, self.calculation_sites_done * 100 // self.calculation_sites_total)


class LockedLineError(Exception):
    """A locked settlement line (its run was approved) was about to be changed or deleted,
    or a line was about to join an approved or discarded run."""


def _refuse_lines_of_locked_runs(run_ids: set[int]) -> None:
    """Raise ``LockedLineError`` when one of ``run_ids`` is approved, exported or superseded
    (its lines never change, and that includes gaining one: a restatement corrects it), or
    discarded (a record that its version existed, with no line)."""
    closed = (
        SettlementRun.objects.filter(pk__in=run_ids, status__in=SettlementRun.CLOSED_STATUSES)
        .order_by("pk")
        .values_list("pk", "status")
        .first()
    )
    if closed is None:
        return
    if closed[1] == SettlementRun.Status.DISCARDED:
        raise LockedLineError(
            f"Settlement run {closed[0]} is discarded: it stays on record only and takes no "
            "new line; another version of its period settles it."
        )
    raise LockedLineError(
        f"Settlement run {closed[0]} is {closed[1]}: its lines never change and it "
        "takes no new line; correct it with a restatement."
    )


class SettlementLineQuerySet(models.QuerySet):
    """Bulk writes that refuse to touch locked lines, like ``SettlementLine.save``.

    ``update`` and ``delete`` raise ``LockedLineError`` when the queryset holds a locked
    line, ``bulk_update`` when one of its objects is locked, ``bulk_create`` when an
    upsert could overwrite one or a line would join an approved or discarded run. The one
    bulk change allowed on locked rows is ``update(locked=True)``: the approval locking its
    run's lines (the PostgreSQL trigger lets it through too, as it only refuses rows whose
    *old* value is locked).
    """

    def update(self, **kwargs: object) -> int:
        target = kwargs.get("run_id", kwargs.get("run"))
        if target is not None:  # lines moved to another run: not into an approved one
            _refuse_lines_of_locked_runs({getattr(target, "pk", target)})
        if kwargs != {"locked": True} and self.filter(locked=True).exists():
            raise LockedLineError(
                "Settlement lines of an approved run are locked and cannot be changed; "
                "correct them with a restatement."
            )
        return super().update(**kwargs)

    update.alters_data = True  # type: ignore[attr-defined]

    def delete(self) -> tuple[int, dict[str, int]]:
        if self.filter(locked=True).exists():
            raise LockedLineError(
                "Settlement lines of an approved run are locked and cannot be deleted; "
                "correct them with a restatement."
            )
        return super().delete()

    delete.alters_data = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]

    def bulk_update(
        self, objs: Iterable[SettlementLine], fields: Sequence[str], batch_size: int | None = None
    ) -> int:
        """Update lines field by field; refused before anything is written when one of them
        is locked (Django's own path would refuse too, but inside its transaction)."""
        objs = list(objs)
        if self.filter(pk__in=[line.pk for line in objs], locked=True).exists():
            raise LockedLineError(
                "Settlement lines of an approved run are locked and cannot be changed; "
                "correct them with a restatement."
            )
        return super().bulk_update(objs, fields, batch_size=batch_size)

    bulk_update.alters_data = True  # type: ignore[attr-defined]

    def bulk_create(
        self,
        objs: Iterable[SettlementLine],
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Sequence[str] | None = None,
        unique_fields: Sequence[str] | None = None,
    ) -> list[SettlementLine]:
        """Insert lines; an upsert (``update_conflicts``) is refused when it could overwrite
        a locked line. A line conflicts only on its id or its (run, sequence), and a run's
        lines are locked all together, so those two are what is checked."""
        objs = list(objs)
        if update_conflicts:
            pks = [line.pk for line in objs if line.pk is not None]
            run_ids = {line.run_id for line in objs}
            if self.filter(
                models.Q(pk__in=pks) | models.Q(run_id__in=run_ids), locked=True
            ).exists():
                raise LockedLineError(
                    "Settlement lines of an approved run are locked and cannot be "
                    "overwritten; correct them with a restatement."
                )
        _refuse_lines_of_locked_runs({line.run_id for line in objs})
        return super().bulk_create(
            objs,
            batch_size=batch_size,
            ignore_conflicts=ignore_conflicts,
            update_conflicts=update_conflicts,
            update_fields=update_fields,
            unique_fields=unique_fields,
        )

    bulk_create.alters_data = True  # type: ignore[attr-defined]


class SettlementLine(models.Model):
    """One itemized amount of a run: what it is, where it came from, how it was computed.

    Once its run is approved the line is ``locked`` and never changes: the model refuses
    to save or delete it (``LockedLineError``), so do bulk updates and deletes through
    the manager's queryset, and on PostgreSQL a trigger (migration 0005) refuses UPDATE
    and DELETE of locked rows whatever the client. An approved run takes no new line
    either, nor does a discarded one (the model, and on PostgreSQL the trigger of
    migrations 0009 and 0011).
    """

    class Kind(models.TextChoices):
        CAPACITY = "capacity", "Capacity payment"
        ENERGY = "energy", "Energy payment"
        SEASON = "season", "Season pay-for-performance"
        PENALTY = "penalty", "Penalty"
        EXCESS_ENERGY = "excess_energy", "Excess energy charge"
        ENABLEMENT = "enablement", "Enablement incentive"
        CLAWBACK = "clawback", "Enablement clawback"
        ADJUSTMENT = "adjustment", "Adjustment"

    # A line belongs to a run that exists. On PostgreSQL this is checked once per
    # statement, not per row (migration 0009's triggers: a season run's ~11,000 lines were
    # ~11,000 foreign key checks at the commit): inserted or re-pointed lines must name
    # existing runs, which stay locked against deletion until the commit, and a run with
    # lines cannot be deleted. No index of its own: the unique (run, sequence) index starts
    # with the run.
    run = models.ForeignKey(
        SettlementRun,
        on_delete=models.PROTECT,
        related_name="lines",
        db_index=False,
        db_constraint=False,
    )
    sequence = models.PositiveIntegerField()  # deterministic order within the run
    # The other references are checked by the ORM only (``db_constraint=False``): a run's
    # lines are written in one transaction from rows it has just read, and PostgreSQL
    # would check each of the five references of each line again at the commit, a third
    # of a season run's time. ``PROTECT`` still refuses to delete, through Django, a
    # site, event, performance, organization or installment that a line points at.
    organization = models.ForeignKey(
        "enrollment.Organization",
        on_delete=models.PROTECT,
        related_name="settlement_lines",
        db_constraint=False,
        db_index=False,  # the (organization, run) index below serves it
    )
    # No indexes on site, event and performance: every read of lines goes through their
    # run (or organization); only deleting one of those rows through Django looks lines
    # up by them, and events and performances are never deleted.
    site = models.ForeignKey(
        "enrollment.Site",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    event = models.ForeignKey(
        "events.Event",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    performance = models.ForeignKey(
        EventPerformance,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    installment = models.ForeignKey(
        "enrollment.EnablementInstallment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="settlement_lines",
        db_constraint=False,
        db_index=False,  # the partial index below serves it
    )
    reference = models.CharField(max_length=100, blank=True)
    quantity = models.DecimalField(max_digits=18, decimal_places=6)
    unit = models.CharField(max_length=20)
    rate = models.DecimalField(max_digits=14, decimal_places=6)
    amount = models.DecimalField(**MONEY)
    explanation = models.TextField()
    # The line's own inputs (``LineItem.details``); the rules are the run's (``rules``), the
    # measurement the performance row's.
    details = models.JSONField(default=dict)
    locked = models.BooleanField(default=False)

    objects = SettlementLineQuerySet.as_manager()

    class Meta:
        ordering = ["run", "sequence"]
        constraints = [
            # Also the index of every read of a run's lines.
            models.UniqueConstraint(fields=["run", "sequence"], name="settlement_line_sequence")
        ]
        indexes = [
            # Statements: the runs with lines of an organization, its lines of one run.
            models.Index(fields=["organization", "run"], name="settlementline_org_run"),
            # Enablement lines only (the other lines have none): deleting a project's
            # installments through Django looks its lines up.
            models.Index(
                fields=["installment"],
                name="settlementline_installment",
                condition=models.Q(installment__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ${self.amount}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding and (
            self.locked or SettlementLine.objects.filter(pk=self.pk, locked=True).exists()
        ):
            raise LockedLineError(
                f"Settlement line {self.pk} is locked (its run was approved) and cannot be "
                "changed; correct it with a restatement."
            )
        # Added to, or moved into, an approved run: refused too.
        _refuse_lines_of_locked_runs({self.run_id})
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        if self.locked or SettlementLine.objects.filter(pk=self.pk, locked=True).exists():
            raise LockedLineError(
                f"Settlement line {self.pk} is locked (its run was approved) and cannot be "
                "deleted; correct it with a restatement."
            )
        return super().delete(*args, **kwargs)

    @property
    def key(self) -> LineKey:
        """The line's identity across the versions of its run's period: (kind, site id,
        event id, reference or None), the ``LineItem.key`` that restatement differences
        match lines by (``settlements.runs.services.approved_lines`` reads stored lines back
        under the same key; an empty ``reference`` is stored for none)."""
        return line_key(self.kind, self.site_id, self.event_id, self.reference)


def line_key(kind: str, site_id: int | None, event_id: int | None, reference: str) -> LineKey:
    """A settlement line's identity across versions from its stored columns (see
    :meth:`SettlementLine.key`; an empty ``reference`` stands for none)."""
    return (kind, site_id, event_id, reference or None)


class Dispute(models.Model):
    """A participant's challenge of one settlement line, and the manager's decision."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    line = models.ForeignKey(SettlementLine, on_delete=models.PROTECT, related_name="disputes")
    organization = models.ForeignKey(
        "enrollment.Organization", on_delete=models.PROTECT, related_name="disputes"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    comment = models.TextField()
    # The amount the participant believes is right, if they say (an accepted dispute's
    # adjustment is decided by the manager, who may use it).
    claimed_amount = models.DecimalField(**MONEY, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    adjustment_amount = models.DecimalField(**MONEY, null=True, blank=True)
    # The adjustment line that carried an accepted dispute into a later run.
    adjustment_line = models.ForeignKey(
        SettlementLine, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Dispute of line {self.line_id} ({self.get_status_display()})"


class DisputeEntry(models.Model):
    """One step of a dispute's history, seen by both sides."""

    dispute = models.ForeignKey(Dispute, on_delete=models.CASCADE, related_name="entries")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=20)  # raised, comment, accepted, rejected, carried
    text = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dispute", "at", "pk"]

    def __str__(self) -> str:
        return f"{self.action} by {self.author_id} at {self.at:%Y-%m-%d %H:%M}"


class BillingExport(models.Model):
    """A billing CSV file handed over: its bytes, digest, size, who and when."""

    run = models.ForeignKey(SettlementRun, on_delete=models.PROTECT, related_name="exports")
    file_name = models.CharField(max_length=200)
    content = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    row_count = models.PositiveIntegerField()
    exported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    exported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-exported_at"]

    def __str__(self) -> str:
        return self.file_name
