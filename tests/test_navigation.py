"""Every page is reachable from where each user lands, and only the pages they may open.

For each cast member the test opens their landing page (``/`` and its redirects: the
console for staff, the organization's dashboard for a participant), follows every link on
it, and expects each one to answer 200. Links shown to a more privileged user but not to
this one must be pages this one would be refused: so the landing page shows exactly what
its user may open, and no area (events, meter data, performance, settlements) is an
orphan reachable only by typing its address.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from dr_platform.models import Membership
from enrollment.models import Audit
from events.models import Event
from tests.enrollment.factories import (
    AuditFactory,
    EnrollmentFactory,
    MeterFactory,
    NominationWindowFactory,
    ProgramFactory,
    SiteFactory,
)
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def links(page: str) -> set[str]:
    """The local addresses the page's links point at (in-page anchors left out)."""
    found = {html.unescape(href) for href in re.findall(r'<a\b[^>]*?\bhref="([^"]*)"', page)}
    return {href for href in found if href.startswith("/")}


def land(client, user) -> tuple[str, str]:
    """Log ``user`` in and open ``/`` as they would: (the page they land on, its HTML)."""
    client.force_login(user)
    response = client.get("/", follow=True)
    assert response.status_code == 200
    return response.redirect_chain[-1][0], response.content.decode()


def assert_every_link_opens(client, page: str) -> None:
    broken = {}
    for href in sorted(links(page)):
        response = client.get(href, follow=True)
        if response.status_code != 200:
            broken[href] = response.status_code
    assert not broken, f"links that do not open: {broken}"


@pytest.fixture
def world(organization_a, manager):
    """Organization A with a site, meter, enrollment in a program with an open nomination
    window, a completed audit and a completed event: something behind every link."""
    program = ProgramFactory(name="Summer Peak")
    NominationWindowFactory(program=program)
    site = SiteFactory(organization=organization_a, name="Cold Store 1")
    meter = MeterFactory(site=site, meter_id="MTR-HARBOR-1")
    EnrollmentFactory(site=site, program=program, committed_kw=Decimal("100"))
    AuditFactory(site=site, status=Audit.Status.COMPLETED, curtailable_kw=Decimal("150"))
    Event.objects.create(
        program=program,
        kind=Event.Kind.ECONOMIC,
        status=Event.Status.COMPLETED,
        starts_at=dt.datetime(2026, 7, 14, 18, tzinfo=dt.UTC),
        ends_at=dt.datetime(2026, 7, 14, 20, tzinfo=dt.UTC),
        created_by=manager,
    )
    return {"organization": organization_a, "program": program, "meter": meter}


# --- the console --------------------------------------------------------------------------

#: The console pages of each area, by URL name (namespace "console").
AREAS = {
    "events": ["event_list", "event_calendar", "outbox"],
    "meter data": ["meterdata_imports", "meterdata_meters"],
    "performance": ["performance_events", "performance_accuracy"],
    "settlements": ["settlement_runs", "billing_exports", "dispute_queue"],
}


def console_links_of(client, user) -> set[str]:
    where, page = land(client, user)
    assert where == reverse("console:home")
    return links(page)


@pytest.mark.parametrize("who", ["manager", "billing_clerk", "auditor"])
def test_every_link_on_a_staff_members_console_opens(client, request, world, who):
    user = request.getfixturevalue(who)
    where, page = land(client, user)
    assert where == reverse("console:home")
    assert_every_link_opens(client, page)


def test_a_program_manager_reaches_every_console_area(client, manager, world):
    shown = console_links_of(client, manager)
    for area, names in AREAS.items():
        for name in names:
            assert reverse(f"console:{name}") in shown, f"{area}: {name}"
    assert reverse("console:event_create") in shown
    assert reverse("admin:settlements_paymentruleversion_changelist") in shown


def test_billing_reaches_settlements_but_not_the_managers_pages(client, billing_clerk, world):
    shown = console_links_of(client, billing_clerk)
    for name in ["settlement_runs", "billing_exports", "performance_events", "event_list"]:
        assert reverse(f"console:{name}") in shown
    for url in [
        reverse("console:dispute_queue"),
        reverse("console:event_create"),
        reverse("admin:dr_platform_membership_changelist"),
    ]:
        assert url not in shown


