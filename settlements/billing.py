"""The billing CSV of an approved settlement run, and the record of each hand-over.

The file (DESIGN.md, "Settlement export"): UTF-8 without a byte order mark, comma
separated, ``\\n`` line endings (also after the last row), a header row of
:data:`COLUMNS`, then one row per settlement line in the run's ``sequence`` order. Fields
are quoted only when they contain a comma, a quote or a line break. Amounts have exactly
two decimals (``-12.50``); quantities and rates are plain decimals without exponent or
trailing zeros (``120``, ``0.125``); dates are ISO (``2026-07-01``), the event start is
UTC ISO with a ``Z`` (``2026-07-15T18:00:00Z``). The file holds no timestamp or user, and
names the program, organizations and sites as the run's approval recorded them
(``settlements.runs.parties``), not as they stand now, so exporting the same run twice
gives byte-identical files (same sha256) that bill the accounts the lines were approved
for. A restatement's file holds only its difference lines.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from events.models import Event
from settlements.models import BillingExport, SettlementLine, SettlementRun
from settlements.runs.access import require_settlement_staff
from settlements.runs.errors import SettlementError
from settlements.runs.parties import BilledParties, billed_parties
from settlements.runs.services import discarded_refusal

CURRENCY = "USD"

#: The CSV header, in order; README.md ("Settlements and billing export") explains each.
COLUMNS = (
    "run_id",
    "run_version",
    "restates_run_id",
    "program",
    "period_kind",
    "period_start",
    "period_end",
    "billing_account",
    "organization",
    "site",
    "service_account",
    "line_id",
    "line_sequence",
    "line_kind",
    "event_id",
    "event_start",
    "reference",
    "quantity",
    "unit",
    "rate",
    "amount",
    "currency",
)

#: Statuses whose lines are locked and go to billing. A superseded version is exportable
#: because its restatement holds only the differences: a version approved and then
#: restated before anyone exported it would otherwise never reach billing at all.
EXPORTABLE = SettlementRun.LOCKED_STATUSES


def _plain(value: Decimal) -> str:
    """A Decimal without exponent or trailing zeros: ``120``, ``0.125``, ``-3.5``."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


_CENT = Decimal("0.01")


def _amount(value: Decimal) -> str:
    return f"{value.quantize(_CENT):.2f}"


def _utc(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


#: What a CSV row reads of each line, in order (one query of the run's lines; no model
#: instances, and not the lines' explanations or details). The organizations and sites
#: come from the run's approval record; the few events are read and formatted once each,
#: not once per line.
LINE_COLUMNS = (
    "organization_id",
    "site_id",
    "pk",
    "sequence",
    "kind",
    "event_id",
    "reference",
    "quantity",
    "unit",
    "rate",
    "amount",
)


def billing_csv(run: SettlementRun, parties: BilledParties | None = None) -> tuple[bytes, int]:
    """The run's billing CSV (bytes, see the module docstring) and its number of data rows.

    Reads the run's lines and events; the program, organizations and sites are
    ``parties``, by default :func:`billed_parties` of the run (for a locked run, its
    approval record). Deterministic for a run whose lines are locked.
    """
    parties = parties or billed_parties(run)
    head = (
        run.pk,
        run.version,
        run.restates_id or "",
        parties.program,
        run.period_kind,
        run.period_start.isoformat(),
        run.period_end.isoformat(),
    )
    lines = SettlementLine.objects.filter(run=run).order_by()
    organizations = {
        pk: (party.billing_account_number, party.legal_name)
        for pk, party in parties.organizations.items()
    }
    sites = {pk: (party.name, party.service_account_number) for pk, party in parties.sites.items()}
    event_starts = {
        event_id: _utc(starts_at)
        for event_id, starts_at in Event.objects.filter(
            pk__in=lines.filter(event__isnull=False).values("event_id")
        ).values_list("pk", "starts_at")
    }
    no_site = ("", "")
    plain: dict[Decimal, str] = {}  # rates repeat from line to line
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for (
        organization_id, site_id, pk, sequence, kind, event_id, reference, quantity, unit, rate,
        amount,
    ) in lines.order_by("sequence").values_list(*LINE_COLUMNS):  # fmt: skip
        rate_text = plain.get(rate)
        if rate_text is None:
            rate_text = plain[rate] = _plain(rate)
        writer.writerow(
            (
                *head,
                *organizations[organization_id],
                *(sites[site_id] if site_id is not None else no_site),
                pk,
                sequence,
                kind,
                event_id or "",
                event_starts[event_id] if event_id else "",
                reference,
                _plain(quantity),
                unit,
                rate_text,
                _amount(amount),
                CURRENCY,
            )
        )
        count += 1
    return buffer.getvalue().encode("utf-8"), count


def billing_file_name(run: SettlementRun, parties: BilledParties | None = None) -> str:
    """``settlement-<program>-<start>-<end>-v<version>.csv`` (the same for every export),
    the program named as in ``parties`` (by default :func:`billed_parties` of the run)."""
    program = (parties or billed_parties(run)).program
    return (
        f"settlement-{slugify(program)}-{run.period_start:%Y%m%d}-"
        f"{run.period_end:%Y%m%d}-v{run.version}.csv"
    )


def billing_export_create(*, run: SettlementRun, by: AbstractBaseUser) -> BillingExport:
    """Export an approved (or already exported, or superseded) run to billing and record
    the hand-over.

    Returns the ``BillingExport`` (file bytes, sha256, row count, who, when). An approved
    run becomes ``exported``; a superseded one stays superseded. ``exported_at`` is the
    first export's time. Exporting again records another export of byte-identical
    content. Raises ``PermissionDenied`` unless ``by`` is Billing or Program managers,
    and ``SettlementError`` for a run that is not approved yet (draft or calculated) or
    was discarded (kept on record, or gone).
    """
    require_settlement_staff(by)
    with transaction.atomic():
        held = (
            SettlementRun.objects.select_for_update()
            .select_related("program")
            .filter(pk=run.pk)
            .first()
        )
        if held is None or held.status == SettlementRun.Status.DISCARDED:
            raise discarded_refusal(run.pk, held)
        run = held
        if run.status not in EXPORTABLE:
            raise SettlementError(
                f"Run {run.pk} is {run.status}; only approved runs are exported to billing."
            )
        parties = billed_parties(run)
        content, rows = billing_csv(run, parties)
        export = BillingExport.objects.create(
            run=run,
            file_name=billing_file_name(run, parties),
            content=content,
            sha256=hashlib.sha256(content).hexdigest(),
            row_count=rows,
            exported_by=by,
        )
        now = timezone.now()
        if run.status == SettlementRun.Status.APPROVED:
            SettlementRun.objects.filter(pk=run.pk, status=SettlementRun.Status.APPROVED).update(
                status=SettlementRun.Status.EXPORTED, exported_at=now
            )
        else:
            SettlementRun.objects.filter(pk=run.pk, exported_at=None).update(exported_at=now)
    return export
