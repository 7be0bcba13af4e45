"""Writes of the enrollment app. Each service is one transaction with its audit trail.

Services validate and raise ``django.core.exceptions.ValidationError`` with messages meant
for the person who asked (field-keyed where a form field is at fault), ``PermissionDenied``
when the user's role may not do this, and ``Http404`` (through the selectors) when the
object is not theirs to see.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal

import phonenumbers
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import transaction
from django.db.models import F, ProtectedError, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from dr_platform import outbound
from dr_platform.models import Membership, OutboxMessage
from dr_platform.selectors import require_role
from enrollment.constants import SNPP_DEFAULT_PORT
from enrollment.models import (
    Audit,
    ConsentRecord,
    Contact,
    ContactMethod,
    EnablementInstallment,
    EnablementMeasure,
    EnablementProject,
    Enrollment,
    EnrollmentTransition,
    FirmServiceLevel,
    Nomination,
    NominationWindow,
    Organization,
    Program,
    Site,
)

CENT = Decimal("0.01")
S = Enrollment.Status

#: Allowed enrollment status changes; anything else is refused.
ENROLLMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    S.APPLIED: frozenset({S.UNDER_REVIEW, S.APPROVED, S.REJECTED, S.WITHDRAWN}),
    S.UNDER_REVIEW: frozenset({S.APPROVED, S.REJECTED, S.WITHDRAWN}),
    S.APPROVED: frozenset({S.ACTIVE, S.WITHDRAWN, S.TERMINATED}),
    S.ACTIVE: frozenset({S.SUSPENDED, S.WITHDRAWN, S.TERMINATED}),
    S.SUSPENDED: frozenset({S.ACTIVE, S.WITHDRAWN, S.TERMINATED}),
}
REASON_REQUIRED = frozenset({S.REJECTED, S.SUSPENDED, S.TERMINATED})
# Participants may only withdraw; every other decision is a program manager's.
PARTICIPANT_TRANSITIONS = frozenset({S.WITHDRAWN})

VERIFICATION_CODE_LIFETIME = dt.timedelta(minutes=30)
VERIFICATION_RESEND_INTERVAL = dt.timedelta(seconds=60)
VERIFICATION_MAX_ATTEMPTS = 5


def money(value: Decimal) -> Decimal:
    """Round to cents, half up (the only place amounts are rounded)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _add_months(day: dt.date, months: int) -> dt.date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def months_served(*, start: dt.date, until: dt.date) -> int:
    """Whole months elapsed from ``start`` to ``until`` (0 when ``until`` is earlier).

    A month is served on reaching the same day of the month as ``start``, clamped to the
    month's last day: from January 31, February 28 (29 in a leap year) completes the first
    month and March 31 the second.
    """
    months = (until.year - start.year) * 12 + (until.month - start.month)
    if months > 0 and _add_months(start, months) > until:
        months -= 1
    return max(months, 0)


def _require_manager(user: AbstractBaseUser) -> None:
    if not (user.is_active and user.is_staff and user.has_perm("enrollment.change_enrollment")):
        raise PermissionDenied("Only program managers make enrollment decisions.")


# --- enrollment ---------------------------------------------------------------------------


def commitment_errors(*, program: Program, site: Site, committed_kw: Decimal) -> list[str]:
    """Return why ``committed_kw`` cannot be committed for ``site`` in ``program`` (or [])."""
    errors = []
    if committed_kw is None or committed_kw <= 0:
        return ["Committed kW must be greater than zero."]
    if committed_kw < program.min_committed_kw:
        errors.append(
            f"{site.name}: {committed_kw} kW is below the program minimum of "
            f"{program.min_committed_kw} kW."
        )
    if program.audit_required and site.audited_curtailable_kw is None:
        errors.append(
            f"{site.name}: this program requires a completed audit before you can apply; "
            "ask your account manager to schedule one."
        )
    elif site.audited_curtailable_kw is not None and committed_kw > site.audited_curtailable_kw:
        errors.append(
            f"{site.name}: {committed_kw} kW is above the audited curtailable load of "
            f"{site.audited_curtailable_kw} kW."
        )
    return errors


