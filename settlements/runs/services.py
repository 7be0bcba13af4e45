"""Writes of settlement runs: create, calculate, approve, restate, discard.

Each service is one transaction; status changes are compare-and-set on the run's row, so
two clerks clicking at once never both succeed. Refusals raise ``SettlementError`` (the
message says why and what to do) or ``PermissionDenied`` (the wrong person). A run being
calculated in the background (``calculating``, see ``settlements.runs.background``) is
left to its worker: it is not calculated again, approved or exported until it is done,
unless it has been calculating for longer than the task's time limit
(:func:`calculation_stale`). A discarded run is a record only: every service refuses it
(:func:`discarded_refusal`), as it refuses a run discarded before discarded runs were
kept, whose row is gone.
"""

from __future__ import annotations

import calendar
import contextlib
import dataclasses
import datetime as dt
import gc
import json
import json.encoder
from collections.abc import Callable, Iterable, Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import connections, router, transaction
from django.db.models import Max
from django.utils import timezone

from dr_platform.bulk import copy_text
from enrollment.models import Program
from settlements.models import (
    Dispute,
    DisputeEntry,
    SettlementLine,
    SettlementRun,
    line_key,
)
from settlements.payments import LineItem, difference
from settlements.payments.lines import LineKey
from settlements.runs.access import require_settlement_staff
from settlements.runs.calculation import (
    Calculation,
    LineSource,
    calculate_lines,
    storage_order,
)
from settlements.runs.errors import SettlementError
from settlements.runs.parties import billed_parties_read
from settlements.runs.rules import (
    refuse_month_run_of_season_rules,
    rules_for,
    rules_for_period,
)

OPEN_STATUSES = (SettlementRun.Status.DRAFT, SettlementRun.Status.CALCULATED)
#: Not approved yet: open, or being calculated in the background.
UNFINISHED_STATUSES = (*OPEN_STATUSES, SettlementRun.Status.CALCULATING)
APPROVED_STATUSES = (SettlementRun.Status.APPROVED, SettlementRun.Status.EXPORTED)
_SIX = Decimal("0.000001")
#: The hard time limit of the background calculation (``settlement_run_calculate_task``),
#: seconds. A run still ``calculating`` after it has no worker any more (killed by the
#: limit, or its host died and its message was lost): it may be calculated again.
CALCULATION_TIME_LIMIT = 30 * 60


def calculation_stale(run: SettlementRun, *, now: dt.datetime | None = None) -> bool:
    """Whether ``run`` is ``calculating`` since longer than :data:`CALCULATION_TIME_LIMIT`
    (or since an unknown time): no worker is on it any more, so it may be calculated
    again. False for a run in any other status."""
    if run.status != SettlementRun.Status.CALCULATING:
        return False
    if run.calculation_started_at is None:
        return True
    age = (now or timezone.now()) - run.calculation_started_at
    return age > dt.timedelta(seconds=CALCULATION_TIME_LIMIT)


def discarded_refusal(run_id: int, run: SettlementRun | None = None) -> SettlementError:
    """The refusal for run ``run_id``, discarded: ``run`` is its row, kept on record with
    who discarded it and when; ``None`` for a row that is gone (discarded before discarded
    runs were kept, or an id that never existed)."""
    if run is None:
        return SettlementError(f"Run {run_id} no longer exists: it was discarded.")
    who = run.discarded_by.get_username() if run.discarded_by_id else "someone"
    when = f" on {timezone.localtime(run.discarded_at):%Y-%m-%d %H:%M}" if run.discarded_at else ""
    return SettlementError(
        f"Run {run_id} (version {run.version}) was discarded by {who}{when}: it stays on "
        "record only, and nothing more is done with it."
    )


def next_version(program_id: int, period_start: dt.date, period_end: dt.date) -> int:
    """The number of the next version of a program's period: one more than the highest
    version it ever had, discarded ones included (a number once given is never given to
    another run: a clerk may have printed or discussed it); 1 for a period never settled."""
    highest = SettlementRun.objects.filter(
        program_id=program_id, period_start=period_start, period_end=period_end
    ).aggregate(highest=Max("version"))["highest"]
    return (highest or 0) + 1


