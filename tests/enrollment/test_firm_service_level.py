"""An enrollment's firm service level: effective-dated like its committed kW, recorded by a
program manager on the console's enrollment page (level, first day, reason), listed there
with who recorded each level and when, refused when negative, and shown to the participant
as the level in effect now."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from enrollment import selectors, services
from enrollment.models import FirmServiceLevel
from tests.enrollment.factories import (
    EnrollmentFactory,
    NominationWindowFactory,
    ProgramFactory,
    SiteFactory,
)
from tests.factories import staff_user

pytestmark = pytest.mark.django_db


def _urls(enrollment) -> tuple[str, str]:
    return (
        reverse("console:enrollment_detail", args=[enrollment.pk]),
        reverse("console:enrollment_firm_level", args=[enrollment.pk]),
    )


def _today(enrollment) -> dt.date:
    return timezone.localdate(timezone=enrollment.program.zone)


def _midnight(enrollment, day: dt.date) -> dt.datetime:
    """The start of ``day`` in the program's zone, as the console records a level."""
    return dt.datetime.combine(day, dt.time(), enrollment.program.zone)


def _level(enrollment, firm_kw: str | None, effective_from: dt.datetime, *, by=None, reason=""):
    return services.enrollment_firm_service_level_set(
        enrollment=enrollment,
        firm_kw=None if firm_kw is None else Decimal(firm_kw),
        effective_from=effective_from,
        by=by or staff_user("Program managers"),
        reason=reason,
    )