def enrollment_apply(
    *,
    user: AbstractBaseUser,
    organization: Organization,
    program: Program,
    commitments: dict[Site, Decimal],
    accepted_terms_version: str | None,
    ip_address: str | None,
    user_agent: str,
) -> list[Enrollment]:
    """Apply to enroll sites of ``organization`` in ``program`` with their committed kW.

    Creates, per site, an Enrollment in status "applied", its first transition, its first
    nomination and a consent record (user, terms version and digest, time, IP, user agent),
    all or nothing. Only an organization admin may apply.
    """
    require_role(user, organization, [Membership.Role.ADMIN])
    errors: list[str] = []
    if not program.is_open:
        errors.append(f"{program.name} is not accepting applications.")
    if accepted_terms_version != program.terms_version:
        errors.append(
            f"Please read and accept the program terms (version {program.terms_version}) to apply."
        )
    if not commitments:
        errors.append("Choose at least one site.")
    for site, committed_kw in commitments.items():
        if site.organization_id != organization.pk:
            raise PermissionDenied("A site of another organization cannot be enrolled here.")
        errors.extend(commitment_errors(program=program, site=site, committed_kw=committed_kw))
        open_enrollments = Enrollment.objects.filter(site=site, status__in=Enrollment.OPEN_STATUSES)
        if open_enrollments.filter(program=program).exists():
            errors.append(f"{site.name} already has an open enrollment in {program.name}.")
        elif program.exclusive:
            clash = open_enrollments.filter(program__exclusive=True).select_related("program")
            for other in clash:
                errors.append(
                    f"{site.name} is enrolled in {other.program.name}; the two programs may "
                    "not be combined."
                )
    if errors:
        raise ValidationError(errors)

    now = timezone.now()
    terms_digest = hashlib.sha256(program.terms_text.encode()).hexdigest()
    enrollments = []
    with transaction.atomic():
        for site, committed_kw in commitments.items():
            enrollment = Enrollment.objects.create(
                site=site, program=program, committed_kw=committed_kw, applied_by=user
            )
            EnrollmentTransition.objects.create(
                enrollment=enrollment, from_status="", to_status=S.APPLIED, by=user
            )
            Nomination.objects.create(
                enrollment=enrollment,
                committed_kw=committed_kw,
                effective_from=now,
                created_by=user,
                reason="Application",
            )
            ConsentRecord.objects.create(
                enrollment=enrollment,
                user=user,
                terms_version=program.terms_version,
                terms_sha256=terms_digest,
                ip_address=ip_address,
                user_agent=(user_agent or "")[:500],
            )
            enrollments.append(enrollment)
    return enrollments


def enrollment_transition(
    *, enrollment: Enrollment, to_status: str, by: AbstractBaseUser, reason: str = ""
) -> Enrollment:
    """Move ``enrollment`` to ``to_status``, recording who, when, from, to and why.

    Compare-and-set: if someone else changed the status meanwhile, nothing is written and a
    ValidationError says so. Participants (organization admins) may only withdraw; every
    other transition needs a program manager. Becoming active fixes the commitment period
    and makes due the enablement installments held back until then; leaving before it ends
    claws back enablement incentives pro rata, and leaving (or being rejected) before ever
    becoming active claws them back in full (:func:`enablement_clawback`).
    """
    from_status = enrollment.status
    if to_status not in ENROLLMENT_TRANSITIONS.get(from_status, frozenset()):
        raise ValidationError(
            f"An enrollment that is {enrollment.get_status_display().lower()} cannot become "
            f"{Enrollment.Status(to_status).label.lower()}."
        )
    if by.is_staff:
        _require_manager(by)
    else:
        if to_status not in PARTICIPANT_TRANSITIONS:
            raise PermissionDenied("Only program managers make this decision.")
        require_role(by, enrollment.site.organization, [Membership.Role.ADMIN])
    if to_status in REASON_REQUIRED and not reason.strip():
        raise ValidationError({"reason": "Give a reason; the participant will see it."})

    today = timezone.localdate(timezone=enrollment.program.zone)
    updates: dict = {"status": to_status}
    if to_status == S.ACTIVE and enrollment.active_from is None:
        updates["active_from"] = today
        updates["commitment_ends"] = _add_months(today, enrollment.program.commitment_months)
    if to_status in (S.WITHDRAWN, S.TERMINATED, S.REJECTED):
        updates["ended_at"] = timezone.now()
    with transaction.atomic():
        changed = Enrollment.objects.filter(pk=enrollment.pk, status=from_status).update(**updates)
        if not changed:
            raise ValidationError("This enrollment was changed by someone else; reload and retry.")
        EnrollmentTransition.objects.create(
            enrollment=enrollment,
            from_status=from_status,
            to_status=to_status,
            by=by,
            reason=reason.strip(),
        )
        for field, value in updates.items():
            setattr(enrollment, field, value)
        if to_status == S.ACTIVE:
            _enablement_release_held(enrollment=enrollment, on=today)
        if to_status in (S.WITHDRAWN, S.TERMINATED, S.REJECTED):
            # Never active: nothing was served. Active: only before the commitment ends.
            if enrollment.active_from is None or (
                enrollment.commitment_ends and today < enrollment.commitment_ends
            ):
                enablement_clawback(enrollment=enrollment, left_on=today)
    return enrollment


def enrollment_decide(
    *, enrollment: Enrollment, approve: bool, by: AbstractBaseUser, reason: str = ""
) -> Enrollment:
    """A manager's review decision: approve (and activate) or reject with a reason."""
    _require_manager(by)
    if not approve:
        return enrollment_transition(
            enrollment=enrollment, to_status=S.REJECTED, by=by, reason=reason
        )
    with transaction.atomic():
        enrollment_transition(enrollment=enrollment, to_status=S.APPROVED, by=by, reason=reason)
        return enrollment_transition(
            enrollment=enrollment, to_status=S.ACTIVE, by=by, reason="Activated on approval"
        )


def open_nomination_window(program: Program, at: dt.datetime) -> NominationWindow | None:
    """Return the program's nomination window open at ``at``, or None."""
    return NominationWindow.objects.filter(
        program=program, opens_at__lte=at, closes_at__gt=at
    ).first()