def being_calculated(run: SettlementRun) -> SettlementError:
    """The refusal for a run a worker is calculating right now."""
    since = timezone.localtime(run.calculation_started_at) if run.calculation_started_at else None
    return SettlementError(
        f"Run {run.pk} is being calculated in the background"
        + (f" (since {since:%H:%M:%S})" if since else "")
        + "; its page shows the progress and then the outcome."
    )


def settlement_run_create(
    *,
    program: Program,
    period_kind: str,
    period_start: dt.date,
    period_end: dt.date | None = None,
    by: AbstractBaseUser,
) -> SettlementRun:
    """Create the first version of ``program``'s settlement for a period, as a draft:
    version 1, or the next number when earlier versions of the period were discarded
    (:func:`next_version`).

    ``period_kind`` ``"month"``: a calendar month, ``period_start`` its first day
    (``period_end``, if given, its last). ``"season"``: the program's season,
    ``period_start``/``period_end`` equal to ``season_start``/``season_end`` (the end may
    be left out). Raises ``PermissionDenied`` unless ``by`` is Billing or Program
    managers, and ``SettlementError`` for a malformed period, a month of rules that pay
    by the season (``PaymentRules.paid_per_season``: one season run settles those), or a
    period that overlaps another run of the program (open: finish or recalculate it;
    approved for the same period: restate it instead). Superseded and discarded runs do
    not count.
    """
    require_settlement_staff(by)
    period_end = _checked_period(program, period_kind, period_start, period_end)
    try:
        rules = rules_for(program, period_start)
    except SettlementError:
        rules = None  # none in effect yet: calculating the run says so
    if rules is not None:
        refuse_month_run_of_season_rules(program, period_kind, rules)
    with transaction.atomic():
        # Serialises run creation per program: two clerks cannot both pass the check.
        Program.objects.select_for_update().filter(pk=program.pk).first()
        overlapping = (
            SettlementRun.objects.filter(
                program=program, period_start__lte=period_end, period_end__gte=period_start
            )
            .exclude(status__in=(SettlementRun.Status.SUPERSEDED, SettlementRun.Status.DISCARDED))
            .order_by("period_start", "version")
        )
        for other in overlapping:
            same = (other.period_start, other.period_end) == (period_start, period_end)
            if other.status in UNFINISHED_STATUSES:
                raise SettlementError(
                    f"Run {other.pk} ({other}) of {program} is still {other.status} for "
                    f"{other.period_start} to {other.period_end}; calculate and approve it, "
                    "or recalculate it, instead of starting another."
                )
            if same:
                raise SettlementError(
                    f"{program} is already settled for {period_start} to {period_end} "
                    f"(run {other.pk}, version {other.version}, {other.status}); restate "
                    "that run to correct it."
                )
            raise SettlementError(
                f"{period_start} to {period_end} overlaps run {other.pk} of {program} "
                f"({other.period_start} to {other.period_end}, {other.status}); a period is "
                "settled once."
            )
        return SettlementRun.objects.create(
            program=program,
            period_kind=period_kind,
            period_start=period_start,
            period_end=period_end,
            version=next_version(program.pk, period_start, period_end),
            created_by=by,
        )


def _checked_period(
    program: Program, period_kind: str, start: dt.date, end: dt.date | None
) -> dt.date:
    if period_kind == SettlementRun.PeriodKind.MONTH:
        if start.day != 1:
            raise SettlementError(f"A month run starts on the 1st, not on {start}.")
        last = start.replace(day=calendar.monthrange(start.year, start.month)[1])
        if end is not None and end != last:
            raise SettlementError(
                f"A month run covers a calendar month: {start} to {last}, not to {end}."
            )
        return last
    if period_kind == SettlementRun.PeriodKind.SEASON:
        season = (program.season_start, program.season_end)
        if start != season[0] or (end is not None and end != season[1]):
            raise SettlementError(
                f"A season run covers {program}'s season, {season[0]} to {season[1]}."
            )
        return season[1]
    raise SettlementError(f"Unknown period kind {period_kind!r}; use 'month' or 'season'.")


