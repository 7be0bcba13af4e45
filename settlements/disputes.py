"""Disputes of settlement lines: a participant challenges a line, a program manager decides.

Services (writes) are one transaction each and write a ``DisputeEntry`` for every step,
so the history both sides read is complete. They raise ``ValidationError`` with messages
meant for the person who asked, ``PermissionDenied`` when the user's role may not do
this, and ``Http404`` (through ``dr_platform.selectors.require_role``) when the line
belongs to an organization the participant is not a member of, the same answer as for a
line that does not exist.

Disputability is per line: a line of a locked run (approved, exported or superseded) may
be disputed unless a later locked version of its period holds a line with the same key
(``SettlementLine.key``, what restatements match lines by): that later line carries the
corrected amount, and it is the one to dispute (:func:`lines_corrected_later`). A line a
restatement left unchanged exists only in the earlier version, so it stays disputable
there even once that version is superseded.

An accepted dispute only records the adjustment: the next settlement run of the program
picks up accepted disputes whose ``adjustment_line`` is empty and carries each amount
into an adjustment line (``settlements.runs.calculation``), which it then links here.

Selectors (reads) at the end: the later corrections of lines, the manager's queue and one
dispute for a participant.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from dr_platform.models import Membership
from dr_platform.roles import PROGRAM_MANAGERS
from dr_platform.selectors import get_for_member, require_role, staff_roles
from settlements.models import Dispute, DisputeEntry, SettlementLine, SettlementRun

#: Participant roles that may raise and comment on disputes (viewers only read).
DISPUTING_ROLES = (Membership.Role.ADMIN, Membership.Role.OPERATOR)
#: Run statuses whose lines may be disputed: those whose lines never change again. A line of
#: a superseded run is refused only when a later version corrected it
#: (:func:`lines_corrected_later`).
DISPUTABLE_STATUSES = tuple(SettlementRun.LOCKED_STATUSES)
CENT = Decimal("0.01")
MAX_TEXT = 4000


class Action:
    """``DisputeEntry.action`` values."""

    RAISED = "raised"
    COMMENT = "comment"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


def is_program_manager(user: AbstractBaseUser) -> bool:
    """True when ``user`` is active staff in the Program managers group (or a superuser)."""
    return bool(user.is_active) and PROGRAM_MANAGERS in staff_roles(user)


def _require_manager(user: AbstractBaseUser) -> None:
    if not is_program_manager(user):
        raise PermissionDenied("Only program managers decide disputes.")


def _text(value: str, field: str, what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise ValidationError({field: f"Please give {what}."})
    if len(text) > MAX_TEXT:
        raise ValidationError({field: f"Please keep it under {MAX_TEXT} characters."})
    return text


def _cents(value: Decimal | int | str | None, field: str) -> Decimal | None:
    """``value`` as a Decimal of whole cents; None stays None."""
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValidationError({field: "Enter an amount in dollars, e.g. 1250.00."}) from None
    if not amount.is_finite():
        raise ValidationError({field: "Enter an amount in dollars, e.g. 1250.00."})
    if amount != amount.quantize(CENT):
        raise ValidationError({field: "Enter the amount in whole cents (two decimal places)."})
    if abs(amount) >= Decimal("1e12"):
        raise ValidationError({field: "That amount is too large."})
    return amount.quantize(CENT)


def _entry(dispute: Dispute, author: AbstractBaseUser, action: str, text: str) -> DisputeEntry:
    return DisputeEntry.objects.create(dispute=dispute, author=author, action=action, text=text)


# --- services -------------------------------------------------------------------------------


def dispute_raise(
    *,
    line: SettlementLine,
    by: AbstractBaseUser,
    comment: str,
    claimed_amount: Decimal | int | str | None = None,
) -> Dispute:
    """Open a dispute of ``line`` for its organization, with the participant's comment.

    ``by`` must be an admin or operator of the line's organization (Http404 when not a
    member at all, PermissionDenied for a viewer). Only lines of approved, exported or
    superseded runs may be disputed, and not a line that a later approved version
    corrected (a line with the same key there: that line is the one to dispute); a line
    has at most one open dispute (ValidationError otherwise, naming the later version).
    ``claimed_amount`` ($, whole cents) is what the participant believes the line should
    be, if they say. Returns the new open dispute, its "raised" entry written.
    """
    require_role(by, line.organization, DISPUTING_ROLES)
    text = _text(comment, "comment", "the reason you dispute this line")
    claimed = _cents(claimed_amount, "claimed_amount")
    with transaction.atomic():
        # The line's row lock serializes two raises of the same line (PostgreSQL); the
        # check below then sees the first one's dispute.
        line = SettlementLine.objects.select_for_update().select_related("run").get(pk=line.pk)
        if line.run.status not in DISPUTABLE_STATUSES:
            raise ValidationError("Only lines of an approved statement can be disputed.")
        later = lines_corrected_later(line.run, [line]).get(line.pk)
        if later is not None:
            raise ValidationError(
                f"Version {later.run.version} of this statement corrected this line (its line "
                f"{later.sequence}); dispute that line instead, it holds the corrected amount."
            )
        if Dispute.objects.filter(line=line, status=Dispute.Status.OPEN).exists():
            raise ValidationError(
                "This line already has an open dispute; add a comment to it instead."
            )
        dispute = Dispute.objects.create(
            line=line,
            organization_id=line.organization_id,
            raised_by=by,
            comment=text,
            claimed_amount=claimed,
        )
        entry_text = text if claimed is None else f"{text}\n\nClaimed amount: ${claimed:,.2f}"
        _entry(dispute, by, Action.RAISED, entry_text)
    return dispute


def dispute_comment(*, dispute: Dispute, by: AbstractBaseUser, text: str) -> DisputeEntry:
    """Add ``text`` to ``dispute``'s history, from either side.

    The participant side is an admin or operator of the dispute's organization (Http404
    for non-members, PermissionDenied for viewers); the utility side a program manager
    (PermissionDenied for other staff). Comments are allowed after the decision too, so a
    question about it has a place. Returns the new entry.
    """
    if by.is_staff:
        _require_manager(by)
    else:
        require_role(by, dispute.organization, DISPUTING_ROLES)
    body = _text(text, "text", "a comment")
    with transaction.atomic():
        return _entry(dispute, by, Action.COMMENT, body)


def dispute_accept(
    *,
    dispute: Dispute,
    by: AbstractBaseUser,
    adjustment_amount: Decimal | int | str,
    reason: str,
) -> Dispute:
    """Accept an open dispute: record ``adjustment_amount`` ($, whole cents, not zero;
    positive pays the participant more, negative recovers money) and ``reason``.

    Program managers only (PermissionDenied). ValidationError when the amount or reason is
    missing or the dispute was already decided (compare-and-set: of two managers deciding
    at once, one wins). ``adjustment_line`` stays empty: the program's next settlement run
    carries the amount as an adjustment line. Returns the dispute as stored.
    """
    _require_manager(by)
    amount = _cents(adjustment_amount, "adjustment_amount")
    if amount is None:
        raise ValidationError({"adjustment_amount": "Enter the adjustment in dollars."})
    if amount == 0:
        raise ValidationError(
            {"adjustment_amount": "An accepted dispute adjusts the line; enter a non-zero amount."}
        )
    text = _text(reason, "reason", "the reason for accepting")
    return _decide(
        dispute,
        by,
        Dispute.Status.ACCEPTED,
        text,
        adjustment_amount=amount,
        entry_text=f"{text}\n\nAdjustment: {_signed_dollars(amount)}, carried into the next "
        "settlement run.",
    )


def dispute_reject(*, dispute: Dispute, by: AbstractBaseUser, reason: str) -> Dispute:
    """Reject an open dispute with ``reason`` (required: the participant reads it).

    Program managers only (PermissionDenied); ValidationError without a reason or when the
    dispute was already decided. Returns the dispute as stored.
    """
    _require_manager(by)
    text = _text(reason, "reason", "the reason for rejecting, which the participant will read")
    return _decide(dispute, by, Dispute.Status.REJECTED, text, entry_text=text)


def _decide(
    dispute: Dispute,
    by: AbstractBaseUser,
    status: str,
    reason: str,
    *,
    entry_text: str,
    adjustment_amount: Decimal | None = None,
) -> Dispute:
    now = timezone.now()
    with transaction.atomic():
        changed = Dispute.objects.filter(pk=dispute.pk, status=Dispute.Status.OPEN).update(
            status=status,
            decided_by=by,
            decided_at=now,
            decision_reason=reason,
            adjustment_amount=adjustment_amount,
        )
        if not changed:
            current = Dispute.objects.get(pk=dispute.pk)
            raise ValidationError(
                f"This dispute was already {current.get_status_display().lower()}; "
                "reload the page to see the decision."
            )
        action = Action.ACCEPTED if status == Dispute.Status.ACCEPTED else Action.REJECTED
        _entry(dispute, by, action, entry_text)
    dispute.refresh_from_db()
    return dispute


def _signed_dollars(amount: Decimal) -> str:
    sign = "-" if amount < 0 else "+"
    return f"{sign}${abs(amount):,.2f}"


# --- selectors ------------------------------------------------------------------------------


def lines_corrected_later(
    run: SettlementRun, lines: list[SettlementLine]
) -> dict[int, SettlementLine]:
    """For each of ``run``'s ``lines`` that a later locked version of the run's program and
    period holds a line with the same key for (``SettlementLine.key``: a restatement's
    delta or reversal of it), the latest such line (its ``run`` fetched), by the earlier
    line's id. Lines without a later correction are not in the result. A later version
    still in draft or under review does not count: its lines may change yet. One query.
    """
    if not lines:
        return {}
    wanted = {line.key: line.pk for line in lines}
    site_ids = {line.site_id for line in lines}
    sites = Q(site_id__in=site_ids - {None})
    if None in site_ids:
        sites |= Q(site__isnull=True)
    later_lines = (
        SettlementLine.objects.filter(
            sites,
            run__program_id=run.program_id,
            run__period_start=run.period_start,
            run__period_end=run.period_end,
            run__version__gt=run.version,
            run__status__in=SettlementRun.LOCKED_STATUSES,
            kind__in={line.kind for line in lines},
        )
        .select_related("run")
        .order_by("run__version", "sequence")
    )
    corrected: dict[int, SettlementLine] = {}
    for later in later_lines:
        line_id = wanted.get(later.key)
        if line_id is not None:
            corrected[line_id] = later  # in version order: the latest one stays
    return corrected


def _with_history(disputes: QuerySet[Dispute]) -> QuerySet[Dispute]:
    return disputes.select_related("raised_by", "decided_by").prefetch_related(
        Prefetch("entries", queryset=DisputeEntry.objects.select_related("author"))
    )


def disputes_for_lines(lines: list[SettlementLine]) -> dict[int, list[Dispute]]:
    """Each line's disputes with their history (newest dispute first), by line id; two
    queries whatever the number of lines."""
    by_line: dict[int, list[Dispute]] = {line.pk: [] for line in lines}
    for dispute in _with_history(Dispute.objects.filter(line__in=lines)):
        by_line[dispute.line_id].append(dispute)
    return by_line


def dispute_queue() -> QuerySet[Dispute]:
    """Open disputes, oldest first (the order a manager works through them), with their
    line, run, organization, site and history."""
    return _with_history(
        Dispute.objects.filter(status=Dispute.Status.OPEN)
        .select_related("line__run__program", "line__site", "line__event", "organization")
        .order_by("created_at", "pk")
    )


def disputes_recently_decided(limit: int = 20) -> QuerySet[Dispute]:
    """The latest decided disputes, newest decision first."""
    return (
        Dispute.objects.exclude(status=Dispute.Status.OPEN)
        .select_related("line__run__program", "organization", "decided_by")
        .order_by("-decided_at", "-pk")[:limit]
    )


def dispute_for_member(user: AbstractBaseUser, organization_id: int, dispute_id: int) -> Dispute:
    """The dispute ``dispute_id`` of organization ``organization_id`` if ``user`` is one of
    its members; Http404 otherwise (missing and not theirs answer the same)."""
    return get_for_member(
        Dispute.objects.select_related("line__run", "organization"),
        user,
        pk=dispute_id,
        organization_id=organization_id,
    )