def nomination_change(
    *,
    enrollment: Enrollment,
    committed_kw: Decimal,
    by: AbstractBaseUser,
    reason: str = "",
    at: dt.datetime | None = None,
) -> Nomination:
    """Change the committed kW from now on, inside one of the program's change windows.

    The previous nominations stay: ``selectors.committed_kw_at`` answers for any moment.
    """
    at = at or timezone.now()
    if not by.is_staff:
        require_role(by, enrollment.site.organization, [Membership.Role.ADMIN])
    else:
        _require_manager(by)
    if enrollment.status not in (S.APPROVED, S.ACTIVE):
        raise ValidationError("Only an approved or active enrollment can change its nomination.")
    if open_nomination_window(enrollment.program, at) is None:
        following = (
            NominationWindow.objects.filter(program=enrollment.program, opens_at__gt=at)
            .order_by("opens_at")
            .first()
        )
        if following:
            opens = timezone.localtime(following.opens_at, enrollment.program.zone)
            when = f" The next window opens on {opens:%b %d, %Y %H:%M}."
        else:
            when = " No further window is scheduled."
        raise ValidationError(
            "Committed kW can only change inside the program's nomination windows." + when
        )
    errors = commitment_errors(
        program=enrollment.program, site=enrollment.site, committed_kw=committed_kw
    )
    if errors:
        raise ValidationError({"committed_kw": errors})
    with transaction.atomic():
        nomination = Nomination.objects.create(
            enrollment=enrollment,
            committed_kw=committed_kw,
            effective_from=at,
            created_by=by,
            reason=reason,
        )
        Enrollment.objects.filter(pk=enrollment.pk).update(committed_kw=committed_kw)
        enrollment.committed_kw = committed_kw
    return nomination


def enrollment_firm_service_level_set(
    *,
    enrollment: Enrollment,
    firm_kw: Decimal | None,
    effective_from: dt.datetime,
    by: AbstractBaseUser,
    reason: str = "",
) -> FirmServiceLevel:
    """Record the kW ``enrollment``'s site must stay at or below during events from
    ``effective_from`` on (``firm_kw`` None: no firm level from then on), for programs that
    charge energy above a firm service level.

    The earlier records stay: ``selectors.firm_service_level_at`` answers for any moment,
    and a settlement run uses the level in effect at each event's start. Any date is
    accepted, also one inside a period already settled: approved runs do not change, and a
    restatement of that period then applies the new level to its events.

    Returns the new record. Raises ``PermissionDenied`` unless ``by`` is a program manager,
    ``ValidationError`` (keyed ``firm_kw``) for a negative level, and ``ValueError`` for a
    naive ``effective_from``.
    """
    _require_manager(by)
    if timezone.is_naive(effective_from):
        raise ValueError("effective_from must be an aware datetime.")
    level = FirmServiceLevel(
        enrollment=enrollment,
        firm_kw=firm_kw,
        effective_from=effective_from,
        created_by=by,
        reason=reason.strip(),
    )
    level.full_clean()
    level.save()
    return level


# --- audits and enablement -------------------------------------------------------------------


def audit_schedule(*, site: Site, auditor: AbstractBaseUser, scheduled_for: dt.datetime) -> Audit:
    """Schedule an audit of ``site`` by ``auditor`` (a member of the Auditors group)."""
    if not auditor.has_perm("enrollment.add_audit"):
        raise PermissionDenied("Only auditors and program managers carry out audits.")
    audit = Audit(site=site, auditor=auditor, scheduled_for=scheduled_for)
    audit.full_clean()
    audit.save()
    return audit


def audit_complete(*, audit: Audit, by: AbstractBaseUser, summary: str = "") -> Audit:
    """Complete ``audit``: fix its curtailable kW (sum of findings) on the audit and the site."""
    if not by.has_perm("enrollment.change_audit"):
        raise PermissionDenied("Only auditors and program managers complete audits.")
    total = audit.findings.aggregate(total=Sum("curtailable_kw"))["total"]
    if total is None:
        raise ValidationError("Record at least one finding before completing the audit.")
    now = timezone.now()
    with transaction.atomic():
        changed = Audit.objects.filter(pk=audit.pk, status=Audit.Status.SCHEDULED).update(
            status=Audit.Status.COMPLETED,
            completed_at=now,
            curtailable_kw=total,
            summary=summary or audit.summary,
        )
        if not changed:
            raise ValidationError("Only a scheduled audit can be completed.")
        Site.objects.filter(pk=audit.site_id).update(audited_curtailable_kw=total)
    audit.refresh_from_db()
    return audit


def incentive_for(*, cost: Decimal, program: Program) -> Decimal:
    """incentive = min(cost × program cost share, program cap), in cents rounded half up."""
    return money(min(cost * program.enablement_cost_share, program.enablement_cap))