def settlement_run_calculate(*, run: SettlementRun, by: AbstractBaseUser) -> SettlementRun:
    """Compute and store the lines of a draft or calculated run; it becomes ``calculated``.

    A calculated run's lines are replaced. Version 1 stores the full lines; a restatement
    (``run.restates`` set) recomputes the full lines as of now and stores only their
    difference from the lines of all approved earlier versions summed per line key, so
    stacked restatements stay correct. Lines are ordered by organization, site, kind,
    event start and reference (``sequence``); ``total`` is the sum of their amounts.
    Participations left out (no performance yet) are listed in ``notes``. Accepted
    disputes carried by the run point at their adjustment line.

    Raises ``PermissionDenied`` unless ``by`` is Billing or Program managers, and
    ``SettlementError`` for a run that is approved (restate it), exported or superseded,
    discarded, being calculated in the background (unless :func:`calculation_stale`), or
    whose program has no payment rules in effect.
    """
    require_settlement_staff(by)
    with transaction.atomic():
        run = _locked(run)
        if run.status == SettlementRun.Status.CALCULATING and not calculation_stale(run):
            raise being_calculated(run)
        if run.status not in UNFINISHED_STATUSES:
            raise SettlementError(
                f"Run {run.pk} is {run.status}: its lines never change; restate it to correct them."
            )
        return calculate_held_run(run, by)