def test_a_program_manager_records_a_level_from_a_day_with_a_reason(client, manager):
    enrollment = EnrollmentFactory(
        site=SiteFactory(name="Cold Store 1"),
        program=ProgramFactory(time_zone="America/Los_Angeles"),
    )
    detail, action = _urls(enrollment)
    today = _today(enrollment)
    client.force_login(manager)
    form = client.get(detail).content.decode()
    assert action in form
    # The day defaults to today in the program's zone.
    assert f'name="effective_from" required value="{today:%Y-%m-%d}"' in form

    response = client.post(
        action,
        {"firm_kw": "250.5", "effective_from": today.isoformat(), "reason": "Contract of May 4"},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == detail
    page = response.content.decode()
    assert f"Cold Store 1&#x27;s firm service level is 250.500 kW from {today}." in page
    assert '<div class="stat">250.500 kW</div>' in page
    level = FirmServiceLevel.objects.get(enrollment=enrollment)
    assert (level.firm_kw, level.created_by, level.reason) == (
        Decimal("250.5"),
        manager,
        "Contract of May 4",
    )
    # From the start of the day in the program's zone, not in UTC.
    assert level.effective_from == _midnight(enrollment, today)
    assert selectors.firm_service_level_at(enrollment, timezone.now()) == Decimal("250.5")


def test_the_history_lists_who_recorded_each_level_when_and_why(client, manager):
    enrollment = EnrollmentFactory(program=ProgramFactory(time_zone="America/New_York"))
    other_manager = staff_user("Program managers", username="pat.manager")
    _level(
        enrollment,
        "80",
        dt.datetime(2026, 6, 1, tzinfo=enrollment.program.zone),
        by=manager,
        reason="Signed contract",
    )
    _level(
        enrollment,
        "120",
        dt.datetime(2026, 9, 1, tzinfo=enrollment.program.zone),
        by=other_manager,
        reason="New chiller plant",
    )
    _level(
        enrollment,
        None,
        dt.datetime(2026, 10, 1, tzinfo=enrollment.program.zone),
        by=manager,
        reason="Moved to the non-firm tariff",
    )
    client.force_login(manager)

    page = client.get(_urls(enrollment)[0]).content.decode()

    history = page[page.index('id="firm-service-levels"') :]
    rows = [
        ("2026-06-01 00:00 EDT", "80", manager.get_username(), "Signed contract"),
        ("2026-09-01 00:00 EDT", "120", "pat.manager", "New chiller plant"),
        ("2026-10-01 00:00 EDT", "none", manager.get_username(), "Moved to the non-firm tariff"),
    ]
    records = FirmServiceLevel.objects.filter(enrollment=enrollment).order_by("effective_from")
    positions = []
    for (effective_from, level, who, why), record in zip(rows, records, strict=True):
        recorded = timezone.localtime(record.created_at, enrollment.program.zone)
        row = (
            f'<tr><td>{effective_from}</td><td class="num">{level}</td>\n'
            f"      <td>{who}</td><td>{recorded:%Y-%m-%d %H:%M} {recorded.tzname()}</td>"
            f"<td>{why}</td></tr>"
        )
        assert row in history
        positions.append(history.index(row))
    assert positions == sorted(positions)  # in the order they take effect
    # Today (November 2026) is after the clearing: no level now.
    assert '<div class="stat">none</div>' in page


def test_clearing_the_level_from_a_day_keeps_the_earlier_level_before_it(client, manager):
    enrollment = EnrollmentFactory(site=SiteFactory(name="Cold Store 1"))
    today = _today(enrollment)
    since = _midnight(enrollment, today - dt.timedelta(days=30))
    _level(enrollment, "80", since)
    _, action = _urls(enrollment)
    client.force_login(manager)

    response = client.post(
        action,
        {"firm_kw": "", "effective_from": today.isoformat(), "reason": "Left the firm tariff"},
        follow=True,
    )

    assert f"Cold Store 1 has no firm service level from {today}." in response.content.decode()
    cleared = FirmServiceLevel.objects.filter(enrollment=enrollment).latest("pk")
    assert (cleared.firm_kw, cleared.effective_from) == (None, _midnight(enrollment, today))
    before = _midnight(enrollment, today) - dt.timedelta(seconds=1)
    assert selectors.firm_service_level_at(enrollment, before) == Decimal("80")
    assert selectors.firm_service_level_at(enrollment, _midnight(enrollment, today)) is None
    assert selectors.firm_service_level_at(enrollment, timezone.now()) is None
    # Both records stay.
    assert FirmServiceLevel.objects.filter(enrollment=enrollment).count() == 2


def test_the_level_in_effect_is_the_latest_one_starting_on_or_before_the_moment():
    enrollment = EnrollmentFactory()
    july, september = (
        dt.datetime(2026, 7, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 9, 1, tzinfo=dt.UTC),
    )
    _level(enrollment, "50", september)  # recorded first, takes effect later
    _level(enrollment, "80", july)
    second = dt.timedelta(seconds=1)

    assert selectors.firm_service_level_at(enrollment, july - second) is None
    assert selectors.firm_service_level_at(enrollment, july) == Decimal("80")
    assert selectors.firm_service_level_at(enrollment, september - second) == Decimal("80")
    assert selectors.firm_service_level_at(enrollment, september) == Decimal("50")
    # Two records from the same moment: the one recorded last.
    _level(enrollment, "60", september)
    assert selectors.firm_service_level_at(enrollment, september) == Decimal("60")
    annotated = selectors.with_firm_service_level_at(
        type(enrollment).objects.filter(pk=enrollment.pk), july + second
    ).get()
    assert annotated.firm_kw_then == Decimal("80")


def test_a_negative_firm_level_is_refused_with_a_clear_message(client, manager):
    enrollment = EnrollmentFactory()
    detail, action = _urls(enrollment)
    client.force_login(manager)

    response = client.post(
        action, {"firm_kw": "-5", "effective_from": _today(enrollment).isoformat()}, follow=True
    )

    assert response.redirect_chain[-1][0] == detail
    assert "The firm service level cannot be negative." in response.content.decode()
    assert not FirmServiceLevel.objects.exists()


def test_a_missing_day_is_refused_with_the_fields_label(client, manager):
    enrollment = EnrollmentFactory()
    _, action = _urls(enrollment)
    client.force_login(manager)

    response = client.post(action, {"firm_kw": "80", "effective_from": ""}, follow=True)

    assert "Effective from: This field is required." in response.content.decode()
    assert not FirmServiceLevel.objects.exists()


def test_the_service_refuses_a_negative_level_a_naive_moment_and_anyone_but_a_program_manager(
    manager, auditor, participant_a
):
    enrollment = EnrollmentFactory()
    now = timezone.now()

    with pytest.raises(ValidationError) as refused:
        _level(enrollment, "-0.001", now, by=manager)
    assert refused.value.message_dict == {"firm_kw": ["The firm service level cannot be negative."]}
    with pytest.raises(ValueError, match="aware"):
        _level(enrollment, "10", dt.datetime(2026, 7, 1), by=manager)  # naive
    for user in (auditor, participant_a):
        with pytest.raises(PermissionDenied):
            _level(enrollment, "10", now, by=user)
    assert not FirmServiceLevel.objects.exists()

    level = _level(enrollment, "0", now, by=manager)

    assert level.firm_kw == Decimal("0")
    assert selectors.firm_service_level_at(enrollment, now) == Decimal("0")


def test_auditors_see_the_history_but_cannot_record_a_level(client, auditor):
    enrollment = EnrollmentFactory()
    _level(enrollment, "80", timezone.now() - dt.timedelta(days=1), reason="Signed contract")
    detail, action = _urls(enrollment)
    client.force_login(auditor)

    page = client.get(detail).content.decode()

    assert '<div class="stat">80 kW</div>' in page and "Signed contract" in page
    assert action not in page
    response = client.post(
        action, {"firm_kw": "10", "effective_from": _today(enrollment).isoformat()}
    )
    assert response.status_code == 403
    assert FirmServiceLevel.objects.count() == 1


def test_participants_cannot_record_a_level_even_for_their_own_site(
    client, participant_a, organization_a
):
    enrollment = EnrollmentFactory(site=SiteFactory(organization=organization_a))
    detail, action = _urls(enrollment)
    client.force_login(participant_a)

    assert client.get(detail).status_code == 403
    response = client.post(
        action, {"firm_kw": "10", "effective_from": _today(enrollment).isoformat()}
    )
    assert response.status_code == 403
    assert not FirmServiceLevel.objects.exists()


def test_the_admin_enrollment_page_shows_the_history_read_only(client, manager):
    enrollment = EnrollmentFactory()
    _level(
        enrollment,
        "80",
        dt.datetime(2026, 6, 1, 4, tzinfo=dt.UTC),
        by=manager,
        reason="Signed contract",
    )
    client.force_login(manager)

    page = client.get(reverse("admin:enrollment_enrollment_change", args=[enrollment.pk]))

    html = page.content.decode()
    assert "Firm service levels" in html
    assert "80.000" in html and "Signed contract" in html
    # Read-only: no form field for a level, and no row to add.
    assert "firm_service_levels-0-firm_kw" not in html
    assert "firm_service_levels-TOTAL_FORMS" in html
    assert 'name="firm_service_levels-TOTAL_FORMS" value="1"' in html


def test_the_participant_sees_the_level_in_effect_now(client, participant_a, organization_a):
    enrollment = EnrollmentFactory(
        site=SiteFactory(organization=organization_a), committed_kw=Decimal("120")
    )
    now = timezone.now()
    _level(enrollment, "250", now - dt.timedelta(days=60))
    _level(enrollment, "300", now - dt.timedelta(days=1))
    _level(enrollment, "400", now + dt.timedelta(days=10))  # not yet in effect
    NominationWindowFactory(program=enrollment.program)
    client.force_login(participant_a)

    dashboard = client.get(reverse("portal:organization", args=[organization_a.pk]))
    nomination = client.get(
        reverse("portal:nomination_change", args=[organization_a.pk, enrollment.pk])
    )

    assert "firm service level 300 kW" in dashboard.content.decode()
    assert "250 kW" not in dashboard.content.decode()
    assert "400 kW" not in dashboard.content.decode()
    assert "Firm service level 300 kW" in nomination.content.decode()
    assert "400 kW" not in nomination.content.decode()


def test_the_dashboard_reads_the_levels_with_its_enrollments(client, participant_a, organization_a):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/portal/o/{organization_a.pk}/").status_code == 200
        return len(captured)

    program = ProgramFactory()
    client.force_login(participant_a)
    first = EnrollmentFactory(site=SiteFactory(organization=organization_a), program=program)
    _level(first, "80", timezone.now() - dt.timedelta(days=1))
    one = queries()
    for _ in range(3):
        more = EnrollmentFactory(site=SiteFactory(organization=organization_a), program=program)
        _level(more, "90", timezone.now() - dt.timedelta(days=1))

    assert queries() == one