def test_auditors_reach_audits_and_enrollments_only(client, auditor, world):
    shown = console_links_of(client, auditor)
    assert reverse("admin:enrollment_audit_changelist") in shown
    assert reverse("console:enrollment_list") in shown
    for names in AREAS.values():
        for name in names:
            assert reverse(f"console:{name}") not in shown


@pytest.mark.parametrize("who", ["billing_clerk", "auditor"])
def test_console_links_hidden_from_a_role_are_pages_it_may_not_open(client, request, world, who):
    everything = console_links_of(client, UserFactory(is_staff=True, is_superuser=True))
    client.logout()
    user = request.getfixturevalue(who)
    hidden = everything - console_links_of(client, user)
    assert hidden, "a superuser sees more than this role"

    opened = {}
    for href in sorted(hidden):
        response = client.get(href)
        if response.status_code == 200:
            opened[href] = response.content.decode()
    # The meter list opens for any staff member but lists only the meters whose readings
    # they may view: for a role without that permission it is empty, so it is not shown.
    meters = opened.pop(reverse("console:meterdata_meters"), None)
    assert meters is None or world["meter"].meter_id not in meters
    assert not opened, f"hidden from {who} but they may open: {sorted(opened)}"


# --- the participant portal ---------------------------------------------------------------


def member(organization, role: str):
    return MembershipFactory(organization=organization, role=role).user


@pytest.mark.parametrize(
    "role", [Membership.Role.ADMIN, Membership.Role.OPERATOR, Membership.Role.VIEWER]
)
def test_every_link_on_a_participants_dashboard_opens(client, world, role):
    organization = world["organization"]
    where, page = land(client, member(organization, role))

    assert where == reverse("portal:organization", args=[organization.pk])
    o = organization.pk
    for url in [
        reverse("portal:events", args=[o]),
        reverse("portal:performance_list", args=[o]),
        reverse("portal:meter_list"),
        reverse("portal:statement_list", args=[o]),
        reverse("portal:contacts", args=[o]),
    ]:
        assert url in links(page), url
    assert 'class="subnav' in page  # the compact row of the organization's areas
    assert_every_link_opens(client, page)


def test_dashboard_links_hidden_from_a_viewer_are_pages_a_viewer_may_not_open(client, world):
    organization = world["organization"]
    _, admin_page = land(client, member(organization, Membership.Role.ADMIN))
    client.logout()
    _, viewer_page = land(client, member(organization, Membership.Role.VIEWER))

    hidden = links(admin_page) - links(viewer_page)

    assert reverse("portal:enrollment_apply_programs", args=[organization.pk]) in hidden
    assert any("/nomination/" in href for href in hidden)
    # Each of them refuses the viewer.
    assert {href: client.get(href).status_code for href in hidden} == dict.fromkeys(hidden, 403)


def test_a_participant_with_two_organizations_reaches_both(client, world, organization_b):
    user = member(world["organization"], Membership.Role.VIEWER)
    MembershipFactory(user=user, organization=organization_b, role=Membership.Role.ADMIN)

    where, page = land(client, user)

    assert where == reverse("portal:home")
    for organization in (world["organization"], organization_b):
        assert reverse("portal:organization", args=[organization.pk]) in links(page)
    assert_every_link_opens(client, page)


def test_many_organizations_share_one_header_link_to_the_list(client, db):
    from tests.factories import OrganizationFactory

    user = UserFactory()
    organizations = [OrganizationFactory() for _ in range(4)]
    for organization in organizations:
        MembershipFactory(user=user, organization=organization, role=Membership.Role.VIEWER)

    where, page = land(client, user)

    header = page.split("</header>")[0]
    assert where == reverse("portal:home")
    assert f'href="{reverse("portal:home")}">Your organizations</a>' in header
    assert organizations[0].legal_name not in header
    for organization in organizations:
        assert reverse("portal:organization", args=[organization.pk]) in links(page)
    assert_every_link_opens(client, page)