def calculate_held_run(
    run: SettlementRun,
    by: AbstractBaseUser,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> SettlementRun:
    """The work of :func:`settlement_run_calculate` on a run the caller has checked and
    holds (its row lock, or the background calculation's lock), inside the caller's
    transaction. ``on_progress(sites_done, sites_total)`` is called as the sites are
    settled (see ``calculate_lines``). Returns the run, ``calculated``."""
    Dispute.objects.filter(adjustment_line__run=run).update(adjustment_line=None)
    run.lines.all().delete()
    with _collector_paused():
        stored = _calculate_and_store(run, on_progress)
    for dispute_id, line_id in stored.dispute_lines.items():
        Dispute.objects.filter(pk=dispute_id).update(adjustment_line_id=line_id)
    run.status = SettlementRun.Status.CALCULATED
    run.total = stored.total
    run.line_count = stored.count
    run.calculated_by = by
    run.calculated_at = timezone.now()
    run.notes = stored.notes
    run.rules = stored.rules
    run.calculation_error = ""
    run.save(
        update_fields=[
            "status", "total", "line_count", "calculated_by", "calculated_at", "notes",
            "rules", "calculation_error",
        ]
    )  # fmt: skip
    return run


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block (back on after it, if it was on).

    A season run allocates a few hundred thousand small objects (outcomes, lines, their
    details), none of them in reference cycles, and keeps them to the end: the collector
    would scan them again and again for nothing, a fifth of the run's client time. The
    switch is process-wide: other threads of a worker also run without the collector for
    those few seconds, which only delays freeing their own cycles.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _calculate_and_store(
    run: SettlementRun, on_progress: Callable[[int, int], None] | None = None
) -> _Stored:
    """Compute ``run``'s lines (a restatement: their differences) and store them."""
    # A restatement corrects its period as it was settled, even a month of season rules
    # approved before such months were refused; a first version is checked.
    rules = (
        rules_for(run.program, run.period_start)
        if run.restates_id is not None
        else rules_for_period(run.program, run.period_kind, run.period_start)
    )
    calculation = calculate_lines(run, rules, on_progress=on_progress)
    notes = list(calculation.notes)
    lines: Iterable[tuple[LineItem, LineSource]] = calculation.lines
    if run.restates_id is not None:
        computed = list(calculation.lines)
        approved, approved_sources = approved_lines(run)
        sources = {**approved_sources, **{item.key: source for item, source in computed}}
        lines = sorted(
            (
                (item, sources[item.key])
                for item in difference(approved, [item for item, _ in computed])
                # A line already reversed to $0 has nothing left to reverse.
                if not (item.details.get("restatement") == "reversal" and item.amount == 0)
            ),
            key=storage_order,
        )
        if not lines:
            several = approved_versions_before(run) > 1
            notes.insert(
                0,
                f"No differences from the approved version{'s' if several else ''}: "
                "this restatement changes nothing.",
            )
    return _store_lines(
        run, lines, notes=_notes(calculation, notes), rules=calculation.rules.to_dict()
    )


def _notes(calculation: Calculation, notes: list[str]) -> str:
    rules = calculation.rules
    header = (
        f"Payment rules {rules.version or 'unnamed'} in effect from "
        f"{'the start' if rules.effective_from == dt.date.min else rules.effective_from}."
    )
    return "\n".join([header, *notes])


def _locked(run: SettlementRun) -> SettlementRun:
    """``run`` read again under its row lock; ``SettlementError`` when it was discarded
    meanwhile (a page or a worker still holding it), whether its row is kept on record or
    gone (:func:`discarded_refusal`)."""
    locked = SettlementRun.objects.select_for_update().select_related("program").filter(pk=run.pk)
    current = locked.first()
    if current is None or current.status == SettlementRun.Status.DISCARDED:
        raise discarded_refusal(run.pk, current)
    return current


def approved_versions_before(run: SettlementRun) -> int:
    """How many earlier versions of ``run``'s program and period were approved (approved,
    exported or superseded): the versions a restatement's differences are taken against.
    Not ``run.version - 1``: discarded versions keep their numbers."""
    return SettlementRun.objects.filter(
        program_id=run.program_id,
        period_start=run.period_start,
        period_end=run.period_end,
        version__lt=run.version,
        status__in=SettlementRun.LOCKED_STATUSES,
    ).count()


def approved_lines(run: SettlementRun) -> tuple[list[LineItem], dict[LineKey, LineSource]]:
    """The lines of every approved earlier version of ``run``'s program and period, summed
    per line key (kind, site, event, reference), as the calculator's ``LineItem``; and
    the rows each key points at (from its latest line). Keys summing to nothing are kept
    (with $0), so that ``difference`` sees them."""
    rows = (
        SettlementLine.objects.filter(
            run__program_id=run.program_id,
            run__period_start=run.period_start,
            run__period_end=run.period_end,
            run__version__lt=run.version,
            run__status__in=SettlementRun.LOCKED_STATUSES,
        )
        .order_by("run__version", "sequence")
        .values_list(
            "kind", "site_id", "event_id", "reference", "quantity", "unit", "rate", "amount",
            "explanation", "organization_id", "event__starts_at", "performance_id",
            "installment_id",
        )
    )  # fmt: skip
    summed: dict[LineKey, LineItem] = {}
    sources: dict[LineKey, LineSource] = {}
    for (
        kind, site_id, event_id, reference, quantity, unit, rate, amount, explanation,
        organization_id, event_start, performance_id, installment_id,
    ) in rows:  # fmt: skip
        key = line_key(kind, site_id, event_id, reference)
        previous = summed.get(key)
        if previous is None:
            summed[key] = LineItem(
                kind=kind, site_key=site_id, event_key=event_id, reference=reference or None,
                quantity=quantity, unit=unit, rate=rate, amount=amount, explanation=explanation,
            )  # fmt: skip
        else:
            total = previous.amount + amount
            summed[key] = dataclasses.replace(
                previous,
                quantity=previous.quantity + quantity,
                rate=rate,
                amount=total,
                explanation=f"{previous.explanation.split(' [as restated')[0]} "
                f"[as restated to ${total:,.2f}]",
            )
        sources[key] = LineSource(
            organization_id=organization_id,
            site_id=site_id,
            event_id=event_id,
            event_start=event_start,
            performance_id=performance_id,
            installment_id=installment_id,
        )
    return list(summed.values()), sources


#: The columns a run's new line is stored with, in the order of :func:`_line_rows`' rows.
_LINE_FIELDS = (
    "run_id",
    "sequence",
    "organization_id",
    "site_id",
    "kind",
    "event_id",
    "performance_id",
    "installment_id",
    "reference",
    "quantity",
    "unit",
    "rate",
    "amount",
    "explanation",
    "locked",
    "details",
)


@dataclasses.dataclass(frozen=True)
class _Stored:
    """What the calculation needs back from the lines it stored."""

    count: int
    total: Decimal
    dispute_lines: dict[int, int]  # dispute id -> id of the adjustment line carrying it
    notes: str
    rules: dict[str, Any]


@dataclasses.dataclass
class _Tally:
    """Count and total of the lines stored so far."""

    count: int = 0
    total: Decimal = Decimal("0.00")
    carries_disputes: bool = False


def _store_lines(
    run: SettlementRun,
    lines: Iterable[tuple[LineItem, LineSource]],
    *,
    notes: str,
    rules: dict[str, Any],
) -> _Stored:
    """Store ``run``'s lines (the run has no other lines), given in storage order, as
    they come (the first ones are on their way to the database while the next are being
    computed); see :func:`settlement_run_calculate`."""
    tally = _Tally()
    _insert_lines(run.pk, lines, tally)
    carried = (
        SettlementLine.objects.filter(run_id=run.pk, reference__startswith="dispute:")
        .order_by()
        .values_list("reference", "pk")
        if tally.carries_disputes
        else ()
    )
    return _Stored(
        count=tally.count,
        total=tally.total,
        dispute_lines={int(reference.removeprefix("dispute:")): pk for reference, pk in carried},
        notes=notes,
        rules=rules,
    )


def _line_rows(
    run_id: int, lines: Iterable[tuple[LineItem, LineSource]], tally: _Tally
) -> Iterator[tuple]:
    """Each line as a tuple of :data:`_LINE_FIELDS`, numbered from 1; counted and summed
    into ``tally`` as they go."""
    sequence, total = 0, Decimal("0.00")
    try:
        for item, source in lines:
            sequence += 1
            total += item.amount
            details = item.details
            if source.dispute_id is not None:
                details = {**details, "dispute_id": source.dispute_id}
                tally.carries_disputes = True
            yield (
                run_id,
                sequence,
                source.organization_id,
                source.site_id,
                item.kind,
                source.event_id,
                source.performance_id,
                source.installment_id,
                str(item.reference or ""),
                item.quantity.quantize(_SIX, ROUND_HALF_UP),
                item.unit,
                item.rate.quantize(_SIX, ROUND_HALF_UP),
                item.amount,
                _explanation(item.explanation, source.note),
                False,
                details,
            )
    finally:
        tally.count, tally.total = sequence, total


def _explanation(explanation: str, note: str) -> str:
    """A line's explanation as stored: the calculator's formula, then the measurement
    behind an event line (``note``): "... = $80.00. Baseline ..."."""
    if not note:
        return explanation.strip()
    head = explanation.strip()
    if head and head[-1] not in ".:;":
        return f"{head}. {note.strip()}"
    return _sentences(explanation, note)


def _insert_lines(run_id: int, lines: Iterable[tuple[LineItem, LineSource]], tally: _Tally) -> None:
    """Insert ``run_id``'s new lines, given in storage order, numbered from 1 (the
    columns of :data:`_LINE_FIELDS`, see :func:`_line_rows`); counted and summed into
    ``tally`` as they go.

    On PostgreSQL one COPY of text rows written here, sent in chunks as ``lines`` yields
    them (PostgreSQL stores a chunk while the next one is computed): Django's bulk insert
    sends each column as an array, and psycopg escapes every quote of every line's JSON
    details in Python to write an array literal, and even psycopg's own COPY rows spent a
    third of a season run's client time dumping value by value. Each text row is written
    straight from the line and its source (no row tuple in between: a season run writes
    ~11,000). The JSON is compact (the column is ``jsonb``: what is stored does not
    depend on the spacing). Elsewhere (SQLite), ``bulk_create`` of :func:`_line_rows`.
    """
    database = connections[router.db_for_write(SettlementLine)]
    if database.vendor != "postgresql":
        SettlementLine.objects.bulk_create(
            [
                SettlementLine(**dict(zip(_LINE_FIELDS, row, strict=True)))
                for row in _line_rows(run_id, lines, tally)
            ],
            batch_size=2000,
        )
        return
    meta = SettlementLine._meta
    fields = {field.attname: field for field in meta.concrete_fields}
    columns = ", ".join(database.ops.quote_name(fields[name].column) for name in _LINE_FIELDS)
    table = database.ops.quote_name(meta.db_table)
    dumps = _json_dumps(fields["details"].encoder or json.JSONEncoder)
    escape, null, explained = copy_text, "\\N", _explanation
    # Most lines share their rate (one Decimal of the rules): written once.
    last_rate, rate_text = None, ""
    sequence, total = 0, Decimal("0.00")
    try:
        with (
            database.cursor() as cursor,
            cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            chunk: list[str] = []
            for item, source in lines:
                sequence += 1
                amount = item.amount
                total += amount
                (
                    organization_id, site_id, event_id, _, performance_id, installment_id,
                    dispute_id, note,
                ) = source  # fmt: skip
                details = item.details
                if dispute_id is not None:
                    details = {**details, "dispute_id": dispute_id}
                    tally.carries_disputes = True
                rate = item.rate
                if rate is not last_rate:
                    last_rate, rate_text = rate, rate.quantize(_SIX, ROUND_HALF_UP)
                reference = item.reference
                # One text row; ids, Decimals and booleans need no escaping, and neither do
                # kinds and units (fixed words). Decimals by str() (``!s``): the same text as
                # format() writes without a spec, at a third of the cost.
                chunk.append(
                    f"{run_id}\t{sequence}\t{organization_id}\t"
                    f"{null if site_id is None else site_id}\t{item.kind}\t"
                    f"{null if event_id is None else event_id}\t"
                    f"{null if performance_id is None else performance_id}\t"
                    f"{null if installment_id is None else installment_id}\t"
                    f"{escape(str(reference)) if reference else ''}\t"
                    f"{item.quantity.quantize(_SIX, ROUND_HALF_UP)!s}\t{item.unit}\t"
                    f"{rate_text!s}\t{amount!s}\t"
                    f"{escape(explained(item.explanation, note))}\tf\t{escape(dumps(details))}"
                )
                if len(chunk) == 250:
                    copy.write("\n".join(chunk) + "\n")
                    chunk = []
            if chunk:
                copy.write("\n".join(chunk) + "\n")
    finally:
        tally.count, tally.total = sequence, total


def _json_dumps(encoder_class: type[json.JSONEncoder]) -> Callable[[Any], str]:
    """Compact JSON of a value, as ``encoder_class(separators=(",", ":")).encode`` writes it.

    The encoder's ``encode`` builds a new C encoder for every value it writes, which cost
    as much as the writing for the small details of a line: here it is built once.
    """
    encoder = encoder_class(separators=(",", ":"))
    make = json.encoder.c_make_encoder
    plain = (encoder_class.encode, encoder_class.iterencode) == (
        json.JSONEncoder.encode,
        json.JSONEncoder.iterencode,
    )
    if make is None or not plain:  # pragma: no cover - pure Python json, or own encoding
        return encoder.encode
    write = make(
        None,  # no circular-reference markers: details are plain trees
        encoder.default,
        json.encoder.encode_basestring_ascii,
        None,
        encoder.key_separator,
        encoder.item_separator,
        encoder.sort_keys,
        encoder.skipkeys,
        encoder.allow_nan,
    )
    return lambda value: "".join(write(value, 0))


def settlement_run_approve(*, run: SettlementRun, by: AbstractBaseUser) -> SettlementRun:
    """Approve a calculated run: lock every line and record who they bill (the program's
    name, each organization's and site's billing identities: ``billed_parties``, see
    ``settlements.runs.parties``); a restated earlier version is superseded.

    Four eyes: ``by`` must be Billing or Program managers and not the user who calculated
    it (``PermissionDenied`` otherwise). Raises ``SettlementError`` for a run that is not
    calculated (discarded included), and for a restatement without lines (it changes
    nothing: discard it).
    Accepted disputes the run carries get a ``carried`` history entry.
    """
    require_settlement_staff(by)
    with transaction.atomic():
        run = _locked(run)
        if run.status != SettlementRun.Status.CALCULATED:
            raise SettlementError(
                f"Run {run.pk} is {run.status}; only a calculated run can be approved."
            )
        if run.restates_id is not None and run.line_count == 0:
            # Approving it would supersede the approved version with nothing, and export
            # an empty file.
            raise SettlementError(
                f"Version {run.version} (run {run.pk}) has no differences from the approved "
                "version: there is nothing to approve; discard it."
            )
        if run.calculated_by_id == by.pk:
            raise PermissionDenied(
                "Four eyes: the run must be approved by someone other than the person who "
                f"calculated it ({by})."
            )
        now = timezone.now()
        run.lines.update(locked=True)
        # The lines are approved for the accounts as they stand now; billing and the
        # statements read this record from here on, whatever the rows become.
        billed = billed_parties_read(run).to_dict()
        changed = SettlementRun.objects.filter(
            pk=run.pk, status=SettlementRun.Status.CALCULATED
        ).update(
            status=SettlementRun.Status.APPROVED,
            approved_by=by,
            approved_at=now,
            billed_parties=billed,
        )
        if not changed:  # pragma: no cover - the row lock makes this unreachable
            raise SettlementError(f"Run {run.pk} changed meanwhile; reload it.")
        if run.restates_id is not None:
            SettlementRun.objects.filter(pk=run.restates_id, status__in=APPROVED_STATUSES).update(
                status=SettlementRun.Status.SUPERSEDED
            )
        DisputeEntry.objects.bulk_create(
            DisputeEntry(
                dispute=dispute,
                author=by,
                action="carried",
                text=f"Paid as line {dispute.adjustment_line_id} of run {run.pk} v{run.version}.",
            )
            for dispute in Dispute.objects.filter(adjustment_line__run=run)
        )
        run.refresh_from_db()
    return run


class _NothingToRestate(Exception):
    pass


def settlement_run_restate(*, run: SettlementRun, by: AbstractBaseUser) -> SettlementRun | None:
    """Restate the last approved version of ``run``'s program and period.

    Creates the next version (``restates`` = the last approved version; numbered by
    :func:`next_version`) and calculates it:
    only the differences against the approved lines (see :func:`settlement_run_calculate`).
    Returns the calculated restatement, to be approved by someone else; returns ``None``
    and leaves nothing behind when nothing changed. Raises ``PermissionDenied`` unless
    ``by`` is Billing or Program managers, and ``SettlementError`` when the period has no
    approved version yet or a newer version is still unfinished (see
    :func:`restatement_create`). The console restates in the background instead
    (``settlements.runs.background.settlement_run_restatement_request``).
    """
    require_settlement_staff(by)
    try:
        with transaction.atomic():
            restatement = restatement_create(run=run, by=by)
            restatement = settlement_run_calculate(run=restatement, by=by)
            if restatement.line_count == 0:
                raise _NothingToRestate
    except _NothingToRestate:
        return None
    return restatement


def restatement_create(
    *, run: SettlementRun, by: AbstractBaseUser, calculating_since: dt.datetime | None = None
) -> SettlementRun:
    """Create the next version of ``run``'s program and period, restating its last
    approved version: a draft, or, with ``calculating_since``, ``calculating`` since then
    (claimed for a worker, as ``settlement_run_calculation_request`` claims a run). Not
    calculated. Its number is :func:`next_version`'s: a discarded v3 is followed by v4.

    Within the caller's transaction, which must be open: the program's row is locked
    until it ends, so two restatements of one period cannot both pass the checks. The
    caller checks ``by``. Raises ``SettlementError`` when ``run`` was discarded, when the
    latest version of the period (discarded ones do not count) is still unfinished
    (draft, calculated or calculating: finish or discard it first) or when no version of
    the period is approved yet.
    """
    Program.objects.select_for_update().filter(pk=run.program_id).first()
    current = SettlementRun.objects.filter(pk=run.pk).first()
    if current is None or current.status == SettlementRun.Status.DISCARDED:
        raise discarded_refusal(run.pk, current)
    versions = (
        SettlementRun.objects.filter(
            program_id=run.program_id, period_start=run.period_start, period_end=run.period_end
        )
        .exclude(status=SettlementRun.Status.DISCARDED)
        .order_by("-version")
    )
    latest = versions.first()
    assert latest is not None  # ``run`` itself at least
    if latest.status in UNFINISHED_STATUSES:
        raise SettlementError(
            f"Version {latest.version} (run {latest.pk}) of this period is still "
            f"{latest.status}; finish it before restating, or discard it if it is not wanted."
        )
    approved = versions.filter(status__in=APPROVED_STATUSES).first()
    if approved is None:
        raise SettlementError(
            f"{run.program} has no approved version for {run.period_start} to "
            f"{run.period_end}; approve it before restating."
        )
    return SettlementRun.objects.create(
        program_id=run.program_id,
        period_kind=approved.period_kind,
        period_start=approved.period_start,
        period_end=approved.period_end,
        version=next_version(run.program_id, approved.period_start, approved.period_end),
        restates=approved,
        created_by=by,
        status=(
            SettlementRun.Status.DRAFT
            if calculating_since is None
            else SettlementRun.Status.CALCULATING
        ),
        calculation_started_at=calculating_since,
    )


def settlement_run_discard(
    *, run: SettlementRun, by: AbstractBaseUser, reason: str
) -> SettlementRun:
    """Discard a draft or calculated run: a version nobody will approve (a restatement
    that changes nothing, one started by mistake, a draft of the wrong period).

    Its lines are deleted, and the accepted disputes they carried are carried by none
    again, as when a run is recalculated: the program's next calculated run carries them.
    The run's row stays, ``discarded``, as the record that the version existed: who
    discarded it (``by``), when, and why (``reason``, stripped), with the total and line
    count it had. Its number is never given to another run of the period
    (:func:`next_version`). Returns the run as stored; ``run.restates`` is the approved
    version that stands for the period (``None`` for a first version: the period is then
    not settled at all).

    The run's row is locked first, so an approval or a worker's claim of the same run
    waits and then finds it discarded (and a discard that waited finds it approved, or
    calculating, and refuses). Raises ``PermissionDenied`` unless ``by`` is Billing or
    Program managers, and ``SettlementError`` for a blank or too long ``reason``, a run
    already discarded, a run that is approved, exported or superseded (its lines are
    locked: restate it instead), or being calculated in the background, unless it is
    :func:`calculation_stale` and no worker holds it right now.
    """
    from settlements.runs.background import calculation_lock_try

    require_settlement_staff(by)
    reason = reason.strip()
    if not reason:
        raise SettlementError(
            "Say why the run is discarded: the reason stays on record with the version."
        )
    if len(reason) > SettlementRun.DISCARD_REASON_MAX:
        raise SettlementError(
            f"Keep the reason to {SettlementRun.DISCARD_REASON_MAX} characters "
            f"(it has {len(reason)})."
        )
    with transaction.atomic():
        run = _locked(run)
        if run.status == SettlementRun.Status.CALCULATING and (
            not calculation_stale(run) or not calculation_lock_try(run.pk)
        ):
            raise SettlementError(f"{being_calculated(run)} Discard it once it is done.")
        if run.status not in UNFINISHED_STATUSES:
            raise SettlementError(
                f"Run {run.pk} is {run.status}: its lines are locked and stay; restate it to "
                "correct them."
            )
        # As recalculating does (calculate_held_run): the disputes the lines carried are
        # carried by none again.
        Dispute.objects.filter(adjustment_line__run=run).update(adjustment_line=None)
        run.lines.all().delete()
        changed = SettlementRun.objects.filter(pk=run.pk, status=run.status).update(
            status=SettlementRun.Status.DISCARDED,
            discarded_by=by,
            discarded_at=timezone.now(),
            discard_reason=reason,
        )
        if not changed:  # pragma: no cover - the row lock makes this unreachable
            raise SettlementError(f"Run {run.pk} changed meanwhile; reload it.")
        run.refresh_from_db()
    return run


def _sentences(*parts: str) -> str:
    """Join explanation parts as sentences: "= $80.00" and "Baseline ..." read
    "= $80.00. Baseline ..."."""
    kept = [part.strip() for part in parts if part and part.strip()]
    return " ".join(
        part if index == len(kept) - 1 or part.endswith((".", ":", ";")) else part + "."
        for index, part in enumerate(kept)
    )