def enablement_project_create(
    *,
    audit: Audit,
    program: Program,
    measures: Sequence[EnablementMeasure],
    description: str,
    by: AbstractBaseUser,
    cost: Decimal | None = None,
) -> EnablementProject:
    """Propose a project from an audit's recommended measures, with its staged installments.

    ``cost`` defaults to the measures' estimated cost. The installments follow the program's
    stages; the last one takes the rounding remainder, so they add up to the incentive.
    """
    if not by.has_perm("enrollment.add_enablementproject"):
        raise PermissionDenied("Only program managers create enablement projects.")
    if audit.status != Audit.Status.COMPLETED:
        raise ValidationError("Enablement projects come from a completed audit.")
    if any(measure.audit_id != audit.pk for measure in measures):
        raise ValidationError("Every measure must come from this audit.")
    if cost is None:
        cost = sum((measure.estimated_cost for measure in measures), Decimal("0"))
    if cost <= 0:
        raise ValidationError({"cost": "The project cost must be greater than zero."})
    incentive = incentive_for(cost=cost, program=program)
    with transaction.atomic():
        project = EnablementProject.objects.create(
            site=audit.site,
            program=program,
            audit=audit,
            description=description,
            cost=cost,
            incentive=incentive,
            status_changed_at=timezone.now(),
        )
        project.measures.set(measures)
        stages = program.enablement_stages
        remaining = incentive
        for sequence, stage in enumerate(stages, start=1):
            share = Decimal(str(stage["share"]))
            amount = remaining if sequence == len(stages) else money(incentive * share)
            remaining -= amount
            ratio = stage.get("min_performance_ratio")
            EnablementInstallment.objects.create(
                project=project,
                sequence=sequence,
                trigger=stage["trigger"],
                share=share,
                min_performance_ratio=Decimal(str(ratio)) if ratio is not None else None,
                amount=amount,
                explanation=_installment_explanation(stage, share, incentive),
            )
    return project


def _installment_explanation(stage: dict, share: Decimal, incentive: Decimal) -> str:
    when = {
        "approved": "on approval",
        "installed": "once installed",
        "verified": "once the installation is verified",
        "season_performance": (
            "after a season with an average performance ratio of at least "
            f"{Decimal(str(stage.get('min_performance_ratio', '0'))) * 100:.0f}%"
        ),
    }[stage["trigger"]]
    return f"{share * 100:.0f}% of the ${incentive:,} incentive, {when}"


def enablement_project_propose(*, audit: Audit, by: AbstractBaseUser) -> EnablementProject:
    """Propose one project from the audit's recommended measures not yet in a project.

    The program is the one the site is enrolled (or applying) in; its cost share and cap
    set the incentive. Raises ValidationError when the site has no open enrollment or
    every measure already belongs to a project.
    """
    enrollment = (
        Enrollment.objects.filter(site=audit.site, status__in=Enrollment.OPEN_STATUSES)
        .select_related("program")
        .order_by("-applied_at")
        .first()
    )
    if enrollment is None:
        raise ValidationError(
            "The site has no open enrollment, so no program's cost share applies yet."
        )
    measures = list(audit.measures.filter(projects__isnull=True))
    if not measures:
        raise ValidationError("Every recommended measure of this audit is already in a project.")
    return enablement_project_create(
        audit=audit,
        program=enrollment.program,
        measures=measures,
        description="; ".join(measure.description for measure in measures)[:1000],
        by=by,
    )


PROJECT_FLOW = {
    EnablementProject.Status.PROPOSED: EnablementProject.Status.APPROVED,
    EnablementProject.Status.APPROVED: EnablementProject.Status.INSTALLED,
    EnablementProject.Status.INSTALLED: EnablementProject.Status.VERIFIED,
    EnablementProject.Status.VERIFIED: EnablementProject.Status.PAID,
}
#: Project statuses in order; an installment triggered by one of them has been reached once
#: the project is at that status or a later one.
PROJECT_STEPS = (
    EnablementProject.Status.APPROVED,
    EnablementProject.Status.INSTALLED,
    EnablementProject.Status.VERIFIED,
    EnablementProject.Status.PAID,
)


def _triggers_reached(project_status: str) -> list[str]:
    if project_status not in PROJECT_STEPS:
        return []
    return list(PROJECT_STEPS[: PROJECT_STEPS.index(project_status) + 1])


def _enrollment_is_active(project: EnablementProject, *, lock: bool = False) -> bool:
    """Whether the site's enrollment in the project's program is active: the one condition
    for any of its installments to fall due. ``lock`` (inside a transaction) holds the
    enrollment row until commit, so a suspension or withdrawal waits for this write."""
    enrollments = Enrollment.objects.filter(
        site_id=project.site_id, program_id=project.program_id, status=S.ACTIVE
    )
    if lock:
        enrollments = enrollments.select_for_update()
    return enrollments.exists()


def _served_through(project: EnablementProject, day: dt.date) -> bool:
    """Whether the site's enrollment in the project's program was active by ``day`` and
    ended (withdrawn or terminated) on ``day`` or later, in the program's zone."""
    ended = Enrollment.objects.filter(
        site_id=project.site_id,
        program_id=project.program_id,
        status__in=(S.WITHDRAWN, S.TERMINATED),
        active_from__lte=day,
        ended_at__isnull=False,
    ).values_list("ended_at", flat=True)
    zone = project.program.zone
    return any(timezone.localtime(ended_at, zone).date() >= day for ended_at in ended)


def _held_installments(project: EnablementProject) -> QuerySet[EnablementInstallment]:
    """Pending installments whose trigger the project has reached: held until the site's
    enrollment is active."""
    return project.installments.filter(
        status=EnablementInstallment.Status.PENDING,
        kind=EnablementInstallment.Kind.INSTALLMENT,
        trigger__in=_triggers_reached(project.status),
    )


