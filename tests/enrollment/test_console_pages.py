"""The manager console's enrollment pages: lists, CSV export, review decisions, capacity."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from enrollment import console_views, services
from enrollment.models import Enrollment, EnrollmentTransition
from tests.enrollment.factories import EnrollmentFactory, ProgramFactory, SiteFactory
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

APPLIED = Enrollment.Status.APPLIED
ACTIVE = Enrollment.Status.ACTIVE


def _application(**fields) -> Enrollment:
    return EnrollmentFactory(status=APPLIED, active_from=None, commitment_ends=None, **fields)


def _csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(body)))


def _page_urls(enrollment: Enrollment) -> list[str]:
    return [
        reverse("console:home"),
        reverse("console:enrollment_list"),
        reverse("console:enrollment_export"),
        reverse("console:enrollment_detail", args=[enrollment.pk]),
        reverse("console:review_queue"),
        reverse("console:capacity_summary"),
    ]


# --- who may open what ----------------------------------------------------------------------


def test_every_console_page_opens_for_a_manager(client, manager):
    enrollment = _application()
    client.force_login(manager)
    for url in _page_urls(enrollment):
        assert client.get(url).status_code == 200, url


def test_the_console_home_links_to_the_enrollment_pages(client, manager):
    client.force_login(manager)
    page = client.get(reverse("console:home")).content.decode()
    for name in ("enrollment_list", "review_queue", "capacity_summary"):
        assert reverse(f"console:{name}") in page


@pytest.mark.parametrize("clerk", ["auditor", "billing_clerk"])
def test_auditors_and_billing_clerks_read_the_lists_but_cannot_decide(client, request, clerk):
    enrollment = _application()
    client.force_login(request.getfixturevalue(clerk))
    for url in _page_urls(enrollment):
        assert client.get(url).status_code == 200, url
    queue = client.get(reverse("console:review_queue")).content.decode()
    assert reverse("console:enrollment_decide", args=[enrollment.pk]) not in queue

    response = client.post(
        reverse("console:enrollment_decide", args=[enrollment.pk]), {"decision": "approve"}
    )

    assert response.status_code == 403
    enrollment.refresh_from_db()
    assert enrollment.status == APPLIED
    assert not EnrollmentTransition.objects.filter(enrollment=enrollment).exists()


def test_participants_get_403_on_console_pages(client, participant_a, organization_a):
    enrollment = _application(site=SiteFactory(organization=organization_a))
    client.force_login(participant_a)
    for url in _page_urls(enrollment):
        assert client.get(url).status_code == 403, url
    decision = reverse("console:enrollment_decide", args=[enrollment.pk])
    assert client.post(decision, {"decision": "approve"}).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(reverse("console:enrollment_list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


# --- the enrollment list and its CSV export -------------------------------------------------


@pytest.fixture
def portfolio():
    """Four enrollments across two programs, tiers, zones and statuses."""
    summer, winter = ProgramFactory(name="Summer Peak"), ProgramFactory(name="Winter Reliability")
    key_account = OrganizationFactory(legal_name="Acme Foods", tier="A")
    small = OrganizationFactory(legal_name="Bayside Bakery", tier="C")
    return {
        "summer": summer,
        "winter": winter,
        "acme_north": EnrollmentFactory(
            program=summer,
            site=SiteFactory(organization=key_account, name="Acme North", zone="NORTH"),
            committed_kw=Decimal("120"),
        ),
        "acme_south": EnrollmentFactory(
            program=summer,
            site=SiteFactory(organization=key_account, name="Acme South", zone="SOUTH"),
            committed_kw=Decimal("80"),
        ),
        "bakery_applied": _application(
            program=summer,
            site=SiteFactory(organization=small, name="Bakery Main", zone="NORTH"),
            committed_kw=Decimal("15"),
        ),
        "bakery_winter": EnrollmentFactory(
            program=winter,
            site=SiteFactory(organization=small, name="Bakery Depot", zone="SOUTH"),
            committed_kw=Decimal("25"),
        ),
    }


def _listed(client, **params) -> list[Enrollment]:
    response = client.get(reverse("console:enrollment_list"), params)
    assert response.status_code == 200
    return list(response.context["page_obj"])


def test_the_enrollment_list_filters_by_program_status_tier_and_zone(client, manager, portfolio):
    client.force_login(manager)
    p = portfolio
    assert _listed(client, program=p["winter"].pk) == [p["bakery_winter"]]
    assert _listed(client, status="applied") == [p["bakery_applied"]]
    assert _listed(client, tier="A") == [p["acme_north"], p["acme_south"]]
    assert _listed(client, zone="NORTH") == [p["acme_north"], p["bakery_applied"]]
    assert _listed(client, program=p["summer"].pk, zone="SOUTH", status="active") == [
        p["acme_south"]
    ]


def test_an_unknown_filter_value_is_shown_as_an_error_and_ignored(client, manager, portfolio):
    client.force_login(manager)
    response = client.get(reverse("console:enrollment_list"), {"status": "bogus"})
    assert response.status_code == 200
    assert "status" in response.context["form"].errors
    assert len(response.context["page_obj"]) == 4


def test_the_enrollment_list_is_paginated_and_keeps_its_filters(
    client, manager, portfolio, monkeypatch
):
    monkeypatch.setattr(console_views, "PAGE_SIZE", 2)
    client.force_login(manager)
    first = client.get(reverse("console:enrollment_list"), {"program": portfolio["summer"].pk})
    assert first.context["page_obj"].paginator.num_pages == 2
    next_link = f"?program={portfolio['summer'].pk}&amp;page=2"
    assert next_link in first.content.decode()
    second = client.get(
        reverse("console:enrollment_list"), {"program": portfolio["summer"].pk, "page": 2}
    )
    assert list(second.context["page_obj"]) == [portfolio["bakery_applied"]]


def test_the_download_link_carries_the_filters(client, manager, portfolio):
    client.force_login(manager)
    page = client.get(reverse("console:enrollment_list"), {"tier": "A", "page": "1"})
    assert f'href="{reverse("console:enrollment_export")}?tier=A"' in page.content.decode()


def test_the_enrollment_list_stays_within_a_bounded_number_of_queries(
    client, manager, django_assert_max_num_queries
):
    program = ProgramFactory()
    for _ in range(20):
        EnrollmentFactory(program=program)
    client.force_login(manager)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("console:enrollment_list"))
    assert len(response.context["page_obj"]) == 20


def test_the_csv_export_has_a_header_and_every_filtered_row_in_order(client, manager, portfolio):
    client.force_login(manager)
    response = client.get(reverse("console:enrollment_export"), {"program": portfolio["summer"].pk})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    rows = _csv(response)
    assert rows[0] == console_views.CSV_COLUMNS
    north = portfolio["acme_north"].site
    assert rows[1] == [
        "Summer Peak",
        "Acme Foods",
        north.organization.billing_account_number,
        "Acme North",
        north.service_account_number,
        "NORTH",
        "SUB-1",
        "F-101",
        "active",
        "120.000",
        "2026-06-01",
        "2027-06-01",
    ]
    assert [(row[3], row[8], row[9], row[10]) for row in rows[2:]] == [
        ("Acme South", "active", "80.000", "2026-06-01"),
        ("Bakery Main", "applied", "15.000", ""),
    ]


def test_the_csv_export_applies_the_list_filters(client, manager, portfolio):
    client.force_login(manager)
    response = client.get(reverse("console:enrollment_export"), {"zone": "SOUTH", "tier": "C"})
    rows = _csv(response)
    assert [row[3] for row in rows[1:]] == ["Bakery Depot"]


def test_the_csv_export_is_the_same_twice_and_keeps_text_from_becoming_formulas(client, manager):
    organization = OrganizationFactory(legal_name="=HYPERLINK(1) Café Ünïcode")
    EnrollmentFactory(site=SiteFactory(organization=organization, name="Site é"))
    client.force_login(manager)
    first = b"".join(client.get(reverse("console:enrollment_export")).streaming_content)
    second = b"".join(client.get(reverse("console:enrollment_export")).streaming_content)
    assert first == second
    rows = list(csv.reader(io.StringIO(first.decode("utf-8"))))
    assert rows[1][1] == "'=HYPERLINK(1) Café Ünïcode"
    assert rows[1][3] == "Site é"


# --- detail page -----------------------------------------------------------------------------


def test_the_detail_page_shows_the_transition_log_nominations_and_consent(
    client, manager, participant_a, organization_a
):
    program = ProgramFactory()
    site = SiteFactory(organization=organization_a, name="Cold Store 1")
    [enrollment] = services.enrollment_apply(
        user=participant_a,
        organization=organization_a,
        program=program,
        commitments={site: Decimal("150")},
        accepted_terms_version=program.terms_version,
        ip_address="203.0.113.7",
        user_agent="Mozilla/5.0 test",
    )
    services.enrollment_transition(
        enrollment=enrollment, to_status="under_review", by=manager, reason="Checking meter data"
    )
    client.force_login(manager)

    response = client.get(reverse("console:enrollment_detail", args=[enrollment.pk]))

    page = response.content.decode()
    assert [(t.from_status, t.to_status) for t in response.context["transitions"]] == [
        ("", "applied"),
        ("applied", "under_review"),
    ]
    assert "Checking meter data" in page
    assert manager.username in page and participant_a.username in page
    assert [n.committed_kw for n in response.context["nominations"]] == [Decimal("150")]
    assert "203.0.113.7" in page and program.terms_version in page
    assert reverse("console:enrollment_decide", args=[enrollment.pk]) in page


def test_an_unknown_enrollment_is_a_404(client, manager):
    client.force_login(manager)
    assert client.get(reverse("console:enrollment_detail", args=[999_999])).status_code == 404


# --- review decisions -----------------------------------------------------------------------


def test_the_review_queue_lists_waiting_applications_oldest_first(
    client, manager, django_assert_max_num_queries
):
    applications = [_application() for _ in range(20)]
    EnrollmentFactory()  # active: not waiting
    client.force_login(manager)
    with django_assert_max_num_queries(10):
        response = client.get(reverse("console:review_queue"))
    assert list(response.context["page_obj"]) == applications


def test_approving_from_the_review_queue_activates_and_logs_both_steps(client, manager):
    enrollment = _application()
    client.force_login(manager)

    response = client.post(
        reverse("console:enrollment_decide", args=[enrollment.pk]),
        {"decision": "approve", "next": reverse("console:review_queue")},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == reverse("console:review_queue")
    assert "approved and activated" in response.content.decode()
    enrollment.refresh_from_db()
    assert enrollment.status == ACTIVE and enrollment.active_from is not None
    log = EnrollmentTransition.objects.filter(enrollment=enrollment).order_by("at", "pk")
    assert [(t.from_status, t.to_status, t.by) for t in log] == [
        ("applied", "approved", manager),
        ("approved", "active", manager),
    ]
    assert list(response.context["page_obj"]) == []


def test_rejecting_needs_a_reason_and_records_it(client, manager):
    enrollment = _application()
    client.force_login(manager)
    url = reverse("console:enrollment_decide", args=[enrollment.pk])

    refused = client.post(url, {"decision": "reject", "reason": "  "}, follow=True)

    assert "Give a reason; the participant will see it." in refused.content.decode()
    enrollment.refresh_from_db()
    assert enrollment.status == APPLIED

    client.post(url, {"decision": "reject", "reason": "Meter is not interval-capable."})

    enrollment.refresh_from_db()
    assert enrollment.status == Enrollment.Status.REJECTED
    transition = EnrollmentTransition.objects.get(enrollment=enrollment)
    assert (transition.from_status, transition.to_status) == ("applied", "rejected")
    assert transition.reason == "Meter is not interval-capable."
    assert transition.by == manager


def test_a_decision_the_service_refuses_shows_its_message(client, manager):
    enrollment = EnrollmentFactory(status=ACTIVE)
    client.force_login(manager)
    detail = reverse("console:enrollment_detail", args=[enrollment.pk])

    response = client.post(
        reverse("console:enrollment_decide", args=[enrollment.pk]),
        {"decision": "approve", "next": detail},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == detail
    assert "An enrollment that is active cannot become approved." in response.content.decode()


def test_a_decision_never_redirects_off_site(client, manager):
    enrollment = _application()
    client.force_login(manager)
    response = client.post(
        reverse("console:enrollment_decide", args=[enrollment.pk]),
        {"decision": "approve", "next": "https://evil.example/"},
    )
    assert response["Location"] == reverse("console:review_queue")


def test_decisions_are_posted_not_fetched(client, manager):
    enrollment = _application()
    client.force_login(manager)
    url = reverse("console:enrollment_decide", args=[enrollment.pk])
    assert client.get(url, {"decision": "approve"}).status_code == 405


# --- capacity -------------------------------------------------------------------------------


def test_the_capacity_summary_adds_up_active_enrollments_by_program_zone_and_tier(
    client, manager, portfolio
):
    # One more active site in Winter, tier A, zone NORTH; and inactive rows that must not count.
    acme = portfolio["acme_north"].site.organization
    EnrollmentFactory(
        program=portfolio["winter"],
        site=SiteFactory(organization=acme, zone="NORTH"),
        committed_kw=Decimal("40.5"),
    )
    EnrollmentFactory(program=portfolio["winter"], status="suspended", committed_kw=Decimal("99"))
    EnrollmentFactory(program=portfolio["summer"], status="withdrawn", committed_kw=Decimal("99"))
    client.force_login(manager)

    response = client.get(reverse("console:capacity_summary"))

    def table(rows):
        return [(r["program"], r["group"], r["sites"], r["committed_kw"]) for r in rows]

    # Summer: Acme North 120 (NORTH, A), Acme South 80 (SOUTH, A); Bakery Main is only applied.
    # Winter: Bakery Depot 25 (SOUTH, C), the new Acme site 40.5 (NORTH, A).
    assert table(response.context["by_zone"]) == [
        ("Summer Peak", "NORTH", 1, Decimal("120")),
        ("Summer Peak", "SOUTH", 1, Decimal("80")),
        ("Summer Peak", "All", 2, Decimal("200")),
        ("Winter Reliability", "NORTH", 1, Decimal("40.5")),
        ("Winter Reliability", "SOUTH", 1, Decimal("25")),
        ("Winter Reliability", "All", 2, Decimal("65.5")),
    ]
    assert table(response.context["by_tier"]) == [
        ("Summer Peak", "A: key account", 2, Decimal("200")),
        ("Summer Peak", "All", 2, Decimal("200")),
        ("Winter Reliability", "A: key account", 1, Decimal("40.5")),
        ("Winter Reliability", "C: small commercial", 1, Decimal("25")),
        ("Winter Reliability", "All", 2, Decimal("65.5")),
    ]
    assert response.context["total_sites"] == 4
    assert response.context["total_kw"] == Decimal("265.5")
    assert "265.5" in response.content.decode()