def _enablement_release_held(*, enrollment: Enrollment, on: dt.date) -> int:
    """Make due on ``on`` the installments held back while ``enrollment`` was not active.

    Returns how many installments became due.
    """
    released = 0
    projects = EnablementProject.objects.filter(
        site_id=enrollment.site_id, program_id=enrollment.program_id
    ).exclude(status=EnablementProject.Status.CLAWED_BACK)
    for project in projects:
        released += _held_installments(project).update(
            status=EnablementInstallment.Status.DUE, due_date=on
        )
    return released


def enablement_project_advance(
    *, project: EnablementProject, to_status: str, by: AbstractBaseUser, on: dt.date | None = None
) -> EnablementProject:
    """Move a project one step (proposed → approved → installed → verified → paid).

    Installments triggered by the new status become due on ``on`` (default today) when the
    site's enrollment in the program is active; otherwise they stay pending and fall due on
    the day it becomes active (an incentive pays for load the site commits to shed, so
    none is owed before it does). "paid" marks every due installment paid; it is refused
    while installments are held back that way.
    """
    if not by.has_perm("enrollment.change_enablementproject"):
        raise PermissionDenied("Only program managers advance enablement projects.")
    if PROJECT_FLOW.get(project.status) != to_status:
        raise ValidationError(
            f"A {project.get_status_display().lower()} project cannot become "
            f"{EnablementProject.Status(to_status).label.lower()}."
        )
    active = _enrollment_is_active(project)
    if (
        to_status == EnablementProject.Status.PAID
        and not active
        and _held_installments(project).exists()
    ):
        raise ValidationError(
            "The site's enrollment is not active, so its installments are not due yet; "
            "the project can be marked paid once they are."
        )
    on = on or timezone.localdate(timezone=project.program.zone)
    with transaction.atomic():
        changed = EnablementProject.objects.filter(pk=project.pk, status=project.status).update(
            status=to_status, status_changed_at=timezone.now()
        )
        if not changed:
            raise ValidationError("This project was changed by someone else; reload and retry.")
        project.status = to_status
        if active:
            installments = project.installments.filter(status=EnablementInstallment.Status.PENDING)
            installments.filter(trigger=to_status).update(
                status=EnablementInstallment.Status.DUE, due_date=on
            )
        if to_status == EnablementProject.Status.PAID:
            project.installments.filter(status=EnablementInstallment.Status.DUE).update(
                status=EnablementInstallment.Status.PAID
            )
    return project


def enablement_season_review(
    *, project: EnablementProject, performance_ratio: Decimal, season_end: dt.date
) -> list[EnablementInstallment]:
    """Settle the season-performance installments of ``project``.

    Each becomes due on ``season_end`` when ``performance_ratio`` reaches its threshold,
    otherwise it is forfeited. Returns the installments it changed.

    Like every installment, a season share falls due only for an enrollment that serves:
    the site's enrollment in the program is active, or it ended (withdrawn or terminated)
    on or after ``season_end`` in the program's zone, having served the whole season (the
    review often comes after a term that ends with the season; leaving earlier cancels
    the pending shares through the clawback, :func:`enablement_clawback`). Otherwise
    (suspended, approved but not yet active) the review is refused with a ValidationError
    and changes nothing, forfeits included: the shares stay pending, and the season is
    reviewed again once the enrollment is active (reactivation does not settle it by
    itself, since only the review knows the ratio).
    """
    changed = []
    pending = project.installments.filter(
        status=EnablementInstallment.Status.PENDING, trigger="season_performance"
    )
    with transaction.atomic():
        if not _enrollment_is_active(project, lock=True) and not _served_through(
            project, season_end
        ):
            raise ValidationError(
                "The site's enrollment is not active, so its season share cannot fall due; "
                "review the season again once the enrollment is active."
            )
        for installment in pending.select_for_update():
            if performance_ratio >= (installment.min_performance_ratio or Decimal("0")):
                installment.status = EnablementInstallment.Status.DUE
                installment.due_date = season_end
            else:
                installment.status = EnablementInstallment.Status.FORFEITED
                installment.explanation += (
                    f" (forfeited: performance ratio {performance_ratio:.2f} below "
                    f"{installment.min_performance_ratio:.2f})"
                )
            installment.save(update_fields=["status", "due_date", "explanation"])
            changed.append(installment)
    return changed


def enablement_clawback(*, enrollment: Enrollment, left_on: dt.date) -> list[EnablementInstallment]:
    """Claw back incentives of a site that leaves before its commitment period ends.

    For each of the site's projects in the program: pending installments are cancelled, and
    a negative installment due on ``left_on`` recovers the incentive paid or due so far pro
    rata to the unserved months: amount = −paid × unserved months ÷ commitment months,
    rounded to cents half up, where the served months are :func:`months_served` from the
    activation day to ``left_on``.

    An enrollment that never became active served nothing: its unpaid installments
    (pending or due) are cancelled and a clawback recovers everything already paid.
    Returns the clawback installments created.
    """
    installment, status = EnablementInstallment.Kind.INSTALLMENT, EnablementInstallment.Status
    if enrollment.active_from is None:
        return _claw_back_projects(
            enrollment,
            left_on,
            cancel=Q(kind=installment, status__in=[status.PENDING, status.DUE]),
            recover=[status.PAID],
            unserved=(1, 1),
            explain=lambda paid, amount: (
                "Clawback: left before the enrollment became active, so no committed "
                f"month was served; the ${paid:,} paid comes back in full"
            ),
        )
    program = enrollment.program
    months_total = program.commitment_months
    start, end = enrollment.active_from, enrollment.commitment_ends
    if not start or not end or left_on >= end or months_total == 0:
        return []
    served = months_served(start=start, until=left_on)
    unserved = max(months_total - served, 0)
    return _claw_back_projects(
        enrollment,
        left_on,
        cancel=Q(status=status.PENDING),
        recover=[status.DUE, status.PAID],
        unserved=(unserved, months_total),
        explain=lambda paid, amount: (
            f"Clawback: left after {served} of {months_total} committed months; "
            f"${paid:,} × {unserved}/{months_total} = ${-amount:,}"
        ),
    )


def _claw_back_projects(
    enrollment: Enrollment,
    left_on: dt.date,
    *,
    cancel: Q,
    recover: list[str],
    unserved: tuple[int, int],
    explain: Callable[[Decimal, Decimal], str],
) -> list[EnablementInstallment]:
    """For each of the site's projects in the program not clawed back yet: cancel its
    installments ``cancel`` selects and mark it clawed back; when its installments in the
    ``recover`` statuses add up to more than nothing, add a clawback of −that × unserved
    months ÷ commitment months (``unserved``; cents, half up) due on ``left_on``, explained
    by ``explain(paid, amount)``. Returns the clawbacks created."""
    months, months_total = unserved
    created = []
    projects = EnablementProject.objects.filter(
        site_id=enrollment.site_id, program_id=enrollment.program_id
    ).exclude(status=EnablementProject.Status.CLAWED_BACK)
    for project in projects:
        project.installments.filter(cancel).update(status=EnablementInstallment.Status.CANCELLED)
        paid = project.installments.filter(
            kind=EnablementInstallment.Kind.INSTALLMENT, status__in=recover
        ).aggregate(total=Sum("amount"))["total"] or Decimal("0")
        project.status = EnablementProject.Status.CLAWED_BACK
        project.status_changed_at = timezone.now()
        project.save(update_fields=["status", "status_changed_at"])
        if paid <= 0:
            continue
        paid = money(paid)
        amount = -money(paid * Decimal(months) / Decimal(months_total))
        last = project.installments.order_by("-sequence").first()
        created.append(
            EnablementInstallment.objects.create(
                project=project,
                sequence=(last.sequence if last else 0) + 1,
                kind=EnablementInstallment.Kind.CLAWBACK,
                share=Decimal(months) / Decimal(months_total),
                amount=amount,
                due_date=left_on,
                status=EnablementInstallment.Status.DUE,
                explanation=explain(paid, amount),
            )
        )
    return created


# --- contacts -----------------------------------------------------------------------------

_SNPP_HOST = re.compile(r"^[A-Za-z0-9.-]+:\d{1,5}$")


def _validate_url(url: str, field: str) -> None:
    try:
        URLValidator(schemes=["https", "http"])(url)
    except ValidationError:
        raise ValidationError({field: f"{url!r} is not an http(s) URL."}) from None


def _validate_outbound_url(url: str, field: str) -> None:
    """An http(s) URL the platform may call for a participant (see dr_platform.outbound)."""
    _validate_url(url, field)
    try:
        outbound.check_url(url)
    except outbound.OutboundAddressError as exc:
        raise ValidationError({field: str(exc)}) from None


def _validate_wctp_gateway(url: str) -> None:
    """Only a gateway the operator trusts may receive the platform's WCTP credentials."""
    _validate_url(url, "wctp_endpoint")
    gateways = outbound.trusted_wctp_gateways()
    if not outbound.is_trusted_gateway(url, gateways):
        accepted = ", ".join(gateways) if gateways else "none is configured"
        raise ValidationError(
            {
                "wctp_endpoint": (
                    f"{url!r} is not a paging gateway this platform sends through; "
                    f"choose one of its gateways ({accepted})."
                )
            }
        )


def _validate_snpp_host(value: str) -> None:
    if not _SNPP_HOST.match(value or ""):
        raise ValidationError({"snpp_host": "Give the paging server as host:port."})
    try:
        host, port = outbound.parse_host_port(value, default_port=SNPP_DEFAULT_PORT)
        outbound.check_host(host, port)
    except outbound.OutboundAddressError as exc:
        raise ValidationError({"snpp_host": str(exc)}) from None


def validate_pager_gateway(*, kind: str, wctp_endpoint: str = "", snpp_host: str = "") -> None:
    """Check a pager method's gateway against the outbound policy (dr_platform.outbound).

    A WCTP pager must name one of ``WCTP_TRUSTED_GATEWAYS``; an SNPP pager a ``host:port``
    on a public address with a port from 1 to 65535. Other kinds pass. Raises
    ValidationError on the ``wctp_endpoint`` or ``snpp_host`` field.
    """
    if kind == ContactMethod.Kind.PAGER_WCTP:
        _validate_wctp_gateway(wctp_endpoint)
    if kind == ContactMethod.Kind.PAGER_SNPP:
        _validate_snpp_host(snpp_host)


def normalize_contact_address(*, kind: str, address: str, region: str = "US") -> str:
    """Return the canonical address for a method of ``kind`` or raise ValidationError.

    Phone numbers are stored in E.164 (+15551234567); email addresses lower-cased.
    """
    address = (address or "").strip()
    if kind in ContactMethod.PHONE_KINDS:
        try:
            number = phonenumbers.parse(address, region)
        except phonenumbers.NumberParseException:
            raise ValidationError({"address": f"{address!r} is not a phone number."}) from None
        if not phonenumbers.is_valid_number(number):
            raise ValidationError({"address": f"{address!r} is not a valid phone number."})
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if kind == ContactMethod.Kind.EMAIL:
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError({"address": f"{address!r} is not an email address."}) from None
        return address.lower()
    if kind == ContactMethod.Kind.WEBHOOK:
        _validate_outbound_url(address, "address")
        return address
    if kind in (ContactMethod.Kind.PAGER_WCTP, ContactMethod.Kind.PAGER_SNPP):
        if not re.fullmatch(r"[A-Za-z0-9@._+-]{1,64}", address):
            raise ValidationError({"address": "A pager id is letters, digits and @._+- only."})
        return address
    raise ValidationError({"kind": f"Unknown contact method kind {kind!r}."})


def contact_method_create(
    *,
    contact: Contact,
    kind: str,
    address: str,
    by: AbstractBaseUser,
    escalation_order: int | None = None,
    wctp_endpoint: str = "",
    snpp_host: str = "",
    webhook_secret: str = "",
) -> ContactMethod:
    """Add an unverified contact method; an admin or operator of the organization only."""
    if not by.is_staff:
        require_role(by, contact.organization, [Membership.Role.ADMIN, Membership.Role.OPERATOR])
    address = normalize_contact_address(kind=kind, address=address)
    validate_pager_gateway(kind=kind, wctp_endpoint=wctp_endpoint, snpp_host=snpp_host)
    if kind == ContactMethod.Kind.WEBHOOK and not webhook_secret:
        webhook_secret = secrets.token_urlsafe(32)
    if ContactMethod.objects.filter(contact=contact, kind=kind, address=address).exists():
        raise ValidationError({"address": "This contact already has that method."})
    if escalation_order is None:
        escalation_order = (contact.methods.count() or 0) + 1
    method = ContactMethod(
        contact=contact,
        kind=kind,
        address=address,
        escalation_order=escalation_order,
        wctp_endpoint=wctp_endpoint,
        snpp_host=snpp_host,
        webhook_secret=webhook_secret,
    )
    method.full_clean()
    method.save()
    return method


def contact_method_rotate_secret(*, method: ContactMethod, by: AbstractBaseUser) -> str:
    """Give a webhook method a new signing secret and return it; the old one stops working
    at once (notices sent from now on are signed with the new one).

    The secret signs every request to the participant's receiver (``X-DR-Signature``), so
    only the organization's administrators may replace it; the portal shows the returned
    value once and never again. Raises ``PermissionDenied`` for any other member role and
    ``ValidationError`` for a method that is not a webhook.
    """
    if not by.is_staff:
        require_role(by, method.contact.organization, [Membership.Role.ADMIN])
    if method.kind != ContactMethod.Kind.WEBHOOK:
        raise ValidationError("Only webhook methods have a signing secret.")
    method.webhook_secret = secrets.token_urlsafe(32)
    method.save(update_fields=["webhook_secret"])
    return method.webhook_secret


CONTACT_EDITORS = (Membership.Role.ADMIN, Membership.Role.OPERATOR)


def contact_create(
    *,
    organization: Organization,
    by: AbstractBaseUser,
    name: str,
    title: str = "",
    sites: Iterable[Site] = (),
) -> Contact:
    """Create a contact of ``organization`` covering ``sites`` (all sites when empty)."""
    if not by.is_staff:
        require_role(by, organization, CONTACT_EDITORS)
    sites = list(sites)
    if any(site.organization_id != organization.pk for site in sites):
        raise PermissionDenied("A site of another organization cannot be used here.")
    contact = Contact(organization=organization, name=name.strip(), title=title.strip())
    contact.full_clean()
    with transaction.atomic():
        contact.save()
        contact.sites.set(sites)
    return contact


def contact_method_remove(*, method: ContactMethod, by: AbstractBaseUser) -> None:
    """Delete ``method``; when notifications refer to it (their ledger must stay), disable it
    instead, so it is never used again."""
    if not by.is_staff:
        require_role(by, method.contact.organization, CONTACT_EDITORS)
    try:
        with transaction.atomic():
            method.delete()
    except ProtectedError:
        ContactMethod.objects.filter(pk=method.pk, disabled_at__isnull=True).update(
            disabled_at=timezone.now(), disabled_reason=f"Removed by {by}"
        )


def _code_digest(method: ContactMethod, code: str) -> str:
    return salted_hmac("contact-method-verification", f"{method.pk}:{code}").hexdigest()


def _send_code_to_outbox(method: ContactMethod, subject: str, body: str) -> None:
    OutboxMessage.objects.create(
        kind=method.kind,
        address=method.address,
        subject=subject,
        body=body,
        organization=method.contact.organization,
    )


#: How verification codes travel. The sandbox outbox by default; the events app, which owns
#: the real channels (and may import enrollment, never the reverse), installs its own
#: sender with ``set_verification_sender`` when NOTIFICATION_MODE is "live".
VerificationSender = Callable[[ContactMethod, str, str], None]
_verification_sender: VerificationSender = _send_code_to_outbox


def set_verification_sender(sender: VerificationSender | None) -> None:
    """Install how verification codes are delivered (None restores the sandbox outbox)."""
    global _verification_sender
    _verification_sender = sender or _send_code_to_outbox


def contact_method_send_verification(*, method: ContactMethod, by: AbstractBaseUser) -> None:
    """Send a 6-digit code through the method (see ``set_verification_sender``).

    At most one code a minute; a new code replaces the previous one and resets the
    attempt counter. The code itself is never stored, only its keyed digest. A disabled
    method gets no code.

    Raises ``ValidationError`` for a disabled method, a code asked for too soon, or a
    sender that could not deliver it; after a failed send both the row and ``method``
    itself are as they were, so an earlier code still works and a new one may be asked
    for at once.
    """
    if not by.is_staff:
        require_role(
            by, method.contact.organization, [Membership.Role.ADMIN, Membership.Role.OPERATOR]
        )
    if method.disabled_at is not None:
        raise ValidationError(f"This method is disabled ({method.disabled_reason or 'no reason'}).")
    now = timezone.now()
    if (
        method.verification_sent_at
        and now - method.verification_sent_at < VERIFICATION_RESEND_INTERVAL
    ):
        raise ValidationError(
            "A code was sent less than a minute ago; please wait before asking again."
        )
    code = f"{secrets.randbelow(1_000_000):06d}"
    fields = ["verification_code_hash", "verification_sent_at", "verification_attempts"]
    before = {field: getattr(method, field) for field in fields}
    try:
        with transaction.atomic():
            method.verification_code_hash = _code_digest(method, code)
            method.verification_sent_at = now
            method.verification_attempts = 0
            method.save(update_fields=fields)
            _verification_sender(
                method,
                "Your verification code",
                f"Your demand-response verification code is {code}. It expires in "
                f"{int(VERIFICATION_CODE_LIFETIME.total_seconds() // 60)} minutes.",
            )
    except BaseException:
        # The rollback restored the row; put this object back too, or a caller that keeps
        # it (a retry, a page re-rendered from it) would see a send time that never was and
        # refuse the next attempt as "less than a minute ago".
        for field, value in before.items():
            setattr(method, field, value)
        raise


def contact_method_verify(
    *, method: ContactMethod, code: str, by: AbstractBaseUser
) -> ContactMethod:
    """Mark ``method`` verified when ``code`` matches the last code sent and has not expired."""
    if not by.is_staff:
        require_role(
            by, method.contact.organization, [Membership.Role.ADMIN, Membership.Role.OPERATOR]
        )
    now = timezone.now()
    if not method.verification_code_hash or not method.verification_sent_at:
        raise ValidationError({"code": "Send a code first."})
    if now - method.verification_sent_at > VERIFICATION_CODE_LIFETIME:
        raise ValidationError({"code": "This code has expired; send a new one."})
    if method.verification_attempts >= VERIFICATION_MAX_ATTEMPTS:
        raise ValidationError({"code": "Too many wrong codes; send a new one."})
    code = (code or "").strip()
    if not constant_time_compare(_code_digest(method, code), method.verification_code_hash):
        # Counted in the database, so wrong guesses sent in parallel each count.
        counted = ContactMethod.objects.filter(
            pk=method.pk, verification_attempts__lt=VERIFICATION_MAX_ATTEMPTS
        ).update(verification_attempts=F("verification_attempts") + 1)
        if not counted:
            raise ValidationError({"code": "Too many wrong codes; send a new one."})
        method.refresh_from_db(fields=["verification_attempts"])
        left = max(VERIFICATION_MAX_ATTEMPTS - method.verification_attempts, 0)
        raise ValidationError({"code": f"That code is not right; {left} attempt(s) left."})
    # Conditional on the counter in the database, not this (possibly stale) copy.
    verified = ContactMethod.objects.filter(
        pk=method.pk, verification_attempts__lt=VERIFICATION_MAX_ATTEMPTS
    ).update(verified_at=now, verification_code_hash="")
    if not verified:
        raise ValidationError({"code": "Too many wrong codes; send a new one."})
    method.verified_at = now
    method.verification_code_hash = ""
    return method


def sites_in(organization: Organization, site_ids: Iterable[int]) -> list[Site]:
    """Return the organization's sites among ``site_ids``; PermissionDenied for any other id."""
    ids = set(site_ids)
    sites = list(Site.objects.filter(organization=organization, pk__in=ids))
    if len(sites) != len(ids):
        raise PermissionDenied("A site of another organization cannot be used here.")
    return sites
